//! The informer's in-memory copy of one kind, keyed `namespace/name`, shared
//! read-only with reconcilers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use drover_proto::Resource;

/// The cache key of an object: `namespace/name`.
pub fn key_of<T: Resource>(o: &T) -> String {
    format!("{}/{}", o.namespace(), o.name())
}

/// Splits `namespace/name`.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// A change the cache applied, handed to event handlers.
#[derive(Debug, Clone)]
pub enum Notification<T> {
    Added(Arc<T>),
    Updated { old: Arc<T>, new: Arc<T> },
    Deleted(Arc<T>),
}

/// A shared, cloneable view of the objects of one kind.
#[derive(Debug)]
pub struct Cache<T> {
    objects: Arc<RwLock<HashMap<String, Arc<T>>>>,
    synced: Arc<AtomicBool>,
}

impl<T> Clone for Cache<T> {
    fn clone(&self) -> Self {
        Cache {
            objects: self.objects.clone(),
            synced: self.synced.clone(),
        }
    }
}

impl<T: Resource> Default for Cache<T> {
    fn default() -> Self {
        Cache {
            objects: Arc::default(),
            synced: Arc::default(),
        }
    }
}

impl<T: Resource> Cache<T> {
    fn read(&self) -> RwLockReadGuard<'_, HashMap<String, Arc<T>>> {
        self.objects.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<String, Arc<T>>> {
        self.objects.write().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &str) -> Option<Arc<T>> {
        self.read().get(key).cloned()
    }

    /// Every object in `namespace`.
    pub fn list(&self, namespace: &str) -> Vec<Arc<T>> {
        self.read()
            .values()
            .filter(|o| o.namespace() == namespace)
            .cloned()
            .collect()
    }

    /// Every object of every namespace.
    pub fn all(&self) -> Vec<Arc<T>> {
        self.read().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the first list has been loaded.
    pub fn has_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    pub fn mark_synced(&self) {
        self.synced.store(true, Ordering::Release);
    }

    /// Stores (or replaces) one object.
    pub fn upsert(&self, object: T) -> Notification<T> {
        let new = Arc::new(object);
        match self.write().insert(key_of(new.as_ref()), new.clone()) {
            Some(old) => Notification::Updated { old, new },
            None => Notification::Added(new),
        }
    }

    /// Forgets one object; None if it was not cached.
    pub fn remove(&self, object: &T) -> Option<Notification<T>> {
        self.write()
            .remove(&key_of(object))
            .map(Notification::Deleted)
    }

    /// Replaces the whole content after a (re)list; returns what changed (objects at the same resourceVersion are unchanged),
    /// including deletions missed while the watch was down.
    pub fn replace(&self, objects: Vec<T>) -> Vec<Notification<T>> {
        let fresh: HashMap<String, Arc<T>> = objects
            .into_iter()
            .map(|o| (key_of(&o), Arc::new(o)))
            .collect();
        let mut map = self.write();
        let mut out = Vec::with_capacity(fresh.len());
        for (key, old) in map.iter() {
            if !fresh.contains_key(key) {
                out.push(Notification::Deleted(old.clone()));
            }
        }
        for (key, new) in &fresh {
            match map.get(key) {
                // Unchanged since we last saw it: nothing to tell.
                Some(old) if old.metadata().resource_version == new.metadata().resource_version => {
                }
                Some(old) => out.push(Notification::Updated {
                    old: old.clone(),
                    new: new.clone(),
                }),
                None => out.push(Notification::Added(new.clone())),
            }
        }
        *map = fresh;
        out
    }
}
