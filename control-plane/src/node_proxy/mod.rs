//! The API server's way to the agents' port: pod logs, exec and VM
//! snapshots proxied for users after RBAC (`logs`, `exec`, `snapshot`),
//! the dashboard's logs, and the
//! metrics scrape. With TLS the server presents its own certificate (group
//! `drover:control-plane`, the only one agents admit) and accepts an
//! agent's certificate only from the cluster CA and for the node it meant
//! to reach (the node name is the TLS server name), as Kubernetes' API
//! server does with `--kubelet-client-certificate`.

pub mod exec;
pub mod logs;
pub mod snapshot;

use drover_proto::client::Credentials;
use drover_proto::dial::{Conn, DialError, Dialer, read_head};
use drover_proto::types::{Node, Pod};
use drover_proto::{Kind, Resource};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};

use crate::api::{ApiError, ErrorCode};
use crate::auth::TlsMaterial;
use crate::store::Store;

/// The largest error message read back from an agent.
const MAX_ERROR_BODY: u64 = 64 << 10;

/// How this server connects to agents.
#[derive(Clone, Debug, Default)]
pub struct Agents {
    dialer: Dialer,
}

/// Why an agent could not answer a request.
#[derive(Debug, thiserror::Error)]
pub enum AgentRequestError {
    #[error("the agent of node {node}: {source}")]
    Dial { node: String, source: DialError },
    #[error("the agent of node {node} at {addr}: {source}")]
    Io {
        node: String,
        addr: String,
        source: std::io::Error,
    },
    /// The agent answered, but not 200: its message, for the user.
    #[error("{message}")]
    Refused { status: u16, message: String },
}

impl From<AgentRequestError> for ApiError {
    fn from(e: AgentRequestError) -> ApiError {
        let code = match &e {
            AgentRequestError::Refused { status: 404, .. } => ErrorCode::NotFound,
            AgentRequestError::Refused { status: 400, .. } => ErrorCode::Invalid,
            AgentRequestError::Refused { status: 409, .. } => ErrorCode::AlreadyExists,
            _ => ErrorCode::Unavailable,
        };
        ApiError {
            code,
            message: e.to_string(),
        }
    }
}

impl Agents {
    /// Plain TCP (a server without TLS).
    pub fn plain() -> Agents {
        Agents::default()
    }

    /// TLS with the cluster CA, presenting the server's own certificate.
    pub fn from_tls(tls: &TlsMaterial) -> Result<Agents, DialError> {
        let credentials = Credentials {
            ca_pem: Some(tls.ca_pem.clone()),
            cert_pem: Some((tls.cert_pem.clone(), tls.key_pem.clone())),
            token: None,
        };
        Ok(Agents {
            dialer: Dialer::tls(&credentials)?,
        })
    }

    /// Sends `request` (an HTTP/1.1 request, head and body) to the agent
    /// of `node` at `addr`; on `200` the response body is left to read.
    pub async fn request(
        &self,
        node: &str,
        addr: &str,
        request: &[u8],
    ) -> Result<BufReader<Conn>, AgentRequestError> {
        let io = |source| AgentRequestError::Io {
            node: node.to_string(),
            addr: addr.to_string(),
            source,
        };
        let mut conn =
            self.dialer
                .connect(addr, node)
                .await
                .map_err(|source| AgentRequestError::Dial {
                    node: node.to_string(),
                    source,
                })?;
        conn.write_all(request).await.map_err(io)?;
        let mut reader = BufReader::new(conn);
        let head = read_head(&mut reader).await.map_err(io)?;
        if head.status == 200 {
            return Ok(reader);
        }
        let mut body = String::new();
        let _ = (&mut reader)
            .take(MAX_ERROR_BODY)
            .read_to_string(&mut body)
            .await;
        let message = match body.trim_end() {
            "" => format!("the agent of node {node} answered {}", head.status_line),
            text => text.to_string(),
        };
        Err(AgentRequestError::Refused {
            status: head.status,
            message,
        })
    }
}

/// A `GET` request for the agent's port.
pub fn get_request(target: &str, node: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: {node}\r\nConnection: close\r\n\r\n").into_bytes()
}

/// Names go into the agent's request line: DNS labels only (pure).
pub fn safe_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

/// The node a pod runs on and its agent's `host:port`.
pub fn agent_of(store: &Store, namespace: &str, name: &str) -> Result<(String, String), ApiError> {
    let unavailable = |message: String| ApiError {
        code: ErrorCode::Unavailable,
        message,
    };
    let not_found = |what: String| ApiError {
        code: ErrorCode::NotFound,
        message: format!("{what} not found"),
    };
    let pod = store
        .get(Kind::Pod, namespace, name)
        .ok_or_else(|| not_found(format!("pod {namespace}/{name}")))?;
    let pod = Pod::from_object(&pod).map_err(|e| ApiError::invalid(e.to_string()))?;
    let node_name = pod
        .spec
        .node_name
        .ok_or_else(|| unavailable(format!("pod {name} is not scheduled to a node yet")))?;
    let node = store
        .get(Kind::Node, "", &node_name)
        .ok_or_else(|| not_found(format!("node {node_name}")))?;
    let addr = Node::from_object(&node)
        .map_err(|e| ApiError::invalid(e.to_string()))?
        .agent_address()
        .map_err(unavailable)?;
    Ok((node_name, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_answers_map_to_api_errors() {
        let refused = |status| {
            ApiError::from(AgentRequestError::Refused {
                status,
                message: "m".into(),
            })
            .code
        };
        assert_eq!(refused(404), ErrorCode::NotFound);
        assert_eq!(refused(400), ErrorCode::Invalid);
        // The agent refusing the server itself is the server's problem.
        assert_eq!(refused(403), ErrorCode::Unavailable);
    }
}
