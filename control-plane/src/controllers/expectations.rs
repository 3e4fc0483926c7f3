//! Expectations: what a controller has asked for but not yet seen in its
//! cache. Until its creations and deletions are observed (or time out), a
//! controller does not act on the count again, so a stale cache never makes
//! it create or delete twice.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use drover_proto::Time;

use crate::controllers::runtime::Clock;
use crate::controllers::runtime::clock::elapsed;

/// How long an unobserved expectation holds: a lost watch event must not
/// block a controller forever (Kubernetes uses 5 minutes).
pub const EXPECTATION_TTL: Duration = Duration::from_secs(300);

#[derive(Debug)]
struct Expected {
    creations: i64,
    /// Keys (`namespace/name`) of pods we asked to delete; a set so one
    /// deletion observed twice (marked, then removed) counts once.
    deletions: HashSet<String>,
    set_at: Time,
}

/// Outstanding creations and deletions per controller key.
pub struct Expectations {
    inner: Mutex<HashMap<String, Expected>>,
    clock: Arc<dyn Clock>,
}

impl Expectations {
    pub fn new(clock: Arc<dyn Clock>) -> Expectations {
        Expectations {
            inner: Mutex::default(),
            clock,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Expected>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `key`'s last creations and deletions have all been seen (or expired).
    pub fn satisfied(&self, key: &str) -> bool {
        let now = self.clock.now();
        match self.lock().get(key) {
            None => true,
            Some(e) => {
                (e.creations <= 0 && e.deletions.is_empty())
                    || elapsed(e.set_at, now) > EXPECTATION_TTL
            }
        }
    }

    /// Records that `n` creations are about to be issued.
    pub fn expect_creations(&self, key: &str, n: usize) {
        let now = self.clock.now();
        self.lock().insert(
            key.to_string(),
            Expected {
                creations: i64::try_from(n).unwrap_or(i64::MAX),
                deletions: HashSet::new(),
                set_at: now,
            },
        );
    }

    /// Records that these pods are about to be deleted.
    pub fn expect_deletions(&self, key: &str, pods: impl IntoIterator<Item = String>) {
        let now = self.clock.now();
        self.lock().insert(
            key.to_string(),
            Expected {
                creations: 0,
                deletions: pods.into_iter().collect(),
                set_at: now,
            },
        );
    }

    /// A creation was seen, or failed and will never be seen.
    pub fn creation_observed(&self, key: &str) {
        if let Some(e) = self.lock().get_mut(key) {
            e.creations -= 1;
        }
    }

    /// A deletion was seen, or failed and will never be seen.
    pub fn deletion_observed(&self, key: &str, pod: &str) {
        if let Some(e) = self.lock().get_mut(key) {
            e.deletions.remove(pod);
        }
    }

    /// Drops `key`'s record (its controller object is gone).
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::runtime::FakeClock;

    #[test]
    fn holds_until_observed_or_expired() {
        let clock = FakeClock::new(chrono::DateTime::UNIX_EPOCH);
        let e = Expectations::new(Arc::new(clock.clone()));
        assert!(e.satisfied("ns/rs"));
        e.expect_creations("ns/rs", 2);
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(!e.satisfied("ns/rs"));
        e.creation_observed("ns/rs");
        assert!(e.satisfied("ns/rs"));

        e.expect_deletions("ns/rs", ["ns/p1".to_string()]);
        e.deletion_observed("ns/rs", "ns/p1");
        e.deletion_observed("ns/rs", "ns/p1");
        assert!(e.satisfied("ns/rs"));

        e.expect_creations("ns/rs", 1);
        clock.step(EXPECTATION_TTL + Duration::from_secs(1));
        assert!(e.satisfied("ns/rs"), "expired expectations do not block");
    }
}
