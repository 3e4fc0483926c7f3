//! One error enum per operation; each message reads well in a CLI error or an Event.

use crate::config::ConfigError;
use crate::storage::{OpenError, PersistError};

/// Why a proposed command has no result.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProposeError {
    /// this member is not the leader; forward to `leader` if known
    #[error("not the leader (leader: {})", fmt_leader(*.leader))]
    NotLeader { leader: Option<u64> },
    /// the command was definitely not committed (another entry took its place); safe to retry
    #[error("proposal dropped before commit (leadership changed); safe to retry")]
    Dropped,
    /// the outcome is unknown: the member fell behind and was replaced by a snapshot
    #[error("proposal outcome unknown (member caught up from a snapshot); check before retrying")]
    Indeterminate,
    /// this member was removed from the cluster
    #[error("this member was removed from the cluster")]
    Removed,
    /// the Raft node has stopped
    #[error("raft node stopped")]
    Stopped,
}

/// Why a linearizable read could not be confirmed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    /// no known leader to confirm the read index
    #[error("no leader to confirm a linearizable read (leader: {})", fmt_leader(*.leader))]
    NoLeader { leader: Option<u64> },
    /// leadership changed while the read was in flight; safe to retry
    #[error("leadership changed during the read; safe to retry")]
    LeadershipChanged,
    /// this member was removed from the cluster
    #[error("this member was removed from the cluster")]
    Removed,
    /// the Raft node has stopped
    #[error("raft node stopped")]
    Stopped,
}

/// Why a membership change was refused or failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MembershipError {
    /// the change was not committed
    #[error(transparent)]
    Propose(#[from] ProposeError),
    /// the member to add already exists
    #[error("member {0} already exists")]
    AlreadyMember(u64),
    /// the member to remove does not exist
    #[error("member {0} is not in the cluster")]
    NotMember(u64),
    /// member ids must be non-zero
    #[error("member id must not be 0")]
    ZeroId,
    /// removing the last voter would leave no cluster
    #[error("cannot remove the last member")]
    LastMember,
    /// raft-rs refuses a second change while one is pending
    #[error("another membership change is still being applied; retry")]
    ChangeInProgress,
}

/// Why an inbound Raft message was rejected.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// the bytes are not a Raft message
    #[error("undecodable raft message: {0}")]
    Decode(#[from] protobuf::ProtobufError),
    /// the message is for another member
    #[error("message for member {to} delivered to member {me}")]
    WrongRecipient { to: u64, me: u64 },
    /// the sender is not a member of this cluster
    #[error("message from unknown peer {from} rejected")]
    UnknownPeer { from: u64 },
    /// the message claims a sender other than the member the connection's
    /// certificate proves
    #[error(
        "message claiming to be from member {claimed} rejected: the connection's certificate is member {proven}'s"
    )]
    Impersonation { claimed: u64, proven: u64 },
    /// raft-rs rejected the message
    #[error("raft rejected message: {0}")]
    Raft(#[from] raft::Error),
    /// the Raft node has stopped
    #[error("raft node stopped")]
    Stopped,
}

/// Why a member could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// invalid settings
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// the data dir could not be opened
    #[error(transparent)]
    Open(#[from] OpenError),
    /// the initial state could not be written
    #[error(transparent)]
    Persist(#[from] PersistError),
    /// raft-rs refused the stored state
    #[error("raft refused the stored state: {0}")]
    Raft(#[from] raft::Error),
    /// the state machine could not be restored from the stored snapshot
    #[error("state machine restore from snapshot at {index} failed: {detail}")]
    Restore { index: u64, detail: String },
    /// the state machine claims entries the log does not have
    #[error(
        "state machine applied index {applied} is beyond the raft log ({last}); wrong data dir?"
    )]
    StateAhead { applied: u64, last: u64 },
    /// the node thread could not be started
    #[error("cannot start raft thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// A fault that stops the node: continuing could serve or acknowledge wrong data.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Raft state could not be made durable
    #[error(transparent)]
    Persist(#[from] PersistError),
    /// raft-rs panicked (an impossible state, or a storage read error)
    #[error("raft node panicked: {0}")]
    Panicked(String),
    /// a committed entry could not be applied
    #[error("cannot apply committed entry {index}: {detail}")]
    Apply { index: u64, detail: String },
}

fn fmt_leader(leader: Option<u64>) -> String {
    leader.map_or_else(|| "unknown".to_owned(), |id| id.to_string())
}
