//! `GET /ui/pods/{ns}/{name}/logs/{container}`: the container's log from the
//! agent of the pod's node, streamed through (the browser need not reach
//! nodes; [`crate::node_proxy::logs`]). `follow=true` keeps the stream open.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::{Ui, error_page};
use crate::node_proxy::logs::{LogOptions, open};

pub async fn follow(
    State(ui): State<Ui>,
    Path((namespace, name, container)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let options = LogOptions {
        container: Some(container),
        follow: q.get("follow").is_some_and(|v| v == "true"),
        previous: false,
    };
    match open(&ui.core, &namespace, &name, &options).await {
        Ok(body) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response(),
        Err(e) => error_page(&e),
    }
}
