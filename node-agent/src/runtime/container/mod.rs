//! The container runtime: OCI runtime spec generation, overlay root
//! filesystems, cgroup observations, and the [`ContainerRuntime`] trait with
//! its libcontainer implementation (used only inside the per-pod shim,
//! because libcontainer forks).

pub mod bundle;
pub mod cgroup;
pub mod libcontainer;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod user;

use std::os::fd::OwnedFd;
use std::path::Path;

use nix::sys::signal::Signal;

pub use libcontainer::LibcontainerRuntime;
pub use spec::{ContainerSpec, NetworkMode, ProcessSpec, Resources, runtime_spec};

/// Where the container's standard streams go.
#[derive(Debug)]
pub struct Stdio {
    /// Standard input; `/dev/null` when absent.
    pub stdin: Option<OwnedFd>,
    /// Standard output.
    pub stdout: OwnedFd,
    /// Standard error.
    pub stderr: OwnedFd,
}

/// A runtime verb failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The container could not be created (bad spec, missing executable,
    /// cgroup or namespace setup failed).
    #[error("creating container {id}: {reason}")]
    Create { id: String, reason: String },
    /// The created container could not be started.
    #[error("starting container {id}: {reason}")]
    Start { id: String, reason: String },
    /// Signalling failed.
    #[error("signalling container {id}: {reason}")]
    Kill { id: String, reason: String },
    /// Deleting (cgroups, state) failed.
    #[error("deleting container {id}: {reason}")]
    Delete { id: String, reason: String },
}

/// The OCI runtime verbs the shim needs, in the order it uses them.
pub trait ContainerRuntime {
    /// Creates the container described by `bundle/config.json`, with its
    /// init process waiting to be started; returns the init pid (a child of
    /// the caller, so the caller can reap it).
    fn create(&self, id: &str, bundle: &Path, stdio: Stdio) -> Result<i32, RuntimeError>;
    /// Lets the init process exec the container's program.
    fn start(&self, id: &str) -> Result<(), RuntimeError>;
    /// Sends a signal to the init process (or every process, with `all`).
    fn kill(&self, id: &str, signal: Signal, all: bool) -> Result<(), RuntimeError>;
    /// Removes the container's cgroups and runtime state, killing what is left.
    fn delete(&self, id: &str) -> Result<(), RuntimeError>;
}
