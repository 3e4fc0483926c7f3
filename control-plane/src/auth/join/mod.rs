//! Agent bootstrap with a join token (kubeadm's TLS bootstrap, in one step):
//! `GET /bootstrap/v1/ca` hands out the CA certificate to anyone (the agent
//! checks it against the hash it was given), `POST /bootstrap/v1/join`
//! takes a token, a node name and a CSR, and returns a `node:NAME`
//! certificate once per token. The token is marked used through the store
//! with a resourceVersion precondition, so every member agrees and two
//! joins racing on one token cannot both win.

pub mod token;

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use drover_proto::Kind;
use serde::{Deserialize, Serialize};

use crate::api::http::error_response;
use crate::api::{ApiCore, ApiError, ErrorCode};
use token::{BootstrapToken, TokenRefused, TokenString};

pub const CA_PATH: &str = "/bootstrap/v1/ca";
pub const JOIN_PATH: &str = "/bootstrap/v1/join";

/// Signs node certificates with the cluster CA's key (`--ca-key`).
pub trait NodeSigner: Send + Sync {
    /// A PEM certificate for `node:NODE` on the public key of `csr_pem`;
    /// the subject is the signer's to set, not the CSR's.
    fn sign_node(&self, node: &str, csr_pem: &str) -> Result<String, String>;
}

/// What a joining agent sends.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    pub token: String,
    pub node_name: String,
    pub csr: String,
}

/// What it gets back.
#[derive(Debug, Serialize, Deserialize)]
pub struct JoinReply {
    pub certificate: String,
}

#[derive(Clone)]
struct Bootstrap {
    core: ApiCore,
    ca_pem: Arc<Vec<u8>>,
    signer: Option<Arc<dyn NodeSigner>>,
}

/// The two public routes.
pub fn router(core: ApiCore, ca_pem: Vec<u8>, signer: Option<Arc<dyn NodeSigner>>) -> axum::Router {
    let state = Bootstrap {
        core,
        ca_pem: Arc::new(ca_pem),
        signer,
    };
    axum::Router::new()
        .route(CA_PATH, get(ca))
        .route(JOIN_PATH, post(join))
        .with_state(state)
}

async fn ca(State(b): State<Bootstrap>) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/x-pem-file")],
        b.ca_pem.as_ref().clone(),
    )
        .into_response()
}

fn refused(e: TokenRefused) -> ApiError {
    metrics::counter!("drover_authentication_failures_total").increment(1);
    ApiError {
        code: ErrorCode::Unauthenticated,
        message: format!("join refused: {e}"),
    }
}

async fn join(State(b): State<Bootstrap>, body: axum::body::Bytes) -> Response {
    match admit_join(&b, &body).await {
        Ok(reply) => axum::Json(reply).into_response(),
        Err(e) => error_response(e),
    }
}

async fn admit_join(b: &Bootstrap, body: &[u8]) -> Result<JoinReply, ApiError> {
    let req: JoinRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("join request: {e}")))?;
    let token = TokenString::parse(&req.token).ok_or_else(|| refused(TokenRefused::Malformed))?;
    drover_proto::validation::names::check_dns_subdomain(&req.node_name)
        .map_err(|e| ApiError::invalid(format!("nodeName {:?}: {e}", req.node_name)))?;
    let name = token::secret_name(&token.id);
    let stored = b
        .core
        .get(Kind::Secret, token::NAMESPACE, &name)
        .map_err(|e| match e.code {
            ErrorCode::NotFound => refused(TokenRefused::Unknown(token.id.clone())),
            _ => e,
        })?;
    let bootstrap = BootstrapToken::from_object(&stored)
        .ok_or_else(|| refused(TokenRefused::Unknown(token.id.clone())))?;
    bootstrap
        .check(&token, chrono::Utc::now())
        .map_err(refused)?;
    let signer = b.signer.as_ref().ok_or_else(|| ApiError {
        code: ErrorCode::Unavailable,
        message: "this server cannot sign node certificates: start it with --ca-key".into(),
    })?;
    // Signed before the token is spent, so a bad CSR does not burn it.
    let certificate = signer
        .sign_node(&req.node_name, &req.csr)
        .map_err(|e| ApiError::invalid(format!("csr: {e}")))?;
    let mut used = bootstrap;
    used.used_by = Some(req.node_name.clone());
    let mut object = used.to_object();
    object.metadata.resource_version = stored.metadata.resource_version.clone();
    b.core
        .update(object, false)
        .await
        .map_err(|e| match e.code {
            // Another join spent it between our read and this write.
            ErrorCode::Conflict => refused(TokenRefused::Used {
                id: token.id.clone(),
                node: "(another node, just now)".into(),
            }),
            _ => e,
        })?;
    tracing::info!(node = %req.node_name, token = %token.id, "node joined with a bootstrap token");
    Ok(JoinReply { certificate })
}
