//! HPA controller tests: the real state machine behind the fake API, a
//! fake clock and a fake metrics source.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_proto::meta::Condition;
use drover_proto::types::metrics::PodMetrics;
use drover_proto::types::pod::{PodPhase, PodStatus};
use drover_proto::types::{Deployment, Event, HorizontalPodAutoscaler, Pod};
use drover_proto::{Kind, Resource};

use super::HpaController;
use crate::controllers::api::ControllerApi;
use crate::controllers::fake::FakeApi;
use crate::controllers::harness::{decode, object};
use crate::controllers::runtime::{Backoff, Cache, Clock, FakeClock, Reconciler, WorkQueue};
use crate::resource_metrics::PodMetricsSource;

/// Metrics a test sets per pod: (name, cpu millicores, requests/s), and
/// requests held per Service.
#[derive(Debug, Default)]
struct FakeMetrics(Mutex<Option<Vec<PodMetrics>>>, Mutex<BTreeMap<String, u64>>);

impl FakeMetrics {
    fn set(&self, pods: &[(&str, i64, Option<f64>)]) {
        let items = pods
            .iter()
            .map(|(name, cpu, rps)| {
                serde_json::from_value(serde_json::json!({
                    "metadata": {"name": name, "namespace": "default"},
                    "timestamp": "2026-01-01T00:00:00Z", "window": "1s",
                    "containers": [{"name": "web", "usage": {"cpu": format!("{cpu}m"), "memory": "10Mi"}}],
                    "requestsPerSecond": rps.map(|r| format!("{}m", (r * 1000.0) as i64)),
                }))
                .expect("pod metrics")
            })
            .collect();
        *self.0.lock().expect("lock") = Some(items);
    }

    fn hold(&self, service: &str, pending: u64) {
        self.1.lock().expect("lock").insert(service.into(), pending);
    }
}

impl PodMetricsSource for FakeMetrics {
    fn pod_metrics(&self, _namespace: &str) -> Option<Vec<PodMetrics>> {
        self.0.lock().expect("lock").clone()
    }

    fn held_requests(&self, _namespace: &str) -> BTreeMap<String, u64> {
        self.1.lock().expect("lock").clone()
    }
}

struct T {
    api: FakeApi,
    clock: FakeClock,
    metrics: Arc<FakeMetrics>,
    c: HpaController<FakeApi>,
}

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: web, resources: {requests: {cpu: 100m}}}]\n";

fn hpa(metrics: &str, behavior: &str) -> String {
    format!(
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {{name: web}}\nspec:\n  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}\n  minReplicas: 1\n  maxReplicas: 10\n  metrics:\n{metrics}{behavior}"
    )
}

const CPU_50: &str = "  - type: Resource\n    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}\n";
const RPS_10: &str = "  - type: Pods\n    pods: {metric: {name: requests_per_second}, target: {type: AverageValue, averageValue: '10'}}\n";
const FAST_DOWN: &str = "  behavior:\n    scaleDown: {stabilizationWindowSeconds: 5}\n";

impl T {
    fn new() -> T {
        let clock =
            FakeClock::new(chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("valid"));
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let api = FakeApi::new(shared.clone());
        let metrics = Arc::new(FakeMetrics::default());
        let c = HpaController::new(
            api.clone(),
            shared.clone(),
            Cache::default(),
            Cache::default(),
            Cache::default(),
            Cache::default(),
            Cache::default(),
            metrics.clone(),
            Arc::new(WorkQueue::new(shared, Backoff::default())),
            Duration::from_secs(1),
        );
        T {
            api,
            clock,
            metrics,
            c,
        }
    }

    /// The Deployment at 2 replicas, `hpa`, 2 ready pods and their metrics.
    fn scenario(hpa: &str, metrics: &[(&str, i64, Option<f64>)]) -> T {
        let t = T::new();
        t.create(DEPLOYMENT);
        t.create(hpa);
        t.pods(2);
        t.metrics.set(metrics);
        t
    }

    fn create(&self, yaml: &str) {
        self.api.create_now(&object(yaml)).expect("create");
    }

    /// `n` ready pods of the Deployment, named web-0...
    fn pods(&self, n: usize) {
        for i in 0..n {
            let created = self
                .api
                .create_now(&object(&format!(
                    "apiVersion: v1\nkind: Pod\nmetadata: {{name: web-{i}, labels: {{app: web}}}}\nspec:\n  containers: [{{name: web, image: web, resources: {{requests: {{cpu: 100m}}}}}}]\n"
                )))
                .expect("pod");
            let mut p = Pod::from_object(&created).expect("decode");
            p.status = Some(PodStatus {
                phase: PodPhase::Running,
                conditions: vec![Condition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Condition::default()
                }],
                ..PodStatus::default()
            });
            self.api.update_status_now(&p.to_object()).expect("status");
        }
    }

    async fn sync(&self) {
        let opts = Default::default();
        let (items, _) = self
            .api
            .list(Kind::HorizontalPodAutoscaler, &opts)
            .await
            .expect("list");
        self.c.hpas.replace(decode(items));
        let (items, _) = self.api.list(Kind::Deployment, &opts).await.expect("list");
        self.c.deployments.replace(decode(items));
        let (items, _) = self.api.list(Kind::ReplicaSet, &opts).await.expect("list");
        self.c.replicasets.replace(decode(items));
        let (items, _) = self.api.list(Kind::Pod, &opts).await.expect("list");
        self.c.pods.replace(decode(items));
        let (items, _) = self.api.list(Kind::Service, &opts).await.expect("list");
        self.c.services.replace(decode(items));
    }

    /// One sync of the HPA after the caches caught up.
    async fn reconcile(&self) {
        self.sync().await;
        self.c.reconcile("default/web").await.expect("reconcile");
    }

    fn replicas(&self) -> i32 {
        decode::<Deployment>(self.api.objects(Kind::Deployment))[0]
            .spec
            .replicas
    }

    fn hpa(&self) -> HorizontalPodAutoscaler {
        decode::<HorizontalPodAutoscaler>(self.api.objects(Kind::HorizontalPodAutoscaler)).remove(0)
    }

    fn condition(&self, type_: &str) -> (String, String) {
        let s = self.hpa().status.expect("status");
        let c = s
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .expect("condition");
        (c.status.clone(), c.reason.clone().unwrap_or_default())
    }

    fn message(&self, type_: &str) -> String {
        let s = self.hpa().status.expect("status");
        let c = s.conditions.iter().find(|c| c.type_ == type_);
        c.and_then(|c| c.message.clone()).unwrap_or_default()
    }

    fn events(&self) -> Vec<Event> {
        decode(self.api.objects(Kind::Event))
    }
}

#[tokio::test]
async fn cpu_above_target_scales_up_with_status_and_event() {
    // 90% of the 100m request on both pods, target 50%: ceil(2 × 1.8) = 4.
    let t = T::scenario(
        &hpa(CPU_50, ""),
        &[("web-0", 90, None), ("web-1", 90, None)],
    );
    t.reconcile().await;
    assert_eq!(t.replicas(), 4);
    let s = t.hpa().status.expect("status");
    assert_eq!(s.desired_replicas, 4);
    assert!(s.last_scale_time.is_some());
    let cpu = s.current_metrics[0].resource.as_ref().expect("cpu status");
    assert_eq!(cpu.current.average_utilization, Some(90));
    assert_eq!(
        t.condition("AbleToScale"),
        ("True".into(), "SucceededRescale".into())
    );
    assert_eq!(
        t.condition("ScalingActive"),
        ("True".into(), "ValidMetricFound".into())
    );
    assert_eq!(
        t.condition("ScalingLimited"),
        ("False".into(), "DesiredWithinRange".into())
    );
    let events = t.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason, "SuccessfulRescale");
    assert_eq!(
        events[0].message,
        "New size: 4; reason: cpu utilization above target"
    );
}

#[tokio::test]
async fn scale_down_waits_for_the_stabilization_window() {
    // 10 requests/s each: on target.
    let t = T::scenario(
        &hpa(RPS_10, FAST_DOWN),
        &[("web-0", 10, Some(10.0)), ("web-1", 10, Some(10.0))],
    );
    t.reconcile().await;
    assert_eq!(t.replicas(), 2);
    assert_eq!(
        t.condition("AbleToScale"),
        ("True".into(), "ReadyForNewScale".into())
    );
    // Load drops to 2/s: the metrics ask for 1, the 5 s window remembers 2.
    t.metrics
        .set(&[("web-0", 10, Some(2.0)), ("web-1", 10, Some(2.0))]);
    for _ in 0..4 {
        t.clock.step(Duration::from_secs(1));
        t.reconcile().await;
        assert_eq!(t.replicas(), 2);
    }
    assert_eq!(
        t.condition("AbleToScale"),
        ("True".into(), "ScaleDownStabilized".into())
    );
    t.clock.step(Duration::from_secs(2));
    t.reconcile().await;
    assert_eq!(t.replicas(), 1);
    let last = t
        .events()
        .into_iter()
        .find(|e| e.reason == "SuccessfulRescale")
        .expect("event");
    assert_eq!(
        last.message,
        "New size: 1; reason: All metrics below target"
    );
}

#[tokio::test]
async fn requests_per_second_scale_up_is_bounded_by_max_replicas() {
    // 80/s each against 10/s: 16 wanted, max is 10, and the default policy
    // allows max(+4 pods, +100%) per 15 s: 6 now.
    let t = T::scenario(
        &hpa(RPS_10, ""),
        &[("web-0", 10, Some(80.0)), ("web-1", 10, Some(80.0))],
    );
    t.reconcile().await;
    assert_eq!(t.replicas(), 6);
    assert_eq!(
        t.condition("ScalingLimited"),
        ("True".into(), "ScaleUpLimit".into())
    );
    let rps = t.hpa().status.expect("status").current_metrics[0]
        .pods
        .clone()
        .expect("pods status");
    assert_eq!(rps.current.average_value.expect("value").as_f64(), 80.0);
    t.clock.step(Duration::from_secs(5));
    t.reconcile().await;
    assert_eq!(t.replicas(), 6, "still within the policy's period");
    t.clock.step(Duration::from_secs(11));
    t.reconcile().await;
    assert_eq!(t.replicas(), 10);
    assert_eq!(
        t.condition("ScalingLimited"),
        ("True".into(), "TooManyReplicas".into())
    );
}

#[tokio::test]
async fn missing_metrics_and_bad_targets_are_conditions_and_one_warning() {
    let t = T::new();
    t.create(DEPLOYMENT);
    t.create(&hpa(CPU_50, ""));
    t.pods(1);
    for _ in 0..3 {
        t.reconcile().await;
        t.clock.step(Duration::from_secs(1));
    }
    assert_eq!(t.replicas(), 2);
    assert_eq!(
        t.condition("ScalingActive"),
        ("False".into(), "FailedGetResourceMetric".into())
    );
    let warnings: Vec<Event> = t
        .events()
        .into_iter()
        .filter(|e| e.type_ == "Warning")
        .collect();
    assert_eq!(
        warnings.len(),
        1,
        "a lasting failure is one Event, not one per sync"
    );

    let t = T::new();
    t.create(&hpa(CPU_50, "").replace("apps/v1", "apps/v1beta2"));
    t.reconcile().await;
    assert_eq!(
        t.condition("AbleToScale"),
        ("False".into(), "FailedGetScale".into())
    );
    let msg = t.message("AbleToScale");
    assert!(
        msg.contains("apps/v1beta2/Deployment is not supported"),
        "{msg}"
    );
    assert_eq!(t.events()[0].reason, "FailedGetScale");

    let t = T::new();
    t.create(&hpa(CPU_50, ""));
    t.reconcile().await;
    assert_eq!(
        t.condition("AbleToScale"),
        ("False".into(), "FailedGetScale".into())
    );
    let msg = t.message("AbleToScale");
    assert!(msg.contains("deployment/web not found"), "{msg}");
}

#[tokio::test]
async fn a_replicaset_target_is_scaled_too() {
    let t = T::new();
    t.create(&DEPLOYMENT.replace("kind: Deployment", "kind: ReplicaSet"));
    t.create(&hpa(CPU_50, "").replace("kind: Deployment", "kind: ReplicaSet"));
    t.pods(2);
    t.metrics.set(&[("web-0", 90, None), ("web-1", 90, None)]);
    t.reconcile().await;
    let rs = decode::<drover_proto::types::ReplicaSet>(t.api.objects(Kind::ReplicaSet)).remove(0);
    assert_eq!(rs.spec.replicas, 4);
}

#[tokio::test]
async fn a_target_scaled_to_zero_by_hand_disables_scaling() {
    let t = T::new();
    t.create(&DEPLOYMENT.replace("replicas: 2", "replicas: 0"));
    t.create(&hpa(CPU_50, ""));
    t.reconcile().await;
    assert_eq!(t.replicas(), 0);
    assert_eq!(
        t.condition("ScalingActive"),
        ("False".into(), "ScalingDisabled".into())
    );
    assert_eq!(t.hpa().status.expect("status").desired_replicas, 0);
}

#[tokio::test]
async fn min_replicas_zero_sleeps_when_idle_and_wakes_on_held_requests() {
    // Idle (no requests) on requests_per_second with minReplicas 0: to zero
    // once the 5 s window has passed.
    let t = T::scenario(
        &hpa(RPS_10, FAST_DOWN).replace("minReplicas: 1", "minReplicas: 0"),
        &[("web-0", 10, Some(10.0)), ("web-1", 10, Some(10.0))],
    );
    t.create("apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n");
    t.create("apiVersion: v1\nkind: Service\nmetadata: {name: other}\nspec:\n  selector: {app: other}\n  ports: [{port: 80}]\n");
    t.reconcile().await;
    assert_eq!(t.replicas(), 2);
    t.metrics
        .set(&[("web-0", 10, Some(0.0)), ("web-1", 10, Some(0.0))]);
    t.clock.step(Duration::from_secs(1));
    t.reconcile().await;
    assert_eq!(t.replicas(), 2, "the window remembers the busy second");
    t.clock.step(Duration::from_secs(5));
    t.reconcile().await;
    assert_eq!(t.replicas(), 0);
    let s = t.hpa().status.expect("status");
    assert_eq!(s.desired_replicas, 0);

    // Asleep: a request held for another Service does not wake it; one
    // held for its own Service does, at once (no window for scale-up).
    t.metrics.set(&[]);
    t.metrics.hold("other", 3);
    t.clock.step(Duration::from_secs(1));
    t.reconcile().await;
    assert_eq!(t.replicas(), 0);
    assert_eq!(
        t.condition("ScalingActive"),
        ("True".into(), "ValidMetricFound".into()),
        "scaled to zero by the HPA is still active scaling"
    );
    t.metrics.hold("web", 1);
    t.clock.step(Duration::from_secs(1));
    t.reconcile().await;
    assert_eq!(t.replicas(), 1);
    let woke = t
        .events()
        .into_iter()
        .rev()
        .find(|e| e.reason == "SuccessfulRescale")
        .expect("event");
    assert!(woke.message.starts_with("New size: 1"), "{}", woke.message);
}
