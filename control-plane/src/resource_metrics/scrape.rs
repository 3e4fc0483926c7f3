//! Scrapes `GET /metrics/summary` from every Ready node's agent each
//! [`SCRAPE_PERIOD`], all nodes at once, each bounded by [`TIMEOUT`]; a
//! node that does not answer is left out of that round. With TLS the
//! agents are reached as the API server ([`crate::node_proxy::Agents`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_proto::selector::{FieldSelector, Selector};
use drover_proto::types::Node;
use drover_proto::types::metrics::AgentSummary;
use drover_proto::{Kind, Resource};
use tokio::io::AsyncReadExt;

use super::{MetricsSource, aggregate};
use crate::node_proxy::{AgentRequestError, Agents, get_request};
use crate::store::Store;

/// How often the agents are scraped (their own sampling period).
pub const SCRAPE_PERIOD: Duration = Duration::from_secs(1);
/// How long one agent may take to answer.
pub const TIMEOUT: Duration = Duration::from_millis(800);
/// Largest report accepted from an agent.
const MAX_BODY: u64 = 64 << 20;

/// Why one agent's report could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    /// connecting, the request or the answer failed
    #[error(transparent)]
    Request(#[from] AgentRequestError),
    /// reading the report failed
    #[error("agent {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    /// no answer in time
    #[error("agent {0}: no answer within {TIMEOUT:?}")]
    Timeout(String),
    /// a body that is not a report
    #[error("agent {addr}: the report does not decode: {source}")]
    Decode {
        addr: String,
        source: serde_json::Error,
    },
}

/// One agent's report: node `node`'s agent at `addr`.
pub async fn fetch(agents: &Agents, node: &str, addr: &str) -> Result<AgentSummary, ScrapeError> {
    let exchange = async {
        let request = get_request("/metrics/summary", node);
        let reader = agents.request(node, addr, &request).await?;
        let mut body = Vec::new();
        reader
            .take(MAX_BODY)
            .read_to_end(&mut body)
            .await
            .map_err(|source| ScrapeError::Io {
                addr: addr.to_string(),
                source,
            })?;
        Ok::<_, ScrapeError>(body)
    };
    let body = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| ScrapeError::Timeout(addr.to_string()))??;
    serde_json::from_slice(&body).map_err(|source| ScrapeError::Decode {
        addr: addr.to_string(),
        source,
    })
}

/// The names and agent addresses of the Ready nodes in `store`.
fn ready_agents(store: &Store) -> Vec<(String, String)> {
    let (nodes, _) = store.list(
        Kind::Node,
        None,
        &Selector::everything(),
        &FieldSelector::default(),
    );
    nodes
        .iter()
        .filter_map(|o| Node::from_object(o).ok())
        .filter(Node::is_ready)
        .filter_map(|n| {
            let addr = n.agent_address().ok()?;
            Some((n.metadata.name, addr))
        })
        .collect()
}

/// Scrapes forever into `source`.
pub async fn run(store: Arc<Store>, source: MetricsSource, agents: Agents) {
    let mut tick = tokio::time::interval(SCRAPE_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let started = Instant::now();
        let ready = ready_agents(&store);
        let results =
            futures::future::join_all(ready.iter().map(|(node, addr)| fetch(&agents, node, addr)))
                .await;
        let mut reports = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Ok(report) => reports.push(report),
                Err(e) => tracing::debug!("metrics scrape: {e}"),
            }
        }
        metrics::gauge!("drover_metrics_scrape_nodes").set(reports.len() as f64);
        metrics::histogram!("drover_metrics_scrape_seconds")
            .record(started.elapsed().as_secs_f64());
        source.set(aggregate(&reports));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_silent_or_refusing_agent_is_an_error_not_a_hang() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        // Accepts and never answers.
        let _held = tokio::spawn(async move {
            let (_conn, _) = listener.accept().await.expect("accept");
            std::future::pending::<()>().await;
        });
        let agents = Agents::plain();
        assert!(matches!(
            fetch(&agents, "n1", &addr).await,
            Err(ScrapeError::Timeout(_))
        ));
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let gone = closed.local_addr().expect("addr").to_string();
        drop(closed);
        assert!(matches!(
            fetch(&agents, "n1", &gone).await,
            Err(ScrapeError::Request(AgentRequestError::Dial { .. }))
        ));
    }
}
