//! The HorizontalPodAutoscaler's decision, as pure functions: from a
//! Deployment's pods' metrics to a replica count ([`replica_calc`]), then
//! stabilized and rate-limited by the HPA's `behavior` ([`behavior`]),
//! with Kubernetes' algorithm and defaults; [`sync`] turns one sync into
//! a plan (new size, status, Events) and [`controller`] performs it. Drover additions: a request-rate
//! metric that reaches zero scales a `minReplicas: 0` target to zero, and
//! requests held by a node's proxy wake it up again.

pub mod behavior;
pub mod controller;
pub mod observe;
pub mod replica_calc;
pub mod sync;
pub mod target;
#[cfg(test)]
mod tests;

pub use behavior::{Behavior, History, ScaleDecision, decide};
pub use controller::{DEFAULT_SYNC_PERIOD, HpaController};
pub use replica_calc::{Observation, PodSample, Recommendation, recommend};

/// Kubernetes' default tolerance: ratios within 10% of the target do nothing.
pub const TOLERANCE: f64 = 0.1;

/// The metric name for requests per second per pod (`type: Pods`).
pub const REQUESTS_PER_SECOND: &str = "requests_per_second";
