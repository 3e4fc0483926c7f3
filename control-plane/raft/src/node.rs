//! The node task: one thread owns the [`Core`] and drives it on a timer; [`RaftHandle`] talks to it.
//!
//! The task runs on its own thread with a single-threaded runtime because each
//! `Ready` ends in a blocking fsync; while it syncs, new proposals queue up and
//! are drained into the next `Ready` together (group commit).

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use protobuf::Message as _;
use raft::prelude::Message;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::RaftConfig;
use crate::core::{
    ChangeReply, Core, Leadership, MemberChange, ProposeReply, ReadReply, Role, Status,
};
use crate::envelope::Members;
use crate::error::{MembershipError, NodeError, ProposeError, ReadError, StartError};
use crate::state_machine::StateMachine;
use crate::storage::SledStorage;
use crate::transport::{Inbox, KnownPeers, Transport};

/// Most queued items taken into one `Ready`, so one burst cannot starve ticks.
const MAX_DRAIN: usize = 4096;
const COMMAND_QUEUE: usize = 65_536;
const MESSAGE_QUEUE: usize = 65_536;

enum Command<R> {
    Propose(Vec<u8>, ProposeReply<R>),
    Read(ReadReply),
    Change(MemberChange, ChangeReply),
    Status(oneshot::Sender<Status>),
    TransferLeader(u64),
    Stop,
}

/// The node task has stopped (shut down, removed, or failed).
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
#[error("raft node stopped")]
pub struct Stopped;

/// The node thread; its result says why the node stopped.
pub type NodeThread = std::thread::JoinHandle<Result<(), NodeError>>;

/// How a member with an empty data dir comes up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Startup {
    /// One of the initial members: these members (this one included, with
    /// their Raft transport addresses) form the first configuration.
    Bootstrap(Members),
    /// A member about to be added to a running cluster: the current members'
    /// addresses, so it can answer the leader before it is configured.
    Join(Members),
    /// Restart of an initialised member (an empty dir waits to be added).
    Restart,
}

/// Starts member nodes.
pub struct RaftNode;

impl RaftNode {
    /// Opens `data_dir`, starts the node thread and returns the handle plus
    /// the thread's join handle (its result says why the node stopped).
    ///
    /// `startup` only matters when the data dir is empty; a restarted member
    /// recovers everything from disk whatever it says.
    pub fn start<S, T>(
        cfg: RaftConfig,
        data_dir: &Path,
        sm: S,
        transport: T,
        startup: Startup,
    ) -> Result<(RaftHandle<S::Response>, NodeThread), StartError>
    where
        S: StateMachine,
        T: Transport,
    {
        cfg.validate()?;
        let mut storage = SledStorage::open(data_dir, cfg.id)?;
        let bootstrap = match startup {
            Startup::Bootstrap(members) => Some(members),
            Startup::Join(members) if !storage.is_initialized() => {
                // Addresses only, no configuration: enough to answer the
                // leader until its snapshot brings the real member list.
                storage.set_members(members);
                storage.persist()?;
                None
            }
            Startup::Join(_) | Startup::Restart => None,
        };
        let tick = cfg.tick_interval;
        let id = cfg.id;
        let core = Core::new(cfg, storage, sm, bootstrap)?;
        let (cmd_tx, cmd_rx) = mpsc::channel(COMMAND_QUEUE);
        let (msg_tx, msg_rx) = mpsc::channel(MESSAGE_QUEUE);
        let (lead_tx, lead_rx) = watch::channel(core.leadership());
        // Known before the handle exists, so no message slips in unchecked.
        let known: KnownPeers = Arc::new(RwLock::new(known_peers(&core)));
        let inbox = Inbox::new(id, msg_tx, known.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        let signal = lead_tx.clone();
        let loop_state = Loop {
            core,
            transport,
            cmds: cmd_rx,
            msgs: msg_rx,
            leadership: lead_tx,
            known,
            members_version: None,
        };
        let thread = std::thread::Builder::new()
            .name(format!("raft-{id}"))
            .spawn(move || {
                // raft-rs panics on states it considers impossible (and on
                // storage read errors); the leadership signal must still drop.
                let run = std::panic::AssertUnwindSafe(|| rt.block_on(loop_state.run(tick)));
                std::panic::catch_unwind(run).unwrap_or_else(|panic| {
                    let detail = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    tracing::error!(member = id, "raft node panicked: {detail}");
                    let term = signal.borrow().term;
                    signal.send_replace(Leadership {
                        role: Role::Stopped,
                        leader: None,
                        term,
                    });
                    Err(NodeError::Panicked(detail))
                })
            })?;
        let handle = RaftHandle {
            id,
            tx: cmd_tx,
            leadership: lead_rx,
            inbox,
        };
        Ok((handle, thread))
    }
}

struct Loop<S: StateMachine, T> {
    core: Core<S>,
    transport: T,
    cmds: mpsc::Receiver<Command<S::Response>>,
    msgs: mpsc::Receiver<Message>,
    leadership: watch::Sender<Leadership>,
    known: KnownPeers,
    members_version: Option<u64>,
}

impl<S: StateMachine, T: Transport> Loop<S, T> {
    async fn run(mut self, tick: Duration) -> Result<(), NodeError> {
        let result = self.drive(tick).await;
        if let Err(e) = &result {
            tracing::error!(member = self.core.id(), "raft node stopped: {e}");
        }
        // Leader-only work must stop with the node, whatever the reason.
        let term = self.core.leadership().term;
        self.leadership.send_replace(Leadership {
            role: Role::Stopped,
            leader: None,
            term,
        });
        result
    }

    async fn drive(&mut self, tick: Duration) -> Result<(), NodeError> {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.sync_members();
        loop {
            tokio::select! {
                _ = ticker.tick() => self.core.tick(),
                m = self.msgs.recv() => match m {
                    Some(m) => self.step(m),
                    None => return Ok(()),
                },
                c = self.cmds.recv() => match c {
                    Some(Command::Stop) | None => return Ok(()),
                    Some(c) => self.exec(c),
                },
            }
            // Group commit: everything already queued joins this Ready.
            for _ in 0..MAX_DRAIN {
                let Ok(m) = self.msgs.try_recv() else { break };
                self.step(m);
            }
            for _ in 0..MAX_DRAIN {
                match self.cmds.try_recv() {
                    Ok(Command::Stop) => return Ok(()),
                    Ok(c) => self.exec(c),
                    Err(_) => break,
                }
            }
            while self.core.has_ready() {
                let transport = &mut self.transport;
                self.core.handle_ready(&mut |m| send(transport, m))?;
            }
            for id in self.transport.take_unreachable() {
                self.core.report_unreachable(id);
            }
            let now = self.core.leadership();
            self.leadership.send_if_modified(|l| {
                let changed = *l != now;
                *l = now;
                changed
            });
            self.sync_members();
        }
    }

    fn step(&mut self, m: Message) {
        if let Err(e) = self.core.step(m) {
            tracing::warn!(
                member = self.core.id(),
                "inbound raft message rejected: {e}"
            );
        }
    }

    fn exec(&mut self, c: Command<S::Response>) {
        match c {
            Command::Propose(data, reply) => self.core.propose(data, reply),
            Command::Read(reply) => self.core.read_index(reply),
            Command::Change(change, reply) => self.core.change_membership(change, reply),
            Command::Status(reply) => drop(reply.send(self.core.status())),
            Command::TransferLeader(to) => self.core.transfer_leader(to),
            Command::Stop => {}
        }
    }

    fn sync_members(&mut self) {
        let version = self.core.members_version();
        if self.members_version == Some(version) {
            return;
        }
        self.members_version = Some(version);
        let members = self.core.members().clone();
        let known = known_peers(&self.core);
        match self.known.write() {
            Ok(mut g) => *g = known,
            Err(poisoned) => *poisoned.into_inner() = known,
        }
        self.transport.set_members(&members);
    }
}

/// Senders the inbox accepts; `None` (anyone) until the member has a configuration.
fn known_peers<S: StateMachine>(core: &Core<S>) -> Option<HashSet<u64>> {
    let status = core.status();
    (!status.members.is_empty()).then(|| {
        core.members()
            .keys()
            .copied()
            .chain(status.members.iter().map(|m| m.id))
            .collect()
    })
}

fn send<T: Transport>(transport: &mut T, m: Message) {
    match m.write_to_bytes() {
        Ok(bytes) => transport.send(m.to, bytes),
        Err(e) => tracing::error!("cannot encode raft message: {e}"),
    }
}

/// What the API server holds: propose, read barrier, leadership, status, membership.
pub struct RaftHandle<R> {
    id: u64,
    tx: mpsc::Sender<Command<R>>,
    leadership: watch::Receiver<Leadership>,
    inbox: Inbox,
}

impl<R> Clone for RaftHandle<R> {
    fn clone(&self) -> Self {
        Self {
            id: self.id,
            tx: self.tx.clone(),
            leadership: self.leadership.clone(),
            inbox: self.inbox.clone(),
        }
    }
}

impl<R: Send + 'static> RaftHandle<R> {
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Replicates `command`; resolves with the state machine's response once
    /// it is committed (durable on a quorum) and applied on this member.
    /// On a follower: `NotLeader` with a hint to forward to.
    pub async fn propose(&self, command: Vec<u8>) -> Result<R, ProposeError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Propose(command, tx))
            .await
            .map_err(|_| ProposeError::Stopped)?;
        rx.await.map_err(|_| ProposeError::Stopped)?
    }

    /// Linearizable read barrier: resolves once this member's state machine
    /// has applied everything committed before the call. Then read locally.
    pub async fn read_index(&self) -> Result<(), ReadError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Read(tx))
            .await
            .map_err(|_| ReadError::Stopped)?;
        rx.await.map_err(|_| ReadError::Stopped)?
    }

    /// Adds a voter reachable at `addr` (its Raft transport address). Start
    /// the new member with an empty data dir and no bootstrap first or soon
    /// after: until it catches up, the quorum includes it.
    pub async fn add_member(&self, id: u64, addr: String) -> Result<(), MembershipError> {
        self.change(MemberChange::Add { id, addr }).await
    }

    /// Removes a member; removing the leader hands leadership to the most
    /// up-to-date follower.
    pub async fn remove_member(&self, id: u64) -> Result<(), MembershipError> {
        self.change(MemberChange::Remove { id }).await
    }

    async fn change(&self, change: MemberChange) -> Result<(), MembershipError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Change(change, tx))
            .await
            .map_err(|_| ProposeError::Stopped)?;
        rx.await.map_err(|_| ProposeError::Stopped)?
    }

    /// The leadership signal: start leader-only work when `is_leader()`, stop it when not.
    pub fn leadership(&self) -> watch::Receiver<Leadership> {
        self.leadership.clone()
    }

    /// Members, leader, term, commit/applied index and per-member lag.
    pub async fn status(&self) -> Result<Status, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Status(tx))
            .await
            .map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// Asks the leader to hand leadership to `to`.
    pub async fn transfer_leader(&self, to: u64) -> Result<(), Stopped> {
        self.tx
            .send(Command::TransferLeader(to))
            .await
            .map_err(|_| Stopped)
    }

    /// Where the transport server delivers inbound messages for this member.
    pub fn inbox(&self) -> Inbox {
        self.inbox.clone()
    }

    /// Stops the node thread (closing its store); pending callers get `Stopped`.
    pub async fn shutdown(&self) {
        // Already stopped is fine.
        drop(self.tx.send(Command::Stop).await);
    }
}
