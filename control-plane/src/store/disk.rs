//! The on-disk layout in one sled tree (so a batch is atomic):
//! `o/{key}` → object JSON, `h/{revision:be64}` → change JSON (the watch
//! history), `m/revision`, `m/compacted` and (replicated) `m/applied` → be64.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use drover_proto::{Kind, Object};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

use super::{MAX_BATCH, OpenError, Proposal, StoreError, elapsed_seconds};
use crate::state::{Change, ChangeType, StateMachine};

const REVISION: &[u8] = b"m/revision";
const COMPACTED: &[u8] = b"m/compacted";
/// Raft mode only: the log index the stored state reflects.
const APPLIED: &[u8] = b"m/applied";

/// A history entry; borrowed when written, owned when loaded.
#[derive(Serialize, Deserialize)]
struct StoredChange<'a> {
    revision: u64,
    #[serde(rename = "type")]
    type_: Cow<'a, str>,
    kind: Kind,
    key: Cow<'a, str>,
    object: Cow<'a, Object>,
    #[serde(default)]
    prev: Option<Cow<'a, Object>>,
}

fn history_key(revision: u64) -> Vec<u8> {
    let mut k = b"h/".to_vec();
    k.extend_from_slice(&revision.to_be_bytes());
    k
}

fn be64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

pub(crate) fn open(
    data_dir: &Path,
    history_limit: usize,
) -> Result<(sled::Db, sled::Tree, StateMachine), OpenError> {
    let path = data_dir.display().to_string();
    std::fs::create_dir_all(data_dir).map_err(|e| OpenError::Db {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let db = sled::Config::new()
        .path(data_dir.join("store"))
        .mode(sled::Mode::HighThroughput)
        .open()
        .map_err(|e| match e {
            sled::Error::Corruption { .. } | sled::Error::Unsupported(_) => OpenError::Corrupt {
                path: path.clone(),
                message: e.to_string(),
            },
            other => OpenError::Db {
                path: path.clone(),
                message: other.to_string(),
            },
        })?;
    let tree = db.open_tree("state").map_err(|e| OpenError::Db {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let state =
        load(&tree, history_limit).map_err(|message| OpenError::Corrupt { path, message })?;
    Ok((db, tree, state))
}

/// Rebuilds the state machine from the tree.
pub(crate) fn load(tree: &sled::Tree, history_limit: usize) -> Result<StateMachine, String> {
    let mut state = StateMachine::new(history_limit);
    for item in tree.scan_prefix(b"o/") {
        let (k, v) = item.map_err(|e| e.to_string())?;
        let object: Object = serde_json::from_slice(&v)
            .map_err(|e| format!("object {}: {e}", String::from_utf8_lossy(&k)))?;
        state.insert_loaded(object)?;
    }
    let read_u64 = |key: &[u8]| -> Result<u64, String> {
        match tree.get(key).map_err(|e| e.to_string())? {
            None => Ok(0),
            Some(v) => {
                be64(&v).ok_or_else(|| format!("{} is not 8 bytes", String::from_utf8_lossy(key)))
            }
        }
    };
    let revision = read_u64(REVISION)?;
    let compacted = read_u64(COMPACTED)?;
    state.set_loaded_revision(revision, compacted);
    for item in tree.scan_prefix(b"h/") {
        let (_, v) = item.map_err(|e| e.to_string())?;
        let c: StoredChange =
            serde_json::from_slice(&v).map_err(|e| format!("history entry: {e}"))?;
        if c.revision <= compacted {
            // Left by a version that stored the replicated history.
            continue;
        }
        if c.revision > revision {
            return Err(format!(
                "history entry {} is newer than the revision {revision}",
                c.revision
            ));
        }
        let type_ = match c.type_.as_ref() {
            "ADDED" => ChangeType::Added,
            "MODIFIED" => ChangeType::Modified,
            _ => ChangeType::Deleted,
        };
        state.push_loaded_change(Change::new(
            c.revision,
            type_,
            c.kind,
            c.key.into_owned(),
            Arc::new(c.object.into_owned()),
            c.prev.map(|p| Arc::new(p.into_owned())),
        ));
    }
    if !state.is_empty() && revision == 0 {
        return Err("objects present but no revision recorded".into());
    }
    Ok(state)
}

pub(super) struct Writer {
    pub state: Arc<RwLock<StateMachine>>,
    pub tree: sled::Tree,
    pub db: sled::Db,
    pub events: broadcast::Sender<Arc<Change>>,
    pub data_dir: PathBuf,
    pub history_limit: usize,
}

impl Writer {
    /// Drains proposals in batches until every sender is gone.
    pub(super) fn run(self, mut rx: mpsc::Receiver<Proposal>) {
        while let Some(first) = rx.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            self.commit(batch);
        }
    }

    fn commit(&self, batch: Vec<Proposal>) {
        let start = Instant::now();
        let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
        let mut results = Vec::with_capacity(batch.len());
        let mut changes: Vec<Arc<Change>> = Vec::new();
        for p in &batch {
            let (result, mut c) = state.apply(&p.command);
            results.push(result.map_err(StoreError::from));
            changes.append(&mut c);
        }
        if !changes.is_empty()
            && let Err(e) = persist(&self.tree, &state, &changes).and_then(|()| sync(&self.db))
        {
            // Nothing of this batch is durable: drop it from memory too.
            tracing::error!(error = %e, "store write failed; reloading state from disk");
            metrics::counter!("drover_store_write_failures_total").increment(1);
            match load(&self.tree, self.history_limit) {
                Ok(s) => *state = s,
                Err(le) => {
                    tracing::error!(error = %le, dir = %self.data_dir.display(), "cannot reload state")
                }
            }
            drop(state);
            for p in batch {
                let _ = p.reply.send(Err(StoreError::Unavailable(e.clone())));
            }
            return;
        }
        let objects = state.len();
        let revision = state.revision();
        drop(state);
        metrics::histogram!("drover_store_commit_seconds").record(elapsed_seconds(start));
        metrics::histogram!("drover_store_batch_commands").record(batch.len() as f64);
        metrics::gauge!("drover_store_objects").set(objects as f64);
        metrics::gauge!("drover_store_revision").set(revision as f64);
        for (p, r) in batch.into_iter().zip(results) {
            let _ = p.reply.send(r);
        }
        for c in changes {
            let _ = self.events.send(c);
        }
    }
}

/// Single server: writes `changes`, with the watch history and the
/// history compaction and revision they imply, in one atomic sled batch
/// (the store is the only record of them). Not durable until [`sync`].
pub(crate) fn persist(
    tree: &sled::Tree,
    state: &StateMachine,
    changes: &[Arc<Change>],
) -> Result<(), String> {
    if changes.is_empty() {
        return Ok(());
    }
    let mut b = sled::Batch::default();
    stage_objects(&mut b, changes);
    for c in changes {
        b.insert(history_key(c.revision), history_entry(state, c)?);
    }
    // Persisted history keeps what memory keeps: drop what was compacted.
    let compacted = state.compacted();
    for item in tree.range(history_key(0)..=history_key(compacted)) {
        let (k, _) = item.map_err(|e| e.to_string())?;
        b.remove(k);
    }
    b.insert(REVISION, &state.revision().to_be_bytes());
    b.insert(COMPACTED, &compacted.to_be_bytes());
    tree.apply_batch(b).map_err(|e| e.to_string())
}

/// A [`StoredChange`] as JSON, splicing in the JSON the change and its
/// predecessor already have instead of serialising both objects again.
fn history_entry(state: &StateMachine, c: &Change) -> Result<Vec<u8>, String> {
    let prev = c.prev.as_ref().map(|p| {
        let made_by = p.metadata.revision().and_then(|r| state.change_at(r));
        match made_by {
            Some(m) if Arc::ptr_eq(&m.object, p) => Cow::Borrowed(m.object_json()),
            _ => Cow::Owned(p.to_json()),
        }
    });
    let object = c.object_json();
    let mut v = Vec::with_capacity(object.len() + prev.as_ref().map_or(0, |p| p.len()) + 128);
    v.extend_from_slice(b"{\"revision\":");
    write_json(&mut v, &c.revision)?;
    v.extend_from_slice(b",\"type\":");
    write_json(&mut v, &c.type_.as_str())?;
    v.extend_from_slice(b",\"kind\":");
    write_json(&mut v, &c.kind)?;
    v.extend_from_slice(b",\"key\":");
    write_json(&mut v, &c.key.as_str())?;
    v.extend_from_slice(b",\"object\":");
    v.extend_from_slice(object);
    if let Some(p) = prev {
        v.extend_from_slice(b",\"prev\":");
        v.extend_from_slice(&p);
    }
    v.push(b'}');
    Ok(v)
}

fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, x: &T) -> Result<(), String> {
    serde_json::to_writer(out, x).map_err(|e| e.to_string())
}

/// Raft mode: stages the objects `changes` leave behind. The watch history
/// is not stored: the Raft log is the record of changes, and after a restart
/// a member's watchers resume from its current revision while older ones
/// relist, as after an etcd compaction.
pub(crate) fn stage_applied(b: &mut sled::Batch, changes: &[Arc<Change>]) {
    stage_objects(b, changes);
}

/// Raft mode: stages the revision and the log index the staged objects
/// reflect, closing a batch.
pub(crate) fn stage_applied_index(b: &mut sled::Batch, state: &StateMachine, index: u64) {
    let revision = state.revision().to_be_bytes();
    b.insert(REVISION, &revision);
    b.insert(COMPACTED, &revision);
    b.insert(APPLIED, &index.to_be_bytes());
}

fn stage_objects(b: &mut sled::Batch, changes: &[Arc<Change>]) {
    for c in changes {
        let okey = format!("o/{}", c.key);
        match c.type_ {
            ChangeType::Deleted => b.remove(okey.as_bytes()),
            _ => b.insert(okey.as_bytes(), c.object_json()),
        }
    }
}

/// Makes everything staged so far durable (one fsync).
pub(crate) fn sync(db: &sled::Db) -> Result<(), String> {
    let start = Instant::now();
    db.flush().map_err(|e| e.to_string())?;
    metrics::histogram!("drover_store_fsync_seconds").record(elapsed_seconds(start));
    Ok(())
}

/// The Raft index the stored state reflects (0: none, or a local store).
pub(crate) fn applied_index(tree: &sled::Tree) -> Result<u64, String> {
    match tree.get(APPLIED).map_err(|e| e.to_string())? {
        None => Ok(0),
        Some(v) => be64(&v).ok_or_else(|| "m/applied is not 8 bytes".to_string()),
    }
}

/// Replaces everything stored with `state` (a Raft snapshot at `applied`) and syncs.
pub(crate) fn replace_all(
    db: &sled::Db,
    tree: &sled::Tree,
    state: &StateMachine,
    applied: u64,
) -> Result<(), String> {
    tree.clear().map_err(|e| e.to_string())?;
    let mut b = sled::Batch::default();
    for (key, o) in state.objects() {
        b.insert(format!("o/{key}").as_bytes(), o.to_json());
    }
    b.insert(REVISION, &state.revision().to_be_bytes());
    b.insert(COMPACTED, &state.compacted().to_be_bytes());
    b.insert(APPLIED, &applied.to_be_bytes());
    tree.apply_batch(b).map_err(|e| e.to_string())?;
    sync(db)
}
