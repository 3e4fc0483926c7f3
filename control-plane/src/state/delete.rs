//! Deletion: compare-and-set, graceful pod termination, finalizers, and the
//! owner cascade (background, foreground, orphan), all inside the state
//! machine so every replica deletes exactly the same objects.

use std::sync::Arc;

use drover_proto::{Kind, Object, Time};

use super::{Change, ChangeType, StateMachine};
use crate::command::{ApplyError, Propagation};

/// Finalizer that holds an owner until its dependents are gone.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

#[derive(Debug, Clone, Copy)]
pub(super) struct DeleteOptions {
    pub precondition: Option<u64>,
    pub propagation: Propagation,
    pub grace_period_seconds: Option<i64>,
    pub now: Time,
}

impl DeleteOptions {
    fn cascade(now: Time) -> DeleteOptions {
        DeleteOptions {
            precondition: None,
            propagation: Propagation::Background,
            grace_period_seconds: None,
            now,
        }
    }
}

fn kind_of(key: &str) -> Option<Kind> {
    let name = key.split('/').next()?;
    Kind::ALL.into_iter().find(|k| k.name() == name)
}

/// A pod bound to a node is stopped by its agent before it disappears.
fn pod_grace(object: &Object, requested: Option<i64>) -> Option<i64> {
    let spec = object.body.get("spec")?;
    spec.get("nodeName")
        .and_then(|n| n.as_str())
        .filter(|n| !n.is_empty())?;
    let grace = requested.unwrap_or_else(|| {
        spec.get("terminationGracePeriodSeconds")
            .and_then(|g| g.as_i64())
            .unwrap_or(30)
    });
    (grace > 0).then_some(grace)
}

impl StateMachine {
    pub(super) fn delete(
        &mut self,
        key: &str,
        opts: DeleteOptions,
        changes: &mut Vec<Arc<Change>>,
    ) -> Result<Arc<Object>, ApplyError> {
        let kind = kind_of(key).ok_or_else(|| ApplyError::Invalid(format!("bad key {key}")))?;
        let existing = self
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| Self::not_found(kind, key.rsplit('/').next().unwrap_or(key)))?;
        Self::check_precondition(&existing, kind, opts.precondition)?;

        if kind == Kind::Pod
            && let Some(grace) = pod_grace(&existing, opts.grace_period_seconds)
        {
            if existing.metadata.deletion_timestamp.is_some() {
                return Ok(existing);
            }
            let mut marked = (*existing).clone();
            marked.metadata.deletion_timestamp = Some(opts.now + chrono::Duration::seconds(grace));
            marked.metadata.deletion_grace_period_seconds = Some(grace);
            return Ok(self.put(kind, key.to_string(), marked, changes));
        }

        let uid = existing.metadata.uid.clone().unwrap_or_default();
        match opts.propagation {
            Propagation::Background => {}
            Propagation::Orphan => self.orphan_dependents(&uid, changes),
            Propagation::Foreground => {
                let deps = self.live_dependents(&uid);
                if !deps.is_empty() {
                    let mut marked = (*existing).clone();
                    if !marked
                        .metadata
                        .finalizers
                        .iter()
                        .any(|f| f == FOREGROUND_FINALIZER)
                    {
                        marked.metadata.finalizers.push(FOREGROUND_FINALIZER.into());
                    }
                    marked.metadata.deletion_timestamp.get_or_insert(opts.now);
                    self.put(kind, key.to_string(), marked, changes);
                    for dep in deps {
                        let _ = self.delete(&dep, DeleteOptions::cascade(opts.now), changes);
                    }
                    return self
                        .objects
                        .get(key)
                        .cloned()
                        .map_or_else(|| self.last_deleted(key, changes), Ok);
                }
            }
        }

        if kind == Kind::Namespace {
            return self.delete_namespace(key, &existing, opts.now, changes);
        }
        if !existing.metadata.finalizers.is_empty() {
            if existing.metadata.deletion_timestamp.is_some() {
                return Ok(existing);
            }
            let mut marked = (*existing).clone();
            marked.metadata.deletion_timestamp = Some(opts.now);
            return Ok(self.put(kind, key.to_string(), marked, changes));
        }
        self.remove(key, Some(opts.now), changes)
    }

    /// The object as its deletion recorded it (after a cascade removed it).
    fn last_deleted(&self, key: &str, changes: &[Arc<Change>]) -> Result<Arc<Object>, ApplyError> {
        changes
            .iter()
            .rev()
            .find(|c| c.key == key && c.type_ == ChangeType::Deleted)
            .map(|c| c.object.clone())
            .ok_or_else(|| ApplyError::Invalid(format!("{key} vanished during deletion")))
    }

    fn live_dependents(&self, uid: &str) -> Vec<String> {
        self.dependents
            .get(uid)
            .map(|s| {
                s.iter()
                    .filter(|k| self.objects.contains_key(*k))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn orphan_dependents(&mut self, uid: &str, changes: &mut Vec<Arc<Change>>) {
        for dep in self.live_dependents(uid) {
            let (Some(obj), Some(kind)) = (self.objects.get(&dep).cloned(), kind_of(&dep)) else {
                continue;
            };
            let mut new = (*obj).clone();
            new.metadata.owner_references.retain(|o| o.uid != uid);
            self.put(kind, dep, new, changes);
        }
    }

    fn namespace_is_empty(&self, ns: &str) -> bool {
        Kind::ALL.into_iter().filter(|k| k.namespaced()).all(|k| {
            let prefix = format!("{}/{}/", k.name(), ns);
            self.objects
                .range(prefix.clone()..)
                .next()
                .is_none_or(|(k, _)| !k.starts_with(&prefix))
        })
    }

    fn delete_namespace(
        &mut self,
        key: &str,
        existing: &Arc<Object>,
        now: Time,
        changes: &mut Vec<Arc<Change>>,
    ) -> Result<Arc<Object>, ApplyError> {
        let ns = existing.metadata.name.clone();
        if existing.metadata.deletion_timestamp.is_none() {
            let mut marked = (**existing).clone();
            marked.metadata.deletion_timestamp = Some(now);
            marked
                .body
                .insert("status".into(), serde_json::json!({"phase": "Terminating"}));
            self.put(Kind::Namespace, key.to_string(), marked, changes);
        }
        let contents: Vec<String> = Kind::ALL
            .into_iter()
            .filter(|k| k.namespaced())
            .flat_map(|k| {
                let prefix = format!("{}/{}/", k.name(), ns);
                self.objects
                    .range(prefix.clone()..)
                    .take_while(move |(k, _)| k.starts_with(&prefix))
                    .map(|(k, _)| k.clone())
                    .collect::<Vec<_>>()
            })
            .collect();
        for k in contents {
            let _ = self.delete(&k, DeleteOptions::cascade(now), changes);
        }
        match self.objects.get(key).cloned() {
            Some(_) if self.namespace_is_empty(&ns) => self.remove(key, Some(now), changes),
            Some(o) => Ok(o),
            None => self.last_deleted(key, changes),
        }
    }

    /// Removes an object from the store, then lets its dependents, its
    /// foreground-deleting owners and its terminating namespace follow.
    pub(super) fn remove(
        &mut self,
        key: &str,
        now: Option<Time>,
        changes: &mut Vec<Arc<Change>>,
    ) -> Result<Arc<Object>, ApplyError> {
        let kind = kind_of(key).ok_or_else(|| ApplyError::Invalid(format!("bad key {key}")))?;
        let Some(obj) = self.objects.remove(key) else {
            return Err(Self::not_found(kind, key.rsplit('/').next().unwrap_or(key)));
        };
        self.unindex_owners(key, &obj);
        if let Some(uid) = &obj.metadata.uid {
            self.by_uid.remove(uid);
        }
        self.revision += 1;
        let mut last = (*obj).clone();
        last.metadata.resource_version = Some(self.revision.to_string());
        let last = Arc::new(last);
        self.record(
            ChangeType::Deleted,
            kind,
            key.to_string(),
            last.clone(),
            Some(obj.clone()),
            changes,
        );
        let now = now.or(obj.metadata.deletion_timestamp).unwrap_or_default();

        if let Some(uid) = &obj.metadata.uid {
            for dep in self.live_dependents(uid) {
                let _ = self.delete(&dep, DeleteOptions::cascade(now), changes);
            }
        }
        for owner in &obj.metadata.owner_references {
            self.finish_foreground(&owner.uid, now, changes);
        }
        if kind.namespaced()
            && let Some(ns) = obj.metadata.namespace.as_deref()
            && let Some(nso) = self.get(Kind::Namespace, "", ns)
            && nso.metadata.deletion_timestamp.is_some()
            && self.namespace_is_empty(ns)
        {
            let nskey = drover_proto::object::object_key(Kind::Namespace, "", ns);
            let _ = self.remove(&nskey, Some(now), changes);
        }
        Ok(last)
    }

    /// Completes a foreground deletion once the owner has no dependents left.
    fn finish_foreground(&mut self, owner_uid: &str, now: Time, changes: &mut Vec<Arc<Change>>) {
        let Some(key) = self.by_uid.get(owner_uid).cloned() else {
            return;
        };
        let Some(owner) = self.objects.get(&key).cloned() else {
            return;
        };
        let waiting = owner.metadata.deletion_timestamp.is_some()
            && owner
                .metadata
                .finalizers
                .iter()
                .any(|f| f == FOREGROUND_FINALIZER);
        if !waiting || !self.live_dependents(owner_uid).is_empty() {
            return;
        }
        let Some(kind) = kind_of(&key) else { return };
        let mut new = (*owner).clone();
        new.metadata
            .finalizers
            .retain(|f| f != FOREGROUND_FINALIZER);
        if new.metadata.finalizers.is_empty() {
            let _ = self.remove(&key, Some(now), changes);
        } else {
            self.put(kind, key, new, changes);
        }
    }
}
