//! What a reconcile asks of the runtime once it has acted.

use std::time::Duration;

/// When to look at the object again, even if nothing changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Action {
    pub requeue_after: Option<Duration>,
}

impl Action {
    /// Nothing to do until the object or its dependents change.
    pub fn await_change() -> Action {
        Action {
            requeue_after: None,
        }
    }

    /// Look again after `d` (a time-based condition such as minReadySeconds).
    pub fn requeue(d: Duration) -> Action {
        Action {
            requeue_after: Some(d),
        }
    }

    /// The sooner of two actions.
    pub fn min(self, other: Action) -> Action {
        match (self.requeue_after, other.requeue_after) {
            (Some(a), Some(b)) => Action::requeue(a.min(b)),
            (a, b) => Action {
                requeue_after: a.or(b),
            },
        }
    }
}
