//! ReplicaSet controller tests against the fake API and a fake clock.

use std::time::Duration;

use drover_proto::types::{Event, ReplicaSet};
use drover_proto::{Kind, Resource};

use crate::controllers::harness::{Harness, decode, object};

fn replicaset(replicas: i32, min_ready: i32) -> drover_proto::Object {
    object(&format!(
        r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata: {{name: web}}
spec:
  replicas: {replicas}
  minReadySeconds: {min_ready}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: c, image: "example/web:1"}}]
"#
    ))
}

fn rs_status(h: &Harness) -> drover_proto::types::workload::ReplicaSetStatus {
    h.replicasets()[0].status.clone().unwrap_or_default()
}

fn set_replicas(h: &Harness, n: i32) {
    let mut rs = h.replicasets().remove(0);
    rs.spec.replicas = n;
    h.api.update_now(&rs.to_object()).expect("scale");
}

#[tokio::test]
async fn scale_up_creates_owned_pods_from_the_template() {
    let h = Harness::new();
    h.api.create_now(&replicaset(3, 0)).expect("create");
    h.settle().await;
    let pods = h.pods();
    assert_eq!(pods.len(), 3);
    let rs = &h.replicasets()[0];
    for p in &pods {
        assert!(p.metadata.name.starts_with("web-"), "{}", p.metadata.name);
        let owner = p.metadata.controller_ref().expect("controller ref");
        assert_eq!(owner.uid, rs.metadata.uid.clone().unwrap_or_default());
        assert_eq!(owner.kind, "ReplicaSet");
        assert_eq!(p.spec.containers[0].image, "example/web:1");
    }
    let status = rs_status(&h);
    assert_eq!(
        (
            status.replicas,
            status.ready_replicas,
            status.observed_generation
        ),
        (3, 0, 1)
    );
    let events: Vec<Event> = decode(h.api.objects(Kind::Event));
    assert_eq!(
        events
            .iter()
            .filter(|e| e.reason == "SuccessfulCreate")
            .count(),
        3
    );
    assert!(
        events[0].message.starts_with("Created pod: web-"),
        "{}",
        events[0].message
    );

    h.make_ready(3);
    h.settle().await;
    let status = rs_status(&h);
    assert_eq!((status.ready_replicas, status.available_replicas), (3, 3));
}

#[tokio::test]
async fn scale_down_deletes_the_least_valuable_pods_first() {
    let h = Harness::new();
    h.api.create_now(&replicaset(4, 0)).expect("create");
    h.settle().await;
    h.make_ready(2);
    let ready: Vec<String> = h
        .pods()
        .into_iter()
        .filter(|p| p.status.as_ref().is_some_and(|s| s.is_ready()))
        .map(|p| p.metadata.name)
        .collect();
    set_replicas(&h, 2);
    h.settle().await;
    let left: Vec<String> = h
        .active_pods()
        .into_iter()
        .map(|p| p.metadata.name)
        .collect();
    assert_eq!(left.len(), 2);
    for name in &ready {
        assert!(
            left.contains(name),
            "ready pod {name} was deleted; left {left:?}"
        );
    }
    assert_eq!(rs_status(&h).replicas, 2);
}

#[tokio::test]
async fn expectations_prevent_double_creates_under_a_slow_cache() {
    let h = Harness::new();
    h.api.create_now(&replicaset(5, 0)).expect("create");
    h.sync_caches().await;
    assert!(h.step_one().await);
    assert_eq!(h.api.creates(Kind::Pod), 5);
    // The pod watch lags: the cache still shows no pods, but the ReplicaSet
    // changes (status) and is reconciled again, twice.
    for _ in 0..2 {
        h.rsc.queue.add("default/web");
        assert!(h.step_one().await);
    }
    assert_eq!(
        h.api.creates(Kind::Pod),
        5,
        "no creations while expectations are pending"
    );
    h.settle().await;
    assert_eq!(h.api.creates(Kind::Pod), 5);
    assert_eq!(h.pods().len(), 5);
}

#[tokio::test]
async fn expectations_prevent_double_deletes_under_a_slow_cache() {
    let h = Harness::new();
    h.api.create_now(&replicaset(4, 0)).expect("create");
    h.settle().await;
    set_replicas(&h, 1);
    h.sync_caches().await;
    assert!(h.step_one().await);
    assert_eq!(h.api.deletes(Kind::Pod), 3);
    h.rsc.queue.add("default/web");
    assert!(h.step_one().await);
    assert_eq!(
        h.api.deletes(Kind::Pod),
        3,
        "stale cache must not delete again"
    );
    h.settle().await;
    assert_eq!(h.pods().len(), 1);
}

#[tokio::test]
async fn terminating_pods_are_replaced_and_not_counted() {
    let h = Harness::new();
    h.api.create_now(&replicaset(3, 0)).expect("create");
    h.settle().await;
    h.make_ready(3);
    let victim = h.pods().remove(0);
    // Bound pods terminate gracefully: they linger with a deletionTimestamp.
    h.api
        .delete_now(Kind::Pod, "default", victim.name())
        .expect("delete");
    h.settle().await;
    assert_eq!(h.pods().len(), 4, "one terminating plus three active");
    assert_eq!(h.active_pods().len(), 3);
    assert_eq!(rs_status(&h).replicas, 3);
    h.finish_terminating();
    h.settle().await;
    assert_eq!(h.pods().len(), 3);
}

#[tokio::test]
async fn available_waits_for_min_ready_seconds() {
    let h = Harness::new();
    h.api.create_now(&replicaset(2, 10)).expect("create");
    h.settle().await;
    h.make_ready(2);
    h.settle().await;
    let s = rs_status(&h);
    assert_eq!((s.ready_replicas, s.available_replicas), (2, 0));
    h.step_clock(Duration::from_secs(11));
    // Nothing changed in the API: only the requeue the reconcile asked for fires.
    h.settle().await;
    assert_eq!(rs_status(&h).available_replicas, 2);
}

#[tokio::test]
async fn failed_creations_are_retried_with_backoff() {
    let h = Harness::new();
    h.api.create_now(&replicaset(3, 0)).expect("create");
    h.api.fail_next_creates(1);
    h.sync_caches().await;
    assert!(h.step_one().await);
    // Slow start: the first single creation failed, so no more were tried.
    assert_eq!(h.api.creates(Kind::Pod), 1);
    assert_eq!(h.rsc.queue.failures("default/web"), 1);
    let events: Vec<Event> = decode(h.api.objects(Kind::Event));
    assert!(events.iter().any(|e| e.reason == "FailedCreate"));
    assert!(h.rsc.queue.try_get().is_none(), "not before the backoff");
    h.step_clock(Duration::from_millis(5));
    h.settle().await;
    assert_eq!(h.pods().len(), 3);
    assert_eq!(h.rsc.queue.failures("default/web"), 0);
}

#[tokio::test]
async fn deleted_replicaset_forgets_its_expectations() {
    let h = Harness::new();
    h.api.create_now(&replicaset(2, 0)).expect("create");
    h.settle().await;
    h.api
        .delete_now(Kind::ReplicaSet, "default", "web")
        .expect("delete");
    h.settle().await;
    assert!(h.pods().is_empty(), "owner cascade removes the pods");
    assert!(h.rsc.expectations.satisfied("default/web"));
    let _: Vec<ReplicaSet> = h.replicasets();
}

fn bare_pod(name: &str, app: &str) -> drover_proto::Object {
    object(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {app}}}}}
spec:
  containers: [{{name: c, image: "example/web:1"}}]
"#
    ))
}

#[tokio::test]
async fn matching_orphans_are_adopted_and_counted() {
    let h = Harness::new();
    h.api.create_now(&bare_pod("orphan-1", "web")).expect("pod");
    h.api.create_now(&bare_pod("orphan-2", "web")).expect("pod");
    h.api.create_now(&bare_pod("db", "db")).expect("pod");
    h.api.create_now(&replicaset(3, 0)).expect("create");
    h.settle().await;
    assert_eq!(h.api.creates(Kind::Pod), 4, "3 orphans/others + only 1 new");
    let uid = h.replicasets()[0].metadata.uid.clone().unwrap_or_default();
    let owner = |name: &str| {
        h.pods()
            .into_iter()
            .find(|p| p.metadata.name == name)
            .and_then(|p| p.metadata.controller_ref().map(|r| r.uid.clone()))
    };
    assert_eq!(owner("orphan-1"), Some(uid.clone()));
    assert_eq!(owner("orphan-2"), Some(uid.clone()));
    assert_eq!(owner("db"), None, "not matching: left alone");
    assert_eq!(rs_status(&h).replicas, 3);

    // An orphan that appears later is adopted, and one pod too many goes.
    h.api.create_now(&bare_pod("late", "web")).expect("pod");
    h.settle().await;
    assert_eq!(
        h.active_pods()
            .iter()
            .filter(|p| p.metadata.labels["app"] == "web")
            .count(),
        3
    );
    assert!(
        h.pods()
            .iter()
            .all(|p| p.metadata.labels["app"] != "web" || p.metadata.controller_ref().is_some())
    );
}

#[tokio::test]
async fn a_relabelled_pod_is_released_and_replaced() {
    let h = Harness::new();
    h.api.create_now(&replicaset(2, 0)).expect("create");
    h.settle().await;
    let mut pod = h.pods().remove(0);
    let name = pod.metadata.name.clone();
    pod.metadata.labels.insert("app".into(), "debug".into());
    h.api.update_now(&pod.to_object()).expect("relabel");
    h.settle().await;
    let released = h
        .pods()
        .into_iter()
        .find(|p| p.metadata.name == name)
        .expect("still there");
    assert!(
        released.metadata.owner_references.is_empty(),
        "{released:?}"
    );
    assert_eq!(h.active_pods().len(), 3, "released pod + 2 owned");
    assert_eq!(rs_status(&h).replicas, 2);
}

#[tokio::test]
async fn pods_of_another_controller_are_never_claimed() {
    let h = Harness::new();
    // Any other controller: here a ConfigMap stands in for it.
    let owner = h
        .api
        .create_now(&object(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\ndata: {a: b}\n",
        ))
        .expect("owner");
    let mut theirs =
        drover_proto::types::Pod::from_object(&bare_pod("theirs", "web")).expect("pod");
    theirs
        .metadata
        .owner_references
        .push(drover_proto::OwnerReference {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            name: "other".into(),
            uid: owner.metadata.uid.clone().unwrap_or_default(),
            controller: Some(true),
            block_owner_deletion: None,
        });
    h.api.create_now(&theirs.to_object()).expect("pod");
    h.api.create_now(&replicaset(1, 0)).expect("create");
    h.settle().await;
    let p = h
        .pods()
        .into_iter()
        .find(|p| p.metadata.name == "theirs")
        .expect("pod");
    assert_eq!(p.metadata.owner_references.len(), 1);
    assert_eq!(p.metadata.owner_references[0].kind, "ConfigMap");
    assert_eq!(h.active_pods().len(), 2);
}
