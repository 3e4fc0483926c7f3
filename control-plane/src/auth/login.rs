//! `/ui/login?token=T`: a browser cannot send a bearer header, so a valid
//! token is kept in an HttpOnly, SameSite=Strict cookie the authentication
//! middleware reads like the header (as the Kubernetes dashboard's token login).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::Auth;

/// The cookie holding a dashboard session's token.
pub const COOKIE: &str = "drover-token";

#[derive(Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    token: String,
}

pub async fn login(State(auth): State<Arc<Auth>>, Query(q): Query<LoginQuery>) -> Response {
    if auth.tokens.lookup(&q.token).is_none() {
        return (
            StatusCode::UNAUTHORIZED,
            "Unauthorized: open /ui/login?token=TOKEN with a token the server knows\n",
        )
            .into_response();
    }
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; Secure; SameSite=Strict",
        q.token
    );
    ([(header::SET_COOKIE, cookie)], Redirect::to("/ui/cluster")).into_response()
}

/// The token in the request's session cookie, if any.
pub fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
}
