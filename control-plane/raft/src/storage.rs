//! Raft log, hard state, conf state, member addresses and the latest snapshot, persisted in sled.
//!
//! Writes are staged into one sled batch and made durable by [`SledStorage::persist`]
//! (apply + fsync), which the node calls once per `Ready` before anything that
//! depends on those writes leaves the process. Only the node task touches it, so
//! it needs no locks; the in-memory indexes mirror what is on disk.

use std::cell::Cell;
use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::prelude::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState};

use crate::envelope::{Envelope, Members};
use crate::snapfile;

const FORMAT: &[u8] = b"drover-raft/1";
const IDENTITY_FILE: &str = "IDENTITY";
/// Highest commit index known durable in sled, written (without fsync) after
/// each sled fsync. Sled recovers a truncated file to a consistent prefix
/// without complaint; this is how such a silent loss is caught at open.
const WATERMARK_FILE: &str = "COMMITTED";
const WATERMARK_CHECK: u64 = 0x6472_6f76_6572_7266;
const K_FORMAT: &[u8] = b"m:format";
const K_HARD_STATE: &[u8] = b"m:hard_state";
const K_CONF_STATE: &[u8] = b"m:conf_state";
const K_TRUNCATED: &[u8] = b"m:truncated";
const K_SNAP_META: &[u8] = b"m:snapshot_meta";
const K_MEMBERS: &[u8] = b"m:members";
const ENTRY_PREFIX: u8 = b'e';
/// Compacted entries deleted per synced batch.
const GC_STEP: u64 = 256;

fn entry_key(index: u64) -> [u8; 9] {
    let mut k = [ENTRY_PREFIX; 9];
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Why a data dir could not be opened. Nothing is served from a store that fails here.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// the sled database could not be opened (often: corrupt files)
    #[error("cannot open raft store in {path}: {source}")]
    Sled { path: PathBuf, source: sled::Error },
    /// reading or writing the identity file failed
    #[error("cannot access {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// the store's contents are inconsistent or undecodable
    #[error("raft data dir {path} is corrupt or truncated ({detail}); refusing to start")]
    Corrupt { path: PathBuf, detail: String },
    /// the data dir belongs to another member
    #[error("raft data dir {path} belongs to member {found}, not {expected}")]
    WrongMember {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
}

/// Why staged Raft state could not be made durable. The node stops on this.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// sled failed to write or fsync
    #[error("raft store write failed: {0}")]
    Sled(#[from] sled::Error),
    /// raft handed the store something that contradicts it (a bug, never input)
    #[error("raft store invariant violated: {0}")]
    Invariant(String),
    /// the state machine could not produce or restore a snapshot
    #[error("snapshot failed: {0}")]
    Snapshot(String),
}

/// A snapshot file being written in the background.
pub struct SnapshotJob {
    meta: SnapshotMetadata,
    thread: std::thread::JoinHandle<std::io::Result<()>>,
}

impl SnapshotJob {
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}

/// `raft::Storage` on sled.
pub struct SledStorage {
    db: sled::Db,
    batch: sled::Batch,
    dirty: bool,
    hard_state: HardState,
    conf_state: ConfState,
    snap_meta: SnapshotMetadata,
    /// Index and term of the entry just before the first one kept.
    truncated: (u64, u64),
    last_index: u64,
    members: Members,
    watermark: Watermark,
    dir: PathBuf,
    /// Superseded snapshot files to delete after the next sync.
    prune_snapshots: bool,
    /// Lowest log key that may still exist below the truncation point.
    gc_next: u64,
    /// Batches applied to sled but not yet fsync'd.
    unsynced: bool,
    /// Set when raft asked for a snapshot newer than the stored one.
    snapshot_requested: Cell<bool>,
}

impl SledStorage {
    /// Opens (or creates) the store of member `id` under `dir`, checking every
    /// record, so a corrupt or truncated store is refused rather than served.
    pub fn open(dir: &Path, id: u64) -> Result<Self, OpenError> {
        std::fs::create_dir_all(dir).map_err(|source| OpenError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let corrupt = |detail: String| OpenError::Corrupt {
            path: dir.to_owned(),
            detail,
        };
        let identity_path = dir.join(IDENTITY_FILE);
        let identity = match std::fs::read_to_string(&identity_path) {
            Ok(s) => Some(
                s.trim()
                    .parse::<u64>()
                    .map_err(|_| corrupt(format!("{IDENTITY_FILE} does not hold a member id")))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(OpenError::Io {
                    path: identity_path,
                    source,
                });
            }
        };
        if let Some(found) = identity
            && found != id
        {
            return Err(OpenError::WrongMember {
                path: dir.to_owned(),
                found,
                expected: id,
            });
        }
        let db_path = dir.join("raft.sled");
        let db = sled::Config::new()
            .path(&db_path)
            // We fsync exactly when Raft needs it; a background flusher
            // would only add fsyncs that compete with ours.
            .flush_every_ms(None)
            // The log is append-mostly and compacted in bulk: trade disk
            // space for less rewriting.
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(|source| OpenError::Sled {
                path: db_path.clone(),
                source,
            })?;
        let sled_err = |source| OpenError::Sled {
            path: db_path.clone(),
            source,
        };
        match (identity, db.get(K_FORMAT).map_err(sled_err)?) {
            (Some(_), Some(f)) if f.as_ref() == FORMAT => {}
            (Some(_), Some(_)) => return Err(corrupt("unknown store format".into())),
            (Some(_), None) => {
                return Err(corrupt(
                    "the data dir was initialised but the raft store is empty".into(),
                ));
            }
            (None, _) if !db.is_empty() => {
                return Err(corrupt(format!(
                    "raft store has data but {IDENTITY_FILE} is missing"
                )));
            }
            (None, _) => {
                db.insert(K_FORMAT, FORMAT).map_err(sled_err)?;
                db.flush().map_err(sled_err)?;
                Watermark::create(&dir.join(WATERMARK_FILE))?;
                std::fs::write(&identity_path, format!("{id}\n")).map_err(|source| {
                    OpenError::Io {
                        path: identity_path.clone(),
                        source,
                    }
                })?;
            }
        }
        let watermark = Watermark::open(&dir.join(WATERMARK_FILE)).map_err(|e| match e {
            WatermarkError::Io(source) => OpenError::Io {
                path: dir.join(WATERMARK_FILE),
                source,
            },
            WatermarkError::Garbled => corrupt(format!("{WATERMARK_FILE} is garbled")),
        })?;
        let mut store = Self {
            db,
            batch: sled::Batch::default(),
            dirty: false,
            hard_state: HardState::default(),
            conf_state: ConfState::default(),
            snap_meta: SnapshotMetadata::default(),
            truncated: (0, 0),
            last_index: 0,
            members: Members::new(),
            watermark,
            unsynced: false,
            gc_next: u64::MAX,
            dir: dir.to_owned(),
            prune_snapshots: false,
            snapshot_requested: Cell::new(false),
        };
        store.load().map_err(corrupt)?;
        if store.hard_state.commit < store.watermark.value {
            return Err(corrupt(format!(
                "the store lost committed entries: commit index {} is below the recorded {}",
                store.hard_state.commit, store.watermark.value
            )));
        }
        Ok(store)
    }

    /// Loads and cross-checks every record; the error says what is wrong.
    fn load(&mut self) -> Result<(), String> {
        let get = |k: &[u8]| self.db.get(k).map_err(|e| format!("read failed: {e}"));
        if let Some(v) = get(K_HARD_STATE)? {
            self.hard_state = HardState::parse_from_bytes(&v)
                .map_err(|e| format!("hard state undecodable: {e}"))?;
        }
        if let Some(v) = get(K_CONF_STATE)? {
            self.conf_state = ConfState::parse_from_bytes(&v)
                .map_err(|e| format!("conf state undecodable: {e}"))?;
        }
        if let Some(v) = get(K_SNAP_META)? {
            self.snap_meta = SnapshotMetadata::parse_from_bytes(&v)
                .map_err(|e| format!("snapshot metadata undecodable: {e}"))?;
            let data = snapfile::read(&self.dir, self.snap_meta.index)?;
            Envelope::decode(&data).map_err(|e| e.to_string())?;
        }
        if let Some(v) = get(K_MEMBERS)? {
            self.members = Envelope::decode(&v).map_err(|e| e.to_string())?.members;
        }
        if let Some(v) = get(K_TRUNCATED)? {
            let b: [u8; 16] = v
                .as_ref()
                .try_into()
                .map_err(|_| "truncation record has the wrong length")?;
            let (i, t) = b.split_at(8);
            self.truncated = (
                u64::from_be_bytes(i.try_into().map_err(|_| "bad truncation index")?),
                u64::from_be_bytes(t.try_into().map_err(|_| "bad truncation term")?),
            );
        }
        let mut expected = self.truncated.0 + 1;
        for kv in self.db.scan_prefix([ENTRY_PREFIX]) {
            let (k, v) = kv.map_err(|e| format!("log scan failed: {e}"))?;
            let idx = k
                .get(1..)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
                .ok_or("log key malformed")?;
            if idx <= self.truncated.0 {
                // Compacted but not yet deleted: garbage collected lazily.
                self.gc_next = self.gc_next.min(idx);
                continue;
            }
            let entry = Entry::parse_from_bytes(&v)
                .map_err(|e| format!("log entry {idx} undecodable: {e}"))?;
            if idx != expected || entry.index != idx {
                return Err(format!(
                    "log has a gap: expected entry {expected}, found {idx} holding {}",
                    entry.index
                ));
            }
            expected += 1;
        }
        self.last_index = expected - 1;
        if self.snap_meta.index < self.truncated.0 {
            return Err("log truncated beyond the snapshot".into());
        }
        if self.hard_state.commit > self.last_index.max(self.snap_meta.index) {
            return Err(format!(
                "commit index {} beyond the last log entry {}",
                self.hard_state.commit, self.last_index
            ));
        }
        Ok(())
    }

    /// True once the member has a configuration (bootstrapped or caught up).
    pub fn is_initialized(&self) -> bool {
        self.conf_state != ConfState::default()
    }

    /// Creates the initial cluster configuration: a snapshot at index 1, term 1
    /// holding `members` as voters and the empty state machine's `state`, so a
    /// member added later catches up from a snapshot that carries the config.
    pub fn bootstrap(&mut self, members: Members, state: Vec<u8>) -> Result<(), PersistError> {
        if self.is_initialized() {
            return Err(PersistError::Invariant("already bootstrapped".into()));
        }
        let mut snap = Snapshot::default();
        let meta = snap.mut_metadata();
        meta.index = 1;
        meta.term = 1;
        meta.mut_conf_state().voters = members.keys().copied().collect();
        snap.data = Envelope { members, state }.encode().into();
        self.apply_snapshot(&snap)?;
        self.persist()
    }

    /// Current member addresses (from bootstrap, snapshots and applied changes).
    pub fn members(&self) -> &Members {
        &self.members
    }

    pub fn set_members(&mut self, members: Members) {
        let bytes = Envelope {
            members: members.clone(),
            state: Vec::new(),
        }
        .encode();
        self.members = members;
        self.stage(K_MEMBERS, bytes);
    }

    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    pub fn snapshot_index(&self) -> u64 {
        self.snap_meta.index
    }

    pub fn take_snapshot_request(&self) -> bool {
        self.snapshot_requested.replace(false)
    }

    fn stage(&mut self, key: &[u8], value: Vec<u8>) {
        self.batch.insert(key, value);
        self.dirty = true;
    }

    fn encode<M: protobuf::Message>(m: &M) -> Result<Vec<u8>, PersistError> {
        m.write_to_bytes()
            .map_err(|e| PersistError::Invariant(format!("encode failed: {e}")))
    }

    /// Stages `entries`, replacing any conflicting suffix of the log.
    pub fn append(&mut self, entries: &[Entry]) -> Result<(), PersistError> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        if first.index <= self.truncated.0 || first.index > self.last_index + 1 {
            return Err(PersistError::Invariant(format!(
                "append at {} outside log ({}, {}]",
                first.index, self.truncated.0, self.last_index
            )));
        }
        for stale in last.index + 1..=self.last_index {
            self.batch.remove(&entry_key(stale));
        }
        for e in entries {
            let bytes = Self::encode(e)?;
            self.batch.insert(&entry_key(e.index), bytes);
        }
        self.last_index = last.index;
        self.dirty = true;
        Ok(())
    }

    pub fn set_hard_state(&mut self, hs: HardState) -> Result<(), PersistError> {
        let bytes = Self::encode(&hs)?;
        self.hard_state = hs;
        self.stage(K_HARD_STATE, bytes);
        Ok(())
    }

    /// Records a new commit index. Not worth an fsync on its own: a lost commit
    /// index is re-learnt from the leader, and the state machine's applied index
    /// bounds it from below on restart.
    pub fn set_commit(&mut self, commit: u64) -> Result<(), PersistError> {
        let mut hs = self.hard_state.clone();
        hs.commit = commit;
        self.set_hard_state(hs)
    }

    pub fn set_conf_state(&mut self, cs: ConfState) -> Result<(), PersistError> {
        let bytes = Self::encode(&cs)?;
        self.conf_state = cs;
        self.stage(K_CONF_STATE, bytes);
        Ok(())
    }

    fn set_truncated(&mut self, index: u64, term: u64) {
        let mut v = index.to_be_bytes().to_vec();
        v.extend_from_slice(&term.to_be_bytes());
        self.truncated = (index, term);
        self.stage(K_TRUNCATED, v);
    }

    /// Writes the snapshot file now (durably) and stages the metadata that
    /// points at it; older files go once the metadata is synced.
    fn store_snapshot(
        &mut self,
        meta: &SnapshotMetadata,
        data: Vec<u8>,
    ) -> Result<(), PersistError> {
        snapfile::write(&self.dir, meta.index, &data)
            .map_err(|e| PersistError::Snapshot(format!("write snapshot file: {e}")))?;
        let bytes = Self::encode(meta)?;
        self.snap_meta = meta.clone();
        self.stage(K_SNAP_META, bytes);
        self.prune_snapshots = true;
        Ok(())
    }

    /// Replaces the whole log with a snapshot received from the leader.
    pub fn apply_snapshot(&mut self, snap: &Snapshot) -> Result<Envelope, PersistError> {
        let meta = snap.get_metadata();
        let envelope =
            Envelope::decode(&snap.data).map_err(|e| PersistError::Snapshot(e.to_string()))?;
        // Entries above the snapshot contradict it: delete now. Those below
        // are garbage collected in small steps (one huge delete would stall
        // the fsync that the next proposals wait on).
        for i in (self.truncated.0 + 1).max(meta.index + 1)..=self.last_index {
            self.batch.remove(&entry_key(i));
        }
        self.gc_next = self.gc_next.min(self.truncated.0 + 1);
        self.last_index = meta.index;
        self.set_truncated(meta.index, meta.term);
        self.store_snapshot(meta, snap.data.to_vec())?;
        let mut hs = self.hard_state.clone();
        hs.term = hs.term.max(meta.term);
        hs.commit = hs.commit.max(meta.index);
        self.set_hard_state(hs)?;
        self.set_conf_state(meta.get_conf_state().clone())?;
        self.set_members(envelope.members.clone());
        Ok(envelope)
    }

    /// Stores a snapshot of the applied state at `index` and drops log entries
    /// up to `index - margin`, all on the calling thread.
    pub fn compact(
        &mut self,
        index: u64,
        conf_state: ConfState,
        state: Vec<u8>,
        margin: u64,
    ) -> Result<(), PersistError> {
        let job = self.begin_snapshot(index, conf_state, state)?;
        self.finish_snapshot(job, margin)
    }

    /// Starts writing a snapshot of the applied state at `index` on its own
    /// thread, so a large state does not stall replication; the log is
    /// compacted by [`finish_snapshot`](Self::finish_snapshot) once the file
    /// is durable. Until then followers get the previous snapshot.
    pub fn begin_snapshot(
        &self,
        index: u64,
        conf_state: ConfState,
        state: Vec<u8>,
    ) -> Result<SnapshotJob, PersistError> {
        let term = raft::Storage::term(self, index)
            .map_err(|e| PersistError::Invariant(format!("snapshot at {index}: {e}")))?;
        let mut meta = SnapshotMetadata {
            index,
            term,
            ..Default::default()
        };
        meta.set_conf_state(conf_state);
        let members = self.members.clone();
        let dir = self.dir.clone();
        let thread = std::thread::Builder::new()
            .name("raft-snapshot".into())
            .spawn(move || {
                let data = Envelope { members, state }.encode();
                snapfile::write(&dir, index, &data)
            })
            .map_err(|e| PersistError::Snapshot(format!("cannot start snapshot writer: {e}")))?;
        Ok(SnapshotJob { meta, thread })
    }

    /// Waits for the snapshot file, then stages its metadata and the log
    /// compaction (made durable by the next `persist`).
    pub fn finish_snapshot(&mut self, job: SnapshotJob, margin: u64) -> Result<(), PersistError> {
        match job.thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(PersistError::Snapshot(format!("write snapshot file: {e}"))),
            Err(_) => return Err(PersistError::Snapshot("snapshot writer panicked".into())),
        }
        let meta = job.meta;
        let index = meta.index;
        if index <= self.snap_meta.index || index > self.last_index {
            // A newer snapshot arrived from the leader meanwhile; this file
            // is pruned with the next sync.
            self.prune_snapshots = true;
            return Ok(());
        }
        let bytes = Self::encode(&meta)?;
        self.snap_meta = meta;
        self.stage(K_SNAP_META, bytes);
        self.prune_snapshots = true;
        let keep_from = index.saturating_sub(margin).max(self.truncated.0);
        if keep_from > self.truncated.0 {
            let trunc_term = raft::Storage::term(self, keep_from)
                .map_err(|e| PersistError::Invariant(format!("compact to {keep_from}: {e}")))?;
            self.gc_next = self.gc_next.min(self.truncated.0 + 1);
            self.set_truncated(keep_from, trunc_term);
        }
        Ok(())
    }

    /// Deletes up to `GC_STEP` compacted entries along with this batch.
    fn collect_garbage(&mut self) {
        let end = self
            .gc_next
            .saturating_add(GC_STEP)
            .min(self.truncated.0 + 1);
        if self.gc_next >= end {
            return;
        }
        for i in self.gc_next..end {
            self.batch.remove(&entry_key(i));
        }
        self.gc_next = end;
        self.dirty = true;
    }

    /// Makes everything staged durable: one atomic batch, one fsync.
    pub fn persist(&mut self) -> Result<(), PersistError> {
        self.write_staged(true)
    }

    /// Writes everything staged as one atomic batch; fsyncs only when `sync`
    /// (a batch holding nothing but a new commit index need not wait for
    /// the disk: it becomes durable with the next synced batch).
    pub fn write_staged(&mut self, sync: bool) -> Result<(), PersistError> {
        if sync {
            self.collect_garbage();
        }
        if self.dirty {
            let batch = std::mem::take(&mut self.batch);
            self.dirty = false;
            self.db.apply_batch(batch)?;
            self.unsynced = true;
        }
        if sync && self.unsynced {
            self.db.flush()?;
            self.unsynced = false;
            self.watermark.advance(self.hard_state.commit)?;
            if self.prune_snapshots {
                self.prune_snapshots = false;
                snapfile::remove_others(&self.dir, self.snap_meta.index);
            }
        }
        Ok(())
    }

    fn read_entry(&self, index: u64) -> raft::Result<Entry> {
        let bytes = self
            .db
            .get(entry_key(index))
            .map_err(|e| store_err(format!("read entry {index}: {e}")))?
            .ok_or(raft::Error::Store(raft::StorageError::Unavailable))?;
        Entry::parse_from_bytes(&bytes).map_err(|e| store_err(format!("entry {index}: {e}")))
    }

    /// The stored snapshot with its data.
    pub fn stored_snapshot(&self) -> raft::Result<Snapshot> {
        let data = snapfile::read(&self.dir, self.snap_meta.index).map_err(store_err)?;
        let mut snap = Snapshot::default();
        snap.set_metadata(self.snap_meta.clone());
        snap.data = data.to_vec().into();
        Ok(snap)
    }
}

fn store_err(msg: String) -> raft::Error {
    raft::Error::Store(raft::StorageError::Other(msg.into()))
}

impl raft::Storage for SledStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.truncated.0 {
            return Err(raft::Error::Store(raft::StorageError::Compacted));
        }
        if high > self.last_index + 1 {
            return Err(raft::Error::Store(raft::StorageError::Unavailable));
        }
        let max = max_size.into().unwrap_or(u64::MAX);
        let mut out = Vec::with_capacity((high - low) as usize);
        let mut size = 0u64;
        for kv in self.db.range(entry_key(low)..entry_key(high)) {
            let (_, v) = kv.map_err(|e| store_err(format!("log scan: {e}")))?;
            size += v.len() as u64;
            // raft-rs wants at least one entry even when it exceeds the limit.
            if !out.is_empty() && size > max {
                break;
            }
            out.push(Entry::parse_from_bytes(&v).map_err(|e| store_err(format!("entry: {e}")))?);
        }
        if out.is_empty() && low < high {
            return Err(raft::Error::Store(raft::StorageError::Unavailable));
        }
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.truncated.0 {
            return Ok(self.truncated.1);
        }
        if idx == self.snap_meta.index {
            return Ok(self.snap_meta.term);
        }
        if idx < self.truncated.0 {
            return Err(raft::Error::Store(raft::StorageError::Compacted));
        }
        if idx > self.last_index {
            return Err(raft::Error::Store(raft::StorageError::Unavailable));
        }
        Ok(self.read_entry(idx)?.term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.truncated.0 + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last_index)
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        let cs = self.snap_meta.get_conf_state();
        // raft-rs refuses a snapshot whose configuration lacks the receiver
        // (a member added after it was taken): ask the node for a fresh one.
        let has_receiver = cs.voters.contains(&to) || cs.learners.contains(&to);
        if self.snap_meta.index < request_index || self.snap_meta.index == 0 || !has_receiver {
            self.snapshot_requested.set(true);
            return Err(raft::Error::Store(
                raft::StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        self.stored_snapshot()
    }
}

enum WatermarkError {
    Io(std::io::Error),
    Garbled,
}

/// The `COMMITTED` file: commit index plus a check word, rewritten in place.
struct Watermark {
    file: std::fs::File,
    value: u64,
}

impl Watermark {
    fn create(path: &Path) -> Result<(), OpenError> {
        std::fs::write(path, Self::encode(0)).map_err(|source| OpenError::Io {
            path: path.to_owned(),
            source,
        })
    }

    fn open(path: &Path) -> Result<Self, WatermarkError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(WatermarkError::Io)?;
        let mut buf = [0u8; 16];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut buf, 0)
            .map_err(|_| WatermarkError::Garbled)?;
        let (v, c) = buf.split_at(8);
        let value = u64::from_be_bytes(v.try_into().map_err(|_| WatermarkError::Garbled)?);
        let check = u64::from_be_bytes(c.try_into().map_err(|_| WatermarkError::Garbled)?);
        if value ^ WATERMARK_CHECK != check {
            return Err(WatermarkError::Garbled);
        }
        Ok(Self { file, value })
    }

    fn encode(value: u64) -> [u8; 16] {
        let mut buf = [0u8; 16];
        buf[..8].copy_from_slice(&value.to_be_bytes());
        buf[8..].copy_from_slice(&(value ^ WATERMARK_CHECK).to_be_bytes());
        buf
    }

    /// Records `commit` once sled holds it durably. No fsync: a stale
    /// watermark is merely weaker, never wrong.
    fn advance(&mut self, commit: u64) -> Result<(), sled::Error> {
        if commit <= self.value {
            return Ok(());
        }
        std::os::unix::fs::FileExt::write_all_at(&self.file, &Self::encode(commit), 0)
            .map_err(sled::Error::Io)?;
        self.value = commit;
        Ok(())
    }
}
