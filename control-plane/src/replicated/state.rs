//! The control plane's state as Raft's replicated state machine: committed
//! commands are applied in log order on every member, persisted to the
//! member's store (one batch per run of entries, without an fsync: the Raft
//! log is the write-ahead log, and a restart replays everything after the
//! stored `m/applied`), and fed to the member's watchers.

use std::sync::{Arc, RwLock};

use drover_proto::Object;
use tokio::sync::{broadcast, watch};

use crate::command::{ApplyError, Command};
use crate::state::{Change, StateMachine};
use crate::store::disk;

/// What the proposer of a command gets back: the log index it was applied
/// at (so a forwarding follower can wait for its own apply) and the outcome.
#[derive(Debug, Clone)]
pub struct Applied {
    pub index: u64,
    pub result: Result<Arc<Object>, ApplyError>,
}

/// The replicated state machine of one member.
pub struct ReplicatedState {
    pub(super) state: Arc<RwLock<StateMachine>>,
    pub(super) events: broadcast::Sender<Arc<Change>>,
    pub(super) db: sled::Db,
    pub(super) tree: sled::Tree,
    applied: u64,
    applied_tx: watch::Sender<u64>,
    /// Applied but not yet written to the store: the objects changed since
    /// the last batch, and whether anything (even a no-op) moved `applied`.
    unwritten: sled::Batch,
    unwritten_any: bool,
    /// Set after a failed store write: later entries must not record an
    /// applied index past the lost one, so nothing more is persisted and a
    /// restart replays from the last good index.
    persist_failed: bool,
}

impl ReplicatedState {
    pub(super) fn new(
        state: StateMachine,
        db: sled::Db,
        tree: sled::Tree,
        applied: u64,
    ) -> (ReplicatedState, watch::Receiver<u64>) {
        let (events, _) = broadcast::channel(1 << 16);
        let (applied_tx, applied_rx) = watch::channel(applied);
        (
            ReplicatedState {
                state: Arc::new(RwLock::new(state)),
                events,
                db,
                tree,
                applied,
                applied_tx,
                unwritten: sled::Batch::default(),
                unwritten_any: false,
                persist_failed: false,
            },
            applied_rx,
        )
    }

    fn stage(&mut self, changes: &[Arc<Change>]) {
        if !self.persist_failed {
            disk::stage_applied(&mut self.unwritten, changes);
            self.unwritten_any = true;
        }
    }

    /// Writes what was staged since the last call as one sled batch.
    fn write_unwritten(&mut self) {
        if !std::mem::take(&mut self.unwritten_any) {
            return;
        }
        let mut batch = std::mem::take(&mut self.unwritten);
        if self.persist_failed {
            return;
        }
        let state = self.state.read().unwrap_or_else(|p| p.into_inner());
        disk::stage_applied_index(&mut batch, &state, self.applied);
        drop(state);
        if let Err(e) = self.tree.apply_batch(batch) {
            tracing::error!(index = self.applied, error = %e, "cannot write applied entries to the store; they will be replayed from the raft log at restart");
            metrics::counter!("drover_store_write_failures_total").increment(1);
            self.persist_failed = true;
        }
    }

    fn advance(&mut self, index: u64) {
        self.applied = index;
        self.applied_tx.send_replace(index);
    }
}

impl drover_raft::StateMachine for ReplicatedState {
    type Response = Applied;

    fn apply(&mut self, index: u64, command: &[u8]) -> Applied {
        let result = match serde_json::from_slice::<Command>(command) {
            Err(e) => {
                self.advance_noop(index);
                return Applied {
                    index,
                    result: Err(ApplyError::Invalid(format!(
                        "undecodable command at log index {index}: {e}"
                    ))),
                };
            }
            Ok(command) => {
                let shared = self.state.clone();
                let mut state = shared.write().unwrap_or_else(|p| p.into_inner());
                let (result, changes) = state.apply(&command);
                metrics::gauge!("drover_store_objects").set(state.len() as f64);
                metrics::gauge!("drover_store_revision").set(state.revision() as f64);
                drop(state);
                self.stage(&changes);
                for c in changes {
                    let _ = self.events.send(c);
                }
                result
            }
        };
        self.advance(index);
        Applied { index, result }
    }

    fn apply_noop(&mut self, index: u64) {
        self.advance_noop(index);
    }

    fn end_of_batch(&mut self) {
        self.write_unwritten();
    }

    fn snapshot(&self) -> Result<Vec<u8>, drover_raft::BoxError> {
        // The log up to here is about to be compacted: the store must hold
        // it durably first.
        if self.persist_failed {
            return Err("the store failed a write; refusing to let the log be compacted".into());
        }
        if self.unwritten_any {
            return Err("applied entries are not written to the store yet".into());
        }
        disk::sync(&self.db)?;
        Ok(self
            .state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .snapshot())
    }

    fn restore(&mut self, index: u64, data: &[u8]) -> Result<(), drover_raft::BoxError> {
        let shared = self.state.clone();
        let mut state = shared.write().unwrap_or_else(|p| p.into_inner());
        state.restore(data)?;
        // The snapshot supersedes whatever was applied but not yet written.
        self.unwritten = sled::Batch::default();
        self.unwritten_any = false;
        disk::replace_all(&self.db, &self.tree, &state, index)?;
        self.persist_failed = false;
        drop(state);
        self.advance(index);
        // Watchers notice the jump in revisions at the next change and resume
        // from the history or relist (store::watch).
        Ok(())
    }

    fn applied_index(&self) -> u64 {
        self.applied
    }
}

impl ReplicatedState {
    fn advance_noop(&mut self, index: u64) {
        self.stage(&[]);
        self.advance(index);
    }
}
