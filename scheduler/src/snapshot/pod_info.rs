//! What the scheduler keeps about a pod bound to a node.

use std::collections::BTreeMap;

use drover_proto::Resource;
use drover_proto::selector::LabelSelector;
use drover_proto::types::Pod;

use crate::resources::Resources;

/// A bound (or assumed) pod, reduced to what filters, scores and preemption read.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    pub node_name: String,
    pub requests: Resources,
    pub non_zero_requests: Resources,
    pub priority: i32,
    pub termination_grace_period_seconds: i64,
    /// uid of the controlling owner (the ReplicaSet), for spreading replicas.
    pub owner: Option<String>,
    /// Already being deleted: still holds resources, never a preemption victim.
    pub terminating: bool,
    pub(crate) anti_affinity: Vec<TermSpec>,
    pub(crate) node_slot: u32,
    /// Ids of the registered anti-affinity terms this pod carries.
    pub(crate) term_ids: Vec<u32>,
}

/// A required pod anti-affinity term with its namespaces resolved.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TermSpec {
    pub namespaces: Vec<String>,
    pub label_selector: LabelSelector,
    pub topology_key: String,
}

/// `ns/name`: how the snapshot and the queue key pods.
pub fn pod_key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace(), pod.metadata.name)
}

impl PodInfo {
    pub fn from_pod(pod: &Pod, node_name: &str) -> PodInfo {
        let requests = Resources::of_pod(pod);
        let anti_affinity = pod
            .spec
            .affinity
            .as_ref()
            .and_then(|a| a.pod_anti_affinity.as_ref())
            .map(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .iter()
                    .map(|t| TermSpec {
                        namespaces: resolve_namespaces(&t.namespaces, pod.namespace()),
                        label_selector: t.label_selector.clone().unwrap_or_default(),
                        topology_key: t.topology_key.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        PodInfo {
            namespace: pod.namespace().to_string(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            labels: pod.metadata.labels.clone(),
            node_name: node_name.to_string(),
            requests,
            non_zero_requests: requests.non_zero(),
            priority: pod.spec.priority.unwrap_or(0),
            termination_grace_period_seconds: pod.spec.termination_grace_period_seconds,
            owner: pod.metadata.controller_ref().map(|r| r.uid.clone()),
            terminating: pod.metadata.deletion_timestamp.is_some(),
            anti_affinity,
            node_slot: 0,
            term_ids: Vec::new(),
        }
    }

    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// A term's namespaces: the listed ones, or the pod's own when none are listed.
pub(crate) fn resolve_namespaces(listed: &[String], own: &str) -> Vec<String> {
    if listed.is_empty() {
        vec![own.to_string()]
    } else {
        listed.to_vec()
    }
}
