//! Deployments and ReplicaSets through the real `drover server` with its
//! controllers. There is no agent: the test plays a hollow node that marks
//! pods Running and Ready by writing their status.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use drover_proto::Resource;
use drover_proto::client::{Client, ListOptions};
use drover_proto::meta::Condition;
use drover_proto::types::Pod;
use drover_proto::types::pod::{PodPhase, PodStatus};

fn manifest(image: &str, deadline: i32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 3
  progressDeadlineSeconds: {deadline}
  strategy: {{rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}}}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: c, image: "{image}"}}]
"#
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Pods that are not terminating.
fn pods(rt: &tokio::runtime::Runtime, url: &str) -> Vec<Pod> {
    rt.block_on(async {
        let c = Client::connect(url).await.expect("connect");
        let (pods, _) = c
            .list_as::<Pod>(&ListOptions::default())
            .await
            .expect("list pods");
        pods.into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect()
    })
}

/// The hollow node: every pod not yet ready becomes Running and Ready.
fn mark_ready(rt: &tokio::runtime::Runtime, url: &str) {
    rt.block_on(async {
        let c = Client::connect(url).await.expect("connect");
        let (pods, _) = c
            .list_as::<Pod>(&ListOptions::default())
            .await
            .expect("list pods");
        for mut p in pods {
            if p.metadata.deletion_timestamp.is_some()
                || p.status.as_ref().is_some_and(|s| s.is_ready())
            {
                continue;
            }
            p.status = Some(PodStatus {
                phase: PodPhase::Running,
                conditions: vec![Condition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(chrono::Utc::now()),
                    ..Condition::default()
                }],
                ..PodStatus::default()
            });
            p.metadata.resource_version = None;
            // The pod may have been deleted meanwhile; the next pass sees it.
            let _ = c.update_status(&p.to_object()).await;
        }
    })
}

fn spawn_drover(server: &Server, args: &[&str]) -> Child {
    Command::new(drover_bin())
        .args(args)
        .env("DROVER_SERVER", &server.url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn drover")
}

/// Runs `drover rollout status` while the hollow node marks pods ready.
fn rollout_status_while_ready(server: &Server, rt: &tokio::runtime::Runtime) -> String {
    let mut child = spawn_drover(
        server,
        &["rollout", "status", "deploy/web", "--timeout", "60s"],
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "rollout status did not return");
        mark_ready(rt, &server.url);
        std::thread::sleep(Duration::from_millis(50));
    }
    ok(child.wait_with_output().expect("output"))
}

#[test]
fn deployment_rolls_out_scales_undoes_and_cascades() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let rt = runtime();
    let v1 = write(dir.path(), "v1.yaml", &manifest("example/web:1", 600));
    ok(server.drover(&["apply", "-f", &v1]));
    eventually(Duration::from_secs(20), || {
        (pods(&rt, &server.url).len() == 3).then_some(())
    });

    let out = rollout_status_while_ready(&server, &rt);
    assert!(out.contains("successfully rolled out"), "{out}");

    let v2 = write(dir.path(), "v2.yaml", &manifest("example/web:2", 600));
    ok(server.drover(&["apply", "-f", &v2]));
    let out = rollout_status_while_ready(&server, &rt);
    assert!(
        out.contains("deployment \"web\" successfully rolled out"),
        "{out}"
    );
    let now = pods(&rt, &server.url);
    assert_eq!(now.len(), 3);
    assert!(
        now.iter()
            .all(|p| p.spec.containers[0].image == "example/web:2")
    );

    assert_eq!(
        ok(server.drover(&["scale", "deploy/web", "--replicas", "5"])),
        "deployment.apps/web scaled\n"
    );
    rollout_status_while_ready(&server, &rt);
    eventually(Duration::from_secs(20), || {
        (pods(&rt, &server.url).len() == 5).then_some(())
    });

    let history = ok(server.drover(&["rollout", "history", "deploy/web"]));
    assert!(
        history.contains("REVISION") && history.contains("\n1 ") && history.contains("\n2 "),
        "{history}"
    );
    assert_eq!(
        ok(server.drover(&["rollout", "undo", "deploy/web"])),
        "deployment.apps/web rolled back\n"
    );
    rollout_status_while_ready(&server, &rt);
    eventually(Duration::from_secs(20), || {
        let p = pods(&rt, &server.url);
        (p.len() == 5
            && p.iter()
                .all(|p| p.spec.containers[0].image == "example/web:1"))
        .then_some(())
    });

    let events = ok(server.drover(&["get", "events", "-o", "json"]));
    assert!(events.contains("ScalingReplicaSet") && events.contains("SuccessfulCreate"));

    ok(server.drover(&["delete", "deploy", "web"]));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rs = ok(server.drover(&["get", "rs", "-o", "name"]));
        let left = pods(&rt, &server.url);
        if rs.is_empty() && left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "left after deleting the deployment: {rs} {:?}",
            left.iter()
                .map(|p| (&p.metadata.name, &p.metadata.owner_references))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn rollout_status_fails_after_the_progress_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let f = write(dir.path(), "web.yaml", &manifest("example/web:1", 2));
    ok(server.drover(&["apply", "-f", &f]));
    // No pod ever becomes ready.
    let out = server.drover(&["rollout", "status", "deploy/web", "--timeout", "60s"]);
    let err = fails(out);
    assert!(err.contains("exceeded its progress deadline"), "{err}");
}

#[test]
fn events_older_than_the_ttl_are_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(dir.path(), &["--event-ttl", "3s"]);
    let event = |name: &str, seen: chrono::DateTime<chrono::Utc>| {
        format!(
            "apiVersion: v1\nkind: Event\nmetadata:\n  name: {name}\ninvolvedObject:\n  kind: Pod\n  name: p\nreason: Tested\nmessage: m\ntype: Normal\ncount: 1\nfirstTimestamp: \"{t}\"\nlastTimestamp: \"{t}\"\n",
            t = seen.to_rfc3339()
        )
    };
    let now = chrono::Utc::now();
    ok(server.drover_stdin(
        &["create", "-f", "-"],
        Some(&event("stale", now - chrono::Duration::hours(2))),
    ));
    ok(server.drover_stdin(&["create", "-f", "-"], Some(&event("fresh", now))));
    eventually(Duration::from_secs(10), || {
        let out = ok(server.drover(&["get", "events", "-o", "name"]));
        (!out.contains("stale")).then_some(())
    });
    let out = ok(server.drover(&["get", "events", "-o", "name"]));
    assert!(out.contains("fresh"), "a fresh event stays: {out}");
    // After the TTL the fresh one goes too.
    eventually(Duration::from_secs(15), || {
        let out = ok(server.drover(&["get", "events", "-o", "name"]));
        (!out.contains("fresh")).then_some(())
    });
}
