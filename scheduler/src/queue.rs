//! The queue of pending pods, kube-scheduler style: an active heap ordered by
//! priority then arrival, a backoff heap for pods whose last attempt failed
//! (exponential per pod), and an unschedulable pool that waits for a cluster
//! change that could help. Time is passed in, so tests step it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::time::{Duration, Instant};

use drover_proto::types::Pod;

use crate::snapshot::pod_key;

/// Where a queued pod currently sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Active,
    Backoff(Instant),
    /// Waiting for a cluster event since the given time.
    Unschedulable(Instant),
    /// Popped and being scheduled or bound.
    InFlight,
}

#[derive(Debug)]
struct Entry {
    pod: Pod,
    place: Place,
    attempts: u32,
    /// When the last failed attempt ended; backoff counts from here.
    last_failure: Option<Instant>,
}

/// Pending pods keyed by `ns/name`.
#[derive(Debug)]
pub struct SchedulingQueue {
    entries: HashMap<String, Entry>,
    /// (priority, earlier first, key); stale items are skipped on pop.
    active: BinaryHeap<(i32, Reverse<u64>, String)>,
    backoff: BinaryHeap<Reverse<(Instant, String)>>,
    unschedulable: HashSet<String>,
    seq: u64,
    initial_backoff: Duration,
    max_backoff: Duration,
    unschedulable_flush: Duration,
}

impl SchedulingQueue {
    pub fn new(
        initial_backoff: Duration,
        max_backoff: Duration,
        unschedulable_flush: Duration,
    ) -> SchedulingQueue {
        SchedulingQueue {
            entries: HashMap::new(),
            active: BinaryHeap::new(),
            backoff: BinaryHeap::new(),
            unschedulable: HashSet::new(),
            seq: 0,
            initial_backoff,
            max_backoff,
            unschedulable_flush,
        }
    }

    /// Pods known to the queue, in any sub-queue or in flight.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// The latest version of a queued pod.
    pub fn pod(&self, key: &str) -> Option<&Pod> {
        self.entries.get(key).map(|e| &e.pod)
    }

    /// Adds a pending pod or records a newer version of it. A new pod goes to
    /// active; an update of an unschedulable pod gets another try (its spec
    /// may now fit) once its backoff has passed.
    pub fn add(&mut self, pod: Pod, now: Instant) {
        let key = pod_key(&pod);
        match self.entries.get_mut(&key) {
            Some(e) => {
                // Our own status writes (the PodScheduled condition) must not
                // trigger retries; a changed spec or labels may make it fit.
                let changed =
                    e.pod.spec != pod.spec || e.pod.metadata.labels != pod.metadata.labels;
                e.pod = pod;
                if changed && let Place::Unschedulable(_) = e.place {
                    self.unschedulable.remove(&key);
                    self.activate_or_backoff(&key, now);
                }
            }
            None => {
                self.entries.insert(
                    key.clone(),
                    Entry {
                        pod,
                        place: Place::Active,
                        attempts: 0,
                        last_failure: None,
                    },
                );
                self.push_active(&key);
            }
        }
    }

    /// Forgets a pod (bound, deleted, or no longer pending).
    pub fn remove(&mut self, key: &str) {
        if self.entries.remove(key).is_some() {
            self.unschedulable.remove(key);
        }
    }

    /// The next pod to schedule: backoffs that expired by `now` join active first.
    pub fn pop(&mut self, now: Instant) -> Option<Pod> {
        self.flush(now);
        while let Some((_, _, key)) = self.active.pop() {
            if let Some(e) = self.entries.get_mut(&key)
                && e.place == Place::Active
            {
                e.place = Place::InFlight;
                return Some(e.pod.clone());
            }
        }
        None
    }

    /// The attempt failed because nothing fits: wait for a cluster change (or
    /// the flush interval), and back off exponentially either way.
    pub fn requeue_unschedulable(&mut self, key: &str, now: Instant) {
        if let Some(e) = self.entries.get_mut(key) {
            e.attempts += 1;
            e.last_failure = Some(now);
            e.place = Place::Unschedulable(now);
            self.unschedulable.insert(key.to_string());
        }
    }

    /// The attempt failed for a transient reason (bind conflict, API error): retry after backoff.
    pub fn requeue_backoff(&mut self, key: &str, now: Instant) {
        if let Some(e) = self.entries.get_mut(key) {
            e.attempts += 1;
            e.last_failure = Some(now);
        }
        self.activate_or_backoff(key, now);
    }

    /// A cluster change that could make unschedulable pods fit (a node added
    /// or updated, a pod deleted): every such pod is tried again after its backoff.
    pub fn move_all_to_active_or_backoff(&mut self, now: Instant) {
        let keys: Vec<String> = self.unschedulable.drain().collect();
        for key in keys {
            self.activate_or_backoff(&key, now);
        }
    }

    /// When the queue next has something to do without outside events.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let backoff = self.backoff.peek().map(|Reverse((t, _))| *t);
        let flush = self
            .unschedulable
            .iter()
            .filter_map(|k| match self.entries.get(k)?.place {
                Place::Unschedulable(since) => Some(since + self.unschedulable_flush),
                _ => None,
            })
            .min();
        match (backoff, flush) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn backoff_of(&self, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(16);
        self.initial_backoff
            .saturating_mul(1 << exp)
            .min(self.max_backoff)
    }

    fn activate_or_backoff(&mut self, key: &str, now: Instant) {
        let Some(e) = self.entries.get(key) else {
            return;
        };
        let until = e.last_failure.map(|t| t + self.backoff_of(e.attempts));
        match until {
            Some(until) if until > now => {
                if let Some(e) = self.entries.get_mut(key) {
                    e.place = Place::Backoff(until);
                }
                self.backoff.push(Reverse((until, key.to_string())));
            }
            _ => self.push_active(key),
        }
    }

    fn push_active(&mut self, key: &str) {
        let Some(e) = self.entries.get_mut(key) else {
            return;
        };
        e.place = Place::Active;
        let priority = e.pod.spec.priority.unwrap_or(0);
        self.seq += 1;
        self.active
            .push((priority, Reverse(self.seq), key.to_string()));
    }

    fn flush(&mut self, now: Instant) {
        while let Some(Reverse((t, _))) = self.backoff.peek() {
            if *t > now {
                break;
            }
            let Some(Reverse((t, key))) = self.backoff.pop() else {
                break;
            };
            if self
                .entries
                .get(&key)
                .is_some_and(|e| e.place == Place::Backoff(t))
            {
                self.push_active(&key);
            }
        }
        let stale: Vec<String> = self
            .unschedulable
            .iter()
            .filter(|k| {
                matches!(self.entries.get(*k).map(|e| e.place),
                    Some(Place::Unschedulable(since)) if since + self.unschedulable_flush <= now)
            })
            .cloned()
            .collect();
        for key in stale {
            self.unschedulable.remove(&key);
            self.push_active(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::PodBuilder;

    const S: Duration = Duration::from_secs(1);

    fn queue() -> SchedulingQueue {
        SchedulingQueue::new(S, 8 * S, 60 * S)
    }

    fn name(p: Option<Pod>) -> Option<String> {
        p.map(|p| p.metadata.name)
    }

    #[test]
    fn pops_by_priority_then_arrival() {
        let t = Instant::now();
        let mut q = queue();
        q.add(PodBuilder::new("low").build(), t);
        q.add(PodBuilder::new("high").priority(10).build(), t);
        q.add(PodBuilder::new("low2").build(), t);
        let order: Vec<_> = std::iter::from_fn(|| name(q.pop(t))).collect();
        assert_eq!(order, ["high", "low", "low2"]);
        assert_eq!(q.len(), 3, "popped pods stay tracked until removed");
    }

    #[test]
    fn unschedulable_waits_for_event_then_backs_off_exponentially() {
        let t = Instant::now();
        let mut q = queue();
        q.add(PodBuilder::new("p").build(), t);
        assert!(q.pop(t).is_some());
        q.requeue_unschedulable("default/p", t);
        assert_eq!(name(q.pop(t + 30 * S)), None, "no event yet");
        let half = S / 2;
        // An event soon after the failure: the 1s backoff still applies...
        let mut q2 = queue();
        q2.add(PodBuilder::new("p").build(), t);
        let _ = q2.pop(t);
        q2.requeue_unschedulable("default/p", t);
        q2.move_all_to_active_or_backoff(t + half);
        assert_eq!(name(q2.pop(t + half)), None, "1s backoff first");
        assert_eq!(name(q2.pop(t + S)), Some("p".into()));
        // ...and doubles after the second failure.
        q2.requeue_unschedulable("default/p", t + S);
        q2.move_all_to_active_or_backoff(t + S);
        assert_eq!(name(q2.pop(t + 2 * S)), None, "2s after the second failure");
        assert_eq!(name(q2.pop(t + 3 * S)), Some("p".into()));
        // An event long after the failure activates at once.
        q.move_all_to_active_or_backoff(t + 30 * S);
        assert_eq!(name(q.pop(t + 30 * S)), Some("p".into()));
        for _ in 0..10 {
            q.requeue_backoff("default/p", t);
            let _ = q.pop(t + 100 * S);
        }
        q.requeue_backoff("default/p", t);
        assert_eq!(q.next_wakeup(), Some(t + 8 * S), "capped at max backoff");
    }

    #[test]
    fn unschedulable_pods_are_flushed_after_a_while() {
        let t = Instant::now();
        let mut q = queue();
        q.add(PodBuilder::new("p").build(), t);
        let _ = q.pop(t);
        q.requeue_unschedulable("default/p", t);
        assert_eq!(q.next_wakeup(), Some(t + 60 * S));
        assert_eq!(name(q.pop(t + 60 * S)), Some("p".into()));
    }

    #[test]
    fn removed_pods_never_pop() {
        let t = Instant::now();
        let mut q = queue();
        q.add(PodBuilder::new("p").build(), t);
        q.remove("default/p");
        assert!(q.pop(t).is_none() && q.is_empty());
    }

    #[test]
    fn updates_keep_one_entry_and_the_latest_object() {
        let t = Instant::now();
        let mut q = queue();
        q.add(PodBuilder::new("p").build(), t);
        q.add(PodBuilder::new("p").label("v", "2").build(), t);
        let p = q.pop(t).expect("pod");
        assert_eq!(p.metadata.labels.get("v").map(String::as_str), Some("2"));
        assert!(q.pop(t).is_none(), "no duplicate");
    }

    #[test]
    fn status_only_updates_do_not_retry_but_spec_changes_do() {
        let t = Instant::now();
        let mut q = queue();
        q.add(PodBuilder::new("p").build(), t);
        let _ = q.pop(t);
        q.requeue_unschedulable("default/p", t);
        let mut with_status = PodBuilder::new("p").build();
        with_status.status = Some(Default::default());
        q.add(with_status, t + 5 * S);
        assert!(
            q.pop(t + 5 * S).is_none(),
            "our own condition write is not a reason to retry"
        );
        q.add(PodBuilder::new("p").requests(10, 0).build(), t + 5 * S);
        assert_eq!(name(q.pop(t + 5 * S)), Some("p".into()));
    }
}
