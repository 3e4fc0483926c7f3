//! The gRPC API through the typed client: compare-and-set, watch resume,
//! status updates, deletion semantics.

mod common;

use std::time::Duration;

use common::*;
use drover_proto::client::{Client, ClientError, DeleteOptions, ListOptions};
use drover_proto::{Kind, Object};
use futures::StreamExt;
use serde_json::json;

fn cm(name: &str, v: &str) -> Object {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": v}})).unwrap()
}

#[tokio::test]
async fn update_is_compare_and_set() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let c = Client::connect(&server.url).await.unwrap();
    let (created, _) = c.create(&cm("a", "1")).await.unwrap();
    let mut first = created.clone();
    first.body.insert("data".into(), json!({"v": "2"}));
    let (updated, _) = c.update(&first).await.unwrap();
    assert_ne!(
        updated.metadata.resource_version,
        created.metadata.resource_version
    );
    // A writer holding the old version loses.
    let mut stale = created.clone();
    stale.body.insert("data".into(), json!({"v": "3"}));
    match c.update(&stale).await {
        Err(ClientError::Conflict(m)) => assert!(m.contains("modified"), "{m}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Delete with a stale precondition loses too.
    let opts = DeleteOptions {
        resource_version: created.metadata.revision().unwrap(),
        ..Default::default()
    };
    assert!(matches!(
        c.delete(Kind::ConfigMap, "default", "a", &opts).await,
        Err(ClientError::Conflict(_))
    ));
    let got = c.get(Kind::ConfigMap, "default", "a").await.unwrap();
    assert_eq!(got.body["data"]["v"], "2");
}

#[tokio::test]
async fn watch_resumes_without_gaps_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data);
    let c = Client::connect(&server.url).await.unwrap();
    let opts = ListOptions {
        namespace: Some("default".into()),
        ..Default::default()
    };
    let (_, start) = c.list(Kind::ConfigMap, &opts).await.unwrap();
    for i in 0..10 {
        c.create(&cm(&format!("c{i}"), "x")).await.unwrap();
    }
    // Read half, "disconnect", then resume from the last seen revision.
    let mut w = c.watch(Kind::ConfigMap, &opts, Some(start)).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let ev = w.next().await.unwrap().unwrap();
        seen.push(ev.object.metadata.name.clone());
    }
    let last = seen.len() as u64 + start;
    drop(w);
    server.kill9();
    let server = Server::start(&data);
    let c = Client::connect(&server.url).await.unwrap();
    c.create(&cm("after", "x")).await.unwrap();
    let mut w = c.watch(Kind::ConfigMap, &opts, Some(last)).await.unwrap();
    for _ in 0..6 {
        let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push(ev.object.metadata.name.clone());
    }
    let want: Vec<String> = (0..10)
        .map(|i| format!("c{i}"))
        .chain(["after".to_string()])
        .collect();
    assert_eq!(seen, want);
}

#[tokio::test]
async fn status_is_written_apart_and_pods_terminate_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let c = Client::connect(&server.url).await.unwrap();
    let pod: Object = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "busybox"}]}
    }))
    .unwrap();
    let (created, _) = c.create(&pod).await.unwrap();
    assert_eq!(
        created.body["spec"]["restartPolicy"], "Always",
        "defaults applied"
    );
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());
    let mut with_status = created.clone();
    with_status.body.insert(
        "status".into(),
        json!({"phase": "Running", "podIP": "10.88.0.5"}),
    );
    let s = c.update_status(&with_status).await.unwrap();
    assert_eq!(s.metadata.generation, Some(1));
    assert_eq!(s.body["status"]["podIP"], "10.88.0.5");
    // A spec update cannot overwrite status.
    let mut spec_update = s.clone();
    spec_update.body.remove("status");
    spec_update.metadata.labels.insert("x".into(), "y".into());
    let (u, _) = c.update(&spec_update).await.unwrap();
    assert_eq!(u.body["status"]["phase"], "Running");

    let terminating = c
        .delete(Kind::Pod, "default", "p", &DeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(30));
    assert!(c.get(Kind::Pod, "default", "p").await.is_ok());
    let force = DeleteOptions {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    c.delete(Kind::Pod, "default", "p", &force).await.unwrap();
    assert!(matches!(
        c.get(Kind::Pod, "default", "p").await,
        Err(ClientError::NotFound(_))
    ));
}

#[tokio::test]
async fn watch_from_compacted_history_says_relist() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut child = std::process::Command::new(drover_bin())
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--history-limit",
            "5",
            "--data-dir",
        ])
        .arg(&data)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let url = {
        use std::io::BufRead;
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| {
                l.strip_prefix("drover server listening on ")
                    .map(str::to_string)
            })
            .unwrap()
    };
    let c = Client::connect(&url).await.unwrap();
    for i in 0..20 {
        c.create(&cm(&format!("c{i}"), "x")).await.unwrap();
    }
    let mut w = c
        .watch(Kind::ConfigMap, &ListOptions::default(), Some(2))
        .await;
    let err = match &mut w {
        Err(e) => e.clone(),
        Ok(s) => s.next().await.unwrap().unwrap_err(),
    };
    assert!(matches!(err, ClientError::Gone(_)), "{err:?}");
    assert!(err.to_string().contains("list again"), "{err}");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn http_gateway_serves_kubernetes_paths_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let base = server.url.clone();
    let http = |method: &str, path: &str, body: Option<&str>| {
        let mut cmd = std::process::Command::new("curl");
        cmd.args([
            "-s",
            "-X",
            method,
            "-H",
            "Content-Type: application/json",
            "-w",
            "\n%{http_code}",
        ]);
        if let Some(b) = body {
            cmd.args(["--data", b]);
        }
        let out = cmd.arg(format!("{base}{path}")).output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or((&text, "0"));
        (code.parse::<u16>().unwrap_or(0), body.to_string())
    };
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIP http_gateway test: curl is not installed");
        return;
    }
    assert_eq!(http("GET", "/healthz", None), (200, "ok".into()));
    let (code, body) = http(
        "POST",
        "/api/v1/namespaces/default/configmaps",
        Some(r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"h"},"data":{"a":"b"}}"#),
    );
    assert_eq!(code, 201, "{body}");
    let (code, body) = http("GET", "/api/v1/namespaces/default/configmaps/h", None);
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"]["a"], "b");
    let (code, body) = http("GET", "/api/v1/configmaps", None);
    assert_eq!(code, 200);
    assert!(body.contains("\"kind\":\"ConfigMapList\""), "{body}");
    let (code, body) = http(
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        Some(
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"replicas":-1}}"#,
        ),
    );
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("spec.replicas: must be >= 0"), "{body}");
    assert_eq!(
        http("GET", "/api/v1/namespaces/default/widgets", None).0,
        404
    );
    assert_eq!(
        http(
            "POST",
            "/api/v1/namespaces/default/configmaps",
            Some("not json")
        )
        .0,
        400
    );
    assert_eq!(
        http("DELETE", "/api/v1/namespaces/default/configmaps/h", None).0,
        200
    );
    let (code, metrics) = http("GET", "/metrics", None);
    assert_eq!(code, 200);
    for m in [
        "drover_api_requests_total",
        "drover_api_request_duration_seconds",
        "drover_store_revision",
        "drover_store_objects",
        "drover_store_db_bytes",
    ] {
        assert!(metrics.contains(m), "{m} missing from /metrics:\n{metrics}");
    }
}
