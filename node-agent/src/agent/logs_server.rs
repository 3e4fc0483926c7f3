//! The agent's HTTP endpoint: `GET /logs/{namespace}/{pod}[/{container}][?follow=true][&previous=true]`
//! streams a container's current (or previous) log as plain text lines,
//! for `drover logs`; `POST /exec/{namespace}/{pod}` runs a command in a
//! container, for `drover exec` ([`super::exec::serve`]);
//! `POST /snapshot/{namespace}/{pod}` snapshots a VM pod, for `drover vm
//! snapshot` ([`super::vm_snapshot`]); `GET /metrics`
//! shows the service proxy's connection counters and the last metrics
//! sample (Prometheus text); `GET /metrics/summary` is that sample as JSON
//! ([`drover_proto::types::metrics::AgentSummary`]) for the control plane's
//! metrics source. A tiny HTTP/1.1 server: one request per connection.

use std::time::Duration;

use drover_proto::dial::Conn;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::exec::serve::{self as exec, ExecContext};
use super::informer;
use super::runner::LOG_MAX_FILES;
use super::serving_tls::ServingTls;
use crate::shim::logs::read_log;

/// What a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogsRequest {
    /// Namespace.
    pub namespace: String,
    /// Pod name.
    pub pod: String,
    /// Container (the first when absent).
    pub container: Option<String>,
    /// Keep streaming as the container writes.
    pub follow: bool,
    /// The previous run's log instead of the current one.
    pub previous: bool,
}

/// Parses a request target such as `/logs/default/web/c?follow=true` (pure).
pub fn parse_target(target: &str) -> Option<LogsRequest> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut parts = path.strip_prefix("/logs/")?.split('/');
    let namespace = parts.next().filter(|s| !s.is_empty())?.to_string();
    let pod = parts.next().filter(|s| !s.is_empty())?.to_string();
    let container = parts.next().filter(|s| !s.is_empty()).map(str::to_string);
    if parts.next().is_some() {
        return None;
    }
    let flag = |name: &str| {
        query.split('&').any(|kv| {
            kv == name
                || kv
                    .strip_prefix(name)
                    .is_some_and(|v| v == "=true" || v == "=1")
        })
    };
    Some(LogsRequest {
        namespace,
        pod,
        container,
        follow: flag("follow"),
        previous: flag("previous"),
    })
}

/// Serves until the process ends: over TLS, to the control plane only,
/// when `tls` is given ([`super::serving_tls`]).
pub async fn serve(listener: TcpListener, ctx: ExecContext, tls: Option<ServingTls>) {
    loop {
        let Ok((tcp, addr)) = listener.accept().await else {
            continue;
        };
        let (ctx, tls) = (ctx.clone(), tls.clone());
        tokio::spawn(async move {
            let conn: Conn = match tls {
                None => Box::new(tcp),
                Some(tls) => match tls.accept(tcp).await {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::info!(%addr, "agent port refused a client: {e}");
                        return;
                    }
                },
            };
            let _ = handle(conn, &ctx).await;
        });
    }
}

/// The log attempt to show: the highest (current) one, or the one below
/// it for `previous` (pure).
pub fn pick_attempt(mut attempts: Vec<i32>, previous: bool) -> Option<i32> {
    attempts.sort_unstable();
    attempts.dedup();
    let n = attempts.len();
    match (previous, n) {
        (false, 0) | (true, 0 | 1) => None,
        (false, _) => Some(attempts[n - 1]),
        (true, _) => Some(attempts[n - 2]),
    }
}

pub(super) async fn respond(conn: &mut Conn, code: &str, body: &str) -> std::io::Result<()> {
    respond_as(conn, code, "text/plain; charset=utf-8", body).await
}

pub(super) async fn respond_as(
    conn: &mut Conn,
    code: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {code}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body.as_bytes()).await?;
    // Over TLS the client needs close_notify to tell the end from a cut.
    conn.shutdown().await
}

async fn summary(conn: &mut Conn, latest: &crate::metrics::Latest) -> std::io::Result<()> {
    match latest.get().map(|s| serde_json::to_string(&s)) {
        Some(Ok(json)) => respond_as(conn, "200 OK", "application/json", &json).await,
        Some(Err(e)) => {
            let msg = format!("encoding the metrics: {e}\n");
            respond(conn, "500 Internal Server Error", &msg).await
        }
        None => {
            let msg = "no metrics yet: the first sample takes two readings a second apart\n";
            respond(conn, "503 Service Unavailable", msg).await
        }
    }
}

async fn metrics(
    conn: &mut Conn,
    table: Option<String>,
    latest: &crate::metrics::Latest,
) -> std::io::Result<()> {
    let counters = match table {
        None => Ok(Default::default()),
        Some(t) => tokio::task::spawn_blocking(move || crate::network::services::read_counters(&t))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string()))),
    };
    match counters {
        Ok(c) => {
            let mut text = crate::network::services::metrics::render(&c);
            if let Some(s) = latest.get() {
                text.push_str(&crate::metrics::prometheus::render(&s));
            }
            respond(conn, "200 OK", &text).await
        }
        Err(e) => {
            respond(
                conn,
                "500 Internal Server Error",
                &format!("reading the service counters: {e}\n"),
            )
            .await
        }
    }
}

async fn handle(mut conn: Conn, ctx: &ExecContext) -> std::io::Result<()> {
    let (cache, layout) = (&ctx.cache, &ctx.layout);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut chunk).await?;
        if n == 0 || buf.len() > 8192 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(());
    };
    let rest = buf.split_off(end + 4);
    let head = String::from_utf8_lossy(&buf).into_owned();
    let target = head.split_whitespace().nth(1).unwrap_or_default();
    if target.starts_with("/exec/") {
        return exec::handle(conn, &head, rest, ctx).await;
    }
    if target.starts_with("/snapshot/") {
        return super::vm_snapshot::handle(conn, &head, ctx).await;
    }
    if target == "/metrics" {
        return metrics(&mut conn, ctx.service_table.clone(), &ctx.metrics).await;
    }
    if target == "/metrics/summary" {
        return summary(&mut conn, &ctx.metrics).await;
    }
    let Some(req) = parse_target(target) else {
        return respond(
            &mut conn,
            "404 Not Found",
            "use /logs/NAMESPACE/POD[/CONTAINER]\n",
        )
        .await;
    };
    let key = format!("{}/{}", req.namespace, req.pod);
    let Some(pod) = informer::cached(cache, &key) else {
        let msg = format!("pod {key} is not on this node\n");
        return respond(&mut conn, "404 Not Found", &msg).await;
    };
    let container = req
        .container
        .clone()
        .or_else(|| pod.spec.containers.first().map(|c| c.name.clone()))
        .unwrap_or_default();
    if !pod.spec.containers.iter().any(|c| c.name == container) {
        let msg = format!("container {container} is not valid for pod {key}\n");
        return respond(&mut conn, "400 Bad Request", &msg).await;
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let dir = layout
        .log_path(&req.namespace, &req.pod, &uid, &container, 0)
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    // The current run's log: the highest attempt number (the one below
    // it for --previous).
    let attempts = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".log")?
                .parse::<i32>()
                .ok()
        })
        .collect();
    let Some(attempt) = pick_attempt(attempts, req.previous) else {
        let msg = if req.previous {
            format!("previous terminated container {container} in pod {key} not found\n")
        } else {
            format!("container {container} in pod {key} has not started yet\n")
        };
        return respond(&mut conn, "400 Bad Request", &msg).await;
    };
    let path = layout.log_path(&req.namespace, &req.pod, &uid, &container, attempt);
    conn.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n",
    )
    .await?;
    let mut sent = 0usize;
    loop {
        let records = read_log(&path, LOG_MAX_FILES).unwrap_or_default();
        // After a rotation fewer records may remain than were sent.
        let start = if records.len() < sent { 0 } else { sent };
        for r in &records[start..] {
            conn.write_all(&r.text).await?;
            conn.write_all(b"\n").await?;
        }
        sent = records.len();
        let still_there = informer::cached(cache, &key)
            .is_some_and(|p| p.metadata.uid.as_deref() == Some(uid.as_str()));
        if !req.follow || req.previous || !still_there {
            return conn.shutdown().await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert_eq!(
            parse_target("/logs/default/web/c?follow=true"),
            Some(LogsRequest {
                namespace: "default".into(),
                pod: "web".into(),
                container: Some("c".into()),
                follow: true,
                previous: false,
            })
        );
        let r = parse_target("/logs/ns/p").expect("parses");
        assert_eq!((r.container, r.follow, r.previous), (None, false, false));
        let r = parse_target("/logs/ns/p?previous=true").expect("parses");
        assert!(r.previous && !r.follow);
        for bad in ["/", "/logs/", "/logs/ns", "/logs/ns/p/c/x", "/other/ns/p"] {
            assert_eq!(parse_target(bad), None, "{bad}");
        }
    }

    #[test]
    fn previous_is_the_run_before_the_current_one() {
        assert_eq!(pick_attempt(vec![], false), None);
        assert_eq!(pick_attempt(vec![0], false), Some(0));
        assert_eq!(pick_attempt(vec![0], true), None);
        assert_eq!(pick_attempt(vec![3, 1, 2], true), Some(2));
        assert_eq!(pick_attempt(vec![3, 1, 2], false), Some(3));
    }
}
