//! Workers: take a key, reconcile it, and tell the queue how it went.

use std::future::Future;
use std::sync::Arc;

use super::action::Action;
use super::queue::WorkQueue;
use crate::controllers::error::ControllerError;

/// A level-triggered controller: given a key, read the cache and converge.
pub trait Reconciler: Send + Sync + 'static {
    /// Short name for logs (`replicaset`).
    fn name(&self) -> &'static str;

    fn reconcile(&self, key: &str) -> impl Future<Output = Result<Action, ControllerError>> + Send;
}

/// Reconciles one key and requeues it as its result asks.
pub async fn process_one<R: Reconciler>(reconciler: &R, queue: &WorkQueue, key: String) {
    match reconciler.reconcile(&key).await {
        Ok(action) => {
            queue.forget(&key);
            if let Some(after) = action.requeue_after {
                queue.add_after(key.clone(), after);
            }
        }
        Err(e) => {
            tracing::warn!(controller = reconciler.name(), %key, error = %e, "reconcile failed; retrying with backoff");
            queue.add_rate_limited(key.clone());
        }
    }
    queue.done(&key);
}

/// Runs `workers` workers until the queue shuts down.
pub async fn run_workers<R: Reconciler>(reconciler: Arc<R>, queue: Arc<WorkQueue>, workers: usize) {
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..workers.max(1) {
        let (r, q) = (reconciler.clone(), queue.clone());
        set.spawn(async move {
            while let Some(key) = q.get().await {
                process_one(r.as_ref(), &q, key).await;
            }
        });
    }
    while set.join_next().await.is_some() {}
}

/// Test helper: reconciles every ready key until none is left.
pub async fn drain<R: Reconciler>(reconciler: &R, queue: &WorkQueue) -> usize {
    let mut n = 0;
    while let Some(key) = queue.try_get() {
        process_one(reconciler, queue, key).await;
        n += 1;
    }
    n
}
