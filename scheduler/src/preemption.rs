//! Priority preemption as a pure function: when a pod fits nowhere, find the
//! node where evicting the fewest, lowest-priority pods makes it fit. Only
//! resource shortfalls are resolved by eviction; a node refused for any other
//! reason (taints, affinity, runtime...) is never a candidate.

use drover_proto::types::Pod;

use crate::NodeName;
use crate::framework::PodState;
use crate::plugins::resources_fit::insufficient_given;
use crate::schedule::Scheduler;
use crate::snapshot::{ClusterSnapshot, NodeInfo, PodInfo};

/// A pod to evict so the preemptor fits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Victim {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub priority: i32,
    /// Honoured when deleting: the victim gets its own grace period to stop.
    pub termination_grace_period_seconds: i64,
}

/// Where the preemptor should go once `victims` are gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preemption {
    pub node: NodeName,
    pub victims: Vec<Victim>,
}

/// A node to preempt on, ranked by (highest victim priority, priority sum, victims).
type Candidate<'a> = ((i32, i64, usize), &'a NodeInfo, Vec<&'a PodInfo>);

/// The best node to preempt on, or `None` when no eviction of lower-priority
/// pods would make room. Nodes are ranked as kube-scheduler does: lowest
/// highest-victim priority, then lowest priority sum, then fewest victims.
pub fn find_preemption(
    scheduler: &Scheduler,
    pod: &Pod,
    snapshot: &ClusterSnapshot,
) -> Option<Preemption> {
    let priority = pod.spec.priority.unwrap_or(0);
    if victims_still_terminating(pod, priority, snapshot) {
        // An earlier preemption is still freeing the nominated node: wait for
        // it rather than evict more pods (kube-scheduler's PodEligibleToPreemptOthers).
        return None;
    }
    let state = PodState::new(pod, snapshot, scheduler.config().scoring_strategy);
    let mut best: Option<Candidate<'_>> = None;
    for node in snapshot.nodes() {
        if !scheduler.passes_except_resources(&state, node) {
            continue;
        }
        let Some(victims) = victims_on(&state, node, snapshot, priority) else {
            continue;
        };
        if victims.is_empty() {
            // It fits without evicting anything (the snapshot changed): no preemption.
            return None;
        }
        let rank = (
            victims.iter().map(|v| v.priority).max().unwrap_or(i32::MIN),
            victims.iter().map(|v| i64::from(v.priority)).sum::<i64>(),
            victims.len(),
        );
        if best.as_ref().is_none_or(|(r, _, _)| rank < *r) {
            best = Some((rank, node, victims));
        }
    }
    let (_, node, victims) = best?;
    Some(Preemption {
        node: node.name.clone(),
        victims: victims
            .into_iter()
            .map(|p| Victim {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                uid: p.uid.clone(),
                priority: p.priority,
                termination_grace_period_seconds: p.termination_grace_period_seconds,
            })
            .collect(),
    })
}

/// Whether `pod` was nominated to a node where lower-priority pods are still terminating.
fn victims_still_terminating(pod: &Pod, priority: i32, snapshot: &ClusterSnapshot) -> bool {
    let nominated = pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref());
    let Some(node) = nominated.and_then(|n| snapshot.node(n)) else {
        return false;
    };
    snapshot
        .pods_on(node)
        .any(|p| p.terminating && p.priority < priority)
}

/// The minimal victims on `node`: evict every lower-priority pod, then
/// reprieve them highest priority first while the preemptor still fits.
fn victims_on<'a>(
    state: &PodState<'_>,
    node: &'a NodeInfo,
    snapshot: &'a ClusterSnapshot,
    priority: i32,
) -> Option<Vec<&'a PodInfo>> {
    let alloc = node.allocatable();
    let mut used = node.requested;
    if insufficient_given(state.requests, alloc, used).is_none() {
        return Some(Vec::new());
    }
    let mut candidates: Vec<&PodInfo> = snapshot
        .pods_on(node)
        .filter(|p| p.priority < priority && !p.terminating)
        .collect();
    for p in &candidates {
        used.sub(p.requests);
    }
    if insufficient_given(state.requests, alloc, used).is_some() {
        return None;
    }
    // Highest priority first; among equals the bigger pod is reprieved last
    // so small pods are kept when they can be.
    candidates.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| a.requests.milli_cpu.cmp(&b.requests.milli_cpu))
            .then_with(|| a.name.cmp(&b.name))
    });
    let mut victims = Vec::new();
    for p in candidates {
        let mut with = used;
        with.add(p.requests);
        if insufficient_given(state.requests, alloc, with).is_none() {
            used = with;
        } else {
            victims.push(p);
        }
    }
    Some(victims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SchedulerConfig;
    use crate::testing::{GI, NodeBuilder, PodBuilder, snapshot};

    fn names(p: &Preemption) -> Vec<&str> {
        let mut v: Vec<&str> = p.victims.iter().map(|v| v.name.as_str()).collect();
        v.sort();
        v
    }

    #[test]
    fn evicts_minimal_lowest_priority_set() {
        let s = Scheduler::new(SchedulerConfig::default());
        let snap = snapshot(
            &[
                NodeBuilder::new("n1").build(),
                NodeBuilder::new("n2").build(),
            ],
            &[
                PodBuilder::new("low1")
                    .requests(1000, GI)
                    .priority(1)
                    .node("n1")
                    .build(),
                PodBuilder::new("low2")
                    .requests(2000, GI)
                    .priority(1)
                    .node("n1")
                    .build(),
                PodBuilder::new("mid")
                    .requests(1000, GI)
                    .priority(5)
                    .node("n1")
                    .build(),
                PodBuilder::new("high")
                    .requests(4000, GI)
                    .priority(100)
                    .node("n2")
                    .build(),
            ],
        );
        let pod = PodBuilder::new("p").requests(2000, GI).priority(10).build();
        assert!(s.schedule(&pod, &snap).is_err());
        let p = find_preemption(&s, &pod, &snap).expect("a node to preempt on");
        assert_eq!(p.node, "n1");
        assert_eq!(names(&p), ["low2"]);
        assert_eq!(p.victims[0].termination_grace_period_seconds, 30);
    }

    #[test]
    fn never_evicts_equal_or_higher_priority() {
        let s = Scheduler::new(SchedulerConfig::default());
        let snap = snapshot(
            &[NodeBuilder::new("n1").build()],
            &[PodBuilder::new("same")
                .requests(4000, GI)
                .priority(10)
                .node("n1")
                .build()],
        );
        let pod = PodBuilder::new("p").requests(1000, GI).priority(10).build();
        assert_eq!(find_preemption(&s, &pod, &snap), None);
    }

    #[test]
    fn skips_nodes_refused_for_other_reasons() {
        let s = Scheduler::new(SchedulerConfig::default());
        let snap = snapshot(
            &[
                NodeBuilder::new("cordoned").unschedulable(true).build(),
                NodeBuilder::new("ok").build(),
            ],
            &[
                PodBuilder::new("a")
                    .requests(4000, GI)
                    .priority(0)
                    .node("cordoned")
                    .build(),
                PodBuilder::new("b")
                    .requests(3000, GI)
                    .priority(3)
                    .node("ok")
                    .build(),
                PodBuilder::new("c")
                    .requests(1000, GI)
                    .priority(2)
                    .node("ok")
                    .build(),
            ],
        );
        let pod = PodBuilder::new("p").requests(2000, GI).priority(10).build();
        let p = find_preemption(&s, &pod, &snap).expect("preemption");
        assert_eq!((p.node.as_str(), names(&p)), ("ok", vec!["b"]));
    }

    #[test]
    fn waits_for_earlier_victims_to_terminate() {
        let s = Scheduler::new(SchedulerConfig::default());
        let mut dying = PodBuilder::new("dying")
            .requests(2000, GI)
            .priority(0)
            .node("n1")
            .build();
        dying.metadata.deletion_timestamp = Some(drover_proto::Time::default());
        let snap = snapshot(
            &[NodeBuilder::new("n1").build()],
            &[
                dying,
                PodBuilder::new("other")
                    .requests(1500, GI)
                    .priority(0)
                    .node("n1")
                    .build(),
            ],
        );
        let mut pod = PodBuilder::new("p").requests(2000, GI).priority(10).build();
        assert!(
            find_preemption(&s, &pod, &snap).is_some(),
            "not nominated yet: may preempt"
        );
        pod.status = Some(drover_proto::types::pod::PodStatus {
            nominated_node_name: Some("n1".into()),
            ..Default::default()
        });
        assert_eq!(find_preemption(&s, &pod, &snap), None);
    }
}
