//! The Endpoints controller through the real server: a Service over a
//! Deployment's pods run by hollow nodes (which report pod IPs and Ready),
//! plus a pod whose status the test writes as an agent would.

mod common;

use std::time::Duration;

use common::*;
use drover_proto::Kind;
use drover_proto::Resource;
use drover_proto::client::{Client, DeleteOptions, ListOptions};
use drover_proto::meta::Condition;
use drover_proto::types::Pod;
use drover_proto::types::pod::{PodPhase, PodStatus};
use drover_proto::types::service::Endpoints;

const MANIFEST: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: c
        image: "example/web:1"
        ports: [{name: http, containerPort: 8080}]
"#;

const MANUAL_POD: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: manual, labels: {app: web}}
spec:
  nodeName: elsewhere
  containers:
  - name: c
    image: "example/web:1"
    ports: [{name: http, containerPort: 9090}]
"#;

/// (ready "ip:port", not-ready "ip:port") of the Endpoints `web`.
fn addresses(rt: &tokio::runtime::Runtime, client: &Client) -> Option<(Vec<String>, Vec<String>)> {
    let ep: Endpoints = rt.block_on(client.get_as("default", "web")).ok()?;
    let (mut ready, mut not_ready) = (vec![], vec![]);
    for s in &ep.subsets {
        for p in &s.ports {
            ready.extend(s.addresses.iter().map(|a| format!("{}:{}", a.ip, p.port)));
            not_ready.extend(
                s.not_ready_addresses
                    .iter()
                    .map(|a| format!("{}:{}", a.ip, p.port)),
            );
        }
    }
    ready.sort();
    not_ready.sort();
    Some((ready, not_ready))
}

fn set_status(rt: &tokio::runtime::Runtime, client: &Client, ip: &str, ready: bool) {
    let mut p: Pod = rt
        .block_on(client.get_as("default", "manual"))
        .expect("pod");
    p.status = Some(PodStatus {
        phase: PodPhase::Running,
        pod_ip: Some(ip.into()),
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: if ready { "True" } else { "False" }.into(),
            ..Condition::default()
        }],
        ..PodStatus::default()
    });
    p.metadata.resource_version = None;
    rt.block_on(client.update_status(&p.to_object()))
        .expect("status");
}

#[test]
fn endpoints_track_ready_pods_of_a_service() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let _agent = AgentProcess::start(
        &server.url,
        &["--hollow", "--count", "2", "--heartbeat-seconds", "1"],
        "2 hollow nodes registered",
        Duration::from_secs(60),
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let client = rt.block_on(Client::connect(&server.url)).expect("connect");
    ok(server.drover(&["apply", "-f", &write(dir.path(), "web.yaml", MANIFEST)]));

    // The hollow nodes report IPs in their pod CIDRs (10.64.x.0/24) and Ready.
    let (ready, _) = eventually(Duration::from_secs(30), || {
        addresses(&rt, &client).filter(|(r, _)| r.len() == 3)
    });
    assert!(
        ready
            .iter()
            .all(|a| a.starts_with("10.64.") && a.ends_with(":8080")),
        "{ready:?}"
    );
    let table = ok(server.drover(&["get", "endpoints", "web"]));
    assert!(table.contains(":8080"), "{table}");

    // A pod the test plays the agent for: not ready, then ready.
    ok(server.drover(&["apply", "-f", &write(dir.path(), "manual.yaml", MANUAL_POD)]));
    set_status(&rt, &client, "10.99.0.7", false);
    eventually(Duration::from_secs(10), || {
        addresses(&rt, &client).filter(|(_, nr)| *nr == ["10.99.0.7:9090"])
    });
    set_status(&rt, &client, "10.99.0.7", true);
    eventually(Duration::from_secs(10), || {
        addresses(&rt, &client).filter(|(r, nr)| r.len() == 4 && nr.is_empty())
    });

    // Deleting the pod takes it out of the endpoints while it terminates
    // (nobody runs it, so it stays terminating).
    rt.block_on(client.delete(Kind::Pod, "default", "manual", &DeleteOptions::default()))
        .expect("delete");
    let p: Pod = rt
        .block_on(client.get_as("default", "manual"))
        .expect("terminating");
    assert!(p.metadata.deletion_timestamp.is_some());
    eventually(Duration::from_secs(10), || {
        addresses(&rt, &client)
            .filter(|(r, _)| r.len() == 3 && !r.iter().any(|a| a.starts_with("10.99.")))
    });

    // Scaling down shrinks them; deleting the Service removes them.
    ok(server.drover(&["scale", "deploy/web", "--replicas", "1"]));
    eventually(Duration::from_secs(30), || {
        addresses(&rt, &client).filter(|(r, _)| r.len() == 1)
    });
    ok(server.drover(&["delete", "service", "web"]));
    eventually(Duration::from_secs(10), || {
        let (eps, _) = rt
            .block_on(client.list_as::<Endpoints>(&ListOptions::default()))
            .ok()?;
        eps.is_empty().then_some(())
    });
}
