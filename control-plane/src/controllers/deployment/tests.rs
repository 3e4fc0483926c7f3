//! Deployment controller tests against the fake API and a fake clock.

use std::time::Duration;

use drover_proto::Resource;
use drover_proto::types::Deployment;

use super::hash::POD_TEMPLATE_HASH;
use super::history::{REVISION, rollback_template};
use super::status::{PROGRESS_DEADLINE_EXCEEDED, PROGRESSING, get_condition};
use crate::controllers::harness::{Harness, object};

fn deployment(replicas: i32, strategy: &str) -> drover_proto::Object {
    object(&format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  progressDeadlineSeconds: 60
  revisionHistoryLimit: 1
  strategy: {strategy}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: c, image: "example/web:1"}}]
"#
    ))
}

fn edit(h: &Harness, f: impl FnOnce(&mut Deployment)) {
    let mut d = h.deployment("web");
    f(&mut d);
    h.api.update_now(&d.to_object()).expect("update deployment");
}

fn image_of(p: &drover_proto::types::Pod) -> &str {
    &p.spec.containers[0].image
}

/// Lets the hollow node make `per_step` pods ready and finish deletions
/// between reconciles until the rollout settles, checking `check` after
/// every single reconcile.
async fn roll(h: &Harness, per_step: usize, check: &mut dyn FnMut(&Harness)) {
    for _ in 0..200 {
        h.settle_checked(check).await;
        h.finish_terminating();
        let made = h.make_ready(per_step);
        check(h);
        let d = h.deployment("web");
        let s = d.status.clone().unwrap_or_default();
        if made == 0
            && s.updated_replicas == d.spec.replicas
            && s.available_replicas == d.spec.replicas
            && s.replicas == d.spec.replicas
        {
            h.settle().await;
            return;
        }
    }
    panic!("rollout did not finish");
}

#[tokio::test]
async fn creates_a_hashed_replicaset_and_reports_availability() {
    let h = Harness::new();
    h.api.create_now(&deployment(3, "{}")).expect("create");
    roll(&h, 3, &mut |_| {}).await;
    let rses = h.replicasets();
    assert_eq!(rses.len(), 1);
    let rs = &rses[0];
    let hash = rs
        .metadata
        .labels
        .get(POD_TEMPLATE_HASH)
        .expect("hash label");
    assert_eq!(rs.metadata.name, format!("web-{hash}"));
    assert_eq!(
        rs.spec.selector.match_labels.get(POD_TEMPLATE_HASH),
        Some(hash)
    );
    assert_eq!(
        rs.metadata.annotations.get(REVISION).map(String::as_str),
        Some("1")
    );
    assert_eq!(h.active_pods().len(), 3);
    let s = h.deployment("web").status.unwrap_or_default();
    assert_eq!(
        (
            s.replicas,
            s.updated_replicas,
            s.ready_replicas,
            s.available_replicas
        ),
        (3, 3, 3, 3)
    );
    assert_eq!(s.unavailable_replicas, 0);
    assert_eq!(s.observed_generation, 1);
    let p = get_condition(&s, PROGRESSING).expect("progressing");
    assert_eq!(p.reason.as_deref(), Some("NewReplicaSetAvailable"));
    assert_eq!(
        get_condition(&s, "Available").map(|c| c.status.as_str()),
        Some("True")
    );
}

#[tokio::test]
async fn rolling_update_stays_within_surge_and_unavailability() {
    let h = Harness::new();
    let strategy = "{type: RollingUpdate, rollingUpdate: {maxSurge: 3, maxUnavailable: 2}}";
    h.api.create_now(&deployment(10, strategy)).expect("create");
    roll(&h, 10, &mut |_| {}).await;

    edit(&h, |d| {
        d.spec.template.spec.containers[0].image = "example/web:2".into()
    });
    let (mut max_pods, mut min_ready) = (0, usize::MAX);
    roll(&h, 1, &mut |h| {
        let active = h.active_pods();
        let ready = active
            .iter()
            .filter(|p| p.status.as_ref().is_some_and(|s| s.is_ready()))
            .count();
        max_pods = max_pods.max(active.len());
        min_ready = min_ready.min(ready);
        assert!(
            active.len() <= 13,
            "{} pods exceed replicas + maxSurge",
            active.len()
        );
        assert!(
            ready >= 8,
            "{ready} ready pods is below replicas - maxUnavailable"
        );
    })
    .await;
    assert_eq!(max_pods, 13, "the surge was used");
    assert_eq!(min_ready, 8, "the unavailability budget was used");
    let pods = h.active_pods();
    assert_eq!(pods.len(), 10);
    assert!(pods.iter().all(|p| image_of(p) == "example/web:2"));
    assert_eq!(
        h.replicasets().len(),
        2,
        "the old ReplicaSet is kept as history"
    );
}

#[tokio::test]
async fn rollback_restores_the_previous_template() {
    let h = Harness::new();
    h.api.create_now(&deployment(2, "{}")).expect("create");
    roll(&h, 2, &mut |_| {}).await;
    edit(&h, |d| {
        d.spec.template.spec.containers[0].image = "example/web:2".into()
    });
    roll(&h, 2, &mut |_| {}).await;

    let template = rollback_template(&h.replicasets(), 0).expect("a previous revision");
    edit(&h, |d| d.spec.template = template);
    roll(&h, 2, &mut |_| {}).await;
    let pods = h.active_pods();
    assert!(
        pods.iter().all(|p| image_of(p) == "example/web:1"),
        "back on the first image"
    );
    let rses = h.replicasets();
    assert_eq!(rses.len(), 2, "the first ReplicaSet was reused, not copied");
    let current = rses
        .iter()
        .find(|rs| rs.spec.replicas == 2)
        .expect("active rs");
    assert_eq!(
        current
            .metadata
            .annotations
            .get(REVISION)
            .map(String::as_str),
        Some("3")
    );
}

#[tokio::test]
async fn recreate_never_runs_both_templates() {
    let h = Harness::new();
    h.api
        .create_now(&deployment(3, "{type: Recreate}"))
        .expect("create");
    roll(&h, 3, &mut |_| {}).await;
    edit(&h, |d| {
        d.spec.template.spec.containers[0].image = "example/web:2".into()
    });
    roll(&h, 3, &mut |h| {
        let pods = h.pods();
        let v1 = pods.iter().any(|p| image_of(p) == "example/web:1");
        let v2 = pods.iter().any(|p| image_of(p) == "example/web:2");
        assert!(!(v1 && v2), "old and new pods at once");
    })
    .await;
    assert!(
        h.active_pods()
            .iter()
            .all(|p| image_of(p) == "example/web:2")
    );
}

#[tokio::test]
async fn scaling_and_pausing() {
    let h = Harness::new();
    h.api.create_now(&deployment(2, "{}")).expect("create");
    roll(&h, 2, &mut |_| {}).await;
    edit(&h, |d| d.spec.replicas = 5);
    roll(&h, 5, &mut |_| {}).await;
    assert_eq!(h.active_pods().len(), 5);

    edit(&h, |d| {
        d.spec.paused = true;
        d.spec.template.spec.containers[0].image = "example/web:2".into();
    });
    h.settle().await;
    assert_eq!(
        h.replicasets().len(),
        1,
        "a paused deployment does not roll"
    );
    let s = h.deployment("web").status.unwrap_or_default();
    assert_eq!(
        get_condition(&s, PROGRESSING)
            .and_then(|c| c.reason.clone())
            .as_deref(),
        Some("DeploymentPaused")
    );
    edit(&h, |d| d.spec.paused = false);
    roll(&h, 5, &mut |_| {}).await;
    assert!(
        h.active_pods()
            .iter()
            .all(|p| image_of(p) == "example/web:2")
    );
}

#[tokio::test]
async fn progress_deadline_marks_the_rollout_failed() {
    let h = Harness::new();
    h.api.create_now(&deployment(2, "{}")).expect("create");
    h.settle().await;
    // No pod ever becomes ready.
    h.step_clock(Duration::from_secs(61));
    h.settle().await;
    let s = h.deployment("web").status.unwrap_or_default();
    let c = get_condition(&s, PROGRESSING).expect("progressing");
    assert_eq!(c.status, "False");
    assert_eq!(c.reason.as_deref(), Some(PROGRESS_DEADLINE_EXCEEDED));
}

#[tokio::test]
async fn history_beyond_the_limit_is_deleted() {
    let h = Harness::new();
    h.api.create_now(&deployment(1, "{}")).expect("create");
    roll(&h, 1, &mut |_| {}).await;
    for v in 2..=4 {
        edit(&h, |d| {
            d.spec.template.spec.containers[0].image = format!("example/web:{v}")
        });
        roll(&h, 1, &mut |_| {}).await;
    }
    // revisionHistoryLimit 1: the current ReplicaSet and one old one.
    assert_eq!(h.replicasets().len(), 2);
}

#[tokio::test]
async fn a_deployment_re_created_after_an_orphaning_delete_adopts_its_replicaset() {
    let h = Harness::new();
    h.api
        .create_now(&deployment(3, "{type: RollingUpdate}"))
        .expect("create");
    h.settle().await;
    h.make_ready(3);
    h.settle().await;
    let rs_uid = h.replicasets()[0].metadata.uid.clone();
    let pods_before: Vec<String> = h.pods().into_iter().map(|p| p.metadata.name).collect();
    let creates = h.api.creates(drover_proto::Kind::Pod);

    // `drover delete deploy web --cascade=orphan`
    let opts = drover_proto::client::DeleteOptions {
        propagation_policy: "Orphan".into(),
        ..Default::default()
    };
    futures::executor::block_on(crate::controllers::api::ControllerApi::delete(
        &h.api,
        drover_proto::Kind::Deployment,
        "default",
        "web",
        &opts,
    ))
    .expect("delete");
    h.settle().await;
    assert!(
        h.replicasets()[0].metadata.controller_ref().is_none(),
        "orphaned"
    );

    h.api
        .create_now(&deployment(3, "{type: RollingUpdate}"))
        .expect("create again");
    h.settle().await;
    let rses = h.replicasets();
    assert_eq!(rses.len(), 1);
    assert_eq!(rses[0].metadata.uid, rs_uid, "the same ReplicaSet");
    let d = h.deployment("web");
    assert_eq!(
        rses[0].metadata.controller_ref().map(|r| r.uid.clone()),
        d.metadata.uid
    );
    let pods_after: Vec<String> = h.pods().into_iter().map(|p| p.metadata.name).collect();
    assert_eq!(pods_after, pods_before, "no pod replaced");
    assert_eq!(h.api.creates(drover_proto::Kind::Pod), creates);
    assert_eq!(d.status.unwrap_or_default().ready_replicas, 3);
}
