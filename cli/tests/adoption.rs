//! Adoption through the real server: a Deployment deleted with
//! `--cascade=orphan` and applied again picks up its old ReplicaSet and
//! pods (no pod is replaced); a bare ReplicaSet adopts a matching orphan pod.

mod common;

use std::time::Duration;

use common::*;
use drover_proto::client::{Client, ListOptions};
use drover_proto::types::{Deployment, Pod, ReplicaSet};

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: "example/web:1"}]
"#;

const ORPHAN_AND_RS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: stray, labels: {app: cache}}
spec:
  containers: [{name: c, image: "example/cache:1"}]
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: cache}
spec:
  replicas: 2
  selector: {matchLabels: {app: cache}}
  template:
    metadata: {labels: {app: cache}}
    spec:
      containers: [{name: c, image: "example/cache:1"}]
"#;

fn list<T: drover_proto::Resource>(rt: &tokio::runtime::Runtime, client: &Client) -> Vec<T> {
    rt.block_on(client.list_as::<T>(&ListOptions::default()))
        .map(|(items, _)| items)
        .unwrap_or_default()
}

fn web_pods(rt: &tokio::runtime::Runtime, client: &Client) -> Vec<String> {
    let mut names: Vec<String> = list::<Pod>(rt, client)
        .into_iter()
        .filter(|p| p.metadata.labels.get("app").map(String::as_str) == Some("web"))
        .map(|p| p.metadata.name)
        .collect();
    names.sort();
    names
}

#[test]
fn orphans_are_adopted() {
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
    let path = write(dir.path(), "web.yaml", DEPLOYMENT);
    ok(server.drover(&["apply", "-f", &path]));
    let ready = |rt: &tokio::runtime::Runtime| {
        let d: Deployment = rt.block_on(client.get_as("default", "web")).ok()?;
        (d.status?.ready_replicas == 3).then_some(())
    };
    eventually(Duration::from_secs(30), || ready(&rt));
    let before = web_pods(&rt, &client);
    let rs_before = list::<ReplicaSet>(&rt, &client);
    assert_eq!(rs_before.len(), 1);

    ok(server.drover(&["delete", "deployment", "web", "--cascade=orphan"]));
    let rs: Vec<ReplicaSet> = list(&rt, &client);
    assert_eq!(rs.len(), 1);
    assert!(rs[0].metadata.controller_ref().is_none(), "orphaned");
    assert_eq!(web_pods(&rt, &client), before);

    ok(server.drover(&["apply", "-f", &path]));
    let d = eventually(Duration::from_secs(30), || {
        let d: Deployment = rt.block_on(client.get_as("default", "web")).ok()?;
        let rs: Vec<ReplicaSet> = list(&rt, &client);
        let owned = rs.len() == 1
            && rs[0].metadata.controller_ref().map(|r| r.uid.clone()) == d.metadata.uid;
        (owned && d.status.as_ref()?.ready_replicas == 3).then_some(d)
    });
    let rs: Vec<ReplicaSet> = list(&rt, &client);
    assert_eq!(
        rs[0].metadata.uid, rs_before[0].metadata.uid,
        "the same ReplicaSet"
    );
    assert_eq!(web_pods(&rt, &client), before, "no pod replaced");
    assert_eq!(d.status.unwrap_or_default().replicas, 3);

    // A bare ReplicaSet takes the stray pod and creates only one more.
    ok(server.drover(&[
        "apply",
        "-f",
        &write(dir.path(), "cache.yaml", ORPHAN_AND_RS),
    ]));
    let cache_rs: ReplicaSet = eventually(Duration::from_secs(30), || {
        let rs: ReplicaSet = rt.block_on(client.get_as("default", "cache")).ok()?;
        (rs.status.as_ref()?.ready_replicas == 2).then_some(rs)
    });
    let stray: Pod = rt
        .block_on(client.get_as("default", "stray"))
        .expect("stray pod");
    assert_eq!(
        stray.metadata.controller_ref().map(|r| r.uid.clone()),
        cache_rs.metadata.uid
    );
    let cache_pods = list::<Pod>(&rt, &client)
        .into_iter()
        .filter(|p| p.metadata.labels.get("app").map(String::as_str) == Some("cache"))
        .count();
    assert_eq!(cache_pods, 2);
}
