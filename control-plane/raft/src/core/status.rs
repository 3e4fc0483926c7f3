//! What a member reports about itself: leadership signal and cluster status.

use raft::StateRole;

use super::Core;
use crate::state_machine::StateMachine;

/// This member's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
    /// Removed from the cluster; it will never lead again.
    Removed,
    /// The node task has stopped (shut down or failed).
    Stopped,
}

/// The leadership signal: leader-only work runs while `role == Leader`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leadership {
    pub role: Role,
    /// The leader this member knows of, if any.
    pub leader: Option<u64>,
    pub term: u64,
}

impl Leadership {
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }
}

/// One member as the local node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    pub id: u64,
    /// Raft transport address, when known.
    pub addr: Option<String>,
    /// Highest log index known replicated on it (leader only).
    pub match_index: Option<u64>,
    /// How far its log trails the leader's last index (leader only).
    pub lag: Option<u64>,
}

/// A member's view of the cluster, for `drover cluster status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub id: u64,
    pub leadership: Leadership,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_index: u64,
    pub snapshot_index: u64,
    pub members: Vec<MemberStatus>,
    /// Inbound messages refused (unknown peer, wrong recipient) since start.
    pub rejected_messages: u64,
}

impl<S: StateMachine> Core<S> {
    pub fn leadership(&self) -> Leadership {
        let role = if self.removed {
            Role::Removed
        } else {
            match self.raw.raft.state {
                StateRole::Follower => Role::Follower,
                StateRole::PreCandidate => Role::PreCandidate,
                StateRole::Candidate => Role::Candidate,
                StateRole::Leader => Role::Leader,
            }
        };
        Leadership {
            role,
            leader: self.leader_hint(),
            term: self.raw.raft.term,
        }
    }

    pub fn applied_index(&self) -> u64 {
        self.applied
    }

    pub fn commit_index(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    pub fn status(&self) -> Status {
        let last_index = self.raw.raft.raft_log.last_index();
        let is_leader = self.raw.raft.state == StateRole::Leader;
        let store = self.raw.store();
        let cs = store.conf_state();
        let mut ids: Vec<u64> = cs.voters.iter().chain(&cs.learners).copied().collect();
        ids.sort_unstable();
        ids.dedup();
        let members = ids
            .into_iter()
            .map(|id| {
                let matched = if is_leader {
                    self.raw.raft.prs().get(id).map(|pr| pr.matched)
                } else {
                    None
                };
                MemberStatus {
                    id,
                    addr: store.members().get(&id).cloned(),
                    match_index: matched,
                    lag: matched.map(|m| last_index.saturating_sub(m)),
                }
            })
            .collect();
        Status {
            id: self.id,
            leadership: self.leadership(),
            commit_index: self.commit_index(),
            applied_index: self.applied,
            last_index,
            snapshot_index: store.snapshot_index(),
            members,
            rejected_messages: self.rejected_messages,
        }
    }
}
