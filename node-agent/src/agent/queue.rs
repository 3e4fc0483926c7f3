//! A work queue of object keys, as Kubernetes controllers use: a key is
//! queued at most once, never handed to two workers at the same time, and
//! a key that changes while being worked on is queued again afterwards.

use std::collections::{HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<String>,
    queued: HashSet<String>,
    processing: HashSet<String>,
    dirty: HashSet<String>,
}

/// The queue; share it behind an `Arc`.
#[derive(Debug, Default)]
pub struct WorkQueue {
    inner: Mutex<Inner>,
    notify: Notify,
}

impl WorkQueue {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Only sets and a deque inside: still consistent after a panic.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `key` unless it is queued already; a key being worked on is
    /// queued again when its worker calls [`WorkQueue::done`].
    pub fn add(&self, key: &str) {
        let mut q = self.lock();
        if q.processing.contains(key) {
            q.dirty.insert(key.to_string());
            return;
        }
        if q.queued.insert(key.to_string()) {
            q.queue.push_back(key.to_string());
            drop(q);
            self.notify.notify_one();
        }
    }

    /// Waits for a key and marks it as being worked on.
    pub async fn get(&self) -> String {
        loop {
            let notified = self.notify.notified();
            {
                let mut q = self.lock();
                if let Some(key) = q.queue.pop_front() {
                    q.queued.remove(&key);
                    q.processing.insert(key.clone());
                    let more = !q.queue.is_empty();
                    drop(q);
                    if more {
                        // Wake another worker for the rest.
                        self.notify.notify_one();
                    }
                    return key;
                }
            }
            notified.await;
        }
    }

    /// Ends work on `key`, queueing it again if it changed meanwhile.
    pub fn done(&self, key: &str) {
        let again = {
            let mut q = self.lock();
            q.processing.remove(key);
            q.dirty.remove(key)
        };
        if again {
            self.add(key);
        }
    }

    /// Keys waiting (not counting those being worked on).
    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dedups_and_requeues_keys_changed_while_processing() {
        let q = WorkQueue::default();
        q.add("a");
        q.add("a");
        q.add("b");
        assert_eq!(q.len(), 2);
        let a = q.get().await;
        assert_eq!(a, "a");
        q.add("a"); // changed while processing: not handed out twice
        assert_eq!(q.get().await, "b");
        assert!(q.is_empty());
        q.done("a");
        assert_eq!(q.get().await, "a");
        q.done("a");
        q.done("b");
        assert!(q.is_empty());
    }
}
