//! The JSON/HTTP gateway with Kubernetes-style paths
//! (`/api/v1/namespaces/{ns}/pods/{name}`, `/apis/apps/v1/...`), health
//! checks and `/metrics`, served on the gRPC port.

use std::collections::HashMap;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{Extensions, HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use drover_proto::{Kind, Object};
use futures::StreamExt;
use serde_json::{Value, json};

use super::core::{ApiCore, ApiError, ErrorCode, object_namespace};

/// Routes of the gateway.
pub fn router(core: ApiCore) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/livez", get(|| async { "ok" }))
        .route("/version", get(version))
        .route("/metrics", get(metrics_text))
        .route("/cluster/status", get(super::cluster::status_json))
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/log",
            get(crate::node_proxy::logs::handle),
        )
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/exec",
            axum::routing::post(crate::node_proxy::exec::handle),
        )
        .route(
            "/api/v1/namespaces/{namespace}/pods/{name}/snapshot",
            axum::routing::post(crate::node_proxy::snapshot::handle),
        )
        .route("/api/{*rest}", any(core_group))
        .route("/apis/{*rest}", any(named_group))
        .with_state(core)
}

async fn version(State(core): State<ApiCore>) -> Response {
    axum::Json(json!({"version": drover_proto::VERSION, "revision": core.store.revision()}))
        .into_response()
}

async fn metrics_text(State(core): State<ApiCore>) -> Response {
    metrics::gauge!("drover_store_db_bytes").set(core.store.size_on_disk() as f64);
    metrics::gauge!("drover_store_objects").set(core.store.object_count() as f64);
    metrics::gauge!("drover_store_revision").set(core.store.revision() as f64);
    let mut text = super::metrics::render();
    core.metrics.with(|a| {
        if let Some(a) = a {
            text.push_str(&crate::resource_metrics::exposition::render(a));
        }
    });
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

/// The HTTP status of an error class.
pub fn status_code(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::AlreadyExists | ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::Gone => StatusCode::GONE,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A Kubernetes `Status` object for an error.
pub fn error_response(e: ApiError) -> Response {
    let code = status_code(e.code);
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": e.message, "reason": e.label(), "code": code.as_u16(),
    });
    (code, axum::Json(body)).into_response()
}

fn bad_request(message: String) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
        "message": message, "reason": "BadRequest", "code": 400});
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// Which object(s) a path names.
#[derive(Debug, PartialEq)]
struct Target {
    kind: Kind,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

fn parse_target(group: &str, version: &str, rest: &[&str]) -> Result<Target, String> {
    let kind = |plural: &str| {
        Kind::from_path(group, version, plural).ok_or_else(|| {
            format!("the server could not find the requested resource {group}/{version}/{plural}")
        })
    };
    let t = |kind, namespace: Option<&str>, name: Option<&str>, status| Target {
        kind,
        namespace: namespace.map(str::to_string),
        name: name.map(str::to_string),
        status,
    };
    match rest {
        [plural] => Ok(t(kind(plural)?, None, None, false)),
        ["namespaces", ns, "status"] if group.is_empty() => {
            Ok(t(Kind::Namespace, None, Some(ns), true))
        }
        ["namespaces", ns, plural] => Ok(t(kind(plural)?, Some(ns), None, false)),
        [plural, name] => Ok(t(kind(plural)?, None, Some(name), false)),
        [plural, name, "status"] => Ok(t(kind(plural)?, None, Some(name), true)),
        ["namespaces", ns, plural, name] => Ok(t(kind(plural)?, Some(ns), Some(name), false)),
        ["namespaces", ns, plural, name, "status"] => {
            Ok(t(kind(plural)?, Some(ns), Some(name), true))
        }
        _ => Err(format!("no such path: /{}", rest.join("/"))),
    }
}

async fn core_group(
    State(core): State<ApiCore>,
    request: Extensions,
    method: Method,
    Path(rest): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match parts.split_first() {
        Some((version, rest)) => {
            let at = Request {
                method,
                extensions: request,
                headers,
            };
            dispatch(core, at, "", version, rest, q, body).await
        }
        None => bad_request("missing API version".into()),
    }
}

async fn named_group(
    State(core): State<ApiCore>,
    request: Extensions,
    method: Method,
    Path(rest): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let parts: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    match parts.as_slice() {
        ["metrics.k8s.io", version, rest @ ..] if method == Method::GET => {
            let labels = q.get("labelSelector").map(String::as_str).unwrap_or("");
            let answer = core
                .metrics
                .with(|a| crate::resource_metrics::api::answer(a, version, rest, labels));
            match answer {
                Ok(v) => axum::Json(v).into_response(),
                Err(e) => error_response(e),
            }
        }
        [group, version, rest @ ..] => {
            let at = Request {
                method,
                extensions: request,
                headers,
            };
            dispatch(core, at, group, version, rest, q, body).await
        }
        _ => bad_request("expected /apis/{group}/{version}/...".into()),
    }
}

/// Reads a JSON or YAML request body.
fn read_body(headers: &HeaderMap, body: &[u8]) -> Result<Object, String> {
    let yaml = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("yaml"));
    if yaml {
        let text = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_string())?;
        let docs = drover_proto::manifest::parse_manifests(text, "request body")
            .map_err(|e| e.to_string())?;
        let mut docs = docs.into_iter();
        match (docs.next(), docs.next()) {
            (Some(m), None) => Ok(m.object),
            _ => Err("the body must hold exactly one object".into()),
        }
    } else {
        Object::from_json(body).map_err(|e| format!("the body is not a JSON object: {e}"))
    }
}

fn list_body(kind: Kind, items: Vec<std::sync::Arc<Object>>, rv: u64) -> Value {
    json!({
        "apiVersion": kind.api_version(),
        "kind": format!("{}List", kind.name()),
        "metadata": {"resourceVersion": rv.to_string()},
        "items": items.iter().map(|o| o.to_value()).collect::<Vec<_>>(),
    })
}

/// What the gateway needs of a request besides its path, query and body.
struct Request {
    method: Method,
    /// Carries the caller the authentication middleware found.
    extensions: Extensions,
    headers: HeaderMap,
}

/// The RBAC verb and resource of a request on `target`.
fn verb_and_resource(method: &Method, target: &Target, watch: bool) -> (&'static str, String) {
    let verb = match (method, &target.name) {
        (&Method::GET, None) if watch => "watch",
        (&Method::GET, None) => "list",
        (&Method::GET, Some(_)) => "get",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::DELETE, _) => "delete",
        _ => "unknown",
    };
    let resource = match target.status {
        true => format!("{}/status", target.kind.plural()),
        false => target.kind.plural().to_string(),
    };
    (verb, resource)
}

async fn dispatch(
    core: ApiCore,
    request: Request,
    group: &str,
    version: &str,
    rest: &[&str],
    q: HashMap<String, String>,
    body: Bytes,
) -> Response {
    let Request {
        method,
        extensions,
        headers,
    } = request;
    let target = match parse_target(group, version, rest) {
        Ok(t) => t,
        Err(m) => {
            return error_response(ApiError {
                code: ErrorCode::NotFound,
                message: m,
            });
        }
    };
    let qs = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
    let ns = target.namespace.clone().unwrap_or_default();
    let json_ok = |code: StatusCode, o: &Object| (code, axum::Json(o.to_value())).into_response();
    let (verb, resource) = verb_and_resource(&method, &target, matches!(qs("watch"), "true" | "1"));
    // Create and update are authorized in the namespace of the object sent.
    let authorize = |namespace: &str, name: &str| {
        core.authorize(&extensions, verb, &resource, namespace)?;
        match method {
            Method::GET => Ok(()),
            _ => core.restrict_node_write(&extensions, target.kind, namespace, name),
        }
    };
    if !matches!(method, Method::POST | Method::PUT)
        && let Err(e) = authorize(&ns, target.name.as_deref().unwrap_or(""))
    {
        return error_response(e);
    }
    if method == Method::GET
        && let Err(e) = core.read_barrier(qs("consistency") == "stale").await
    {
        return error_response(e);
    }
    match (&method, &target.name) {
        (&Method::GET, None) if matches!(qs("watch"), "true" | "1") => {
            let since = match qs("resourceVersion") {
                "" => None,
                v => match v.parse() {
                    Ok(n) => Some(n),
                    Err(_) => return bad_request(format!("resourceVersion {v:?} is not a number")),
                },
            };
            match core.watch(
                target.kind,
                target.namespace.as_deref(),
                qs("labelSelector"),
                qs("fieldSelector"),
                since,
            ) {
                Err(e) => error_response(e),
                Ok(mut watch) => {
                    let stream = super::grpc::async_stream(move |tx| async move {
                        while let Some(item) = watch.next().await {
                            let line = match item {
                                Ok(i) => json!({"type": i.type_, "object": i.object.to_value()}),
                                Err(e) => {
                                    let (code, reason) = match e.code {
                                        super::ErrorCode::Gone => (410, "Expired"),
                                        _ => (500, e.label()),
                                    };
                                    json!({"type": "ERROR", "object": {"kind": "Status", "code": code, "reason": reason, "message": e.message}})
                                }
                            };
                            let mut bytes = line.to_string().into_bytes();
                            bytes.push(b'\n');
                            if tx
                                .send(Ok::<_, std::io::Error>(Bytes::from(bytes)))
                                .await
                                .is_err()
                            {
                                break;
                            }
                        }
                    });
                    Response::builder()
                        .header(header::CONTENT_TYPE, "application/json")
                        .body(Body::from_stream(stream.map(|b| b)))
                        .unwrap_or_else(|e| bad_request(e.to_string()))
                }
            }
        }
        (&Method::GET, None) => match core.list(
            target.kind,
            target.namespace.as_deref(),
            qs("labelSelector"),
            qs("fieldSelector"),
        ) {
            Ok((items, rv)) => axum::Json(list_body(target.kind, items, rv)).into_response(),
            Err(e) => error_response(e),
        },
        (&Method::GET, Some(name)) => match core.get(target.kind, &ns, name) {
            Ok(o) => json_ok(StatusCode::OK, &o),
            Err(e) => error_response(e),
        },
        (&Method::POST, None) => {
            let mut obj = match read_body(&headers, &body) {
                Ok(o) => o,
                Err(m) => return bad_request(m),
            };
            if target.kind.namespaced() && !ns.is_empty() {
                obj.metadata.namespace = Some(ns);
            }
            if let Err(e) = authorize(object_namespace(target.kind, &obj), &obj.metadata.name) {
                return error_response(e);
            }
            match core.create(obj, qs("dryRun") == "All").await {
                Ok((o, _)) => json_ok(StatusCode::CREATED, &o),
                Err(e) => error_response(e),
            }
        }
        (&Method::PUT, Some(name)) => {
            let mut obj = match read_body(&headers, &body) {
                Ok(o) => o,
                Err(m) => return bad_request(m),
            };
            if obj.metadata.name != *name {
                return bad_request(format!(
                    "metadata.name {:?} does not match the URL's {name:?}",
                    obj.metadata.name
                ));
            }
            if target.kind.namespaced() && !ns.is_empty() {
                obj.metadata.namespace = Some(ns);
            }
            if let Err(e) = authorize(object_namespace(target.kind, &obj), &obj.metadata.name) {
                return error_response(e);
            }
            let r = if target.status {
                core.update_status(obj).await
            } else {
                core.update(obj, qs("dryRun") == "All")
                    .await
                    .map(|(o, _)| o)
            };
            match r {
                Ok(o) => json_ok(StatusCode::OK, &o),
                Err(e) => error_response(e),
            }
        }
        (&Method::DELETE, Some(name)) => {
            let precondition = match qs("resourceVersion") {
                "" => None,
                v => match v.parse() {
                    Ok(n) => Some(n),
                    Err(_) => return bad_request(format!("resourceVersion {v:?} is not a number")),
                },
            };
            let grace = match qs("gracePeriodSeconds") {
                "" => None,
                v => match v.parse() {
                    Ok(n) => Some(n),
                    Err(_) => {
                        return bad_request(format!("gracePeriodSeconds {v:?} is not a number"));
                    }
                },
            };
            match core
                .delete(
                    target.kind,
                    &ns,
                    name,
                    precondition,
                    qs("propagationPolicy"),
                    grace,
                )
                .await
            {
                Ok(o) => json_ok(StatusCode::OK, &o),
                Err(e) => error_response(e),
            }
        }
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not supported here\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_like_kubernetes() {
        let t = parse_target("", "v1", &["namespaces", "default", "pods", "web"]).unwrap();
        assert_eq!(
            (t.kind, t.namespace.as_deref(), t.name.as_deref(), t.status),
            (Kind::Pod, Some("default"), Some("web"), false)
        );
        let t = parse_target("", "v1", &["namespaces", "prod"]).unwrap();
        assert_eq!((t.kind, t.name.as_deref()), (Kind::Namespace, Some("prod")));
        let t = parse_target(
            "apps",
            "v1",
            &["namespaces", "a", "deployments", "web", "status"],
        )
        .unwrap();
        assert!(t.status && t.kind == Kind::Deployment);
        let t = parse_target("", "v1", &["nodes"]).unwrap();
        assert_eq!((t.kind, t.name), (Kind::Node, None));
        assert!(parse_target("", "v1", &["widgets"]).is_err());
        assert!(parse_target("apps", "v1", &["pods"]).is_err());
        assert!(parse_target("", "v1", &["a", "b", "c", "d", "e", "f"]).is_err());
    }
}
