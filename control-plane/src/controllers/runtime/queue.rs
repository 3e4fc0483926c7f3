//! The work queue: keys, not events. A key queued twice is queued once; a key
//! being reconciled is never handed to a second worker (it is re-queued when
//! the first finishes); failures come back after an exponential backoff.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use drover_proto::Time;
use tokio::sync::Notify;

use super::clock::{Clock, elapsed};

/// Per-key exponential backoff: `base * 2^failures`, capped at `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        // Kubernetes' controller default: 5 ms doubling up to 1000 s. The cap is
        // lower here so a transient outage heals within minutes.
        Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<String>,
    /// Keys that need a reconcile: queued, or waiting for their worker to finish.
    dirty: HashSet<String>,
    processing: HashSet<String>,
    /// Delayed keys by due time (with a sequence number to keep order stable).
    waiting: BTreeMap<(Time, u64), String>,
    waiting_at: HashMap<String, (Time, u64)>,
    failures: HashMap<String, u32>,
    seq: u64,
    shut_down: bool,
}

impl Inner {
    fn add(&mut self, key: String) {
        if self.shut_down || !self.dirty.insert(key.clone()) {
            return;
        }
        if !self.processing.contains(&key) {
            self.queue.push_back(key);
        }
    }

    fn promote(&mut self, now: Time) {
        while let Some(entry) = self.waiting.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.waiting_at.remove(&key);
            self.add(key);
        }
    }
}

/// A deduplicating, rate-limited queue of object keys (`namespace/name`).
pub struct WorkQueue {
    inner: Mutex<Inner>,
    notify: Notify,
    clock: Arc<dyn Clock>,
    backoff: Backoff,
}

impl WorkQueue {
    pub fn new(clock: Arc<dyn Clock>, backoff: Backoff) -> WorkQueue {
        WorkQueue {
            inner: Mutex::new(Inner::default()),
            notify: Notify::new(),
            clock,
            backoff,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `key` unless it is already queued.
    pub fn add(&self, key: impl Into<String>) {
        self.lock().add(key.into());
        self.notify.notify_one();
    }

    /// Queues `key` once `delay` has passed (the earliest of several requests wins).
    pub fn add_after(&self, key: impl Into<String>, delay: Duration) {
        let key = key.into();
        if delay.is_zero() {
            return self.add(key);
        }
        let due = self.clock.now() + chrono::Duration::from_std(delay).unwrap_or_default();
        let mut inner = self.lock();
        if let Some(&(at, seq)) = inner.waiting_at.get(&key) {
            if at <= due {
                return;
            }
            inner.waiting.remove(&(at, seq));
        }
        inner.seq += 1;
        let slot = (due, inner.seq);
        inner.waiting.insert(slot, key.clone());
        inner.waiting_at.insert(key, slot);
        drop(inner);
        self.notify.notify_one();
    }

    /// Queues `key` after its next backoff step (a reconcile failed).
    pub fn add_rate_limited(&self, key: impl Into<String>) {
        let key = key.into();
        let failures = {
            let mut inner = self.lock();
            let n = inner.failures.entry(key.clone()).or_insert(0);
            let before = *n;
            *n = n.saturating_add(1);
            before
        };
        self.add_after(key, self.backoff.delay(failures));
    }

    /// Resets the backoff of `key` (it reconciled cleanly).
    pub fn forget(&self, key: &str) {
        self.lock().failures.remove(key);
    }

    /// How many times `key` has failed in a row.
    pub fn failures(&self, key: &str) -> u32 {
        self.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Takes the next ready key without waiting; the caller must call [`done`](Self::done).
    pub fn try_get(&self) -> Option<String> {
        let now = self.clock.now();
        let mut inner = self.lock();
        inner.promote(now);
        let key = inner.queue.pop_front()?;
        inner.dirty.remove(&key);
        inner.processing.insert(key.clone());
        Some(key)
    }

    /// Waits for the next key; None once shut down.
    pub async fn get(&self) -> Option<String> {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(k) = self.try_get() {
                return Some(k);
            }
            let wait = {
                let inner = self.lock();
                if inner.shut_down {
                    return None;
                }
                inner
                    .waiting
                    .keys()
                    .next()
                    .map(|(at, _)| elapsed(self.clock.now(), *at))
            };
            // A fake clock does not move with real time, so never sleep long
            // on a computed deadline: wake up and look again.
            let wait = wait
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Marks `key` finished; if it was added meanwhile it goes back in line.
    pub fn done(&self, key: &str) {
        let mut inner = self.lock();
        inner.processing.remove(key);
        if inner.dirty.contains(key) {
            inner.queue.push_back(key.to_string());
            drop(inner);
            self.notify.notify_one();
        }
    }

    /// Keys ready now or waiting for a delay.
    pub fn len(&self) -> usize {
        let inner = self.lock();
        inner.queue.len() + inner.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Stops handing out keys; waiting workers return None.
    pub fn shut_down(&self) {
        self.lock().shut_down = true;
        self.notify.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::runtime::clock::FakeClock;

    fn queue() -> (WorkQueue, FakeClock) {
        let clock = FakeClock::new(chrono::DateTime::UNIX_EPOCH);
        (
            WorkQueue::new(Arc::new(clock.clone()), Backoff::default()),
            clock,
        )
    }

    #[test]
    fn deduplicates_queued_keys() {
        let (q, _) = queue();
        q.add("ns/a");
        q.add("ns/a");
        q.add("ns/b");
        assert_eq!(q.len(), 2);
        assert_eq!(q.try_get().as_deref(), Some("ns/a"));
        assert_eq!(q.try_get().as_deref(), Some("ns/b"));
        assert_eq!(q.try_get(), None);
    }

    #[test]
    fn never_hands_one_key_to_two_workers() {
        let (q, _) = queue();
        q.add("ns/a");
        let first = q.try_get();
        assert_eq!(first.as_deref(), Some("ns/a"));
        q.add("ns/a");
        // Still being processed: a second worker must not get it.
        assert_eq!(q.try_get(), None);
        q.done("ns/a");
        assert_eq!(q.try_get().as_deref(), Some("ns/a"));
        q.done("ns/a");
        assert_eq!(q.try_get(), None);
    }

    #[test]
    fn failures_back_off_exponentially_until_forgotten() {
        let (q, clock) = queue();
        for expected_ms in [5u64, 10, 20, 40] {
            q.add_rate_limited("ns/a");
            assert_eq!(q.try_get(), None, "not before its backoff");
            clock.step(Duration::from_millis(expected_ms - 1));
            assert_eq!(q.try_get(), None);
            clock.step(Duration::from_millis(1));
            let k = q.try_get();
            assert_eq!(k.as_deref(), Some("ns/a"));
            q.done("ns/a");
        }
        assert_eq!(q.failures("ns/a"), 4);
        q.forget("ns/a");
        assert_eq!(q.failures("ns/a"), 0);
        assert_eq!(
            Backoff::default().delay(40),
            Duration::from_secs(300),
            "capped"
        );
    }

    #[test]
    fn earliest_delay_wins() {
        let (q, clock) = queue();
        q.add_after("ns/a", Duration::from_secs(10));
        q.add_after("ns/a", Duration::from_secs(2));
        q.add_after("ns/a", Duration::from_secs(5));
        assert_eq!(q.len(), 1);
        clock.step(Duration::from_secs(2));
        assert_eq!(q.try_get().as_deref(), Some("ns/a"));
    }
}
