//! Node failure through the real binaries: two hollow agent processes run a
//! Deployment's pods; one is killed with SIGKILL, its nodes become
//! unreachable and tainted, their pods are evicted and replaced on the
//! other agent's nodes; when it comes back the taint goes away.

mod common;

use std::time::{Duration, Instant};

use common::*;
use drover_proto::client::{Client, ListOptions};
use drover_proto::types::{Node, Pod};

const MANIFEST: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 8
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{name: c, image: "example/web:1"}]
"#;

fn list<T: drover_proto::Resource>(rt: &tokio::runtime::Runtime, client: &Client) -> Vec<T> {
    rt.block_on(client.list_as::<T>(&ListOptions::default()))
        .map(|(items, _)| items)
        .unwrap_or_default()
}

/// Pods not terminating, each with the node it is bound to and readiness.
fn placements(rt: &tokio::runtime::Runtime, client: &Client) -> Vec<(String, bool)> {
    list::<Pod>(rt, client)
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| (p.spec.node_name.clone().unwrap_or_default(), p.is_ready()))
        .collect()
}

fn taints(rt: &tokio::runtime::Runtime, client: &Client, node: &str) -> Vec<String> {
    rt.block_on(client.get_as::<Node>("", node))
        .map(|n| n.spec.taints.into_iter().map(|t| t.key).collect())
        .unwrap_or_default()
}

fn hollow(url: &str, prefix: &str) -> AgentProcess {
    AgentProcess::start(
        url,
        &[
            "--hollow",
            "--count",
            "2",
            "--name-prefix",
            prefix,
            "--heartbeat-seconds",
            "1",
        ],
        "2 hollow nodes registered",
        Duration::from_secs(60),
    )
}

#[test]
fn pods_of_a_killed_node_move_to_the_other_nodes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(
        dir.path(),
        &[
            "--node-monitor-grace-period",
            "3s",
            "--pod-eviction-timeout",
            "2s",
        ],
    );
    let mut doomed = hollow(&server.url, "doomed-");
    let _survivor = hollow(&server.url, "survivor-");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let client = rt.block_on(Client::connect(&server.url)).expect("connect");

    let path = write(dir.path(), "web.yaml", MANIFEST);
    ok(server.drover(&["apply", "-f", &path]));
    let spread = eventually(Duration::from_secs(60), || {
        let p = placements(&rt, &client);
        (p.len() == 8 && p.iter().all(|(_, ready)| *ready)).then_some(p)
    });
    let on_doomed = spread
        .iter()
        .filter(|(n, _)| n.starts_with("doomed-"))
        .count();
    assert!(
        on_doomed > 0,
        "the scheduler spreads over all nodes: {spread:?}"
    );

    doomed.kill9();
    let killed = Instant::now();
    eventually(Duration::from_secs(30), || {
        (taints(&rt, &client, "doomed-0") == ["node.kubernetes.io/unreachable"]).then_some(())
    });
    let tainted = killed.elapsed();
    eventually(Duration::from_secs(60), || {
        let p = placements(&rt, &client);
        (p.len() == 8
            && p.iter()
                .all(|(n, ready)| n.starts_with("survivor-") && *ready))
        .then_some(())
    });
    let moved = killed.elapsed();
    eprintln!(
        "{on_doomed} pods on the killed agent's nodes: tainted after {tainted:?}, all 8 ready on the other nodes after {moved:?}"
    );
    // Nobody is left to finish the evicted pods: they are removed once
    // their grace period is over.
    eventually(Duration::from_secs(30), || {
        (list::<Pod>(&rt, &client).len() == 8).then_some(())
    });
    let nodes = list::<Node>(&rt, &client);
    let doomed0 = nodes
        .iter()
        .find(|n| n.metadata.name == "doomed-0")
        .expect("node");
    assert!(!doomed0.is_ready());

    // The agent comes back: Ready again, the taint goes.
    let _back = hollow(&server.url, "doomed-");
    eventually(Duration::from_secs(30), || {
        taints(&rt, &client, "doomed-0").is_empty().then_some(())
    });
    let n: Node = rt.block_on(client.get_as("", "doomed-0")).expect("node");
    assert!(n.is_ready());
}
