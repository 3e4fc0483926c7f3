//! The agent's Events about pods, as the kubelet writes them (`Pulling`,
//! `Pulled`, `Failed`, `Created`, `Started`, `Killing`, `BackOff`,
//! `Unhealthy`): workers hand them to one recorder task that aggregates
//! repeats and rate limits them ([`aggregate`]) before writing. Best
//! effort: a failed write is logged, never retried, never blocks a worker.

pub mod aggregate;

use std::collections::HashMap;

use drover_proto::meta::ObjectReference;
use drover_proto::types::event::EventSource;
use drover_proto::types::{Event, Pod};
use drover_proto::{Kind, ObjectMeta, Resource};
use tokio::sync::mpsc;

use self::aggregate::{Aggregator, Key, Limits, Write};
use crate::shim::state::now_ms;
use drover_proto::client::Client;

/// Kubernetes' event reasons for containers.
pub mod reason {
    /// An image pull begins.
    pub const PULLING: &str = "Pulling";
    /// The image is there (pulled, or already present).
    pub const PULLED: &str = "Pulled";
    /// Pulling or creating failed.
    pub const FAILED: &str = "Failed";
    /// The container was created.
    pub const CREATED: &str = "Created";
    /// The container was started.
    pub const STARTED: &str = "Started";
    /// The container is being stopped.
    pub const KILLING: &str = "Killing";
    /// Waiting to restart or to pull again.
    pub const BACK_OFF: &str = "BackOff";
    /// A probe failed.
    pub const UNHEALTHY: &str = "Unhealthy";
}

/// `Normal` or `Warning`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Things going as they should.
    Normal,
    /// Something the user may need to fix.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One Event about a container of a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodEvent {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's uid.
    pub uid: String,
    /// `spec.containers{NAME}`.
    pub field_path: Option<String>,
    /// Normal or Warning.
    pub type_: EventType,
    /// One of [`reason`].
    pub reason: String,
    /// What happened.
    pub message: String,
}

/// Where workers send Events; cloning is cheap. `disabled()` drops them.
#[derive(Clone, Debug)]
pub struct EventSink {
    tx: Option<mpsc::UnboundedSender<PodEvent>>,
}

impl EventSink {
    /// Drops every Event (tests, hollow nodes).
    pub fn disabled() -> Self {
        EventSink { tx: None }
    }

    /// Records `reason` about container `container` of `pod`.
    pub fn container(
        &self,
        pod: &Pod,
        container: &str,
        type_: EventType,
        reason: &str,
        message: String,
    ) {
        let Some(tx) = &self.tx else {
            return;
        };
        let _ = tx.send(PodEvent {
            namespace: pod.namespace().to_string(),
            name: pod.name().to_string(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
            field_path: Some(format!("spec.containers{{{container}}}")),
            type_,
            reason: reason.to_string(),
            message,
        });
    }
}

/// Starts the recorder writing as `node`'s agent.
pub fn spawn(client: Client, node: String) -> EventSink {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(record_loop(client, node, rx));
    EventSink { tx: Some(tx) }
}

/// The Event object for a first occurrence (pure).
pub fn new_event(e: &PodEvent, node: &str, count: i32, now: drover_proto::Time) -> Event {
    let stamp = now.timestamp_nanos_opt().unwrap_or_default();
    Event {
        metadata: ObjectMeta {
            name: format!("{}.{:x}", e.name, stamp),
            namespace: Some(e.namespace.clone()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            kind: Kind::Pod.name().to_string(),
            namespace: Some(e.namespace.clone()),
            name: e.name.clone(),
            uid: Some(e.uid.clone()),
            api_version: Some(Kind::Pod.api_version().to_string()),
            resource_version: None,
            field_path: e.field_path.clone(),
        },
        reason: e.reason.clone(),
        message: e.message.clone(),
        source: EventSource {
            component: "drover-agent".into(),
            host: Some(node.to_string()),
        },
        first_timestamp: Some(now),
        last_timestamp: Some(now),
        count,
        type_: e.type_.as_str().to_string(),
        ..Event::default()
    }
}

async fn record_loop(client: Client, node: String, mut rx: mpsc::UnboundedReceiver<PodEvent>) {
    let mut agg = Aggregator::new(Limits::default());
    let mut stored: HashMap<Key, Event> = HashMap::new();
    while let Some(e) = rx.recv().await {
        let key: Key = (e.uid.clone(), e.reason.clone(), e.message.clone());
        let now = chrono::Utc::now();
        let result = match agg.record(&key, now_ms()) {
            Write::Hold => continue,
            Write::Create { count } => {
                client
                    .create(&new_event(&e, &node, count, now).to_object())
                    .await
            }
            Write::Update { count } => match stored.get(&key).cloned() {
                Some(mut ev) => {
                    ev.count = count;
                    ev.last_timestamp = Some(now);
                    ev.metadata.resource_version = None;
                    client.update(&ev.to_object()).await
                }
                None => {
                    client
                        .create(&new_event(&e, &node, count, now).to_object())
                        .await
                }
            },
        };
        match result.map(|(o, _)| Event::from_object(&o)) {
            Ok(Ok(ev)) => {
                if stored.len() >= Limits::default().max_keys {
                    stored.clear();
                }
                stored.insert(key, ev);
            }
            Ok(Err(err)) => tracing::debug!("event stored but unreadable: {err}"),
            Err(err) => {
                tracing::debug!("could not record event {}: {err}", e.reason);
                agg.forget(&key);
                stored.remove(&key);
            }
        }
    }
}
