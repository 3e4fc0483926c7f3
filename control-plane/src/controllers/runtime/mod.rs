//! The controller runtime: informers feed caches, handlers enqueue keys, a
//! deduplicating rate-limited queue hands keys to workers, and a
//! [`Reconciler`] converges one key at a time. Time comes from a [`Clock`].

pub mod action;
pub mod cache;
pub mod clock;
pub mod informer;
pub mod queue;
pub mod worker;

pub use action::Action;
pub use cache::{Cache, Notification, key_of, split_key};
pub use clock::{Clock, FakeClock, SystemClock};
pub use informer::{Handler, Informer};
pub use queue::{Backoff, WorkQueue};
pub use worker::{Reconciler, drain, run_workers};
