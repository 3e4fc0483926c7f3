//! The durable store: the state machine in memory, every change persisted to
//! sled and fsync'd before it is acknowledged or shown to a watcher. Writes
//! go through one writer thread that applies queued commands as a batch and
//! syncs once per batch (group commit). This writer is the local proposer of
//! a single-member server; with `--peers` the [`Replicator`] proposes through
//! Raft instead and every member applies in log order (`crate::replicated`).

pub(crate) mod disk;
pub mod watch;

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use drover_proto::selector::{FieldSelector, Selector};
use drover_proto::{Kind, Object};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::command::{ApplyError, Command};
use crate::replicated::Replicator;
use crate::state::{Change, StateMachine};
pub use watch::{WatchFilter, WatchItem};

/// How many commands one batch (one fsync) may carry.
const MAX_BATCH: usize = 2048;

/// Why a write did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The write could not be made durable; nothing was acknowledged.
    #[error("the store could not persist the write: {0}")]
    Unavailable(String),
}

/// Why the store could not open its data directory.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open the data dir {path}: {message}")]
    Db { path: String, message: String },
    #[error(
        "the data dir {path} is corrupt ({message}); refusing to serve from it — restore it from a backup or move it away"
    )]
    Corrupt { path: String, message: String },
}

struct Proposal {
    command: Command,
    reply: oneshot::Sender<Result<Arc<Object>, StoreError>>,
}

/// Who turns a command into a durable, applied change.
enum Writes {
    /// Single member: the local writer thread (group commit, fsync per batch).
    Local(mpsc::Sender<Proposal>),
    /// A member of a replicated cluster: through the Raft log.
    Replicated(Replicator),
}

/// The control plane's state, shared by the API handlers.
pub struct Store {
    state: Arc<RwLock<StateMachine>>,
    events: broadcast::Sender<Arc<Change>>,
    writes: Writes,
    db: sled::Db,
}

impl Store {
    /// Opens (or creates) the store under `data_dir` and starts its writer thread.
    pub fn open(data_dir: &Path, history_limit: usize) -> Result<Arc<Store>, OpenError> {
        let (db, tree, state) = disk::open(data_dir, history_limit)?;
        let state = Arc::new(RwLock::new(state));
        let (events, _) = broadcast::channel(1 << 16);
        let (tx, rx) = mpsc::channel(1 << 16);
        let writer = disk::Writer {
            state: state.clone(),
            tree,
            db: db.clone(),
            events: events.clone(),
            data_dir: data_dir.to_path_buf(),
            history_limit,
        };
        std::thread::Builder::new()
            .name("drover-store-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| OpenError::Db {
                path: data_dir.display().to_string(),
                message: format!("cannot start the writer thread: {e}"),
            })?;
        Ok(Arc::new(Store {
            state,
            events,
            writes: Writes::Local(tx),
            db,
        }))
    }

    /// A store whose writes go through Raft; `state` and `events` are the
    /// ones the replicated state machine applies to.
    pub(crate) fn replicated(
        state: Arc<RwLock<StateMachine>>,
        events: broadcast::Sender<Arc<Change>>,
        db: sled::Db,
        replicator: Replicator,
    ) -> Arc<Store> {
        Arc::new(Store {
            state,
            events,
            writes: Writes::Replicated(replicator),
            db,
        })
    }

    /// The Raft side of a replicated store (None for a single member).
    pub fn replicator(&self) -> Option<&Replicator> {
        match &self.writes {
            Writes::Local(_) => None,
            Writes::Replicated(r) => Some(r),
        }
    }

    /// Applies a command durably and returns the resulting object.
    pub async fn propose(&self, command: Command) -> Result<Arc<Object>, StoreError> {
        let proposals = match &self.writes {
            Writes::Local(p) => p,
            Writes::Replicated(r) => return r.propose(&command).await,
        };
        let (reply, rx) = oneshot::channel();
        proposals
            .send(Proposal { command, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the store writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the store writer has stopped".into()))?
    }

    /// Waits until local reads are linearizable: a no-op for a single member,
    /// a Raft ReadIndex round otherwise.
    pub async fn read_barrier(&self) -> Result<(), StoreError> {
        match &self.writes {
            Writes::Local(_) => Ok(()),
            Writes::Replicated(r) => r.read_barrier().await,
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, StateMachine> {
        // A panic while holding the lock would poison it; the state is still
        // consistent (apply never panics mid-way by construction), so read on.
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn revision(&self) -> u64 {
        self.read().revision()
    }

    pub fn object_count(&self) -> usize {
        self.read().len()
    }

    /// Size of the database on disk, for `/metrics`.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<Arc<Object>> {
        self.read().get(kind, namespace, name)
    }

    /// Lists matching objects and the revision the list is consistent with.
    pub fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        labels: &Selector,
        fields: &FieldSelector,
    ) -> (Vec<Arc<Object>>, u64) {
        let state = self.read();
        (
            state.list(kind, namespace, labels, fields),
            state.revision(),
        )
    }

    /// Every applied change as it happens, all kinds (the feed watches and
    /// the dashboard follow).
    pub fn changes(&self) -> broadcast::Receiver<Arc<Change>> {
        self.events.subscribe()
    }

    /// Starts a watch: the backlog after `since` (None: from now) and a live feed.
    pub fn watch(
        &self,
        filter: WatchFilter,
        since: Option<u64>,
    ) -> Result<watch::Watch, crate::state::TooOld> {
        let state = self.read();
        let since = since.unwrap_or_else(|| state.revision());
        let backlog = state.changes_since(since)?;
        let live = self.events.subscribe();
        Ok(watch::Watch::new(
            filter,
            since,
            backlog,
            live,
            self.state.clone(),
        ))
    }
}

pub(crate) fn elapsed_seconds(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests;
