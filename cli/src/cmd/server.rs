//! `drover server`: one control-plane member.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use drover_control_plane::{ServerConfig, serve};

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
    serve(
        config,
        |addr| eprintln!("drover server listening on http://{addr}"),
        shutdown_signal(),
    )
    .await?;
    Ok(())
}
