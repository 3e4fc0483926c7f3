//! The deterministic state machine: objects keyed `{Kind}/{namespace}/{name}`,
//! a global revision that is every object's resourceVersion, the ordered
//! history watches resume from, and deletion semantics (finalizers, graceful
//! pod termination, owner cascades). No clocks, no randomness, no I/O.

mod delete;
mod nodes;
mod services;
mod snapshot;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, OnceLock};

use drover_proto::object::object_key;
use drover_proto::selector::{FieldSelector, Selector};
use drover_proto::{DEFAULT_NAMESPACE, Kind, Object};

use crate::command::{ApplyError, Command};

/// What happened to an object at a revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    Added,
    Modified,
    Deleted,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One entry of the history.
#[derive(Debug, Clone)]
pub struct Change {
    pub revision: u64,
    pub type_: ChangeType,
    pub kind: Kind,
    pub key: String,
    /// The object after the change (for deletions: its last state, stamped
    /// with the deletion's revision).
    pub object: Arc<Object>,
    /// The object before the change, so watches with selectors can turn a
    /// modification into ADDED or DELETED for their view.
    pub prev: Option<Arc<Object>>,
    /// `object` as JSON, made on first use and then shared by the disk
    /// write and every watcher (serialising per watcher was most of a
    /// change's cost).
    json: OnceLock<Vec<u8>>,
}

impl Change {
    pub fn new(
        revision: u64,
        type_: ChangeType,
        kind: Kind,
        key: String,
        object: Arc<Object>,
        prev: Option<Arc<Object>>,
    ) -> Change {
        Change {
            revision,
            type_,
            kind,
            key,
            object,
            prev,
            json: OnceLock::new(),
        }
    }

    /// `object` as JSON.
    pub fn object_json(&self) -> &[u8] {
        self.json.get_or_init(|| self.object.to_json())
    }
}

/// The serialised form is a cache of `object`, not part of a change's identity.
impl PartialEq for Change {
    fn eq(&self, other: &Change) -> bool {
        self.revision == other.revision
            && self.type_ == other.type_
            && self.kind == other.kind
            && self.key == other.key
            && self.object == other.object
            && self.prev == other.prev
    }
}

/// A watch asked for a revision older than the retained history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "too old resource version: {requested} (the oldest available is {oldest}); list again and watch from the list's resourceVersion"
)]
pub struct TooOld {
    pub requested: u64,
    pub oldest: u64,
}

/// The replicated state.
#[derive(Debug, Clone)]
pub struct StateMachine {
    objects: BTreeMap<String, Arc<Object>>,
    /// Owner uid → keys of the objects that reference it.
    dependents: HashMap<String, BTreeSet<String>>,
    /// uid → key, to find owners.
    by_uid: HashMap<String, String>,
    revision: u64,
    history: VecDeque<Arc<Change>>,
    history_limit: usize,
    /// Watches may resume from any revision ≥ this one.
    compacted: u64,
}

/// The outcome of one command: the resulting object and every change it made.
pub type Applied = (Result<Arc<Object>, ApplyError>, Vec<Arc<Change>>);

impl StateMachine {
    pub fn new(history_limit: usize) -> StateMachine {
        StateMachine {
            objects: BTreeMap::new(),
            dependents: HashMap::new(),
            by_uid: HashMap::new(),
            revision: 0,
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted: 0,
        }
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// The oldest revision a watch can resume from.
    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<Arc<Object>> {
        self.objects
            .get(&object_key(kind, namespace, name))
            .cloned()
    }

    /// Objects of `kind`, in one namespace or all, matching both selectors.
    pub fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        labels: &Selector,
        fields: &FieldSelector,
    ) -> Vec<Arc<Object>> {
        let prefix = match namespace {
            Some(ns) if kind.namespaced() => format!("{}/{}/", kind.name(), ns),
            _ => format!("{}/", kind.name()),
        };
        self.objects
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(_, o)| o)
            .filter(|o| labels.matches(&o.metadata.labels))
            .filter(|o| fields.is_empty() || fields.matches(&o.to_value()))
            .cloned()
            .collect()
    }

    /// The retained change that made revision `revision`, if any.
    pub fn change_at(&self, revision: u64) -> Option<&Arc<Change>> {
        let i = self.history.partition_point(|c| c.revision < revision);
        self.history.get(i).filter(|c| c.revision == revision)
    }

    /// Every change after `revision`, oldest first.
    pub fn changes_since(&self, revision: u64) -> Result<Vec<Arc<Change>>, TooOld> {
        if revision < self.compacted {
            return Err(TooOld {
                requested: revision,
                oldest: self.compacted,
            });
        }
        let start = self.history.partition_point(|c| c.revision <= revision);
        Ok(self.history.range(start..).cloned().collect())
    }

    /// Applies one command.
    pub fn apply(&mut self, command: &Command) -> Applied {
        let mut changes = Vec::new();
        let result = match command {
            Command::Create { object } => self.create(object, &mut changes),
            Command::Update {
                object,
                precondition,
            } => self.update(object, *precondition, &mut changes),
            Command::UpdateStatus {
                object,
                precondition,
            } => self.update_status(object, *precondition, &mut changes),
            Command::Bind {
                namespace,
                name,
                node,
                precondition,
            } => self.bind(namespace, name, node, *precondition, &mut changes),
            Command::Delete {
                kind,
                namespace,
                name,
                precondition,
                propagation,
                grace_period_seconds,
                now,
            } => {
                let key = object_key(*kind, namespace, name);
                self.delete(
                    &key,
                    delete::DeleteOptions {
                        precondition: *precondition,
                        propagation: *propagation,
                        grace_period_seconds: *grace_period_seconds,
                        now: *now,
                    },
                    &mut changes,
                )
            }
        };
        (result, changes)
    }

    fn not_found(kind: Kind, name: &str) -> ApplyError {
        ApplyError::NotFound {
            kind: kind.plural().to_string(),
            name: name.to_string(),
        }
    }

    fn check_precondition(
        existing: &Object,
        kind: Kind,
        precondition: Option<u64>,
    ) -> Result<(), ApplyError> {
        let actual = existing.metadata.revision().unwrap_or(0);
        match precondition {
            Some(expected) if expected != actual => Err(ApplyError::Conflict {
                kind: kind.plural().to_string(),
                name: existing.metadata.name.clone(),
                expected,
                actual,
            }),
            _ => Ok(()),
        }
    }

    /// Resolves the kind and the namespace an object belongs in.
    fn placement(object: &Object) -> Result<(Kind, Option<String>), ApplyError> {
        let kind = object.kind().map_err(ApplyError::Invalid)?;
        let ns = kind
            .namespaced()
            .then(|| object.metadata.namespace_or_default().to_string());
        Ok((kind, ns))
    }

    fn record(
        &mut self,
        type_: ChangeType,
        kind: Kind,
        key: String,
        object: Arc<Object>,
        prev: Option<Arc<Object>>,
        changes: &mut Vec<Arc<Change>>,
    ) {
        let change = Arc::new(Change::new(self.revision, type_, kind, key, object, prev));
        self.history.push_back(change.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.revision;
            }
        }
        changes.push(change);
    }

    /// Stores `object` at the next revision and records the change.
    fn put(
        &mut self,
        kind: Kind,
        key: String,
        mut object: Object,
        changes: &mut Vec<Arc<Change>>,
    ) -> Arc<Object> {
        self.revision += 1;
        object.metadata.resource_version = Some(self.revision.to_string());
        let object = Arc::new(object);
        let prev = self.objects.insert(key.clone(), object.clone());
        if let Some(p) = &prev {
            self.unindex_owners(&key, p);
        }
        self.index_owners(&key, &object);
        if let Some(uid) = &object.metadata.uid {
            self.by_uid.insert(uid.clone(), key.clone());
        }
        let type_ = if prev.is_some() {
            ChangeType::Modified
        } else {
            ChangeType::Added
        };
        self.record(type_, kind, key, object.clone(), prev, changes);
        object
    }

    fn index_owners(&mut self, key: &str, object: &Object) {
        for o in &object.metadata.owner_references {
            self.dependents
                .entry(o.uid.clone())
                .or_default()
                .insert(key.to_string());
        }
    }

    fn unindex_owners(&mut self, key: &str, object: &Object) {
        for o in &object.metadata.owner_references {
            if let Some(set) = self.dependents.get_mut(&o.uid) {
                set.remove(key);
                if set.is_empty() {
                    self.dependents.remove(&o.uid);
                }
            }
        }
    }

    fn namespace_exists(&self, ns: &str) -> Result<(), ApplyError> {
        if ns == DEFAULT_NAMESPACE {
            return Ok(());
        }
        match self.get(Kind::Namespace, "", ns) {
            None => Err(ApplyError::NotFound {
                kind: "namespaces".into(),
                name: ns.into(),
            }),
            Some(n) if n.metadata.deletion_timestamp.is_some() => Err(ApplyError::Invalid(
                format!("namespace {ns} is being terminated; no new objects may be created in it"),
            )),
            Some(_) => Ok(()),
        }
    }

    /// A controller acting on a stale cache may create a dependent of an
    /// owner that was just deleted; nothing would ever collect it, so such a
    /// create is refused.
    fn controller_alive(&self, object: &Object) -> Result<(), ApplyError> {
        let Some(owner) = object.metadata.controller_ref() else {
            return Ok(());
        };
        let alive = self
            .by_uid
            .get(&owner.uid)
            .and_then(|k| self.objects.get(k))
            .is_some_and(|o| o.metadata.deletion_timestamp.is_none());
        if alive {
            return Ok(());
        }
        Err(ApplyError::Invalid(format!(
            "metadata.ownerReferences: controller {} {:?} (uid {}) does not exist or is being deleted",
            owner.kind, owner.name, owner.uid
        )))
    }

    fn create(
        &mut self,
        object: &Object,
        changes: &mut Vec<Arc<Change>>,
    ) -> Result<Arc<Object>, ApplyError> {
        let (kind, ns) = Self::placement(object)?;
        if let Some(ns) = &ns {
            self.namespace_exists(ns)?;
        }
        self.controller_alive(object)?;
        let key = object_key(kind, ns.as_deref().unwrap_or(""), &object.metadata.name);
        if self.objects.contains_key(&key) {
            return Err(ApplyError::AlreadyExists {
                kind: kind.plural().to_string(),
                name: object.metadata.name.clone(),
            });
        }
        let mut new = object.clone();
        if kind == Kind::Service {
            self.assign_service_addresses(&key, &mut new, None)?;
        }
        if kind == Kind::Node {
            self.assign_pod_cidr(&key, &mut new, None)?;
        }
        new.metadata.namespace = ns;
        new.metadata.generation = Some(1);
        new.metadata.deletion_timestamp = None;
        Ok(self.put(kind, key, new, changes))
    }

    /// The stored version of `object`, checked against the precondition.
    fn stored_for(
        &self,
        object: &Object,
        precondition: Option<u64>,
    ) -> Result<(Kind, String, Arc<Object>), ApplyError> {
        let (kind, ns) = Self::placement(object)?;
        let key = object_key(kind, ns.as_deref().unwrap_or(""), &object.metadata.name);
        let existing = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| Self::not_found(kind, &object.metadata.name))?;
        Self::check_precondition(&existing, kind, precondition)?;
        Ok((kind, key, existing))
    }

    fn update(
        &mut self,
        object: &Object,
        precondition: Option<u64>,
        changes: &mut Vec<Arc<Change>>,
    ) -> Result<Arc<Object>, ApplyError> {
        let (kind, key, existing) = self.stored_for(object, precondition)?;

        let mut new = object.clone();
        let (m, old) = (&mut new.metadata, &existing.metadata);
        m.namespace = old.namespace.clone();
        m.uid = old.uid.clone();
        m.creation_timestamp = old.creation_timestamp;
        m.deletion_timestamp = old.deletion_timestamp;
        m.deletion_grace_period_seconds = old.deletion_grace_period_seconds;
        m.generation = old.generation;
        m.resource_version = old.resource_version.clone();
        if kind == Kind::Service {
            self.assign_service_addresses(&key, &mut new, Some(&existing))?;
        }
        if kind == Kind::Node {
            self.assign_pod_cidr(&key, &mut new, Some(&existing))?;
        }
        new.body.remove("status");
        if let Some(status) = existing.body.get("status") {
            new.body.insert("status".into(), status.clone());
        }
        if new.spec_part() != existing.spec_part() {
            new.metadata.generation = Some(old.generation.unwrap_or(0) + 1);
        }
        if new == *existing {
            return Ok(existing);
        }
        if new.metadata.deletion_timestamp.is_some() && new.metadata.finalizers.is_empty() {
            self.put(kind, key.clone(), new, changes);
            return self.remove(&key, existing.metadata.deletion_timestamp, changes);
        }
        Ok(self.put(kind, key, new, changes))
    }

    fn update_status(
        &mut self,
        object: &Object,
        precondition: Option<u64>,
        changes: &mut Vec<Arc<Change>>,
    ) -> Result<Arc<Object>, ApplyError> {
        let (kind, key, existing) = self.stored_for(object, precondition)?;
        let mut new = (*existing).clone();
        match object.body.get("status") {
            Some(s) => new.body.insert("status".into(), s.clone()),
            None => new.body.remove("status"),
        };
        if new == *existing {
            return Ok(existing);
        }
        Ok(self.put(kind, key, new, changes))
    }

    /// Binds a pod: the same change as an update that sets `spec.nodeName`,
    /// refused for a pod that is bound already or being deleted.
    fn bind(
        &mut self,
        namespace: &str,
        name: &str,
        node: &str,
        precondition: Option<u64>,
        changes: &mut Vec<Arc<Change>>,
    ) -> Result<Arc<Object>, ApplyError> {
        let key = object_key(Kind::Pod, namespace, name);
        let existing = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| Self::not_found(Kind::Pod, name))?;
        Self::check_precondition(&existing, Kind::Pod, precondition)?;
        let refuse = |why: String| ApplyError::NotBindable {
            name: name.to_string(),
            why,
        };
        if existing.metadata.deletion_timestamp.is_some() {
            return Err(refuse("it is being deleted".into()));
        }
        let bound = existing
            .body
            .get("spec")
            .and_then(|s| s.get("nodeName"))
            .and_then(|n| n.as_str())
            .filter(|n| !n.is_empty());
        if let Some(bound) = bound {
            return Err(refuse(format!("it is already assigned to node {bound:?}")));
        }
        let mut new = (*existing).clone();
        let Some(spec) = new.body.get_mut("spec").and_then(|s| s.as_object_mut()) else {
            return Err(ApplyError::Invalid(format!(
                "pod {name:?} has no spec to bind"
            )));
        };
        spec.insert("nodeName".into(), node.into());
        new.metadata.generation = Some(existing.metadata.generation.unwrap_or(0) + 1);
        Ok(self.put(Kind::Pod, key, new, changes))
    }

    /// Every object, for snapshots and tests.
    pub fn objects(&self) -> impl Iterator<Item = (&String, &Arc<Object>)> {
        self.objects.iter()
    }
}
