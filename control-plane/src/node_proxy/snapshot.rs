//! `POST /api/v1/namespaces/{ns}/pods/{name}/snapshot[?name=NAME]`: after
//! the caller is allowed `create pods/snapshot` (a snapshot holds the
//! guest's memory, so it is granted like exec), the agent of the pod's
//! node snapshots the VM; its JSON answer (name, size, time) is returned.

use axum::extract::{Path, Query, State};
use axum::http::{Extensions, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use super::{agent_of, safe_segment};
use crate::api::http::error_response;
use crate::api::{ApiCore, ApiError};

/// The largest answer read from the agent.
const MAX_ANSWER: u64 = 64 << 10;

/// The query: the snapshot's name (the agent picks one when absent).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SnapshotOptions {
    pub name: Option<String>,
}

/// The agent's request for a snapshot (pure).
pub fn agent_request(
    namespace: &str,
    pod: &str,
    options: &SnapshotOptions,
    node: &str,
) -> Result<Vec<u8>, ApiError> {
    let name = options.name.as_deref();
    if ![namespace, pod].into_iter().chain(name).all(safe_segment) {
        return Err(ApiError::invalid(
            "namespace, pod and snapshot names are DNS labels",
        ));
    }
    let mut target = format!("/snapshot/{namespace}/{pod}");
    if let Some(n) = name {
        target = format!("{target}?name={n}");
    }
    Ok(format!(
        "POST {target} HTTP/1.1\r\nHost: {node}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .into_bytes())
}

pub async fn handle(
    State(core): State<ApiCore>,
    Path((namespace, name)): Path<(String, String)>,
    Query(options): Query<SnapshotOptions>,
    request: Extensions,
) -> Response {
    if let Err(e) = core.authorize(&request, "create", "pods/snapshot", &namespace) {
        return error_response(e);
    }
    match snapshot(&core, &namespace, &name, &options).await {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => error_response(e),
    }
}

async fn snapshot(
    core: &ApiCore,
    namespace: &str,
    name: &str,
    options: &SnapshotOptions,
) -> Result<String, ApiError> {
    let (node, addr) = agent_of(&core.store, namespace, name)?;
    let request = agent_request(namespace, name, options, &node)?;
    let reader = core.agents.request(&node, &addr, &request).await?;
    let mut json = String::new();
    reader
        .take(MAX_ANSWER)
        .read_to_string(&mut json)
        .await
        .map_err(|e| ApiError {
            code: crate::api::ErrorCode::Unavailable,
            message: format!("reading the snapshot answer of node {node}: {e}"),
        })?;
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_the_name_and_refuse_odd_ones() {
        let o = |n: Option<&str>| SnapshotOptions {
            name: n.map(str::to_string),
        };
        let r =
            String::from_utf8(agent_request("ns", "web", &o(Some("warm")), "n1").unwrap()).unwrap();
        assert!(r.starts_with("POST /snapshot/ns/web?name=warm HTTP/1.1\r\nHost: n1\r\n"));
        let r = String::from_utf8(agent_request("ns", "web", &o(None), "n1").unwrap()).unwrap();
        assert!(r.starts_with("POST /snapshot/ns/web HTTP/1.1"));
        assert!(agent_request("ns", "web", &o(Some("a&b=c")), "n1").is_err());
        assert!(agent_request("ns", "w/x", &o(None), "n1").is_err());
    }
}
