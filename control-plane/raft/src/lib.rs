//! Drover's Raft replication core: raft-rs `RawNode` driven by one task over a sled-backed log.
//!
//! - [`StateMachine`] is what the control plane implements; [`RaftHandle`] is
//!   what the API server calls (`propose`, `read_index`, leadership, status,
//!   membership).
//! - [`Core`] is the synchronous member (no threads, timers or sockets); the
//!   node task in [`node`] drives it on a timer, and the deterministic test
//!   network drives it by hand.
//! - [`Transport`] carries raft-encoded messages as opaque bytes;
//!   [`LocalNetwork`] is the in-process implementation.

pub mod config;
mod core;
pub mod envelope;
pub mod error;
pub mod grpc;
mod logger;
pub mod node;
mod snapfile;
pub mod state_machine;
pub mod storage;
pub mod transport;

#[cfg(test)]
mod sim;

pub use crate::config::{ConfigError, RaftConfig};
pub use crate::core::{Core, Leadership, MemberChange, MemberStatus, Role, Status};
pub use crate::envelope::Members;
pub use crate::error::{
    MembershipError, NodeError, ProposeError, ReadError, StartError, StepError,
};
pub use crate::node::{NodeThread, RaftHandle, RaftNode, Startup, Stopped};
pub use crate::state_machine::{BoxError, StateMachine};
pub use crate::storage::{OpenError, PersistError, SledStorage};
pub use crate::transport::{Inbox, LocalNetwork, Transport};

#[cfg(test)]
mod storage_tests;
