//! An informer: list, then watch from the list's revision, applying every
//! change to a [`Cache`] and telling the handler. When the watch's history is
//! gone (compacted) it lists again; when the stream ends it resumes from the
//! last revision it saw, so no change is missed or seen twice.

use std::sync::Arc;
use std::time::Duration;

use drover_proto::Resource;
use drover_proto::client::{ClientError, ListOptions, WatchEvent};
use futures::StreamExt;

use super::cache::{Cache, Notification};
use crate::controllers::api::ControllerApi;

/// Called for every change; handlers only enqueue keys.
pub type Handler<T> = Arc<dyn Fn(&Notification<T>) + Send + Sync>;

/// Pause before retrying after the API failed.
const RETRY: Duration = Duration::from_millis(500);

/// Feeds one kind's cache until the task is dropped.
pub struct Informer<T: Resource, A: ControllerApi> {
    pub api: A,
    pub cache: Cache<T>,
    pub handler: Handler<T>,
}

enum WatchEnd {
    /// The stream ended or broke: watch again from the last revision.
    Resume,
    /// The history is gone: list again.
    Relist,
}

impl<T: Resource, A: ControllerApi> Informer<T, A> {
    /// Runs forever (the caller aborts the task on shutdown).
    pub async fn run(self) {
        let opts = ListOptions::default();
        loop {
            let revision = match self.list(&opts).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(kind = %T::KIND, error = %e, "informer list failed; retrying");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            let mut revision = revision;
            // Resume after each stream end; leave to list again when the history is gone.
            while let WatchEnd::Resume = self.watch(&opts, &mut revision).await {}
        }
    }

    /// Lists and replaces the cache; returns the revision to watch from.
    async fn list(&self, opts: &ListOptions) -> Result<u64, ClientError> {
        let (items, revision) = self.api.list(T::KIND, opts).await?;
        let typed: Vec<T> = items
            .iter()
            .filter_map(|o| match T::from_object(o) {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(kind = %T::KIND, name = %o.metadata.name, error = %e, "skipping an unreadable object");
                    None
                }
            })
            .collect();
        for n in self.cache.replace(typed) {
            (self.handler)(&n);
        }
        self.cache.mark_synced();
        Ok(revision)
    }

    async fn watch(&self, opts: &ListOptions, revision: &mut u64) -> WatchEnd {
        let mut stream = match self.api.watch(T::KIND, opts, *revision).await {
            Ok(s) => s,
            Err(ClientError::Gone(_)) => return WatchEnd::Relist,
            Err(e) => {
                tracing::warn!(kind = %T::KIND, error = %e, "watch failed; retrying");
                tokio::time::sleep(RETRY).await;
                return WatchEnd::Resume;
            }
        };
        while let Some(item) = stream.next().await {
            match item {
                Ok(ev) => {
                    *revision = (*revision).max(ev.resource_version);
                    self.apply(ev);
                }
                Err(ClientError::Gone(_)) => return WatchEnd::Relist,
                Err(e) => {
                    tracing::debug!(kind = %T::KIND, error = %e, "watch broke; resuming");
                    tokio::time::sleep(RETRY).await;
                    return WatchEnd::Resume;
                }
            }
        }
        WatchEnd::Resume
    }

    fn apply(&self, ev: WatchEvent) {
        let object = match T::from_object(&ev.object) {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(kind = %T::KIND, error = %e, "skipping an unreadable object");
                return;
            }
        };
        let n = match ev.type_.as_str() {
            "ADDED" | "MODIFIED" => Some(self.cache.upsert(object)),
            "DELETED" => self.cache.remove(&object),
            _ => None,
        };
        if let Some(n) = n {
            (self.handler)(&n);
        }
    }
}
