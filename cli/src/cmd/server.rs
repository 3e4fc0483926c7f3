//! `drover server`: one control-plane member.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use drover_control_plane::controllers::ControllerConfig;
use drover_control_plane::controllers::node_lifecycle::NodeLifecycleConfig;
use drover_control_plane::{ServerConfig, serve};

use super::rollout::parse_duration;

#[derive(Args)]
pub struct ServerArgs {
    /// Where the state lives.
    #[arg(long, default_value = "/var/lib/drover/server")]
    data_dir: PathBuf,
    /// Address for the API (gRPC and HTTP on one port).
    #[arg(long, default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    /// Changes kept for watches to resume from.
    #[arg(long, default_value_t = 100_000)]
    history_limit: usize,
    /// Do not run the controllers (Deployments and ReplicaSets are then only stored).
    #[arg(long)]
    no_controllers: bool,
    /// Do not run the scheduler (pods then wait for a nodeName set by hand).
    #[arg(long)]
    no_scheduler: bool,
    /// Silence after which a node counts as unreachable: Ready becomes
    /// Unknown and it gets the `node.kubernetes.io/unreachable` taint.
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    node_monitor_grace_period: Duration,
    /// How long pods stay on an unreachable or not-ready node before they
    /// are evicted, unless their own tolerations say otherwise.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pod_eviction_timeout: Duration,
}

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sled=warn,h2=warn,hyper=warn,tower=warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

pub async fn run(args: ServerArgs) -> Result<()> {
    init_logging();
    let config = ServerConfig {
        data_dir: args.data_dir,
        listen: args.listen,
        history_limit: args.history_limit,
    };
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(serve(
        config,
        move |addr| {
            eprintln!("drover server listening on http://{addr}");
            let _ = ready_tx.send(addr);
        },
        async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        },
    ));
    if let Ok(addr) = ready_rx.await {
        let controllers = (!args.no_controllers).then(|| ControllerConfig {
            node_lifecycle: NodeLifecycleConfig {
                grace: args.node_monitor_grace_period,
                default_toleration: args.pod_eviction_timeout,
            },
            ..ControllerConfig::default()
        });
        spawn_leader_work(addr, stop_rx, controllers, !args.no_scheduler);
    }
    server.await??;
    Ok(())
}

/// Connects a client to the API that just started and runs the leader-only
/// work (controllers, scheduler) until `stop` turns true. A single server is
/// always the leader.
pub fn spawn_leader_work(
    addr: SocketAddr,
    stop: tokio::sync::watch::Receiver<bool>,
    controllers: Option<ControllerConfig>,
    scheduler: bool,
) {
    tokio::spawn(async move {
        let url = format!("http://{addr}");
        let client = match drover_proto::client::Client::connect(&url).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "leader work cannot reach the API; controllers and scheduler are not running");
                return;
            }
        };
        let stopped = |mut stop: tokio::sync::watch::Receiver<bool>| async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if scheduler {
            let config = drover_scheduler::SchedulerConfig::default();
            tokio::spawn(drover_scheduler::run(
                client.clone(),
                config,
                stopped(stop.clone()),
            ));
        }
        if let Some(config) = controllers {
            drover_control_plane::controllers::run_controllers(client, config, stopped(stop)).await;
        }
    });
}
