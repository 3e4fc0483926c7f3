//! Time as a dependency: controllers ask a `Clock`, tests step a `FakeClock`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_proto::Time;

/// Wall-clock time for timestamps and elapsed-time decisions (minReadySeconds,
/// progress deadlines, backoff).
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Time;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Time {
        chrono::Utc::now()
    }
}

/// A clock that only moves when a test says so.
#[derive(Debug, Clone)]
pub struct FakeClock {
    now: Arc<Mutex<Time>>,
}

impl FakeClock {
    pub fn new(start: Time) -> FakeClock {
        FakeClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Moves time forward.
    pub fn step(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::zero());
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Time {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// `later - earlier` as a std Duration, zero when negative.
pub fn elapsed(earlier: Time, later: Time) -> Duration {
    (later - earlier).to_std().unwrap_or(Duration::ZERO)
}
