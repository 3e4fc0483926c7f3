//! The synchronous Raft member: owns `RawNode`, the sled store and the state machine.
//!
//! It has no threads, timers or sockets: callers tick it, step messages into it
//! and drain its `Ready` through [`Core::handle_ready`]. The async node task and
//! the deterministic test network both drive this same type.

mod apply;
mod ready;
mod status;

use std::collections::{BTreeMap, HashMap};

use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfChangeType, Message};
use raft::{RawNode, StateRole};
use tokio::sync::oneshot;

pub use status::{Leadership, MemberStatus, Role, Status};

use crate::config::RaftConfig;
use crate::envelope::{Envelope, Members};
use crate::error::{MembershipError, ProposeError, ReadError, StartError, StepError};
use crate::state_machine::StateMachine;
use crate::storage::SledStorage;

/// Reply channel for a proposed command.
pub type ProposeReply<R> = oneshot::Sender<Result<R, ProposeError>>;
/// Reply channel for a membership change.
pub type ChangeReply = oneshot::Sender<Result<(), MembershipError>>;
/// Reply channel for a linearizable read barrier.
pub type ReadReply = oneshot::Sender<Result<(), ReadError>>;

/// A membership change request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberChange {
    /// Add a voter reachable at this Raft transport address.
    Add { id: u64, addr: String },
    /// Remove a member (the leader included).
    Remove { id: u64 },
}

enum Waiter<R> {
    Command(ProposeReply<R>),
    Change(ChangeReply),
}

impl<R> Waiter<R> {
    fn fail(self, e: ProposeError) {
        // A caller that stopped waiting is not an error.
        match self {
            Waiter::Command(tx) => drop(tx.send(Err(e))),
            Waiter::Change(tx) => drop(tx.send(Err(e.into()))),
        }
    }
}

/// A read barrier handed to raft (or held until raft can take it).
struct InflightRead {
    reply: ReadReply,
    /// Ticks since raft last saw it.
    age: usize,
    /// Held back: a new leader drops reads until it commits in its term.
    deferred: bool,
}

/// One Raft member.
pub struct Core<S: StateMachine> {
    id: u64,
    cfg: RaftConfig,
    raw: RawNode<SledStorage>,
    sm: S,
    /// Distinguishes this process's proposals from a previous incarnation's.
    incarnation: u64,
    next_seq: u64,
    /// Proposals awaiting apply, keyed by (log index, seq).
    pending: BTreeMap<(u64, u64), Waiter<S::Response>>,
    /// Read barriers sent to raft, keyed by seq, awaiting their read index.
    reads_inflight: HashMap<u64, InflightRead>,
    /// Read barriers whose index is known, awaiting apply.
    reads_ready: BTreeMap<u64, Vec<ReadReply>>,
    /// Ticks each follower has spent waiting on a snapshot.
    snapshot_wait: HashMap<u64, usize>,
    /// A snapshot file being written in the background.
    snapshot_job: Option<crate::storage::SnapshotJob>,
    /// Last index applied to the state machine.
    applied: u64,
    removed: bool,
    last_term: u64,
    rejected_messages: u64,
    members_version: u64,
}

impl<S: StateMachine> Core<S> {
    /// Starts a member on `storage`. With `bootstrap` and an empty store, the
    /// store is initialised with those members as the first configuration;
    /// an already initialised store ignores it; an empty store without it
    /// waits to be added by the leader.
    pub fn new(
        cfg: RaftConfig,
        mut storage: SledStorage,
        mut sm: S,
        bootstrap: Option<Members>,
    ) -> Result<Self, StartError> {
        cfg.validate()?;
        if !storage.is_initialized()
            && let Some(members) = bootstrap
        {
            let state = sm.snapshot().map_err(|e| StartError::Restore {
                index: 0,
                detail: e.to_string(),
            })?;
            storage.bootstrap(members, state)?;
        }
        let snap_index = storage.snapshot_index();
        if sm.applied_index() < snap_index {
            let snap = storage.stored_snapshot()?;
            let restore_err = |detail: String| StartError::Restore {
                index: snap_index,
                detail,
            };
            let env = Envelope::decode(&snap.data).map_err(|e| restore_err(e.to_string()))?;
            sm.restore(snap_index, &env.state)
                .map_err(|e| restore_err(e.to_string()))?;
        }
        let applied = sm.applied_index();
        let last = raft::Storage::last_index(&storage)?.max(snap_index);
        if applied > last {
            return Err(StartError::StateAhead { applied, last });
        }
        if applied > storage.hard_state().commit {
            // Applied implies committed; the commit index is persisted lazily.
            storage.set_commit(applied)?;
            storage.persist()?;
        }
        let sole_voter = storage.conf_state().voters == [cfg.id];
        let logger = crate::logger::raft_logger(cfg.id);
        let mut raw = RawNode::new(&cfg.to_raft(applied), storage, &logger)?;
        if sole_voter {
            // A one-member cluster need not wait out an election timeout.
            raw.campaign()?;
        }
        let incarnation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ cfg.id.rotate_left(48);
        let last_term = raw.raft.term;
        Ok(Self {
            id: cfg.id,
            cfg,
            raw,
            sm,
            incarnation,
            next_seq: 1,
            pending: BTreeMap::new(),
            reads_inflight: HashMap::new(),
            reads_ready: BTreeMap::new(),
            snapshot_wait: HashMap::new(),
            snapshot_job: None,
            applied,
            removed: false,
            last_term,
            rejected_messages: 0,
            members_version: 0,
        })
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The replicated state machine (for tests and local stale reads).
    pub fn state_machine(&self) -> &S {
        &self.sm
    }

    /// Member addresses as of the applied log.
    pub fn members(&self) -> &Members {
        self.raw.store().members()
    }

    /// Bumped whenever `members()` changes, so a transport can resync cheaply.
    pub fn members_version(&self) -> u64 {
        self.members_version
    }

    pub fn is_removed(&self) -> bool {
        self.removed
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        self.raw.tick();
        self.expire_snapshot_waits();
        for r in self.reads_inflight.values_mut() {
            r.age += 1;
        }
        self.reissue_reads(true);
    }

    /// A follower that never acknowledges a snapshot (the message was lost)
    /// would stay paused forever; after a few election timeouts report the
    /// snapshot failed so raft probes and resends.
    fn expire_snapshot_waits(&mut self) {
        if self.raw.raft.state != StateRole::Leader {
            self.snapshot_wait.clear();
            return;
        }
        let waiting: Vec<u64> = self
            .raw
            .raft
            .prs()
            .iter()
            .filter(|(_, pr)| pr.state == raft::ProgressState::Snapshot)
            .map(|(id, _)| *id)
            .collect();
        self.snapshot_wait.retain(|id, _| waiting.contains(id));
        let limit = 3 * self.cfg.election_ticks;
        for id in waiting {
            let ticks = self.snapshot_wait.entry(id).or_insert(0);
            *ticks += 1;
            if *ticks > limit {
                *ticks = 0;
                self.raw.report_snapshot(id, raft::SnapshotStatus::Failure);
            }
        }
    }

    /// True if `from` may send us Raft messages: a member of the current
    /// configuration or address book. A member not yet configured accepts
    /// anyone, since the leader adding it is the only one who knows it.
    pub fn is_known_peer(&self, from: u64) -> bool {
        let store = self.raw.store();
        if !store.is_initialized() {
            return true;
        }
        let cs = store.conf_state();
        store.members().contains_key(&from)
            || cs.voters.contains(&from)
            || cs.learners.contains(&from)
            || cs.voters_outgoing.contains(&from)
    }

    /// Steps a message received from a peer, encoded with raft's codec.
    pub fn step_bytes(&mut self, bytes: &[u8]) -> Result<(), StepError> {
        let msg = Message::parse_from_bytes(bytes)?;
        self.step(msg)
    }

    /// Steps a decoded message received from a peer.
    pub fn step(&mut self, msg: Message) -> Result<(), StepError> {
        if msg.to != self.id {
            self.rejected_messages += 1;
            return Err(StepError::WrongRecipient {
                to: msg.to,
                me: self.id,
            });
        }
        if !self.is_known_peer(msg.from) {
            self.rejected_messages += 1;
            return Err(StepError::UnknownPeer { from: msg.from });
        }
        match self.raw.step(msg) {
            // A peer message for a member we do not track (e.g. just removed)
            // is ordinary churn, not an error of ours.
            Err(raft::Error::StepPeerNotFound) => Ok(()),
            r => r.map_err(StepError::from),
        }
    }

    fn leader_hint(&self) -> Option<u64> {
        Some(self.raw.raft.leader_id).filter(|&l| l != raft::INVALID_ID)
    }

    fn next_context(&mut self) -> (u64, Vec<u8>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        (seq, self.read_context(seq))
    }

    /// Proposes a command; `reply` gets the state machine's response once the
    /// command is committed and applied here.
    pub fn propose(&mut self, command: Vec<u8>, reply: ProposeReply<S::Response>) {
        if let Err(e) = self.check_leader() {
            drop(reply.send(Err(e)));
            return;
        }
        let (seq, ctx) = self.next_context();
        match self.raw.propose(ctx, command) {
            Ok(()) => {
                let index = self.raw.raft.raft_log.last_index();
                self.pending.insert((index, seq), Waiter::Command(reply));
            }
            Err(_) => drop(reply.send(Err(ProposeError::Dropped))),
        }
    }

    fn check_leader(&self) -> Result<(), ProposeError> {
        if self.removed {
            return Err(ProposeError::Removed);
        }
        if self.raw.raft.state != StateRole::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader_hint(),
            });
        }
        Ok(())
    }

    /// Proposes a membership change; `reply` resolves once it is applied here.
    pub fn change_membership(&mut self, change: MemberChange, reply: ChangeReply) {
        if let Err(e) = self.check_leader() {
            drop(reply.send(Err(e.into())));
            return;
        }
        let voters = &self.raw.store().conf_state().voters;
        let mut cc = ConfChange::default();
        let check = match &change {
            MemberChange::Add { id, .. } | MemberChange::Remove { id } if *id == 0 => {
                Err(MembershipError::ZeroId)
            }
            MemberChange::Add { id, .. } if voters.contains(id) => {
                Err(MembershipError::AlreadyMember(*id))
            }
            MemberChange::Remove { id } if !voters.contains(id) => {
                Err(MembershipError::NotMember(*id))
            }
            MemberChange::Remove { .. } if voters.len() == 1 => Err(MembershipError::LastMember),
            MemberChange::Add { id, addr } => {
                cc.set_change_type(ConfChangeType::AddNode);
                cc.node_id = *id;
                cc.context = addr.clone().into_bytes().into();
                Ok(())
            }
            MemberChange::Remove { id } => {
                cc.set_change_type(ConfChangeType::RemoveNode);
                cc.node_id = *id;
                Ok(())
            }
        };
        if let Err(e) = check {
            drop(reply.send(Err(e)));
            return;
        }
        if self.raw.raft.has_pending_conf() {
            drop(reply.send(Err(MembershipError::ChangeInProgress)));
            return;
        }
        let (seq, ctx) = self.next_context();
        match self.raw.propose_conf_change(ctx, cc) {
            Ok(()) => {
                let index = self.raw.raft.raft_log.last_index();
                self.pending.insert((index, seq), Waiter::Change(reply));
            }
            Err(_) => drop(reply.send(Err(ProposeError::Dropped.into()))),
        }
    }

    /// Starts a linearizable read barrier: `reply` resolves once this member
    /// has applied everything committed when the read was issued.
    pub fn read_index(&mut self, reply: ReadReply) {
        if self.removed {
            drop(reply.send(Err(ReadError::Removed)));
            return;
        }
        if self.leader_hint().is_none() {
            drop(reply.send(Err(ReadError::NoLeader { leader: None })));
            return;
        }
        let (seq, ctx) = self.next_context();
        let deferred =
            self.raw.raft.state == StateRole::Leader && !self.raw.raft.commit_to_current_term();
        self.reads_inflight.insert(
            seq,
            InflightRead {
                reply,
                age: 0,
                deferred,
            },
        );
        if !deferred {
            self.raw.read_index(ctx);
        }
    }

    fn read_context(&self, seq: u64) -> Vec<u8> {
        let mut ctx = self.incarnation.to_be_bytes().to_vec();
        ctx.extend_from_slice(&seq.to_be_bytes());
        ctx
    }

    /// raft-rs drops read requests silently (a leader that has not committed
    /// in its term, a lost forward): hand deferred ones over once the leader
    /// can serve them, and re-issue any unanswered for an election timeout.
    /// Reads are idempotent, so a duplicate answer is harmless.
    fn reissue_reads(&mut self, aged: bool) {
        let can_serve =
            self.raw.raft.state != StateRole::Leader || self.raw.raft.commit_to_current_term();
        if !can_serve || self.leader_hint().is_none() {
            return;
        }
        let limit = self.cfg.election_ticks;
        let due: Vec<u64> = self
            .reads_inflight
            .iter_mut()
            .filter(|(_, r)| r.deferred || (aged && r.age >= limit))
            .map(|(seq, r)| {
                r.deferred = false;
                r.age = 0;
                *seq
            })
            .collect();
        for seq in due {
            let ctx = self.read_context(seq);
            self.raw.read_index(ctx);
        }
    }

    /// The transport could not reach `id`: raft falls back to probing it.
    pub fn report_unreachable(&mut self, id: u64) {
        self.raw.report_unreachable(id);
    }

    /// Asks raft to hand leadership to `to` (used before planned removals).
    pub fn transfer_leader(&mut self, to: u64) {
        self.raw.transfer_leader(to);
    }

    pub fn has_ready(&self) -> bool {
        self.raw.has_ready()
    }
}
