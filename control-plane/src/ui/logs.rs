//! `GET /ui/pods/{ns}/{name}/logs/{container}`: the container's log from the
//! agent of the pod's node, streamed through (the browser need not reach
//! nodes). `follow=true` keeps the stream open.

use std::collections::HashMap;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use drover_proto::types::{Node, Pod};
use drover_proto::{Kind, Resource};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::{Ui, error_page, not_found};
use crate::api::{ApiError, ErrorCode};

fn unavailable(message: String) -> ApiError {
    ApiError {
        code: ErrorCode::Unavailable,
        message,
    }
}

/// `host:port` of the agent serving logs for the pod's node.
fn agent_of(ui: &Ui, namespace: &str, name: &str) -> Result<String, ApiError> {
    let store = &ui.core.store;
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
    Node::from_object(&node)
        .map_err(|e| ApiError::invalid(e.to_string()))?
        .agent_address()
        .map_err(unavailable)
}

fn safe(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
}

pub async fn follow(
    State(ui): State<Ui>,
    Path((namespace, name, container)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if ![&namespace, &name, &container].iter().all(|s| safe(s)) {
        return error_page(&ApiError::invalid(
            "namespace, pod and container names are DNS labels",
        ));
    }
    let addr = match agent_of(&ui, &namespace, &name) {
        Ok(a) => a,
        Err(e) => return error_page(&e),
    };
    let follow = q.get("follow").is_some_and(|v| v == "true");
    let target = format!(
        "/logs/{namespace}/{name}/{container}{}",
        if follow { "?follow=true" } else { "" }
    );
    let mut conn = match tokio::net::TcpStream::connect(&addr).await {
        Ok(c) => c,
        Err(e) => {
            return error_page(&unavailable(format!(
                "cannot reach the agent at {addr}: {e}"
            )));
        }
    };
    let req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if let Err(e) = conn.write_all(req.as_bytes()).await {
        return error_page(&unavailable(format!("agent at {addr}: {e}")));
    }
    let mut reader = BufReader::new(conn);
    let mut status_line = String::new();
    if reader.read_line(&mut status_line).await.is_err() {
        return error_page(&unavailable(format!("the agent at {addr} did not answer")));
    }
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line).await {
            Ok(0) => break,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => {}
            Err(e) => return error_page(&unavailable(format!("agent at {addr}: {e}"))),
        }
    }
    if !status_line.contains(" 200 ") {
        let mut body = String::new();
        let _ = reader.read_to_string(&mut body).await;
        return error_page(&unavailable(body.trim_end().to_string()));
    }
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
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(stream),
    )
        .into_response()
}
