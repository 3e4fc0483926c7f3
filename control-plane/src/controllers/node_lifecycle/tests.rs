//! Node lifecycle tests against the fake API and a fake clock: heartbeats
//! lapse, taints come and go, pods are evicted on time.

use std::sync::Arc;
use std::time::Duration;

use drover_proto::meta::Condition;
use drover_proto::types::node::NodeStatus;
use drover_proto::types::pod::{TaintEffect, Toleration, TolerationOperator};
use drover_proto::types::{Node, Pod};
use drover_proto::{Kind, Resource};

use super::health::{TAINT_NOT_READY, TAINT_UNREACHABLE};
use super::{NodeLifecycleConfig, NodeLifecycleController};
use crate::controllers::api::ControllerApi;
use crate::controllers::fake::FakeApi;
use crate::controllers::harness::decode;
use crate::controllers::runtime::{Backoff, Cache, Clock, FakeClock, WorkQueue, drain};

struct T {
    clock: FakeClock,
    api: FakeApi,
    c: NodeLifecycleController<FakeApi>,
}

const GRACE: Duration = Duration::from_secs(40);
const TOLERATION: Duration = Duration::from_secs(30);

impl T {
    fn new() -> T {
        let clock =
            FakeClock::new(chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("valid"));
        let shared: Arc<dyn Clock> = Arc::new(clock.clone());
        let api = FakeApi::new(shared.clone());
        let queue = Arc::new(WorkQueue::new(shared.clone(), Backoff::default()));
        let c = NodeLifecycleController::new(
            api.clone(),
            shared,
            Cache::default(),
            Cache::default(),
            queue,
            NodeLifecycleConfig {
                grace: GRACE,
                default_toleration: TOLERATION,
            },
        );
        T { clock, api, c }
    }

    /// The informers catch up, then every ready key is reconciled.
    async fn sync(&self) {
        let opts = Default::default();
        let (nodes, _) = self.api.list(Kind::Node, &opts).await.expect("list");
        let nh = self.c.node_handler();
        for n in self.c.nodes.replace(decode(nodes)) {
            nh(&n);
        }
        let (pods, _) = self.api.list(Kind::Pod, &opts).await.expect("list");
        let ph = self.c.pod_handler();
        for n in self.c.pods.replace(decode(pods)) {
            ph(&n);
        }
        drain(&self.c, &self.c.queue).await;
    }

    /// An agent's heartbeat: Ready with the given status, renewed now.
    fn heartbeat(&self, name: &str, ready: &str) {
        let now = self.clock.now();
        let mut node = Node::default();
        node.metadata.name = name.into();
        node.status = Some(NodeStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: ready.into(),
                last_heartbeat_time: Some(now),
                last_transition_time: Some(now),
                ..Condition::default()
            }],
            ..NodeStatus::default()
        });
        if self.api.update_status_now(&node.to_object()).is_err() {
            let created = self.api.create_now(&node.to_object()).expect("register");
            let mut node = Node::from_object(&created).expect("decode");
            node.status = Some(NodeStatus {
                conditions: vec![Condition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    last_heartbeat_time: Some(now),
                    last_transition_time: Some(now),
                    ..Condition::default()
                }],
                ..NodeStatus::default()
            });
            node.metadata.resource_version = None;
            self.api
                .update_status_now(&node.to_object())
                .expect("status");
        }
    }

    fn pod_on(&self, name: &str, node: &str, tolerations: Vec<Toleration>) {
        let mut p = Pod::default();
        p.metadata.name = name.into();
        p.spec.node_name = Some(node.into());
        p.spec.tolerations = tolerations;
        p.spec.termination_grace_period_seconds = 30;
        p.spec.containers = vec![drover_proto::types::pod::Container {
            name: "c".into(),
            image: "example/web:1".into(),
            ..Default::default()
        }];
        self.api.create_now(&p.to_object()).expect("pod");
    }

    fn node(&self, name: &str) -> Node {
        decode::<Node>(self.api.objects(Kind::Node))
            .into_iter()
            .find(|n| n.name() == name)
            .expect("node exists")
    }

    fn taint_keys(&self, name: &str) -> Vec<String> {
        self.node(name)
            .spec
            .taints
            .iter()
            .map(|t| t.key.clone())
            .collect()
    }

    fn ready(&self, name: &str) -> String {
        let n = self.node(name);
        n.status
            .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status)
            .unwrap_or_default()
    }

    /// Pods not marked for deletion.
    fn active(&self) -> Vec<String> {
        let mut names: Vec<String> = decode::<Pod>(self.api.objects(Kind::Pod))
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .map(|p| p.metadata.name)
            .collect();
        names.sort();
        names
    }

    fn stored_pods(&self) -> usize {
        self.api.objects(Kind::Pod).len()
    }

    /// Moves time on by `secs`, `n2` heartbeating every 10 s meanwhile.
    async fn advance(&self, secs: u64) {
        for _ in 0..secs {
            self.clock.step(Duration::from_secs(1));
            if self.clock.now().timestamp() % 10 == 0 {
                self.heartbeat("n2", "True");
            }
            self.sync().await;
        }
    }
}

fn forever() -> Toleration {
    Toleration {
        key: Some(TAINT_UNREACHABLE.into()),
        operator: TolerationOperator::Exists,
        effect: Some(TaintEffect::NoExecute),
        toleration_seconds: None,
        ..Toleration::default()
    }
}

#[tokio::test]
async fn a_silent_node_is_tainted_its_pods_evicted_and_it_recovers() {
    let t = T::new();
    t.heartbeat("n1", "True");
    t.heartbeat("n2", "True");
    t.pod_on("a", "n1", vec![]);
    t.pod_on("b", "n1", vec![]);
    t.pod_on("stays", "n1", vec![forever()]);
    t.pod_on("elsewhere", "n2", vec![]);
    t.sync().await;
    assert!(t.taint_keys("n1").is_empty());

    // n1 falls silent; n2 keeps heartbeating.
    t.advance(40).await;
    assert_eq!(t.ready("n1"), "True", "still within the grace period");
    t.advance(1).await;
    assert_eq!(t.ready("n1"), "Unknown");
    assert_eq!(t.taint_keys("n1"), vec![TAINT_UNREACHABLE]);
    assert!(t.taint_keys("n2").is_empty());
    assert_eq!(t.active().len(), 4, "pods tolerate for 30 s by default");

    t.advance(29).await;
    assert_eq!(t.active().len(), 4);
    t.advance(1).await;
    assert_eq!(t.active(), vec!["elsewhere", "stays"]);
    let events: Vec<drover_proto::types::Event> = decode(t.api.objects(Kind::Event));
    assert!(
        events.iter().any(|e| e.reason == "TaintManagerEviction"),
        "{events:?}"
    );
    assert!(events.iter().any(|e| e.reason == "NodeNotReady"));

    // Nobody on n1 finishes the graceful deletions: once their grace
    // period is over they are removed.
    assert_eq!(t.stored_pods(), 4);
    t.advance(31).await;
    assert_eq!(t.stored_pods(), 2);

    // n1 comes back.
    t.heartbeat("n1", "True");
    t.sync().await;
    assert!(t.taint_keys("n1").is_empty());
    assert_eq!(t.ready("n1"), "True");
}

#[tokio::test]
async fn an_explicit_toleration_time_wins_over_the_default() {
    let t = T::new();
    t.heartbeat("n1", "True");
    t.heartbeat("n2", "True");
    let five = Toleration {
        toleration_seconds: Some(5),
        ..forever()
    };
    t.pod_on("quick", "n1", vec![five]);
    t.pod_on("default", "n1", vec![]);
    t.sync().await;
    t.advance(41).await;
    assert_eq!(t.taint_keys("n1"), vec![TAINT_UNREACHABLE]);
    t.advance(5).await;
    assert_eq!(t.active(), vec!["default"]);
}

#[tokio::test]
async fn an_agent_reporting_not_ready_gets_the_not_ready_taint() {
    let t = T::new();
    t.heartbeat("n1", "True");
    t.heartbeat("n2", "True");
    t.sync().await;
    t.heartbeat("n1", "False");
    t.sync().await;
    assert_eq!(t.taint_keys("n1"), vec![TAINT_NOT_READY]);
    assert_eq!(t.ready("n1"), "False", "the agent's own word is kept");
    t.heartbeat("n1", "True");
    t.sync().await;
    assert!(t.taint_keys("n1").is_empty());
}

#[tokio::test]
async fn nothing_is_evicted_when_no_node_is_ready() {
    let t = T::new();
    t.heartbeat("n1", "True");
    t.pod_on("a", "n1", vec![]);
    t.sync().await;
    for _ in 0..120 {
        t.clock.step(Duration::from_secs(1));
        t.sync().await;
    }
    assert_eq!(t.taint_keys("n1"), vec![TAINT_UNREACHABLE]);
    assert_eq!(t.active(), vec!["a"], "full disruption: no evictions");
}

#[tokio::test]
async fn a_restarted_controller_does_not_judge_old_heartbeats() {
    let t = T::new();
    t.heartbeat("n1", "True");
    t.heartbeat("n2", "True");
    // The control plane was down for an hour: heartbeats look old.
    t.clock.step(Duration::from_secs(3600));
    t.sync().await;
    assert!(t.taint_keys("n1").is_empty());
    assert_eq!(t.ready("n1"), "True");
}
