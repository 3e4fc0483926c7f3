//! Fixtures for tests and benchmarks: terse builders for Nodes and Pods.

use std::collections::BTreeMap;

use drover_proto::meta::OwnerReference;
use drover_proto::selector::LabelSelector;
use drover_proto::types::node::{ContainerImage, NodeStatus, Taint};
use drover_proto::types::pod::{
    Affinity, Container, PodAffinity, PodAffinityTerm, ResourceRequirements, Runtime, TaintEffect,
    TopologySpreadConstraint, WhenUnsatisfiable,
};
use drover_proto::types::{Node, Pod};
use drover_proto::{ObjectMeta, Quantity};

use crate::fit_error::Reason;
use crate::framework::{Plugin, PodState};
use crate::snapshot::{ClusterSnapshot, ZONE_LABEL};

pub const GI: i64 = 1024 * 1024 * 1024;
pub const MI: i64 = 1024 * 1024;

/// Builds a Node; defaults to 4 cpu / 16Gi / 110 pods offering containers.
pub struct NodeBuilder(Node);

impl NodeBuilder {
    pub fn new(name: &str) -> NodeBuilder {
        let mut node = Node {
            metadata: ObjectMeta {
                name: name.into(),
                ..Default::default()
            },
            status: Some(NodeStatus {
                runtimes: vec!["container".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        node.set_capacity(4000, 16 * GI, 110);
        NodeBuilder(node)
    }

    pub fn capacity(mut self, milli_cpu: i64, memory: i64, pods: i64) -> NodeBuilder {
        self.0.set_capacity(milli_cpu, memory, pods);
        self
    }

    pub fn label(mut self, k: &str, v: &str) -> NodeBuilder {
        self.0.metadata.labels.insert(k.into(), v.into());
        self
    }

    pub fn zone(self, zone: &str) -> NodeBuilder {
        self.label(ZONE_LABEL, zone)
    }

    pub fn taint(mut self, key: &str, value: &str, effect: TaintEffect) -> NodeBuilder {
        self.0.spec.taints.push(Taint {
            key: key.into(),
            value: (!value.is_empty()).then(|| value.to_string()),
            effect,
            time_added: None,
        });
        self
    }

    pub fn unschedulable(mut self, yes: bool) -> NodeBuilder {
        self.0.spec.unschedulable = yes;
        self
    }

    pub fn runtimes(mut self, runtimes: &[&str]) -> NodeBuilder {
        if let Some(s) = self.0.status.as_mut() {
            s.runtimes = runtimes.iter().map(|r| r.to_string()).collect();
        }
        self
    }

    pub fn image(mut self, name: &str, size_bytes: i64) -> NodeBuilder {
        if let Some(s) = self.0.status.as_mut() {
            s.images.push(ContainerImage {
                names: vec![name.into()],
                size_bytes,
            });
        }
        self
    }

    pub fn build(self) -> Node {
        self.0
    }
}

trait SetCapacity {
    fn set_capacity(&mut self, milli_cpu: i64, memory: i64, pods: i64);
}

impl SetCapacity for Node {
    fn set_capacity(&mut self, milli_cpu: i64, memory: i64, pods: i64) {
        let status = self.status.get_or_insert_with(Default::default);
        status.allocatable = BTreeMap::from([
            ("cpu".to_string(), Quantity::from_millis(milli_cpu)),
            ("memory".to_string(), Quantity::from_units(memory)),
            ("pods".to_string(), Quantity::from_units(pods)),
        ]);
    }
}

/// Builds a Pod in namespace `default` with one container and no requests.
pub struct PodBuilder(Pod);

impl PodBuilder {
    pub fn new(name: &str) -> PodBuilder {
        PodBuilder(Pod {
            metadata: ObjectMeta {
                name: name.into(),
                namespace: Some("default".into()),
                uid: Some(format!("uid-{name}")),
                resource_version: Some("1".into()),
                ..Default::default()
            },
            spec: drover_proto::types::pod::PodSpec {
                containers: vec![Container {
                    name: "main".into(),
                    image: "app:1".into(),
                    ..Default::default()
                }],
                termination_grace_period_seconds: 30,
                ..Default::default()
            },
            ..Default::default()
        })
    }

    pub fn requests(mut self, milli_cpu: i64, memory: i64) -> PodBuilder {
        let mut r = ResourceRequirements::default();
        if milli_cpu > 0 {
            r.requests
                .insert("cpu".into(), Quantity::from_millis(milli_cpu));
        }
        if memory > 0 {
            r.requests
                .insert("memory".into(), Quantity::from_units(memory));
        }
        for c in &mut self.0.spec.containers {
            c.resources = r.clone();
        }
        self
    }

    pub fn label(mut self, k: &str, v: &str) -> PodBuilder {
        self.0.metadata.labels.insert(k.into(), v.into());
        self
    }

    pub fn namespace(mut self, ns: &str) -> PodBuilder {
        self.0.metadata.namespace = Some(ns.into());
        self
    }

    pub fn node(mut self, node: &str) -> PodBuilder {
        self.0.spec.node_name = Some(node.into());
        self
    }

    pub fn priority(mut self, p: i32) -> PodBuilder {
        self.0.spec.priority = Some(p);
        self
    }

    pub fn runtime(mut self, r: Runtime) -> PodBuilder {
        self.0.spec.runtime = r;
        self
    }

    pub fn image(mut self, image: &str) -> PodBuilder {
        for c in &mut self.0.spec.containers {
            c.image = image.into();
        }
        self
    }

    pub fn node_selector(mut self, k: &str, v: &str) -> PodBuilder {
        self.0.spec.node_selector.insert(k.into(), v.into());
        self
    }

    /// Marks the pod as a replica of the workload with owner uid `owner`.
    pub fn owner(mut self, owner: &str) -> PodBuilder {
        self.0.metadata.owner_references.push(OwnerReference {
            api_version: "apps/v1".into(),
            kind: "ReplicaSet".into(),
            name: owner.into(),
            uid: owner.into(),
            controller: Some(true),
            block_owner_deletion: None,
        });
        self
    }

    /// Adds a spread constraint over pods labelled `app=<app>`.
    pub fn spread(mut self, key: &str, max_skew: i32, hard: bool, app: &str) -> PodBuilder {
        self.0
            .spec
            .topology_spread_constraints
            .push(TopologySpreadConstraint {
                max_skew,
                topology_key: key.into(),
                when_unsatisfiable: if hard {
                    WhenUnsatisfiable::DoNotSchedule
                } else {
                    WhenUnsatisfiable::ScheduleAnyway
                },
                label_selector: Some(app_selector(app)),
            });
        self
    }

    /// Adds a required pod anti-affinity to pods labelled `app=<app>` over `key`.
    pub fn anti_affinity(mut self, key: &str, app: &str) -> PodBuilder {
        self.pod_affinity_mut(true)
            .required_during_scheduling_ignored_during_execution
            .push(term(key, app));
        self
    }

    /// Adds a required pod affinity to pods labelled `app=<app>` over `key`.
    pub fn affinity(mut self, key: &str, app: &str) -> PodBuilder {
        self.pod_affinity_mut(false)
            .required_during_scheduling_ignored_during_execution
            .push(term(key, app));
        self
    }

    fn pod_affinity_mut(&mut self, anti: bool) -> &mut PodAffinity {
        let a = self.0.spec.affinity.get_or_insert_with(Affinity::default);
        let slot = if anti {
            &mut a.pod_anti_affinity
        } else {
            &mut a.pod_affinity
        };
        slot.get_or_insert_with(PodAffinity::default)
    }

    pub fn build(self) -> Pod {
        self.0
    }
}

fn term(key: &str, app: &str) -> PodAffinityTerm {
    PodAffinityTerm {
        label_selector: Some(app_selector(app)),
        namespaces: vec![],
        topology_key: key.into(),
    }
}

pub fn app_selector(app: &str) -> LabelSelector {
    LabelSelector {
        match_labels: BTreeMap::from([("app".to_string(), app.to_string())]),
        match_expressions: vec![],
    }
}

/// Snapshot holding `nodes` and the bound `pods`.
pub fn snapshot(nodes: &[Node], pods: &[Pod]) -> ClusterSnapshot {
    let mut s = ClusterSnapshot::new();
    for n in nodes {
        s.upsert_node(n);
    }
    for p in pods {
        s.upsert_pod(p);
    }
    s
}

/// Runs one filter plugin for `pod` on a one-node cluster.
pub fn filter_one(plugin: &dyn Plugin, pod: &Pod, node: &Node) -> Result<(), Reason> {
    filter_in(
        plugin,
        pod,
        &snapshot(std::slice::from_ref(node), &[]),
        &node.metadata.name,
    )
}

/// Runs one filter plugin for `pod` on `node_name` of `snap`.
pub fn filter_in(
    plugin: &dyn Plugin,
    pod: &Pod,
    snap: &ClusterSnapshot,
    node_name: &str,
) -> Result<(), Reason> {
    let state = PodState::new(pod, snap, Default::default());
    match snap.node(node_name) {
        Some(n) => plugin.filter(&state, n),
        None => Err(Reason::NodeAffinity),
    }
}

/// Normalised scores of one score plugin for `pod` on each node of `snap`, by name.
pub fn scores(plugin: &dyn Plugin, pod: &Pod, snap: &ClusterSnapshot) -> BTreeMap<String, i64> {
    let state = PodState::new(pod, snap, Default::default());
    let nodes: Vec<_> = snap.nodes().collect();
    let mut raw: Vec<i64> = nodes
        .iter()
        .map(|n| plugin.score(&state, n, snap))
        .collect();
    plugin.normalize(&mut raw);
    nodes.iter().map(|n| n.name.clone()).zip(raw).collect()
}
