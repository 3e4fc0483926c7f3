//! The scheduling loop, run on the control-plane leader: list+watch Nodes and
//! Pods into the snapshot, schedule queued pods, bind them by compare-and-set
//! of `spec.nodeName`, and report the ones that fit nowhere. All decisions
//! live in [`state::LoopState`]; this module only performs I/O.

pub mod report;
pub mod state;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use drover_proto::client::{Client, ClientError, DeleteOptions, ListOptions, WatchEvent};
use drover_proto::grpc::Binding;
use drover_proto::types::{Node, Pod};
use drover_proto::{Kind, Resource};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::SchedulerConfig;
use crate::snapshot::pod_key;
use state::{Change, Decision, LoopState};

/// Pods scheduled between two looks at the watch streams, so a deep queue
/// does not starve event handling.
const SCHEDULE_BATCH: usize = 256;
/// Pause before re-listing after the API failed us.
const RESYNC_DELAY: Duration = Duration::from_secs(1);

/// Why a list+watch session ended; the loop logs it and re-lists.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Listing or watching failed.
    #[error("{kind} list/watch failed: {source}")]
    Api { kind: Kind, source: ClientError },
    /// The server closed a watch stream.
    #[error("the {0} watch ended")]
    WatchEnded(Kind),
}

/// Runs the scheduler until `shutdown` completes. Errors from the API are
/// logged and answered by re-listing; this only returns on shutdown.
pub async fn run<F: Future>(client: Client, config: SchedulerConfig, shutdown: F) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        match session(&client, &config, &mut shutdown).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(error = %e, "scheduler re-listing"),
        }
        tokio::select! {
            _ = shutdown.as_mut() => return,
            _ = tokio::time::sleep(RESYNC_DELAY) => {}
        }
    }
}

/// The result of one bind call.
struct BindOutcome {
    key: String,
    result: Result<(), ClientError>,
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

fn change_of(ev: &WatchEvent) -> Option<Change> {
    match ev.type_.as_str() {
        "ADDED" | "MODIFIED" => Some(Change::Upsert),
        "DELETED" => Some(Change::Delete),
        _ => None,
    }
}

/// One list+watch session; `Ok` means shutdown was requested.
async fn session<F: Future>(
    client: &Client,
    config: &SchedulerConfig,
    shutdown: &mut Pin<&mut F>,
) -> Result<(), RunError> {
    let all = ListOptions::default();
    let api = |kind| move |source| RunError::Api { kind, source };
    let (nodes, node_rv) = client
        .list_as::<Node>(&all)
        .await
        .map_err(api(Kind::Node))?;
    let (pods, pod_rv) = client.list_as::<Pod>(&all).await.map_err(api(Kind::Pod))?;
    let mut st = LoopState::new(config.clone());
    let t = now();
    for n in &nodes {
        st.apply_node(Change::Upsert, n, t);
    }
    for p in &pods {
        st.apply_pod(Change::Upsert, p, t);
    }
    tracing::info!(
        nodes = nodes.len(),
        pods = pods.len(),
        pending = st.queue.len(),
        "scheduler synced"
    );
    let mut node_watch = Box::pin(
        client
            .watch(Kind::Node, &all, Some(node_rv))
            .await
            .map_err(api(Kind::Node))?,
    );
    let mut pod_watch = Box::pin(
        client
            .watch(Kind::Pod, &all, Some(pod_rv))
            .await
            .map_err(api(Kind::Pod))?,
    );
    let (tx, mut rx) = mpsc::unbounded_channel::<BindOutcome>();
    let mut in_flight = 0usize;
    loop {
        let mut more = false;
        let mut budget = SCHEDULE_BATCH;
        let mut binds = Vec::new();
        while in_flight < config.max_concurrent_binds {
            if budget == 0 {
                more = true;
                break;
            }
            budget -= 1;
            let Some(decision) = st.next(now()) else {
                break;
            };
            match decision {
                Decision::Bind { pod, node } => {
                    in_flight += 1;
                    binds.push((pod, node));
                }
                Decision::Unschedulable {
                    pod,
                    error,
                    preemption,
                } => {
                    tracing::debug!(pod = %pod_key(&pod), reason = %error, "unschedulable");
                    tokio::spawn(report_unschedulable(
                        client.clone(),
                        pod,
                        error.summary(),
                        preemption,
                        config.scheduler_name.clone(),
                    ));
                }
            }
        }
        if !binds.is_empty() {
            tokio::spawn(bind(client.clone(), binds, tx.clone()));
        }
        let wake = st.queue.next_wakeup().map(Instant::from_std);
        tokio::select! {
            biased;
            _ = shutdown.as_mut() => return Ok(()),
            ev = node_watch.next() => apply(&mut st, Kind::Node, ev)?,
            ev = pod_watch.next() => apply(&mut st, Kind::Pod, ev)?,
            Some(outcome) = rx.recv() => {
                in_flight = in_flight.saturating_sub(1);
                match outcome.result {
                    Ok(()) => st.bind_succeeded(&outcome.key),
                    Err(e) => {
                        tracing::debug!(pod = %outcome.key, error = %e, "bind failed; requeued");
                        st.bind_failed(&outcome.key, now());
                    }
                }
            }
            _ = std::future::ready(()), if more => {}
            _ = sleep_until(wake), if wake.is_some() => {}
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// Applies one watch item; a closed or failed stream ends the session.
fn apply(
    st: &mut LoopState,
    kind: Kind,
    ev: Option<Result<WatchEvent, ClientError>>,
) -> Result<(), RunError> {
    let ev = match ev {
        None => return Err(RunError::WatchEnded(kind)),
        Some(Err(source)) => return Err(RunError::Api { kind, source }),
        Some(Ok(ev)) => ev,
    };
    let Some(change) = change_of(&ev) else {
        return Ok(());
    };
    let t = now();
    let decoded = match kind {
        Kind::Node => Node::from_object(&ev.object).map(|n| st.apply_node(change, &n, t)),
        _ => Pod::from_object(&ev.object).map(|p| st.apply_pod(change, &p, t)),
    };
    if let Err(e) = decoded {
        tracing::warn!(kind = %kind, name = %ev.object.metadata.name, error = %e, "skipping undecodable object");
    }
    Ok(())
}

/// Binds a pass's pods in one call; each binding is a compare-and-set on
/// the pod's resourceVersion, so a pod changed meanwhile yields `Conflict`.
async fn bind(client: Client, binds: Vec<(Pod, String)>, done: mpsc::UnboundedSender<BindOutcome>) {
    let keys: Vec<String> = binds.iter().map(|(pod, _)| pod_key(pod)).collect();
    let bindings = binds
        .into_iter()
        .map(|(pod, node)| Binding {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone(),
            resource_version: pod.metadata.revision().unwrap_or(0),
            node_name: node,
        })
        .collect();
    let results = match client.bind(bindings).await {
        Ok(results) => results,
        Err(e) => vec![Err(e); keys.len()],
    };
    for (key, result) in keys.into_iter().zip(results) {
        // The loop may have ended (shutdown); nothing is waiting then.
        let _ = done.send(BindOutcome { key, result });
    }
}

/// Writes the FailedScheduling Event and the PodScheduled condition, and
/// starts preemption: victims are deleted with their own grace period and
/// the preemptor is nominated to the node.
async fn report_unschedulable(
    client: Client,
    pod: Pod,
    message: String,
    preemption: Option<crate::Preemption>,
    component: String,
) {
    let at = chrono::Utc::now();
    let event = report::failed_scheduling_event(&pod, &message, &component, at);
    if let Err(e) = client.create(&event.to_object()).await {
        tracing::debug!(pod = %pod_key(&pod), error = %e, "could not record event");
    }
    let mut status = report::with_unschedulable_condition(&pod, &message, at);
    if let Some(p) = &preemption {
        for v in &p.victims {
            let opts = DeleteOptions::default();
            if let Err(e) = client.delete(Kind::Pod, &v.namespace, &v.name, &opts).await {
                tracing::debug!(victim = %v.name, error = %e, "preemption delete failed");
            }
        }
        let mut nominated = status.take().unwrap_or_else(|| pod.clone());
        nominated
            .status
            .get_or_insert_with(Default::default)
            .nominated_node_name = Some(p.node.clone());
        status = Some(nominated);
    }
    if let Some(updated) = status
        && let Err(e) = client.update_status(&updated.to_object()).await
    {
        // A newer version exists; the next attempt writes the condition again.
        tracing::debug!(pod = %pod_key(&pod), error = %e, "could not update pod status");
    }
}
