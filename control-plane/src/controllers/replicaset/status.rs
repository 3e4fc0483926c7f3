//! A ReplicaSet's observed status, computed from its active pods.

use std::sync::Arc;

use drover_proto::Time;
use drover_proto::types::pod::Pod;
use drover_proto::types::workload::{ReplicaSet, ReplicaSetStatus};

use crate::controllers::pods::{is_available, is_ready, seconds};

/// replicas, fullyLabeledReplicas, readyReplicas, availableReplicas (ready
/// for minReadySeconds) and observedGeneration.
pub fn calculate(rs: &ReplicaSet, pods: &[Arc<Pod>], now: Time) -> ReplicaSetStatus {
    let min_ready = seconds(rs.spec.min_ready_seconds);
    let template_labels = &rs.spec.template.metadata.labels;
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(pods.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    ReplicaSetStatus {
        replicas: count(&|_| true),
        fully_labeled_replicas: count(&|p| {
            template_labels
                .iter()
                .all(|(k, v)| p.metadata.labels.get(k) == Some(v))
        }),
        ready_replicas: count(&is_ready),
        available_replicas: count(&|p| is_available(p, min_ready, now)),
        observed_generation: rs.metadata.generation.unwrap_or(0),
        conditions: rs
            .status
            .as_ref()
            .map(|s| s.conditions.clone())
            .unwrap_or_default(),
    }
}
