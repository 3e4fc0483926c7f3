//! Whole-state snapshots: what Raft ships to a member that fell behind, and
//! what the store loads at start.

use std::sync::Arc;

use drover_proto::Object;
use drover_proto::object::object_key;
use serde::{Deserialize, Serialize};

use super::StateMachine;

#[derive(Serialize, Deserialize)]
struct SnapshotData {
    revision: u64,
    objects: Vec<Object>,
}

/// A snapshot that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("corrupt state snapshot: {0}")]
pub struct SnapshotError(String);

impl StateMachine {
    /// Serialises every object and the revision.
    pub fn snapshot(&self) -> Vec<u8> {
        let data = SnapshotData {
            revision: self.revision,
            objects: self.objects.values().map(|o| (**o).clone()).collect(),
        };
        serde_json::to_vec(&data).unwrap_or_default()
    }

    /// Replaces the state with a snapshot. History restarts at its revision.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), SnapshotError> {
        let data: SnapshotData =
            serde_json::from_slice(bytes).map_err(|e| SnapshotError(e.to_string()))?;
        let mut fresh = StateMachine::new(self.history_limit);
        for o in data.objects {
            fresh.insert_loaded(o).map_err(SnapshotError)?;
        }
        fresh.revision = data.revision;
        fresh.compacted = data.revision;
        *self = fresh;
        Ok(())
    }

    /// Inserts an object read from disk, rebuilding the indexes.
    pub fn insert_loaded(&mut self, object: Object) -> Result<(), String> {
        let kind = object.kind()?;
        let key = object_key(
            kind,
            object.metadata.namespace_or_default(),
            &object.metadata.name,
        );
        let object = Arc::new(object);
        self.index_owners(&key, &object);
        if let Some(uid) = &object.metadata.uid {
            self.by_uid.insert(uid.clone(), key.clone());
        }
        self.objects.insert(key, object);
        Ok(())
    }

    /// Sets the revision and history floor after loading objects from disk.
    pub fn set_loaded_revision(&mut self, revision: u64, compacted: u64) {
        self.revision = revision;
        self.compacted = compacted.min(revision);
    }

    /// Appends a change read back from disk to the watch history.
    pub fn push_loaded_change(&mut self, change: super::Change) {
        let mut scratch = Vec::new();
        let saved = self.revision;
        self.revision = change.revision;
        self.record(
            change.type_,
            change.kind,
            change.key,
            change.object,
            change.prev,
            &mut scratch,
        );
        self.revision = saved;
    }
}
