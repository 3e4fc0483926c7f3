//! Commands: every write to the cluster state. They carry everything that
//! would otherwise need a clock or randomness (uids, timestamps), so applying
//! the same commands in the same order gives the same state on every replica.

use drover_proto::{Kind, Object, Time};
use serde::{Deserialize, Serialize};

/// One write, as it would be proposed to Raft.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Command {
    /// Stores a new object; uid and creationTimestamp are already set.
    Create { object: Object },
    /// Replaces metadata and body but keeps status.
    Update {
        object: Object,
        precondition: Option<u64>,
    },
    /// Replaces status only.
    UpdateStatus {
        object: Object,
        precondition: Option<u64>,
    },
    /// Sets a pending pod's `spec.nodeName` (the scheduler's binding).
    Bind {
        namespace: String,
        name: String,
        node: String,
        precondition: Option<u64>,
    },
    /// Deletes an object, or marks it when finalizers or a grace period hold it.
    Delete {
        kind: Kind,
        namespace: String,
        name: String,
        precondition: Option<u64>,
        propagation: Propagation,
        /// None: the kind's default (graceful for pods bound to a node).
        grace_period_seconds: Option<i64>,
        now: Time,
    },
}

/// What happens to an object's dependents when it is deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Propagation {
    /// Delete the owner now and its dependents right after.
    #[default]
    Background,
    /// Delete the dependents first; the owner stays (terminating) until they are gone.
    Foreground,
    /// Keep the dependents, dropping their owner reference.
    Orphan,
}

impl Propagation {
    pub fn parse(s: &str) -> Result<Propagation, String> {
        match s {
            "" | "Background" | "background" => Ok(Propagation::Background),
            "Foreground" | "foreground" => Ok(Propagation::Foreground),
            "Orphan" | "orphan" => Ok(Propagation::Orphan),
            other => Err(format!(
                "propagation policy {other:?}: must be Background, Foreground or Orphan"
            )),
        }
    }
}

/// Why a command was refused. Messages follow the Kubernetes API's wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum ApplyError {
    #[error("{kind} \"{name}\" not found")]
    NotFound { kind: String, name: String },
    #[error("{kind} \"{name}\" already exists")]
    AlreadyExists { kind: String, name: String },
    #[error(
        "operation cannot be fulfilled on {kind} \"{name}\": the object has been modified (resourceVersion {expected} expected, {actual} current); re-read it and try again"
    )]
    Conflict {
        kind: String,
        name: String,
        expected: u64,
        actual: u64,
    },
    /// A binding that lost to another change: the pod is bound or going away.
    #[error("cannot bind pod \"{name}\": {why}")]
    NotBindable { name: String, why: String },
    #[error("{0}")]
    Invalid(String),
}
