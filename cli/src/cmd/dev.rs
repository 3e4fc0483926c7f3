//! `drover dev`: a one-process local cluster. Today it runs the control plane
//! and applies the given manifests; the node agent joins it once it exists.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use drover_control_plane::{ServerConfig, serve};

use super::apply::{ApplyArgs, Mode};

#[derive(Args)]
pub struct DevArgs {
    /// Where the local cluster keeps its state.
    #[arg(long, default_value = ".drover/dev")]
    data_dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    /// Manifests to apply once the cluster is up (file or directory, repeatable).
    #[arg(long = "apply")]
    apply: Vec<String>,
    /// Apply, print the state, then stop (for scripts).
    #[arg(long)]
    exit_after_apply: bool,
    /// Do not run the controllers.
    #[arg(long)]
    no_controllers: bool,
}

pub async fn run(args: DevArgs) -> Result<()> {
    super::server::init_logging();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (ctl_stop_tx, ctl_stop_rx) = tokio::sync::watch::channel(false);
    let config = ServerConfig {
        data_dir: args.data_dir.clone(),
        listen: args.listen,
        history_limit: 100_000,
    };
    let server = tokio::spawn(serve(
        config,
        move |addr| {
            let _ = ready_tx.send(addr);
        },
        async move {
            tokio::select! {
                _ = super::server::shutdown_signal() => {}
                _ = stop_rx => {}
            }
            let _ = ctl_stop_tx.send(true);
        },
    ));
    let addr = match ready_rx.await {
        Ok(a) => a,
        Err(_) => {
            return match server.await {
                Ok(Err(e)) => Err(e.into()),
                _ => Err(anyhow::anyhow!("the control plane stopped while starting")),
            };
        }
    };
    let controllers = (!args.no_controllers).then(Default::default);
    super::server::spawn_leader_work(addr, ctl_stop_rx, controllers, true);
    let url = format!("http://{addr}");
    println!(
        "Drover dev cluster: API at {url} (data in {})",
        args.data_dir.display()
    );
    if !args.apply.is_empty() {
        let apply = ApplyArgs::from_files(args.apply.clone());
        super::apply::run(&url, apply, Mode::Apply)
            .await
            .context("applying the manifests")?;
        let get = super::get::GetArgs::all_kinds();
        super::get::run(&url, get).await?;
    }
    if args.exit_after_apply {
        let _ = stop_tx.send(());
    } else {
        println!(
            "Try: drover get all   |   curl {url}/api/v1/namespaces/default/services   |   Ctrl-C to stop"
        );
        println!(
            "Pods are placed once nodes join: `drover agent --hollow --count 3 --server {url}` (simulated) \
             or, as root, `drover agent --node-name $(hostname) --data-dir /var/lib/drover/agent --server {url}`"
        );
    }
    server.await.context("the control plane task failed")??;
    Ok(())
}
