//! Time for a Deployment to reach N ready replicas through the real API
//! server and controllers, with a task playing hollow nodes that marks each
//! pod Running and Ready as it appears. `DROVER_BENCH_REPLICAS` sets N
//! (default 1000).

use std::time::{Duration, Instant};

use drover_control_plane::controllers::run_controllers;
use drover_control_plane::{ServerConfig, serve};
use drover_proto::client::{Client, ListOptions};
use drover_proto::meta::Condition;
use drover_proto::types::pod::{PodPhase, PodStatus};
use drover_proto::types::{Deployment, Pod};
use drover_proto::{Kind, Resource};
use futures::StreamExt;

fn deployment(replicas: usize) -> drover_proto::Object {
    let yaml = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: bench}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: bench}}}}\n  template:\n    metadata: {{labels: {{app: bench}}}}\n    spec:\n      containers: [{{name: c, image: \"example/bench:1\"}}]\n"
    );
    drover_proto::manifest::parse_manifests(&yaml, "bench")
        .ok()
        .and_then(|m| m.into_iter().next())
        .map(|m| m.object)
        .unwrap_or_default()
}

/// Marks every new pod ready, as hollow agents would.
async fn hollow_nodes(client: Client) {
    let Ok(mut events) = client
        .watch(Kind::Pod, &ListOptions::default(), Some(0))
        .await
    else {
        return;
    };
    while let Some(Ok(ev)) = events.next().await {
        if ev.type_ != "ADDED" {
            continue;
        }
        let Ok(mut pod) = Pod::from_object(&ev.object) else {
            continue;
        };
        pod.status = Some(PodStatus {
            phase: PodPhase::Running,
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: Some(chrono::Utc::now()),
                ..Condition::default()
            }],
            ..PodStatus::default()
        });
        pod.metadata.resource_version = None;
        let c = client.clone();
        tokio::spawn(async move {
            let _ = c.update_status(&pod.to_object()).await;
        });
    }
}

#[tokio::main]
async fn main() {
    let replicas: usize = std::env::var("DROVER_BENCH_REPLICAS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let dir = tempfile::tempdir().expect("temp dir");
    let (tx, rx) = tokio::sync::oneshot::channel();
    let config = ServerConfig {
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".parse().expect("address"),
        history_limit: 1_000_000,
        raft: None,
        security: None,
        encryption: Default::default(),
    };
    tokio::spawn(serve(
        config,
        move |ready: drover_control_plane::Ready| {
            let _ = tx.send(ready.addr);
        },
        std::future::pending(),
    ));
    let addr = rx.await.expect("server started");
    let url = format!("http://{addr}");
    let client = Client::connect(&url).await.expect("connect");
    tokio::spawn(run_controllers(
        client.clone(),
        Default::default(),
        std::future::pending(),
    ));
    tokio::spawn(hollow_nodes(client.clone()));

    let start = Instant::now();
    client
        .create(&deployment(replicas))
        .await
        .expect("create deployment");
    let want = i32::try_from(replicas).unwrap_or(i32::MAX);
    loop {
        let d: Deployment = client.get_as("default", "bench").await.expect("get");
        if d.status
            .as_ref()
            .is_some_and(|s| s.ready_replicas == want && s.available_replicas == want)
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "did not converge"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = start.elapsed();
    println!(
        "deployment 0 -> {replicas} ready replicas: {:.2} s ({:.0} pods/s)",
        took.as_secs_f64(),
        replicas as f64 / took.as_secs_f64()
    );
}
