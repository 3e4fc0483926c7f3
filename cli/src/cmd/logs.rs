//! `drover logs POD [-c C] [-f] [-p]`: a container's log, from the agent of the
//! pod's node (its address and log port are in the Node's status).

use anyhow::{Context, Result, bail};
use clap::Args;
use drover_proto::types::{Node, Pod};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

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

/// The `host:port` of the agent running pod `namespace/name`, and its node.
pub async fn agent_of(server: &str, namespace: &str, name: &str) -> Result<(String, String)> {
    let client = super::connect(server).await?;
    let pod: Pod = client.get_as(namespace, name).await?;
    let Some(node_name) = pod.spec.node_name.clone() else {
        bail!("pod {name} is not scheduled to a node yet");
    };
    let node: Node = client.get_as("", &node_name).await?;
    let addr = node.agent_address().map_err(anyhow::Error::msg)?;
    Ok((addr, node_name))
}

pub async fn run(server: &str, args: LogsArgs) -> Result<()> {
    let (addr, node_name) = agent_of(server, &args.namespace, &args.pod).await?;
    let mut target = format!("/logs/{}/{}", args.namespace, args.pod);
    if let Some(c) = &args.container {
        target = format!("{target}/{c}");
    }
    let mut query = vec![];
    if args.follow {
        query.push("follow=true");
    }
    if args.previous {
        query.push("previous=true");
    }
    if !query.is_empty() {
        target = format!("{target}?{}", query.join("&"));
    }
    let mut conn = TcpStream::connect(&addr)
        .await
        .with_context(|| format!("connecting to the agent of node {node_name} at {addr}"))?;
    let req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await?;
    let mut reader = BufReader::new(conn);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).await?;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 || line == "\r\n" {
            break;
        }
    }
    if !status_line.contains(" 200 ") {
        let mut body = String::new();
        reader.read_to_string(&mut body).await?;
        bail!("{}", body.trim_end());
    }
    let mut out = tokio::io::stdout();
    tokio::io::copy(&mut reader, &mut out).await?;
    out.flush().await?;
    Ok(())
}
