//! `drover`: the kubectl-style client, and the entry points of the server,
//! the node agent and the per-container shim.

mod cmd;
mod files;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc: the server is allocation-heavy (JSON objects per write) and
/// glibc malloc spent ~30% of its CPU under load.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Drover: containers and microVMs under one declarative API.
#[derive(Parser)]
#[command(name = "drover", version = drover_proto::VERSION, disable_help_subcommand = true)]
struct Cli {
    /// API server URL.
    #[arg(
        long,
        global = true,
        env = "DROVER_SERVER",
        default_value = "http://127.0.0.1:7700"
    )]
    server: String,
    /// Read consistency: `linearizable` (default; a Raft ReadIndex round)
    /// or `stale` (the member's local state, which may trail the leader).
    #[arg(long, global = true, default_value = "linearizable", value_parser = ["linearizable", "stale"])]
    consistency: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create or update objects from manifests (idempotent).
    Apply(cmd::apply::ApplyArgs),
    /// Create objects from manifests; fails if any exists.
    Create(cmd::apply::ApplyArgs),
    /// List objects, or show one.
    Get(cmd::get::GetArgs),
    /// Show an object in detail, with its events.
    Describe(cmd::describe::DescribeArgs),
    /// Delete objects by name or by manifest.
    Delete(cmd::delete::DeleteArgs),
    /// Set the replicas of a Deployment or ReplicaSet.
    Scale(cmd::scale::ScaleArgs),
    /// Manage a Deployment's rollout: status, history, undo, restart, pause, resume.
    Rollout(cmd::rollout::RolloutArgs),
    /// Mark a node unschedulable.
    Cordon(cmd::drain::cordon::CordonArgs),
    /// Mark a node schedulable again.
    Uncordon(cmd::drain::cordon::CordonArgs),
    /// Cordon a node and evict its pods, waiting until they are gone.
    Drain(cmd::drain::DrainArgs),
    /// The replicated control plane: status, add-member, remove-member.
    Cluster(cmd::cluster::ClusterArgs),
    /// Print the client and server versions.
    Version,
    /// Run an API server.
    Server(cmd::server::ServerArgs),
    /// Run a one-process local cluster for development.
    Dev(cmd::dev::DevArgs),
    /// Run the node agent (or a fleet of hollow nodes).
    Agent(cmd::agent::AgentArgs),
    /// Show CPU, memory and requests per second of pods or nodes.
    Top(cmd::top::TopArgs),
    /// Print a container's log.
    Logs(cmd::logs::LogsArgs),
    /// Run a command in a container.
    Exec(cmd::exec::ExecArgs),
    /// Manage the images of the node this runs on.
    Image(cmd::image::ImageArgs),
    /// Manage the VM runtime of the node this runs on (guest kernel).
    Vm(cmd::vm::VmArgs),
}

fn main() -> ExitCode {
    // The shim is this binary too, but must start without clap or tokio:
    // it forks, and runs for as long as its container does.
    let mut argv = std::env::args_os();
    if argv.nth(1).is_some_and(|a| a == "shim") {
        return drover_node_agent::shim::shim_main(argv.collect());
    }
    let cli = Cli::parse();
    let _ = cmd::STALE_READS.set(cli.consistency == "stale");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Apply(a) => cmd::apply::run(&cli.server, a, cmd::apply::Mode::Apply).await,
            Command::Create(a) => cmd::apply::run(&cli.server, a, cmd::apply::Mode::Create).await,
            Command::Get(a) => cmd::get::run(&cli.server, a).await,
            Command::Describe(a) => cmd::describe::run(&cli.server, a).await,
            Command::Delete(a) => cmd::delete::run(&cli.server, a).await,
            Command::Scale(a) => cmd::scale::run(&cli.server, a).await,
            Command::Rollout(a) => cmd::rollout::run(&cli.server, a).await,
            Command::Cordon(a) => cmd::drain::cordon::run(&cli.server, a, true).await,
            Command::Uncordon(a) => cmd::drain::cordon::run(&cli.server, a, false).await,
            Command::Drain(a) => cmd::drain::run(&cli.server, a).await,
            Command::Cluster(a) => cmd::cluster::run(&cli.server, a).await,
            Command::Version => cmd::version(&cli.server).await,
            Command::Server(a) => cmd::server::run(a).await,
            Command::Dev(a) => cmd::dev::run(a).await,
            Command::Agent(a) => cmd::agent::run(&cli.server, a).await,
            Command::Image(a) => cmd::image::run(a),
            Command::Vm(a) => cmd::vm::run(a),
            Command::Logs(a) => cmd::logs::run(&cli.server, a).await,
            Command::Top(a) => cmd::top::run(&cli.server, a).await,
            Command::Exec(a) => match cmd::exec::run(&cli.server, a).await {
                // The command's exit code is ours (the terminal, if raw,
                // was restored when `run` returned).
                Ok(code) => std::process::exit(code),
                Err(e) => Err(e),
            },
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
