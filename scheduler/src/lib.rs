//! Drover's scheduler: filter/score plugins over a cluster snapshot, priority
//! preemption, and the scheduling loop that binds pending pods on the leader.
//!
//! The core is pure: [`schedule`] reads a [`ClusterSnapshot`] and a pod and
//! returns a node name or a [`FitError`]. The loop in [`run`] keeps the snapshot
//! current from watch, queues pending pods and binds them by compare-and-set.

pub mod config;
pub mod fit_error;
pub mod framework;
pub mod scheduling_loop;

pub mod plugins;
pub mod preemption;
pub mod queue;
pub mod resources;
pub mod schedule;
pub mod snapshot;
pub mod testing;

pub use config::{SchedulerConfig, ScoringStrategy};
pub use fit_error::{FitError, Reason};
pub use scheduling_loop::{RunError, run};

pub use preemption::{Preemption, Victim, find_preemption};
pub use schedule::{Scheduler, schedule};
pub use snapshot::{ClusterSnapshot, NodeInfo, PodInfo};

/// The name of a node, as `spec.nodeName` carries it.
pub type NodeName = String;
