//! A pod informer: list, then watch from the list's revision, resuming
//! after errors and listing again when the history was compacted, feeding
//! an in-memory cache and calling back with each changed pod's key.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use drover_proto::client::{Client, ClientError, ListOptions};
use drover_proto::types::Pod;
use drover_proto::{Kind, Resource};
use futures::StreamExt;

/// `namespace/name`, the key of pods in caches and queues.
pub fn pod_key(pod: &Pod) -> String {
    format!("{}/{}", pod.namespace(), pod.name())
}

/// The informer's cache of pods, by key.
pub type PodCache = Arc<RwLock<HashMap<String, Pod>>>;

/// Reads the cache (a poisoned lock still holds whole pods).
pub fn cached(cache: &PodCache, key: &str) -> Option<Pod> {
    cache
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .get(key)
        .cloned()
}

fn cache_mut(cache: &PodCache) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Pod>> {
    cache.write().unwrap_or_else(|p| p.into_inner())
}

/// Runs forever: keeps `cache` equal to the pods `opts` selects and calls
/// `changed(key)` for each pod added, modified, deleted, or found changed
/// by a re-list, then `synced()` after each complete list. `keep` filters
/// pods in memory (e.g. by node name).
pub async fn run(
    client: Client,
    opts: ListOptions,
    cache: PodCache,
    keep: impl Fn(&Pod) -> bool,
    changed: impl Fn(&str),
    synced: impl Fn(),
) {
    let retry = Duration::from_millis(500);
    loop {
        let (pods, mut revision) = match client.list_as::<Pod>(&opts).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("listing pods: {e}; retrying");
                tokio::time::sleep(retry).await;
                continue;
            }
        };
        let fresh: HashMap<String, Pod> = pods
            .into_iter()
            .filter(|p| keep(p))
            .map(|p| (pod_key(&p), p))
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
            let stream = match client.watch(Kind::Pod, &opts, Some(revision)).await {
                Ok(s) => s,
                Err(ClientError::Gone(_)) => break,
                Err(e) => {
                    tracing::warn!("watching pods: {e}; retrying");
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
                        tracing::warn!("pod watch ended: {e}");
                        break;
                    }
                };
                revision = revision.max(ev.resource_version);
                if ev.type_ == "BOOKMARK" {
                    continue;
                }
                let pod = match Pod::from_object(&ev.object) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!("undecodable pod {}: {e}", ev.object.name());
                        continue;
                    }
                };
                let key = pod_key(&pod);
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
