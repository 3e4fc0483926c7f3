//! Records `Event` objects about the objects controllers act on, as
//! `drover describe` shows them. A repeat of the same reason and message on
//! the same object bumps the existing Event's count instead of adding one.
//! Events are best effort: a failed write is logged, never retried.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use drover_proto::meta::ObjectReference;
use drover_proto::types::Event;
use drover_proto::types::event::EventSource;
use drover_proto::{ObjectMeta, Resource};

use crate::controllers::api::ControllerApi;
use crate::controllers::runtime::Clock;

/// Remembered Events for deduplication; cleared when it grows past this.
const DEDUP_LIMIT: usize = 4096;

/// `Normal` or `Warning`, as Kubernetes types Events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
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

/// Writes Events on behalf of one component (`replicaset-controller`).
pub struct EventRecorder<A> {
    api: A,
    clock: Arc<dyn Clock>,
    component: &'static str,
    seen: Mutex<HashMap<(String, String, String), Event>>,
    seq: AtomicU64,
}

impl<A: ControllerApi> EventRecorder<A> {
    pub fn new(api: A, clock: Arc<dyn Clock>, component: &'static str) -> Self {
        EventRecorder {
            api,
            clock,
            component,
            seen: Mutex::default(),
            seq: AtomicU64::new(0),
        }
    }

    /// Records that `reason` happened to `object`, with a human `message`.
    pub async fn record<T: Resource>(
        &self,
        object: &T,
        type_: EventType,
        reason: &str,
        message: String,
    ) {
        let meta = object.metadata();
        let uid = meta.uid.clone().unwrap_or_default();
        let dedup = (uid, reason.to_string(), message.clone());
        let now = self.clock.now();
        let previous = self
            .seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&dedup)
            .cloned();
        let result = match previous {
            Some(mut ev) => {
                ev.count += 1;
                ev.last_timestamp = Some(now);
                ev.metadata.resource_version = None;
                self.api.update(&ev.to_object()).await
            }
            None => {
                let seq = self.seq.fetch_add(1, Ordering::Relaxed);
                let stamp = now.timestamp_nanos_opt().unwrap_or_default() as u64;
                let ev = Event {
                    metadata: ObjectMeta {
                        name: format!("{}.{:x}", meta.name, stamp.wrapping_add(seq)),
                        namespace: Some(object.namespace().to_string()),
                        ..ObjectMeta::default()
                    },
                    involved_object: ObjectReference {
                        kind: T::KIND.name().to_string(),
                        namespace: Some(object.namespace().to_string()),
                        name: meta.name.clone(),
                        uid: meta.uid.clone(),
                        api_version: Some(T::KIND.api_version().to_string()),
                        resource_version: meta.resource_version.clone(),
                        field_path: None,
                    },
                    reason: reason.to_string(),
                    message,
                    source: EventSource {
                        component: self.component.to_string(),
                        host: None,
                    },
                    first_timestamp: Some(now),
                    last_timestamp: Some(now),
                    count: 1,
                    type_: type_.as_str().to_string(),
                    ..Event::default()
                };
                self.api.create(&ev.to_object()).await
            }
        };
        match result.map(|o| Event::from_object(&o)) {
            Ok(Ok(stored)) => {
                let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                if seen.len() >= DEDUP_LIMIT {
                    seen.clear();
                }
                seen.insert(dedup, stored);
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "event stored but unreadable"),
            Err(e) => {
                tracing::debug!(reason, error = %e, "could not record an event");
                // The stored copy may be gone (expired or deleted): start afresh next time.
                self.seen
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&dedup);
            }
        }
    }
}
