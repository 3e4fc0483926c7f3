//! `GET /api/v1/namespaces/{ns}/pods/{name}/log[?container=C][&follow=true][&previous=true]`
//! (Kubernetes' path): a container's log from the agent of the pod's node,
//! streamed through after the caller is allowed `get pods/log`.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{Extensions, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::io::AsyncReadExt;

use super::{agent_of, get_request, safe_segment};
use crate::api::http::error_response;
use crate::api::{ApiCore, ApiError};

/// What a log request asks for (Kubernetes' `PodLogOptions` names).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LogOptions {
    pub container: Option<String>,
    #[serde(default)]
    pub follow: bool,
    #[serde(default)]
    pub previous: bool,
}

/// The agent's target for `options` (pure).
pub fn agent_target(namespace: &str, name: &str, options: &LogOptions) -> Result<String, ApiError> {
    let container = options.container.as_deref();
    if ![namespace, name]
        .into_iter()
        .chain(container)
        .all(safe_segment)
    {
        return Err(ApiError::invalid(
            "namespace, pod and container names are DNS labels",
        ));
    }
    let mut target = format!("/logs/{namespace}/{name}");
    if let Some(c) = container {
        target = format!("{target}/{c}");
    }
    let flags: Vec<&str> = [
        (options.follow, "follow=true"),
        (options.previous, "previous=true"),
    ]
    .into_iter()
    .filter_map(|(on, q)| on.then_some(q))
    .collect();
    if !flags.is_empty() {
        target = format!("{target}?{}", flags.join("&"));
    }
    Ok(target)
}

/// The log as a streamed body (authorization is the caller's).
pub async fn open(
    core: &ApiCore,
    namespace: &str,
    name: &str,
    options: &LogOptions,
) -> Result<Body, ApiError> {
    let target = agent_target(namespace, name, options)?;
    let (node, addr) = agent_of(&core.store, namespace, name)?;
    let reader = core
        .agents
        .request(&node, &addr, &get_request(&target, &node))
        .await?;
    let stream = futures::stream::unfold(reader, |mut r| async move {
        let mut buf = vec![0u8; 8192];
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buf)), r))
            }
        }
    });
    Ok(Body::from_stream(stream))
}

pub async fn handle(
    State(core): State<ApiCore>,
    Path((namespace, name)): Path<(String, String)>,
    Query(options): Query<LogOptions>,
    request: Extensions,
) -> Response {
    if let Err(e) = core.authorize(&request, "get", "pods/log", &namespace) {
        return error_response(e);
    }
    match open(&core, &namespace, &name, &options).await {
        Ok(body) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response(),
        Err(e) => error_response(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_carry_the_options_and_refuse_odd_names() {
        let o = |container: Option<&str>, follow, previous| LogOptions {
            container: container.map(str::to_string),
            follow,
            previous,
        };
        assert_eq!(
            agent_target("default", "web", &o(None, false, false)).unwrap(),
            "/logs/default/web"
        );
        assert_eq!(
            agent_target("ns", "p", &o(Some("c"), true, true)).unwrap(),
            "/logs/ns/p/c?follow=true&previous=true"
        );
        assert!(agent_target("ns", "p", &o(Some("a b"), false, false)).is_err());
        assert!(agent_target("ns", "p/../x", &o(None, false, false)).is_err());
    }
}
