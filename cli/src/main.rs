//! `drover`: the kubectl-style client, and the entry points of the server,
//! the node agent and the per-container shim.

mod cmd;
mod config;
mod files;
mod output;
mod pki;

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
    /// API server URL (default: the client config's, else http://127.0.0.1:7700).
    #[arg(long, global = true, env = "DROVER_SERVER")]
    server: Option<String>,
    /// Client config file (server, CA, credentials, contexts), like a
    /// kubeconfig. Default: ~/.drover/config when it exists.
    #[arg(long, global = true, env = "DROVER_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Context of the client config to use (default: its current-context).
    #[arg(long, global = true)]
    context: Option<String>,
    /// The cluster CA to trust (overrides the client config's).
    #[arg(long, global = true, value_name = "FILE")]
    certificate_authority: Option<std::path::PathBuf>,
    /// Client certificate (with --client-key; overrides the client config's).
    #[arg(long, global = true, requires = "client_key", value_name = "FILE")]
    client_certificate: Option<std::path::PathBuf>,
    #[arg(
        long,
        global = true,
        requires = "client_certificate",
        value_name = "FILE"
    )]
    client_key: Option<std::path::PathBuf>,
    /// Bearer token (overrides the client config's).
    #[arg(long, global = true, env = "DROVER_TOKEN", hide_env_values = true)]
    token: Option<String>,
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
    /// The cluster's certificate authority: init, issue, ca-hash.
    Cert(cmd::cert::CertArgs),
    /// Bootstrap tokens for agents joining the cluster: create, list, delete.
    Token(cmd::token::TokenArgs),
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

/// The server and credentials from the flags and the client config.
fn resolve_target(cli: &Cli) -> Result<config::Target, config::ConfigError> {
    let mut target = match config::config_path(cli.config.as_deref()) {
        Some(path) => config::ClientConfig::load(&path)?.target(cli.context.as_deref(), &path)?,
        None => config::Target {
            server: config::DEFAULT_SERVER.to_string(),
            credentials: Default::default(),
        },
    };
    if let Some(server) = &cli.server {
        target.server = server.clone();
    }
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|source| config::ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let creds = &mut target.credentials;
    if let Some(ca) = &cli.certificate_authority {
        creds.ca_pem = Some(read(ca)?);
    }
    if let (Some(cert), Some(key)) = (&cli.client_certificate, &cli.client_key) {
        creds.cert_pem = Some((read(cert)?, read(key)?));
    }
    if let Some(token) = &cli.token {
        creds.token = Some(token.clone());
    }
    Ok(target)
}

/// Commands that run a server or act on this machine alone ignore a
/// broken client config.
fn talks_to_a_server(command: &Command) -> bool {
    if let Command::Vm(a) = command {
        return cmd::vm::talks_to_a_server(a);
    }
    !matches!(
        command,
        Command::Server(_) | Command::Dev(_) | Command::Cert(_) | Command::Image(_)
    )
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
    let server = match resolve_target(&cli) {
        // `dev` sets its own credentials.
        Ok(t) if talks_to_a_server(&cli.command) => {
            let _ = cmd::CREDENTIALS.set(t.credentials);
            t.server
        }
        Ok(t) => t.server,
        Err(e) if talks_to_a_server(&cli.command) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
        Err(_) => config::DEFAULT_SERVER.to_string(),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config_flag = cli.config.clone();
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Apply(a) => cmd::apply::run(&server, a, cmd::apply::Mode::Apply).await,
            Command::Create(a) => cmd::apply::run(&server, a, cmd::apply::Mode::Create).await,
            Command::Get(a) => cmd::get::run(&server, a).await,
            Command::Describe(a) => cmd::describe::run(&server, a).await,
            Command::Delete(a) => cmd::delete::run(&server, a).await,
            Command::Scale(a) => cmd::scale::run(&server, a).await,
            Command::Rollout(a) => cmd::rollout::run(&server, a).await,
            Command::Cordon(a) => cmd::drain::cordon::run(&server, a, true).await,
            Command::Uncordon(a) => cmd::drain::cordon::run(&server, a, false).await,
            Command::Drain(a) => cmd::drain::run(&server, a).await,
            Command::Cluster(a) => cmd::cluster::run(&server, a).await,
            Command::Version => cmd::version(&server).await,
            Command::Cert(a) => cmd::cert::run(a),
            Command::Token(a) => cmd::token::run(&server, a).await,
            Command::Server(a) => cmd::server::run(a).await,
            Command::Dev(a) => cmd::dev::run(a, config_flag).await,
            Command::Agent(a) => cmd::agent::run(&server, a).await,
            Command::Image(a) => cmd::image::run(a).await,
            Command::Vm(a) => cmd::vm::run(&server, a).await,
            Command::Logs(a) => cmd::logs::run(&server, a).await,
            Command::Top(a) => cmd::top::run(&server, a).await,
            Command::Exec(a) => match cmd::exec::run(&server, a).await {
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
