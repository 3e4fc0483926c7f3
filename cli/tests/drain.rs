//! `drover cordon|uncordon|drain` against the real server and hollow nodes.

mod common;

use std::time::Duration;

use common::*;
use drover_proto::client::{Client, ListOptions};
use drover_proto::types::{Node, Pod};

const MANIFEST: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: c, image: "example/web:1"}]
---
apiVersion: v1
kind: Pod
metadata: {name: bare}
spec:
  nodeName: hollow-0
  terminationGracePeriodSeconds: 1
  containers: [{name: c, image: "example/web:1"}]
"#;

/// Pods not terminating: (name, node, ready).
fn pods(rt: &tokio::runtime::Runtime, client: &Client) -> Vec<(String, String, bool)> {
    rt.block_on(client.list_as::<Pod>(&ListOptions::default()))
        .map(|(items, _)| items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            let ready = p.is_ready();
            (p.metadata.name, p.spec.node_name.unwrap_or_default(), ready)
        })
        .collect()
}

fn unschedulable(rt: &tokio::runtime::Runtime, client: &Client) -> bool {
    let n: Node = rt.block_on(client.get_as("", "hollow-0")).expect("node");
    n.spec.unschedulable
}

#[test]
fn cordon_uncordon_and_drain_a_node() {
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
    eventually(Duration::from_secs(30), || {
        let p = pods(&rt, &client);
        (p.len() == 5 && p.iter().all(|(_, _, r)| *r)).then_some(())
    });

    // Cordon and uncordon, idempotently.
    assert!(ok(server.drover(&["cordon", "hollow-0"])).contains("node/hollow-0 cordoned"));
    assert!(unschedulable(&rt, &client));
    assert!(ok(server.drover(&["get", "nodes"])).contains("Ready,SchedulingDisabled"));
    assert!(ok(server.drover(&["cordon", "hollow-0"])).contains("already cordoned"));
    assert!(ok(server.drover(&["uncordon", "hollow-0"])).contains("node/hollow-0 uncordoned"));
    assert!(!unschedulable(&rt, &client));
    assert!(fails(server.drover(&["cordon", "no-such-node"])).contains("no-such-node"));

    // A bare pod stops the drain unless forced; the node stays cordoned.
    let err = fails(server.drover(&["drain", "hollow-0", "--timeout", "30s"]));
    assert!(
        err.contains("default/bare") && err.contains("--force"),
        "{err}"
    );
    assert!(unschedulable(&rt, &client));

    let out = ok(server.drover(&["drain", "hollow-0", "--force", "--timeout", "30s"]));
    assert!(out.contains("evicting pod default/bare"), "{out}");
    assert!(out.contains("pod/bare evicted"), "{out}");
    assert!(out.trim_end().ends_with("node/hollow-0 drained"), "{out}");
    // The Deployment's pods came back on the other node; nothing is left on hollow-0.
    let after = pods(&rt, &client);
    assert!(
        after.iter().all(|(_, node, _)| node != "hollow-0"),
        "{after:?}"
    );
    eventually(Duration::from_secs(30), || {
        let p = pods(&rt, &client);
        (p.len() == 4 && p.iter().all(|(_, n, r)| n == "hollow-1" && *r)).then_some(())
    });
}
