//! `POST /api/v1/namespaces/{ns}/pods/{name}/exec` (Kubernetes' path):
//! after the caller is allowed `create pods/exec`, the request (a JSON
//! body the agent reads) goes to the agent of the pod's node; once the
//! agent accepts, the connection is upgraded (`Upgrade: drover-exec`, 101)
//! and bytes flow both ways unchanged, the agent's exec frames.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use hyper_util::rt::TokioIo;

use super::{agent_of, safe_segment};
use crate::api::http::error_response;
use crate::api::{ApiCore, ApiError};

/// The protocol a client asks to upgrade to.
pub const UPGRADE: &str = "drover-exec";
/// The largest exec request (the agent's own limit).
const MAX_REQUEST: usize = 64 << 10;

fn wants_upgrade(request: &Request) -> bool {
    request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(UPGRADE))
}

pub async fn handle(
    State(core): State<ApiCore>,
    Path((namespace, name)): Path<(String, String)>,
    mut request: Request,
) -> Response {
    if let Err(e) = core.authorize(request.extensions(), "create", "pods/exec", &namespace) {
        return error_response(e);
    }
    if !wants_upgrade(&request) {
        return error_response(ApiError::invalid(format!(
            "exec needs `Connection: Upgrade` and `Upgrade: {UPGRADE}` (use drover exec)"
        )));
    }
    let upgrade = hyper::upgrade::on(&mut request);
    let body = match axum::body::to_bytes(request.into_body(), MAX_REQUEST).await {
        Ok(b) => b,
        Err(e) => return error_response(ApiError::invalid(format!("the exec request: {e}"))),
    };
    if ![&namespace, &name].iter().all(|s| safe_segment(s)) {
        return error_response(ApiError::invalid("namespace and pod names are DNS labels"));
    }
    let (node, addr) = match agent_of(&core.store, &namespace, &name) {
        Ok(a) => a,
        Err(e) => return error_response(e),
    };
    let head = format!(
        "POST /exec/{namespace}/{name} HTTP/1.1\r\nHost: {node}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut agent_request = head.into_bytes();
    agent_request.extend_from_slice(&body);
    let mut agent = match core.agents.request(&node, &addr, &agent_request).await {
        Ok(conn) => conn,
        Err(e) => return error_response(e.into()),
    };
    tokio::spawn(async move {
        let Ok(client) = upgrade.await else {
            return;
        };
        let mut client = TokioIo::new(client);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut agent).await {
            tracing::debug!(%node, "exec relay ended: {e}");
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, UPGRADE)
        .body(Body::empty())
        .unwrap_or_else(|e| error_response(ApiError::invalid(e.to_string())))
}
