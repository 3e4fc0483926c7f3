//! `drover logs POD [-c C] [-f] [-p]`: a container's log, through the API
//! server (`GET .../pods/POD/log`), which asks the agent of the pod's node.

use anyhow::Result;
use clap::Args;
use tokio::io::AsyncWriteExt;

#[derive(Args)]
pub struct LogsArgs {
    /// The pod.
    pod: String,
    /// The container (default: the pod's first).
    #[arg(short = 'c', long)]
    container: Option<String>,
    /// Keep printing as the container writes.
    #[arg(short = 'f', long)]
    follow: bool,
    /// The previous run of the container (after a restart).
    #[arg(short = 'p', long)]
    previous: bool,
    /// The pod's namespace.
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
}

/// The request path for `args` (pure).
fn log_path(args: &LogsArgs) -> String {
    let mut query = vec![];
    if let Some(c) = &args.container {
        query.push(format!("container={c}"));
    }
    if args.follow {
        query.push("follow=true".into());
    }
    if args.previous {
        query.push("previous=true".into());
    }
    let path = format!(
        "/api/v1/namespaces/{}/pods/{}/log",
        args.namespace, args.pod
    );
    match query.is_empty() {
        true => path,
        false => format!("{path}?{}", query.join("&")),
    }
}

pub async fn run(server: &str, args: LogsArgs) -> Result<()> {
    let mut reader = super::api_stream::open(server, "GET", &log_path(&args), None, &[]).await?;
    let mut out = tokio::io::stdout();
    tokio::io::copy(&mut reader, &mut out).await?;
    out.flush().await?;
    Ok(())
}
