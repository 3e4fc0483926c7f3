//! The dashboard at `/ui`, served by every member on the API port:
//! server-rendered HTML (maud) from the store, kept live by server-sent
//! events from its change feed, actions through the API's own verbs.
//! Assets are embedded; nothing is built on the user's machine.

mod actions;
mod history;
mod live;
mod logs;
mod pages;
mod view;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use drover_proto::selector::{FieldSelector, Selector};
use drover_proto::types::{Event, Pod};
use drover_proto::{Kind, Object, Resource};
use maud::Markup;

use crate::api::{ApiCore, ApiError, ErrorCode};
use history::HpaHistory;
use view::Snapshot;

/// Shared by the dashboard's handlers.
#[derive(Clone)]
pub struct Ui {
    core: ApiCore,
    history: Arc<HpaHistory>,
}

/// The dashboard's routes; starts the HPA history recorder.
pub fn router(core: ApiCore) -> Router {
    let history = Arc::new(HpaHistory::default());
    history::spawn_recorder(core.store.clone(), history.clone());
    Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/cluster") }))
        .route("/ui/", get(|| async { Redirect::to("/ui/cluster") }))
        .route("/ui/live", get(live::events))
        .route("/ui/assets/{file}", get(asset))
        .route("/ui/actions/{action}", post(actions::handle))
        .route("/ui/pods/{namespace}/{name}", get(pod_page))
        .route(
            "/ui/pods/{namespace}/{name}/logs/{container}",
            get(logs::follow),
        )
        .route("/ui/{view}", get(view_page))
        .layer(axum::middleware::from_fn_with_state(
            core.clone(),
            authorize_dashboard,
        ))
        .with_state(Ui { core, history })
}

/// What a dashboard request needs: its pages show every namespace (a
/// cluster-wide `list pods`), logs need `get pods/log`, and each action the
/// verb it performs, cluster-wide.
fn dashboard_attributes(method: &axum::http::Method, path: &str) -> (&'static str, String, String) {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let at = |verb, resource: &str, ns: &str| (verb, resource.to_string(), ns.to_string());
    match (method == axum::http::Method::POST, parts.as_slice()) {
        (true, ["ui", "actions", "delete-pod"]) => at("delete", "pods", ""),
        (true, ["ui", "actions", "cordon" | "uncordon"]) => at("update", "nodes", ""),
        (true, _) => at("update", "deployments", ""),
        (false, ["ui", "pods", ns, _, "logs", _]) => at("get", "pods/log", ns),
        (false, _) => at("list", "pods", ""),
    }
}

async fn authorize_dashboard(
    State(core): State<ApiCore>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let (verb, resource, ns) = dashboard_attributes(req.method(), req.uri().path());
    match core.authorize(req.extensions(), verb, &resource, &ns) {
        Ok(()) => next.run(req).await,
        Err(e) => error_page(&e),
    }
}

async fn asset(Path(file): Path<String>) -> Response {
    let (body, mime) = match file.as_str() {
        "app.js" => (
            include_str!("assets/app.js"),
            "text/javascript; charset=utf-8",
        ),
        "style.css" => (include_str!("assets/style.css"), "text/css; charset=utf-8"),
        _ => return error_page(&not_found(format!("asset {file:?}"))),
    };
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        body,
    )
        .into_response()
}

fn not_found(what: String) -> ApiError {
    ApiError {
        code: ErrorCode::NotFound,
        message: format!("{what} not found"),
    }
}

/// An error as a page of its own, with the matching HTTP status.
pub(crate) fn error_page(e: &ApiError) -> Response {
    let status = crate::api::http::status_code(e.code);
    let body = pages::error_body(e.label(), &e.message);
    (
        status,
        Html(pages::layout("Error", "", "", body).into_string()),
    )
        .into_response()
}

fn decode_all<T: Resource>(objects: Vec<Arc<Object>>) -> Vec<T> {
    objects
        .iter()
        .filter_map(|o| T::from_object(o).ok())
        .collect()
}

fn list(core: &ApiCore, kind: Kind) -> Vec<Arc<Object>> {
    core.store
        .list(kind, None, &Selector::default(), &FieldSelector::default())
        .0
}

/// Reads the kinds a view shows (after a read barrier: what a linearizable
/// `get` would show).
async fn snapshot(core: &ApiCore, kinds: &[Kind]) -> Result<Snapshot, ApiError> {
    core.read_barrier(false).await?;
    let mut s = Snapshot::default();
    for k in kinds {
        let objects = list(core, *k);
        match k {
            Kind::Node => s.nodes = objects,
            Kind::Pod => s.pods = objects,
            Kind::Deployment => s.deployments = decode_all(objects),
            Kind::ReplicaSet => s.replica_sets = decode_all(objects),
            Kind::Service => s.services = decode_all(objects),
            Kind::Endpoints => s.endpoints = decode_all(objects),
            Kind::HorizontalPodAutoscaler => s.hpas = decode_all(objects),
            Kind::Event => s.events = decode_all(objects),
            _ => {}
        }
    }
    Ok(s)
}

/// The kinds whose changes refresh a view (names as the live feed sends them).
fn kinds_of(view: &str) -> &'static [Kind] {
    match view {
        "cluster" => &[Kind::Node, Kind::Pod],
        "workloads" => &[Kind::Deployment, Kind::ReplicaSet, Kind::Pod],
        "services" => &[Kind::Service, Kind::Endpoints],
        "autoscaling" => &[Kind::HorizontalPodAutoscaler],
        "events" => &[Kind::Event],
        _ => &[],
    }
}

fn live_attr(kinds: &[Kind]) -> String {
    kinds.iter().map(|k| k.name()).collect::<Vec<_>>().join(",")
}

/// The page, or only its main section when `fragment` is set.
fn respond(
    title: &str,
    view: &str,
    live: &str,
    q: &HashMap<String, String>,
    main: Markup,
) -> Response {
    let main = maud::html! {
        (pages::notice(q.get("msg").map(String::as_str), None))
        (main)
    };
    if q.contains_key("fragment") {
        return Html(main.into_string()).into_response();
    }
    Html(pages::layout(title, view, live, main).into_string()).into_response()
}

fn page_number(q: &HashMap<String, String>) -> Result<usize, ApiError> {
    match q.get("page").map(String::as_str) {
        None | Some("") => Ok(0),
        Some(p) => p
            .parse()
            .map_err(|_| ApiError::invalid(format!("page: {p:?} is not a page number"))),
    }
}

async fn view_page(
    State(ui): State<Ui>,
    Path(view): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match render_view(&ui, &view, &q).await {
        Ok(r) => r,
        Err(e) => error_page(&e),
    }
}

async fn render_view(
    ui: &Ui,
    view: &str,
    q: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let Some((_, title)) = pages::VIEWS.iter().find(|(p, _)| *p == view) else {
        return Err(not_found(format!("view {view:?}")));
    };
    let kinds = kinds_of(view);
    let page = page_number(q)?;
    let s = snapshot(&ui.core, kinds).await?;
    let now = chrono::Utc::now();
    let main = match view {
        "cluster" => {
            let status = match ui.core.store.replicator() {
                Some(r) => r.status().await.map_err(|e| ApiError {
                    code: ErrorCode::Unavailable,
                    message: e.to_string(),
                })?,
                None => crate::api::cluster::single_member(),
            };
            let mut nodes = s.nodes.clone();
            nodes.sort_by(|a, b| view::natural_key(a.name()).cmp(&view::natural_key(b.name())));
            let ready = nodes.iter().filter(|o| view::node_ready(o)).count();
            let (shown, pages) = view::paginate(&nodes, page, pages::PER_PAGE);
            let rows = view::node_rows(&decode_all(shown.to_vec()), &s.pods);
            let listing = pages::cluster::NodeListing {
                rows: &rows,
                total: nodes.len(),
                ready,
                page,
                pages,
            };
            pages::cluster::render(&status, &listing)
        }
        "workloads" => {
            let mut deployments: Vec<_> = s.deployments.iter().map(view::deployment_row).collect();
            deployments.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            let mut pods = s.pods.clone();
            pods.sort_by(|a, b| {
                (a.metadata.namespace_or_default(), a.name())
                    .cmp(&(b.metadata.namespace_or_default(), b.name()))
            });
            let vms = pods.iter().filter(|o| view::is_vm(o)).count();
            let (shown, pages) = view::paginate(&pods, page, pages::PER_PAGE);
            let rows: Vec<_> = decode_all::<Pod>(shown.to_vec())
                .iter()
                .map(view::pod_row)
                .collect();
            let listing = pages::workloads::PodListing {
                rows: &rows,
                total: pods.len(),
                vms,
                page,
                pages,
            };
            pages::workloads::render(&deployments, &s.replica_sets, &listing, now)
        }
        "services" => {
            let mut rows = view::service_rows(&s);
            for r in &mut rows {
                r.requests_per_second = ui.core.metrics.service_rate(&r.namespace, &r.name);
            }
            pages::services::render(&rows)
        }
        "autoscaling" => {
            let t = history::unix_now();
            let hpas: Vec<_> = s
                .hpas
                .iter()
                .map(|h| {
                    let row = view::hpa_row(h);
                    let points = ui
                        .history
                        .points(&format!("{}/{}", row.namespace, row.name), t);
                    (row, points)
                })
                .collect();
            pages::autoscaling::render(&hpas, history::WINDOW_SECONDS)
        }
        _ => {
            let type_ = q.get("type").map(String::as_str).unwrap_or("");
            let text = q.get("q").map(String::as_str).unwrap_or("");
            let events = view::filter_events(&s.events, type_, text);
            pages::events::render(&events, type_, text, page, now)
        }
    };
    Ok(respond(title, view, &live_attr(kinds), q, main))
}

async fn pod_page(
    State(ui): State<Ui>,
    Path((namespace, name)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let r = async {
        ui.core.read_barrier(false).await?;
        let o = ui
            .core
            .store
            .get(Kind::Pod, &namespace, &name)
            .ok_or_else(|| not_found(format!("pod {namespace}/{name}")))?;
        let pod = Pod::from_object(&o).map_err(|e| ApiError::invalid(e.to_string()))?;
        let events: Vec<Event> = decode_all(list(&ui.core, Kind::Event));
        let mut mine: Vec<&Event> = events
            .iter()
            .filter(|e| e.involved_object.kind == "Pod" && e.involved_object.name == name)
            .filter(|e| e.involved_object.namespace.as_deref().unwrap_or("default") == namespace)
            .collect();
        mine.sort_by_key(|e| std::cmp::Reverse(e.last_timestamp));
        let main = pages::pod::render(&pod, &mine, chrono::Utc::now());
        Ok::<_, ApiError>(respond(&name, "workloads", "Pod,Event", &q, main))
    }
    .await;
    r.unwrap_or_else(|e| error_page(&e))
}
