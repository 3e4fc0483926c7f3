//! Per-second rates from cumulative counters (pure): CPU nanoseconds,
//! connection counts. Time is passed in, so tests step it.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::Duration;

/// The previous reading of every counter, to difference the next against.
#[derive(Debug, Clone)]
pub struct Rates<K> {
    previous: HashMap<K, (Duration, u64)>,
}

impl<K> Default for Rates<K> {
    fn default() -> Self {
        Rates {
            previous: HashMap::new(),
        }
    }
}

impl<K: Clone + Eq + Hash + Ord> Rates<K> {
    /// Per-second rates of `readings` taken at `now` since each counter's
    /// previous reading. A counter seen for the first time has no rate yet;
    /// one that went backwards was reset (a new cgroup, a flushed table)
    /// and counts from zero, as Prometheus' `rate` does. Counters not in
    /// `readings` are forgotten.
    pub fn update(&mut self, now: Duration, readings: BTreeMap<K, u64>) -> BTreeMap<K, f64> {
        let mut rates = BTreeMap::new();
        let mut next = HashMap::with_capacity(readings.len());
        for (key, value) in readings {
            if let Some(&(then, before)) = self.previous.get(&key) {
                let elapsed = now.saturating_sub(then).as_secs_f64();
                if elapsed > 0.0 {
                    let increase = if value >= before {
                        value - before
                    } else {
                        value
                    };
                    rates.insert(key.clone(), increase as f64 / elapsed);
                }
            }
            next.insert(key, (now, value));
        }
        self.previous = next;
        rates
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    #[test]
    fn rates_are_increases_over_elapsed_time() {
        let mut r = Rates::default();
        assert!(r.update(at(0), BTreeMap::from([("a", 100)])).is_empty());
        let rates = r.update(at(500), BTreeMap::from([("a", 150), ("b", 7)]));
        assert_eq!(rates, BTreeMap::from([("a", 100.0)]));
        let rates = r.update(at(1500), BTreeMap::from([("a", 150), ("b", 17)]));
        assert_eq!(rates, BTreeMap::from([("a", 0.0), ("b", 10.0)]));
    }

    #[test]
    fn a_reset_counts_from_zero_and_gone_counters_are_forgotten() {
        let mut r = Rates::default();
        r.update(at(0), BTreeMap::from([("a", 1000), ("b", 1)]));
        let rates = r.update(at(1000), BTreeMap::from([("a", 30)]));
        assert_eq!(rates, BTreeMap::from([("a", 30.0)]));
        // b came back: a first reading again.
        let rates = r.update(at(2000), BTreeMap::from([("b", 5)]));
        assert!(rates.is_empty());
        // Same instant twice: no rate rather than a division by zero.
        assert!(r.update(at(2000), BTreeMap::from([("b", 6)])).is_empty());
    }
}
