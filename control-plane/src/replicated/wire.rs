//! What a follower sends the leader over the Raft transport's `Forward` RPC,
//! and what comes back (JSON: both ends are the same build).

use drover_proto::Object;
use drover_proto::grpc as pb;
use serde::{Deserialize, Serialize};

use crate::command::{ApplyError, Command};

/// A request only the leader can serve.
#[derive(Debug, Serialize, Deserialize)]
pub enum Forwarded {
    Command(Box<Command>),
    AddMember { id: u64, peer_addr: String },
    RemoveMember { id: u64 },
    Status,
}

/// The leader's answer.
#[derive(Debug, Serialize, Deserialize)]
pub enum ForwardReply {
    /// The command was committed and applied at `index` on the leader.
    Applied {
        index: u64,
        result: Result<Box<Object>, ApplyError>,
    },
    MemberChanged,
    Status(ClusterStatus),
}

/// One member's view of the cluster (`drover cluster status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub id: u64,
    pub leader: Option<u64>,
    pub term: u64,
    pub role: String,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_index: u64,
    pub snapshot_index: u64,
    pub members: Vec<ClusterMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterMember {
    pub id: u64,
    pub peer_addr: String,
    pub match_index: Option<u64>,
    pub lag: Option<u64>,
}

impl From<drover_raft::Status> for ClusterStatus {
    fn from(s: drover_raft::Status) -> ClusterStatus {
        ClusterStatus {
            id: s.id,
            leader: s.leadership.leader,
            term: s.leadership.term,
            role: format!("{:?}", s.leadership.role),
            commit_index: s.commit_index,
            applied_index: s.applied_index,
            last_index: s.last_index,
            snapshot_index: s.snapshot_index,
            members: s
                .members
                .into_iter()
                .map(|m| ClusterMember {
                    id: m.id,
                    peer_addr: m.addr.unwrap_or_default(),
                    match_index: m.match_index,
                    lag: m.lag,
                })
                .collect(),
        }
    }
}

impl ClusterStatus {
    /// The gRPC reply; `answered_by` is the member the client talked to.
    pub fn into_reply(self, answered_by: u64) -> pb::ClusterStatusReply {
        pb::ClusterStatusReply {
            id: self.id,
            leader: self.leader,
            term: self.term,
            role: self.role,
            commit_index: self.commit_index,
            applied_index: self.applied_index,
            last_index: self.last_index,
            snapshot_index: self.snapshot_index,
            members: self
                .members
                .into_iter()
                .map(|m| pb::ClusterMember {
                    id: m.id,
                    peer_addr: m.peer_addr,
                    match_index: m.match_index,
                    lag: m.lag,
                })
                .collect(),
            answered_by,
        }
    }
}
