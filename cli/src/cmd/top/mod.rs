//! `drover top pods|nodes`: resource usage from the server's
//! `metrics.k8s.io` API, as `kubectl top` shows it.

mod table;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use drover_proto::types::Node;
use drover_proto::types::metrics::{MetricsList, NodeMetrics, PodMetrics};
use tokio::io::AsyncReadExt;

#[derive(Args)]
pub struct TopArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// CPU, memory and requests per second of pods.
    #[command(alias = "pod", alias = "po")]
    Pods {
        /// Namespace.
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Label selector (`app=web`).
        #[arg(short = 'l', long, default_value = "")]
        selector: String,
        /// One pod.
        name: Option<String>,
    },
    /// CPU and memory of nodes, with their share of allocatable.
    #[command(alias = "node", alias = "no")]
    Nodes {
        /// One node.
        name: Option<String>,
    },
}

/// A GET on the gateway (over TLS with the client's credentials on
/// `https://`); the body, or the server's message as the error.
async fn get(server: &str, path: &str) -> Result<Vec<u8>> {
    let mut reader = super::api_stream::open(server, "GET", path, None, &[]).await?;
    let mut body = Vec::new();
    reader
        .read_to_end(&mut body)
        .await
        .with_context(|| format!("reading {path} from {server}"))?;
    Ok(body)
}

fn query(selector: &str) -> String {
    if selector.is_empty() {
        return String::new();
    }
    let encoded: String = selector
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    format!("?labelSelector={encoded}")
}

pub async fn run(server: &str, args: TopArgs) -> Result<()> {
    const BASE: &str = "/apis/metrics.k8s.io/v1beta1";
    match args.what {
        What::Pods {
            namespace,
            all_namespaces,
            selector,
            name,
        } => {
            let mut pods: Vec<PodMetrics> = match (&name, all_namespaces) {
                (Some(n), _) => {
                    let body =
                        get(server, &format!("{BASE}/namespaces/{namespace}/pods/{n}")).await?;
                    vec![serde_json::from_slice(&body)?]
                }
                (None, true) => list(server, &format!("{BASE}/pods{}", query(&selector))).await?,
                (None, false) => {
                    let path = format!("{BASE}/namespaces/{namespace}/pods{}", query(&selector));
                    list(server, &path).await?
                }
            };
            if pods.is_empty() {
                anyhow::bail!(
                    "no metrics for pods in {} yet (pods appear a second or two after they start)",
                    if all_namespaces {
                        "any namespace".to_string()
                    } else {
                        format!("namespace {namespace}")
                    }
                );
            }
            pods.sort_by(|a, b| {
                (&a.metadata.namespace, &a.metadata.name)
                    .cmp(&(&b.metadata.namespace, &b.metadata.name))
            });
            println!("{}", table::pods(&pods, all_namespaces));
        }
        What::Nodes { name } => {
            let mut nodes: Vec<NodeMetrics> = match &name {
                Some(n) => vec![serde_json::from_slice(
                    &get(server, &format!("{BASE}/nodes/{n}")).await?,
                )?],
                None => list(server, &format!("{BASE}/nodes")).await?,
            };
            if nodes.is_empty() {
                anyhow::bail!(
                    "no node metrics yet: no Ready node has answered the server's scrape"
                );
            }
            nodes.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
            let client = super::connect(server).await?;
            let (known, _) = client.list_as::<Node>(&Default::default()).await?;
            println!("{}", table::nodes(&nodes, &known));
        }
    }
    Ok(())
}

async fn list<T: serde::de::DeserializeOwned>(server: &str, path: &str) -> Result<Vec<T>> {
    let body = get(server, path).await?;
    let list: MetricsList<T> =
        serde_json::from_slice(&body).context("the server's metrics list does not decode")?;
    Ok(list.items)
}
