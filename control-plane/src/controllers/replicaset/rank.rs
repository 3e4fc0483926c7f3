//! Which pods a ReplicaSet deletes first when it scales down: the least
//! valuable (Kubernetes' `ActivePods` order): unscheduled before scheduled,
//! pending before running, not ready before ready, ready for less time before
//! longer, newer before older.

use std::cmp::Ordering;
use std::sync::Arc;

use drover_proto::types::Pod;
use drover_proto::types::pod::PodPhase;

use crate::controllers::pods::{is_ready, ready_since};

fn phase_rank(pod: &Pod) -> u8 {
    match pod.status.as_ref().map(|s| s.phase).unwrap_or_default() {
        PodPhase::Pending => 0,
        PodPhase::Unknown => 1,
        _ => 2,
    }
}

/// `Less` when `a` should be deleted before `b`.
pub fn less_valuable_first(a: &Pod, b: &Pod) -> Ordering {
    let scheduled = |p: &Pod| p.spec.node_name.as_deref().is_some_and(|n| !n.is_empty());
    scheduled(a)
        .cmp(&scheduled(b))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        // Both ready: the one ready more recently goes first.
        .then_with(|| ready_since(b).cmp(&ready_since(a)))
        // Newer first.
        .then_with(|| {
            b.metadata
                .creation_timestamp
                .cmp(&a.metadata.creation_timestamp)
        })
        .then_with(|| b.metadata.name.cmp(&a.metadata.name))
}

/// The `n` pods to delete.
pub fn pods_to_delete(pods: &[Arc<Pod>], n: usize) -> Vec<Arc<Pod>> {
    let mut sorted = pods.to_vec();
    sorted.sort_by(|a, b| less_valuable_first(a, b));
    sorted.truncate(n);
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_proto::meta::Condition;
    use drover_proto::types::pod::PodStatus;

    fn pod(name: &str, node: Option<&str>, phase: PodPhase, ready: bool, created: i64) -> Arc<Pod> {
        let mut p = Pod::default();
        p.metadata.name = name.into();
        p.metadata.creation_timestamp = chrono::DateTime::from_timestamp(created, 0);
        p.spec.node_name = node.map(str::to_string);
        let mut s = PodStatus {
            phase,
            ..PodStatus::default()
        };
        if ready {
            s.conditions.push(Condition {
                type_: "Ready".into(),
                status: "True".into(),
                last_transition_time: chrono::DateTime::from_timestamp(created + 10, 0),
                ..Condition::default()
            });
        }
        p.status = Some(s);
        Arc::new(p)
    }

    #[test]
    fn deletes_unscheduled_then_not_ready_then_newest() {
        let pods = vec![
            pod("old-ready", Some("n1"), PodPhase::Running, true, 100),
            pod("new-ready", Some("n1"), PodPhase::Running, true, 200),
            pod("not-ready", Some("n1"), PodPhase::Running, false, 50),
            pod("pending", Some("n1"), PodPhase::Pending, false, 10),
            pod("unscheduled", None, PodPhase::Pending, false, 5),
        ];
        let order: Vec<String> = pods_to_delete(&pods, 5)
            .iter()
            .map(|p| p.metadata.name.clone())
            .collect();
        assert_eq!(
            order,
            [
                "unscheduled",
                "pending",
                "not-ready",
                "new-ready",
                "old-ready"
            ]
        );
        assert_eq!(pods_to_delete(&pods, 2).len(), 2);
    }
}
