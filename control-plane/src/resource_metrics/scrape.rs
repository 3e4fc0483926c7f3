//! Scrapes `GET /metrics/summary` from every Ready node's agent each
//! [`SCRAPE_PERIOD`], all nodes at once, each bounded by [`TIMEOUT`]; a
//! node that does not answer is left out of that round.

use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_proto::selector::{FieldSelector, Selector};
use drover_proto::types::Node;
use drover_proto::types::metrics::AgentSummary;
use drover_proto::{Kind, Resource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{MetricsSource, aggregate};
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
    /// connecting, writing or reading failed
    #[error("agent {addr}: {source}")]
    Io {
        addr: String,
        source: std::io::Error,
    },
    /// no answer in time
    #[error("agent {0}: no answer within {TIMEOUT:?}")]
    Timeout(String),
    /// an answer other than 200
    #[error("agent {addr}: {status}")]
    Status { addr: String, status: String },
    /// a body that is not a report
    #[error("agent {addr}: the report does not decode: {source}")]
    Decode {
        addr: String,
        source: serde_json::Error,
    },
}

/// Splits an HTTP/1.1 response into its status line and body (pure).
pub fn split_response(raw: &[u8]) -> Option<(&str, &[u8])> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    Some((head.lines().next()?, &raw[end + 4..]))
}

/// One agent's report.
pub async fn fetch(addr: &str) -> Result<AgentSummary, ScrapeError> {
    let io = |source| ScrapeError::Io {
        addr: addr.to_string(),
        source,
    };
    let exchange = async {
        let mut conn = tokio::net::TcpStream::connect(addr).await.map_err(io)?;
        let req =
            format!("GET /metrics/summary HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        conn.write_all(req.as_bytes()).await.map_err(io)?;
        let mut raw = Vec::new();
        conn.take(MAX_BODY)
            .read_to_end(&mut raw)
            .await
            .map_err(io)?;
        Ok::<_, ScrapeError>(raw)
    };
    let raw = tokio::time::timeout(TIMEOUT, exchange)
        .await
        .map_err(|_| ScrapeError::Timeout(addr.to_string()))??;
    let (status, body) = split_response(&raw).ok_or_else(|| ScrapeError::Status {
        addr: addr.to_string(),
        status: "malformed response".into(),
    })?;
    if !status.contains(" 200 ") {
        return Err(ScrapeError::Status {
            addr: addr.to_string(),
            status: format!("{status}: {}", String::from_utf8_lossy(body).trim_end()),
        });
    }
    serde_json::from_slice(body).map_err(|source| ScrapeError::Decode {
        addr: addr.to_string(),
        source,
    })
}

/// The agent addresses of the Ready nodes in `store`.
fn ready_agents(store: &Store) -> Vec<String> {
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
        .filter_map(|n| n.agent_address().ok())
        .collect()
}

/// Scrapes forever into `source`.
pub async fn run(store: Arc<Store>, source: MetricsSource) {
    let mut tick = tokio::time::interval(SCRAPE_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let started = Instant::now();
        let agents = ready_agents(&store);
        let results = futures::future::join_all(agents.iter().map(|a| fetch(a))).await;
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

    #[test]
    fn responses_split_into_status_and_body() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        assert_eq!(split_response(raw), Some(("HTTP/1.1 200 OK", &b"{}"[..])));
        assert_eq!(split_response(b"HTTP/1.1 200 OK\r\n"), None);
    }

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
        assert!(matches!(fetch(&addr).await, Err(ScrapeError::Timeout(_))));
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let gone = closed.local_addr().expect("addr").to_string();
        drop(closed);
        assert!(matches!(fetch(&gone).await, Err(ScrapeError::Io { .. })));
    }
}
