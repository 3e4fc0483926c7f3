//! Who may do what: TLS with the cluster CA, authentication by client
//! certificate (CN = user, O = groups) or bearer token, and RBAC. Off when
//! the server runs without TLS (loopback only; see `drover server`).

pub mod join;
pub mod listener;
pub mod login;
pub mod node_restriction;
pub mod rbac;
pub mod reload;
pub mod revocation;
pub mod tls;
pub mod tokens;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use drover_proto::identity::Identity;
use std::sync::Arc;

pub use listener::{TlsListener, TlsPeer};
pub use rbac::{Attributes, Authorizer};
pub use tls::{TlsError, TlsFiles, TlsMaterial};
pub use tokens::{TokenBook, Tokens};

/// Authentication and authorization of one server.
#[derive(Debug, Clone)]
pub struct Auth {
    pub tokens: Tokens,
    pub authorizer: Authorizer,
    /// Revoked client certificates (`--crl-file`): checked on every
    /// request too, for connections opened before the revocation.
    pub revocation: Option<Arc<revocation::Revocation>>,
}

/// Routes anyone may call: load balancers and kubelets-style probes have
/// no credentials (Kubernetes leaves them to `system:unauthenticated` too).
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/healthz" | "/readyz" | "/livez" | "/ui/login" | join::CA_PATH | join::JOIN_PATH
    )
}

/// `Authorization: Bearer T`, else the dashboard's session cookie.
fn bearer(req: &Request) -> Option<&str> {
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    header.or_else(|| login::cookie_token(req.headers()))
}

fn is_grpc(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// Middleware: finds who is calling (the connection's client certificate,
/// else a bearer token) and records it on the request for the handlers'
/// authorization; nobody → 401 (gRPC `UNAUTHENTICATED`).
pub async fn authenticate(State(auth): State<Arc<Auth>>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<TlsPeer>>()
        .map(|c| c.0.clone());
    let revoked = match (
        &auth.revocation,
        peer.as_ref().and_then(|p| p.serial.as_ref()),
    ) {
        (Some(revocation), Some(serial)) => revocation.current().1.revokes(serial),
        _ => false,
    };
    if revoked {
        metrics::counter!("drover_authentication_failures_total").increment(1);
        return unauthorized(&req, "the client certificate has been revoked");
    }
    let from_cert = peer.and_then(|p| p.identity);
    let identity = match (from_cert, bearer(&req)) {
        (Some(id), _) => Some(id),
        (None, Some(token)) => auth.tokens.lookup(token),
        (None, None) => None,
    };
    match identity {
        Some(id) => {
            req.extensions_mut().insert(id);
            next.run(req).await
        }
        None if is_public(req.uri().path()) => next.run(req).await,
        None => {
            metrics::counter!("drover_authentication_failures_total").increment(1);
            unauthorized(&req, "no valid client certificate or bearer token")
        }
    }
}

/// 401, as gRPC `UNAUTHENTICATED` or a Kubernetes `Status`.
fn unauthorized(req: &Request, message: &str) -> Response {
    if is_grpc(req) {
        tonic::Status::unauthenticated(message)
            .into_http::<axum::body::Body>()
            .into_response()
    } else {
        let body = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": format!("Unauthorized: {message}"), "reason": "Unauthorized", "code": 401,
        });
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(body),
        )
            .into_response()
    }
}

impl Auth {
    /// Checks `attributes` for the caller recorded on the request.
    pub fn check(
        &self,
        caller: Option<&Identity>,
        attributes: &Attributes,
    ) -> Result<(), AuthError> {
        let who = caller.ok_or(AuthError::Unauthenticated)?;
        self.authorizer
            .authorize(who, attributes)
            .map_err(|denied| {
                metrics::counter!(
                    "drover_authorization_denials_total",
                    "verb" => attributes.verb.to_string(),
                    "resource" => attributes.resource.to_string()
                )
                .increment(1);
                AuthError::Forbidden(denied)
            })
    }
}

/// Why a request may not proceed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Unauthorized: no valid client certificate or bearer token")]
    Unauthenticated,
    #[error("forbidden: {0}")]
    Forbidden(rbac::Denied),
    #[error("forbidden: {0}")]
    NodeRestricted(node_restriction::NodeRestricted),
}
