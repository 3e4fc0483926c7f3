//! The loop's logic without I/O: apply watch events to the snapshot and the
//! queue, decide what to do with the next pod, and react to bind results.
//! The async shell in `mod.rs` only performs the decisions.

use std::collections::HashSet;
use std::time::Instant;

use drover_proto::types::{Node, Pod};

use crate::preemption::{Preemption, find_preemption};
use crate::queue::SchedulingQueue;
use crate::schedule::Scheduler;
use crate::snapshot::{ClusterSnapshot, pod_key};
use crate::{FitError, SchedulerConfig};

/// Whether the scheduler should place `pod`: no node yet, not finished, not being deleted.
pub fn is_pending(pod: &Pod) -> bool {
    pod.spec.node_name.as_deref().is_none_or(str::is_empty)
        && !pod.is_terminal()
        && pod.metadata.deletion_timestamp.is_none()
}

/// A watch event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Upsert,
    Delete,
}

/// What the shell should do for one popped pod.
#[derive(Debug)]
pub enum Decision {
    /// Write `spec.nodeName` (the pod is already assumed in the snapshot).
    Bind { pod: Pod, node: String },
    /// Report the failure; evict `preemption`'s victims if any.
    Unschedulable {
        pod: Pod,
        error: FitError,
        preemption: Option<Preemption>,
    },
}

/// Snapshot + queue + plugins: the scheduler's whole state.
pub struct LoopState {
    pub snapshot: ClusterSnapshot,
    pub queue: SchedulingQueue,
    pub scheduler: Scheduler,
    /// Pods assumed in the snapshot whose binding the watch has not confirmed.
    assumed: HashSet<String>,
}

impl LoopState {
    pub fn new(config: SchedulerConfig) -> LoopState {
        LoopState {
            snapshot: ClusterSnapshot::new(),
            queue: SchedulingQueue::new(
                config.initial_backoff,
                config.max_backoff,
                config.unschedulable_flush,
            ),
            scheduler: Scheduler::new(config),
            assumed: HashSet::new(),
        }
    }

    pub fn apply_node(&mut self, change: Change, node: &Node, now: Instant) {
        match change {
            Change::Upsert => {
                self.snapshot.upsert_node(node);
                // A new or changed node (capacity, labels, taints, uncordon) may help.
                self.queue.move_all_to_active_or_backoff(now);
            }
            Change::Delete => self.snapshot.remove_node(&node.metadata.name),
        }
    }

    pub fn apply_pod(&mut self, change: Change, pod: &Pod, now: Instant) {
        let key = pod_key(pod);
        match change {
            Change::Delete => {
                let was_bound = self.snapshot.pod(&key).is_some();
                self.assumed.remove(&key);
                self.snapshot.remove_pod(&key);
                self.queue.remove(&key);
                if was_bound {
                    // Freed resources or domains may let others fit.
                    self.queue.move_all_to_active_or_backoff(now);
                }
            }
            Change::Upsert if is_pending(pod) => {
                // Never drop an assumed pod because of an older pending version.
                if self.snapshot.pod(&key).is_none() {
                    self.queue.add(pod.clone(), now);
                }
            }
            Change::Upsert => {
                let freed = pod.is_terminal() && self.snapshot.pod(&key).is_some();
                self.assumed.remove(&key);
                self.queue.remove(&key);
                self.snapshot.upsert_pod(pod);
                if freed {
                    self.queue.move_all_to_active_or_backoff(now);
                }
            }
        }
    }

    /// Schedules the next ready pod, assuming it on success.
    pub fn next(&mut self, now: Instant) -> Option<Decision> {
        let pod = self.queue.pop(now)?;
        match self.scheduler.schedule(&pod, &self.snapshot) {
            Ok(node) => {
                self.snapshot.assume(&pod, &node);
                self.assumed.insert(pod_key(&pod));
                Some(Decision::Bind { pod, node })
            }
            Err(error) => {
                let preemption = find_preemption(&self.scheduler, &pod, &self.snapshot);
                self.queue.requeue_unschedulable(&pod_key(&pod), now);
                Some(Decision::Unschedulable {
                    pod,
                    error,
                    preemption,
                })
            }
        }
    }

    /// The bind was written: the pod leaves the queue (the watch confirms it).
    pub fn bind_succeeded(&mut self, key: &str) {
        self.queue.remove(key);
    }

    /// The bind failed (conflict or API error): forget the assumption and retry after backoff.
    pub fn bind_failed(&mut self, key: &str, now: Instant) {
        // Only an unconfirmed assumption is ours to undo; a bound version seen
        // on the watch is the truth.
        if self.assumed.remove(key) {
            self.snapshot.remove_pod(key);
        }
        self.queue.requeue_backoff(key, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{GI, NodeBuilder, PodBuilder};
    use std::time::Duration;

    fn state_with(nodes: &[Node], now: Instant) -> LoopState {
        let mut s = LoopState::new(SchedulerConfig::default());
        for n in nodes {
            s.apply_node(Change::Upsert, n, now);
        }
        s
    }

    #[test]
    fn pending_definition() {
        let mut done = PodBuilder::new("d").build();
        done.status = Some(drover_proto::types::pod::PodStatus {
            phase: drover_proto::types::pod::PodPhase::Failed,
            ..Default::default()
        });
        let mut deleting = PodBuilder::new("x").build();
        deleting.metadata.deletion_timestamp = Some(drover_proto::Time::default());
        assert!(is_pending(&PodBuilder::new("p").build()));
        assert!(!is_pending(&PodBuilder::new("p").node("n1").build()));
        assert!(!is_pending(&done));
        assert!(!is_pending(&deleting));
    }

    #[test]
    fn binds_and_assumes_so_the_next_pod_sees_it() {
        let t = Instant::now();
        let mut s = state_with(
            &[NodeBuilder::new("n1").capacity(4000, 16 * GI, 1).build()],
            t,
        );
        s.apply_pod(Change::Upsert, &PodBuilder::new("a").build(), t);
        s.apply_pod(Change::Upsert, &PodBuilder::new("b").build(), t);
        let Some(Decision::Bind { node, .. }) = s.next(t) else {
            panic!("first pod binds")
        };
        assert_eq!(node, "n1");
        match s.next(t) {
            Some(Decision::Unschedulable { error, .. }) => {
                assert_eq!(
                    error.to_string(),
                    "0/1 nodes are available: 1 Too many pods."
                )
            }
            other => panic!("second pod must not fit: {other:?}"),
        }
    }

    #[test]
    fn conflict_forgets_the_assumption_and_retries_after_backoff() {
        let t = Instant::now();
        let mut s = state_with(&[NodeBuilder::new("n1").build()], t);
        s.apply_pod(
            Change::Upsert,
            &PodBuilder::new("a").requests(1000, GI).build(),
            t,
        );
        assert!(matches!(s.next(t), Some(Decision::Bind { .. })));
        s.bind_failed("default/a", t);
        assert_eq!(
            s.snapshot.node("n1").map(|n| n.requested.milli_cpu),
            Some(0)
        );
        assert!(s.next(t).is_none(), "backing off");
        assert!(matches!(
            s.next(t + Duration::from_secs(1)),
            Some(Decision::Bind { .. })
        ));
    }

    #[test]
    fn unschedulable_pod_is_retried_when_a_node_registers() {
        let t = Instant::now();
        let mut s = state_with(&[], t);
        s.apply_pod(Change::Upsert, &PodBuilder::new("a").build(), t);
        assert!(matches!(s.next(t), Some(Decision::Unschedulable { .. })));
        let later = t + Duration::from_secs(5);
        assert!(s.next(later).is_none(), "waits for a cluster change");
        s.apply_node(Change::Upsert, &NodeBuilder::new("n1").build(), later);
        match s.next(later) {
            Some(Decision::Bind { node, .. }) => assert_eq!(node, "n1"),
            other => panic!("expected a bind: {other:?}"),
        }
    }

    #[test]
    fn watch_confirmation_replaces_the_assumed_pod() {
        let t = Instant::now();
        let mut s = state_with(&[NodeBuilder::new("n1").build()], t);
        let pod = PodBuilder::new("a").requests(500, GI).build();
        s.apply_pod(Change::Upsert, &pod, t);
        let Some(Decision::Bind { mut pod, node }) = s.next(t) else {
            panic!("bind")
        };
        s.bind_succeeded("default/a");
        pod.spec.node_name = Some(node);
        s.apply_pod(Change::Upsert, &pod, t);
        // A stale pending version arriving late must not re-queue it.
        s.apply_pod(
            Change::Upsert,
            &PodBuilder::new("a").requests(500, GI).build(),
            t,
        );
        assert!(s.queue.is_empty());
        assert_eq!(
            s.snapshot.node("n1").map(|n| n.requested.milli_cpu),
            Some(500)
        );
        s.apply_pod(Change::Delete, &pod, t);
        assert_eq!(
            s.snapshot.node("n1").map(|n| n.requested.milli_cpu),
            Some(0)
        );
    }

    #[test]
    fn preemption_is_proposed_for_high_priority_pods() {
        let t = Instant::now();
        let mut s = state_with(&[NodeBuilder::new("n1").build()], t);
        s.apply_pod(
            Change::Upsert,
            &PodBuilder::new("low")
                .requests(4000, GI)
                .priority(0)
                .node("n1")
                .build(),
            t,
        );
        s.apply_pod(
            Change::Upsert,
            &PodBuilder::new("vip")
                .requests(1000, GI)
                .priority(100)
                .build(),
            t,
        );
        match s.next(t) {
            Some(Decision::Unschedulable {
                preemption: Some(p),
                ..
            }) => {
                assert_eq!(p.node, "n1");
                assert_eq!(p.victims.len(), 1);
            }
            other => panic!("expected preemption: {other:?}"),
        }
    }
}
