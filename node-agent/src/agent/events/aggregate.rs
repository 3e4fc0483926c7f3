//! Which Event writes to make (pure): a repeat of the same reason and
//! message about the same object bumps one Event's `count` instead of
//! adding Events, and writes about one object are rate limited by a token
//! bucket (as the kubelet's spam filter does), so a crash loop or a
//! failing probe does not flood the store. Occurrences that arrive while
//! the bucket is empty are counted and land with the next write allowed.

use std::collections::HashMap;

/// Identifies one aggregated Event: object uid, reason, message.
pub type Key = (String, String, String);

/// Token bucket settings per object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Writes allowed at once.
    pub burst: u32,
    /// One more write allowed per this many ms.
    pub refill_ms: u64,
    /// Keys remembered at most (oldest forgotten first).
    pub max_keys: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            burst: 25,
            refill_ms: 10_000,
            max_keys: 4096,
        }
    }
}

/// What to write now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Write {
    /// A new Event with this count.
    Create { count: i32 },
    /// Raise the existing Event's count to this.
    Update { count: i32 },
    /// Nothing now (rate limited): counted for later.
    Hold,
}

#[derive(Clone, Debug)]
struct Entry {
    count: i32,
    written: bool,
    last_seen_ms: u64,
}

#[derive(Clone, Debug)]
struct Bucket {
    tokens: u32,
    refilled_at_ms: u64,
}

/// The aggregation state.
#[derive(Debug, Default)]
pub struct Aggregator {
    limits: Limits,
    entries: HashMap<Key, Entry>,
    buckets: HashMap<String, Bucket>,
}

impl Aggregator {
    /// With these limits.
    pub fn new(limits: Limits) -> Self {
        Aggregator {
            limits,
            ..Aggregator::default()
        }
    }

    fn take_token(&mut self, uid: &str, now_ms: u64) -> bool {
        let limits = self.limits;
        let b = self.buckets.entry(uid.to_string()).or_insert(Bucket {
            tokens: limits.burst,
            refilled_at_ms: now_ms,
        });
        let refill = limits.refill_ms.max(1);
        let earned = now_ms.saturating_sub(b.refilled_at_ms) / refill;
        if earned > 0 {
            let earned = u32::try_from(earned).unwrap_or(u32::MAX);
            b.tokens = b.tokens.saturating_add(earned).min(limits.burst);
            b.refilled_at_ms = now_ms;
        }
        if b.tokens == 0 {
            return false;
        }
        b.tokens -= 1;
        true
    }

    /// One more occurrence of `key` at `now_ms`.
    pub fn record(&mut self, key: &Key, now_ms: u64) -> Write {
        if !self.entries.contains_key(key) && self.entries.len() >= self.limits.max_keys {
            self.evict_oldest();
        }
        let allowed = self.take_token(&key.0, now_ms);
        let e = self.entries.entry(key.clone()).or_insert(Entry {
            count: 0,
            written: false,
            last_seen_ms: now_ms,
        });
        e.count = e.count.saturating_add(1);
        e.last_seen_ms = now_ms;
        if !allowed {
            return Write::Hold;
        }
        if e.written {
            Write::Update { count: e.count }
        } else {
            e.written = true;
            Write::Create { count: e.count }
        }
    }

    /// The write of `key` failed: the next occurrence creates afresh.
    pub fn forget(&mut self, key: &Key) {
        if let Some(e) = self.entries.get_mut(key) {
            e.written = false;
        }
    }

    fn evict_oldest(&mut self) {
        if let Some(oldest) = self
            .entries
            .iter()
            .min_by_key(|(_, e)| e.last_seen_ms)
            .map(|(k, _)| k.clone())
        {
            self.entries.remove(&oldest);
        }
        if self.buckets.len() > self.limits.max_keys {
            self.buckets.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(uid: &str, reason: &str) -> Key {
        (uid.into(), reason.into(), "m".into())
    }

    #[test]
    fn repeats_aggregate_into_one_event() {
        let mut a = Aggregator::new(Limits::default());
        let k = key("u1", "BackOff");
        assert_eq!(a.record(&k, 0), Write::Create { count: 1 });
        assert_eq!(a.record(&k, 10), Write::Update { count: 2 });
        assert_eq!(
            a.record(&key("u1", "Unhealthy"), 20),
            Write::Create { count: 1 }
        );
        a.forget(&k);
        assert_eq!(a.record(&k, 30), Write::Create { count: 3 });
    }

    #[test]
    fn a_flood_is_rate_limited_per_object_and_counted() {
        let mut a = Aggregator::new(Limits {
            burst: 3,
            refill_ms: 1_000,
            max_keys: 100,
        });
        let k = key("u1", "BackOff");
        let writes: Vec<Write> = (0..10).map(|i| a.record(&k, i)).collect();
        assert_eq!(
            writes.iter().filter(|w| **w != Write::Hold).count(),
            3,
            "{writes:?}"
        );
        // Another object has its own bucket.
        assert_eq!(
            a.record(&key("u2", "BackOff"), 10),
            Write::Create { count: 1 }
        );
        // A token later the held occurrences land in the count.
        assert_eq!(a.record(&k, 1_100), Write::Update { count: 11 });
        assert_eq!(a.record(&k, 1_200), Write::Hold);
    }

    #[test]
    fn keys_are_bounded() {
        let mut a = Aggregator::new(Limits {
            burst: 100,
            refill_ms: 1,
            max_keys: 2,
        });
        a.record(&key("a", "r"), 0);
        a.record(&key("b", "r"), 1);
        a.record(&key("c", "r"), 2);
        assert_eq!(a.entries.len(), 2);
        // "a" was forgotten: it starts a new Event.
        assert_eq!(a.record(&key("a", "r"), 3), Write::Create { count: 1 });
    }
}
