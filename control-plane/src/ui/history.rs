//! Replicas over time per HorizontalPodAutoscaler, recorded from the
//! store's change feed for the Autoscaling chart (memory only, bounded).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use drover_proto::types::HorizontalPodAutoscaler;
use drover_proto::{Kind, Resource};

use crate::store::Store;

/// Points kept per HPA.
const MAX_POINTS: usize = 512;
/// How far back the chart looks, in seconds.
pub const WINDOW_SECONDS: f64 = 900.0;

/// (unix seconds, replicas) per `namespace/name`.
#[derive(Default)]
pub struct HpaHistory {
    series: Mutex<HashMap<String, VecDeque<(f64, i32)>>>,
}

impl HpaHistory {
    /// Records `replicas` at `now` when it differs from the last point.
    pub fn record(&self, key: &str, replicas: i32, now: f64) {
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let s = series.entry(key.to_string()).or_default();
        if s.back().is_some_and(|(_, r)| *r == replicas) {
            return;
        }
        s.push_back((now, replicas));
        while s.len() > MAX_POINTS
            || s.front()
                .is_some_and(|(t, _)| now - t > WINDOW_SECONDS * 2.0)
        {
            s.pop_front();
        }
    }

    pub fn forget(&self, key: &str) {
        self.series
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// (seconds ago, replicas), oldest first, starting with the value in
    /// force at the window's start.
    pub fn points(&self, key: &str, now: f64) -> Vec<(f64, i32)> {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = series.get(key) else {
            return Vec::new();
        };
        let start = now - WINDOW_SECONDS;
        let mut out: Vec<(f64, i32)> = Vec::new();
        for (t, r) in s {
            if *t < start {
                out.clear();
                out.push((WINDOW_SECONDS, *r));
            } else {
                out.push((now - t, *r));
            }
        }
        out
    }
}

pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn key(h: &HorizontalPodAutoscaler) -> String {
    format!("{}/{}", h.namespace(), h.name())
}

/// Seeds from the current HPAs and follows the change feed until the store goes away.
pub fn spawn_recorder(store: Arc<Store>, history: Arc<HpaHistory>) {
    let mut feed = store.changes();
    let (hpas, _) = store.list(
        Kind::HorizontalPodAutoscaler,
        None,
        &Default::default(),
        &Default::default(),
    );
    let now = unix_now();
    for o in hpas {
        if let Ok(h) = HorizontalPodAutoscaler::from_object(&o) {
            history.record(&key(&h), h.status.map_or(0, |s| s.current_replicas), now);
        }
    }
    drop(store);
    tokio::spawn(async move {
        loop {
            match feed.recv().await {
                Ok(c) if c.kind == Kind::HorizontalPodAutoscaler => {
                    let Ok(h) = HorizontalPodAutoscaler::from_object(&c.object) else {
                        continue;
                    };
                    if c.type_ == crate::state::ChangeType::Deleted {
                        history.forget(&key(&h));
                    } else {
                        history.record(
                            &key(&h),
                            h.status.map_or(0, |s| s.current_replicas),
                            unix_now(),
                        );
                    }
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_keep_changes_in_the_window_and_the_value_in_force_before_it() {
        let h = HpaHistory::default();
        h.record("d/web", 1, 1000.0);
        h.record("d/web", 1, 1001.0); // unchanged: not a point
        h.record("d/web", 3, 1800.0);
        h.record("d/web", 2, 1950.0);
        let p = h.points("d/web", 2000.0);
        // 1000 is outside the 900 s window: it becomes the value at the window start.
        assert_eq!(p, vec![(900.0, 1), (200.0, 3), (50.0, 2)]);
        assert!(h.points("d/other", 2000.0).is_empty());
        h.forget("d/web");
        assert!(h.points("d/web", 2000.0).is_empty());
    }
}
