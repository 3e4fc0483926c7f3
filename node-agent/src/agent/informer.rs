//! An informer (pods; also Services, Endpoints, Nodes): list, then watch
//! from the list's revision, resuming after errors and listing again when
//! the history was compacted, feeding an in-memory cache and calling back
//! with each changed object's key.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use drover_proto::Resource;
use drover_proto::client::{Client, ClientError, ListOptions};
use drover_proto::types::Pod;
use futures::StreamExt;

/// `namespace/name`, the key of pods in caches and queues.
pub fn pod_key(pod: &Pod) -> String {
    key_of(pod)
}

/// `namespace/name` of any object (`/name` for cluster-scoped kinds).
pub fn key_of<T: Resource>(object: &T) -> String {
    format!("{}/{}", object.namespace(), object.name())
}

/// An informer's cache, by key.
pub type Cache<T> = Arc<RwLock<HashMap<String, T>>>;

/// The informer's cache of pods, by key.
pub type PodCache = Cache<Pod>;

/// Reads the cache (a poisoned lock still holds whole objects).
pub fn cached<T: Clone>(cache: &Cache<T>, key: &str) -> Option<T> {
    cache
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(key)
        .cloned()
}

/// Every cached object.
pub fn snapshot<T: Clone>(cache: &Cache<T>) -> Vec<T> {
    cache
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .cloned()
        .collect()
}

fn cache_mut<T>(cache: &Cache<T>) -> std::sync::RwLockWriteGuard<'_, HashMap<String, T>> {
    cache.write().unwrap_or_else(|p| p.into_inner())
}

/// Runs forever: keeps `cache` equal to the objects `opts` selects and
/// calls `changed(key)` for each one added, modified, deleted, or found
/// changed by a re-list, then `synced()` after each complete list. `keep`
/// filters objects in memory (e.g. pods by node name).
pub async fn run<T: Resource>(
    client: Client,
    opts: ListOptions,
    cache: Cache<T>,
    keep: impl Fn(&T) -> bool,
    changed: impl Fn(&str),
    synced: impl Fn(),
) {
    let retry = Duration::from_millis(500);
    loop {
        let what = T::KIND.name();
        let (pods, mut revision) = match client.list_as::<T>(&opts).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("listing {what}: {e}; retrying");
                tokio::time::sleep(retry).await;
                continue;
            }
        };
        let fresh: HashMap<String, T> = pods
            .into_iter()
            .filter(|p| keep(p))
            .map(|p| (key_of(&p), p))
            .collect();
        let mut keys: Vec<String> = fresh.keys().cloned().collect();
        {
            let mut c = cache_mut(&cache);
            keys.extend(c.keys().filter(|k| !fresh.contains_key(*k)).cloned());
            *c = fresh;
        }
        for k in &keys {
            changed(k);
        }
        synced();
        // Watch, resuming from the last revision seen, until the history
        // we need is gone.
        loop {
            let stream = match client.watch(T::KIND, &opts, Some(revision)).await {
                Ok(s) => s,
                Err(ClientError::Gone(_)) => break,
                Err(e) => {
                    tracing::warn!("watching {what}: {e}; retrying");
                    tokio::time::sleep(retry).await;
                    continue;
                }
            };
            let mut stream = std::pin::pin!(stream);
            let mut gone = false;
            while let Some(item) = stream.next().await {
                let ev = match item {
                    Ok(ev) => ev,
                    Err(ClientError::Gone(_)) => {
                        gone = true;
                        break;
                    }
                    Err(e) => {
                        tracing::warn!("{what} watch ended: {e}");
                        break;
                    }
                };
                revision = revision.max(ev.resource_version);
                if ev.type_ == "BOOKMARK" {
                    continue;
                }
                let pod = match T::from_object(&ev.object) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!("undecodable {what} {}: {e}", ev.object.name());
                        continue;
                    }
                };
                let key = key_of(&pod);
                let relevant = {
                    let mut c = cache_mut(&cache);
                    if ev.type_ == "DELETED" || !keep(&pod) {
                        c.remove(&key).is_some()
                    } else {
                        c.insert(key.clone(), pod);
                        true
                    }
                };
                if relevant {
                    changed(&key);
                }
            }
            if gone {
                break;
            }
            tokio::time::sleep(retry).await;
        }
    }
}
