//! Test harness: both controllers over the fake API and a fake clock, with
//! caches refreshed only when a test says so (to simulate a slow watch), and
//! a hollow node that binds pods, marks them ready and finishes deletions.

use std::sync::Arc;
use std::time::Duration;

use drover_proto::meta::Condition;
use drover_proto::types::pod::{PodPhase, PodStatus};
use drover_proto::types::{Deployment, Pod, ReplicaSet};
use drover_proto::{Kind, Object, Resource};

use super::api::ControllerApi;
use super::deployment::DeploymentController;
use super::fake::FakeApi;
use super::replicaset::ReplicaSetController;
use super::runtime::worker::process_one;
use super::runtime::{Backoff, Cache, FakeClock, Handler, WorkQueue};

pub struct Harness {
    pub clock: FakeClock,
    pub api: FakeApi,
    pub pods: Cache<Pod>,
    pub replicasets: Cache<ReplicaSet>,
    pub deployments: Cache<Deployment>,
    pub rsc: ReplicaSetController<FakeApi>,
    pub dc: DeploymentController<FakeApi>,
    pod_handlers: Vec<Handler<Pod>>,
    rs_handlers: Vec<Handler<ReplicaSet>>,
    d_handler: Handler<Deployment>,
}

pub fn decode<T: Resource>(objects: Vec<Object>) -> Vec<T> {
    objects
        .iter()
        .map(|o| T::from_object(o).expect("stored objects decode"))
        .collect()
}

impl Harness {
    pub fn new() -> Harness {
        let clock =
            FakeClock::new(chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("valid time"));
        let shared: Arc<dyn super::runtime::Clock> = Arc::new(clock.clone());
        let api = FakeApi::new(shared.clone());
        let (pods, replicasets, deployments) =
            (Cache::default(), Cache::default(), Cache::default());
        let rsq = Arc::new(WorkQueue::new(shared.clone(), Backoff::default()));
        let dq = Arc::new(WorkQueue::new(shared.clone(), Backoff::default()));
        let rsc = ReplicaSetController::new(
            api.clone(),
            shared.clone(),
            replicasets.clone(),
            pods.clone(),
            rsq,
        );
        let dc = DeploymentController::new(
            api.clone(),
            shared,
            deployments.clone(),
            replicasets.clone(),
            pods.clone(),
            dq,
        );
        Harness {
            pod_handlers: vec![rsc.pod_handler(), dc.pod_handler()],
            rs_handlers: vec![rsc.replicaset_handler(), dc.replicaset_handler()],
            d_handler: dc.deployment_handler(),
            clock,
            api,
            pods,
            replicasets,
            deployments,
            rsc,
            dc,
        }
    }

    /// The informers catch up with the API (a relist: same notifications).
    pub async fn sync_caches(&self) {
        let opts = Default::default();
        let (pods, _) = self.api.list(Kind::Pod, &opts).await.expect("list");
        for n in self.pods.replace(decode(pods)) {
            self.pod_handlers.iter().for_each(|h| h(&n));
        }
        let (rses, _) = self.api.list(Kind::ReplicaSet, &opts).await.expect("list");
        for n in self.replicasets.replace(decode(rses)) {
            self.rs_handlers.iter().for_each(|h| h(&n));
        }
        let (ds, _) = self.api.list(Kind::Deployment, &opts).await.expect("list");
        for n in self.deployments.replace(decode(ds)) {
            (self.d_handler)(&n);
        }
    }

    /// Reconciles one ready key of either controller; false when none is ready.
    pub async fn step_one(&self) -> bool {
        // ReplicaSets first: pods follow a ReplicaSet's new size before the
        // Deployment takes its next step, as they do when both run freely.
        if let Some(k) = self.rsc.queue.try_get() {
            process_one(&self.rsc, &self.rsc.queue, k).await;
            return true;
        }
        if let Some(k) = self.dc.queue.try_get() {
            process_one(&self.dc, &self.dc.queue, k).await;
            return true;
        }
        false
    }

    /// Syncs caches and reconciles until nothing is left to do, calling
    /// `check` after every single reconcile.
    pub async fn settle_checked(&self, check: &mut dyn FnMut(&Harness)) {
        for _ in 0..10_000 {
            self.sync_caches().await;
            let mut any = false;
            while self.step_one().await {
                any = true;
                check(self);
                self.sync_caches().await;
            }
            if !any {
                return;
            }
        }
        panic!("controllers did not settle");
    }

    pub async fn settle(&self) {
        self.settle_checked(&mut |_| {}).await
    }

    pub fn pods(&self) -> Vec<Pod> {
        decode(self.api.objects(Kind::Pod))
    }

    pub fn active_pods(&self) -> Vec<Pod> {
        self.pods()
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect()
    }

    pub fn replicasets(&self) -> Vec<ReplicaSet> {
        decode(self.api.objects(Kind::ReplicaSet))
    }

    pub fn deployment(&self, name: &str) -> Deployment {
        decode::<Deployment>(self.api.objects(Kind::Deployment))
            .into_iter()
            .find(|d| d.metadata.name == name)
            .expect("deployment exists")
    }

    /// The hollow node: binds up to `n` unready pods and marks them Running
    /// and Ready, as an agent would report.
    pub fn make_ready(&self, n: usize) -> usize {
        let now = self.clock_now();
        let mut done = 0;
        for mut p in self.active_pods() {
            if done == n {
                break;
            }
            if p.status.as_ref().is_some_and(|s| s.is_ready()) {
                continue;
            }
            p.spec.node_name = Some("hollow-1".into());
            let bound = self.api.update_now(&p.to_object()).expect("bind");
            let mut p = Pod::from_object(&bound).expect("decode");
            p.status = Some(PodStatus {
                phase: PodPhase::Running,
                conditions: vec![Condition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    last_transition_time: Some(now),
                    ..Condition::default()
                }],
                ..PodStatus::default()
            });
            self.api.update_status_now(&p.to_object()).expect("status");
            done += 1;
        }
        done
    }

    /// The hollow node finishes graceful deletions.
    pub fn finish_terminating(&self) {
        for p in self.pods() {
            if p.metadata.deletion_timestamp.is_some() {
                let opts = drover_proto::client::DeleteOptions {
                    grace_period_seconds: Some(0),
                    ..Default::default()
                };
                let api = self.api.clone();
                let _ = futures::executor::block_on(api.delete(
                    Kind::Pod,
                    p.namespace(),
                    p.name(),
                    &opts,
                ));
            }
        }
    }

    pub fn clock_now(&self) -> drover_proto::Time {
        use super::runtime::Clock;
        self.clock.now()
    }

    pub fn step_clock(&self, by: Duration) {
        self.clock.step(by)
    }
}

/// A manifest as an object.
pub fn object(yaml: &str) -> Object {
    let docs = drover_proto::manifest::parse_manifests(yaml, "test").expect("valid manifest");
    docs.into_iter().next().expect("one document").object
}
