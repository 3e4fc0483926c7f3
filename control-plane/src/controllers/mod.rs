//! Controllers: level-triggered reconcile loops that run on the leader and
//! make the cluster converge (ReplicaSets keep pods, Deployments roll
//! ReplicaSets). Built on [`runtime`]; they talk to the API only through
//! [`api::ControllerApi`], so tests run them against [`fake::FakeApi`].

pub mod api;
pub mod autoscaler;
pub mod claim;
pub mod deployment;
pub mod endpoints;
pub mod error;
pub mod event_ttl;
pub mod events;
pub mod expectations;
pub mod fake;
#[cfg(test)]
mod harness;
pub mod node_lifecycle;
pub mod pods;
pub mod replicaset;
pub mod run;
pub mod runtime;

pub use error::ControllerError;
pub use run::{ControllerConfig, run_controllers};
