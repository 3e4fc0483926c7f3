//! An in-memory API for controller tests: the real state machine behind the
//! [`ControllerApi`] calls, with uids, names and timestamps from a counter
//! and a [`Clock`], and counters of what was asked for.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use drover_proto::client::{ClientError, DeleteOptions, ListOptions, WatchEvent};
use drover_proto::selector::{FieldSelector, Selector};
use drover_proto::validation::admit;
use drover_proto::{Kind, Object};
use tokio::sync::Notify;

use crate::command::{ApplyError, Command, Propagation};
use crate::controllers::api::{ControllerApi, WatchStream};
use crate::controllers::runtime::Clock;
use crate::state::StateMachine;

struct Inner {
    state: StateMachine,
    next_id: u64,
    creates: HashMap<Kind, usize>,
    deletes: HashMap<Kind, usize>,
    /// The next this many creations fail, as a quota would refuse them.
    fail_creates: usize,
}

/// A fake API server; clones share one state.
#[derive(Clone)]
pub struct FakeApi {
    inner: Arc<Mutex<Inner>>,
    clock: Arc<dyn Clock>,
    changed: Arc<Notify>,
}

fn client_error(e: ApplyError) -> ClientError {
    match e {
        ApplyError::NotFound { .. } => ClientError::NotFound(e.to_string()),
        ApplyError::AlreadyExists { .. } => ClientError::AlreadyExists(e.to_string()),
        ApplyError::Conflict { .. } | ApplyError::NotBindable { .. } => {
            ClientError::Conflict(e.to_string())
        }
        ApplyError::Invalid(m) => ClientError::Invalid(m),
    }
}

fn precondition(o: &Object) -> Option<u64> {
    o.metadata.revision()
}

impl FakeApi {
    pub fn new(clock: Arc<dyn Clock>) -> FakeApi {
        FakeApi {
            inner: Arc::new(Mutex::new(Inner {
                state: StateMachine::new(1_000_000),
                next_id: 0,
                creates: HashMap::new(),
                deletes: HashMap::new(),
                fail_creates: 0,
            })),
            clock,
            changed: Arc::new(Notify::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn apply(&self, command: Command) -> Result<Object, ClientError> {
        let (result, _) = self.lock().state.apply(&command);
        self.changed.notify_waiters();
        result.map(|o| (*o).clone()).map_err(client_error)
    }

    /// Creations of `kind` requested so far (failed ones included).
    pub fn creates(&self, kind: Kind) -> usize {
        self.lock().creates.get(&kind).copied().unwrap_or(0)
    }

    pub fn deletes(&self, kind: Kind) -> usize {
        self.lock().deletes.get(&kind).copied().unwrap_or(0)
    }

    pub fn fail_next_creates(&self, n: usize) {
        self.lock().fail_creates = n;
    }

    /// Every object of `kind`, as stored.
    pub fn objects(&self, kind: Kind) -> Vec<Object> {
        self.lock()
            .state
            .list(
                kind,
                None,
                &Selector::everything(),
                &FieldSelector::default(),
            )
            .into_iter()
            .map(|o| (*o).clone())
            .collect()
    }

    fn create_sync(&self, object: &Object) -> Result<Object, ClientError> {
        let mut o = object.clone();
        let kind = o.kind().map_err(ClientError::Invalid)?;
        let id = {
            let mut inner = self.lock();
            *inner.creates.entry(kind).or_default() += 1;
            if inner.fail_creates > 0 {
                inner.fail_creates -= 1;
                return Err(ClientError::Other("injected failure".into()));
            }
            inner.next_id += 1;
            inner.next_id
        };
        if o.metadata.name.is_empty()
            && let Some(prefix) = &o.metadata.generate_name
        {
            o.metadata.name = format!("{prefix}{id:05}");
        }
        let mut o = admit(o)
            .map_err(|e| ClientError::Invalid(e.to_string()))?
            .object;
        o.metadata.uid = Some(format!("uid-{id}"));
        o.metadata.creation_timestamp = Some(self.clock.now());
        o.metadata.resource_version = None;
        if kind.namespaced() && o.metadata.namespace.is_none() {
            o.metadata.namespace = Some(drover_proto::DEFAULT_NAMESPACE.into());
        }
        self.apply(Command::Create { object: o })
    }

    fn update_sync(&self, object: &Object, status: bool) -> Result<Object, ClientError> {
        let precondition = precondition(object);
        let o = admit(object.clone())
            .map_err(|e| ClientError::Invalid(e.to_string()))?
            .object;
        self.apply(if status {
            Command::UpdateStatus {
                object: o,
                precondition,
            }
        } else {
            Command::Update {
                object: o,
                precondition,
            }
        })
    }

    fn delete_sync(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Object, ClientError> {
        *self.lock().deletes.entry(kind).or_default() += 1;
        self.apply(Command::Delete {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
            precondition: (opts.resource_version != 0).then_some(opts.resource_version),
            propagation: Propagation::parse(&opts.propagation_policy)
                .map_err(ClientError::Invalid)?,
            grace_period_seconds: opts.grace_period_seconds,
            now: self.clock.now(),
        })
    }

    // Test conveniences with the same semantics as the trait methods.
    pub fn create_now(&self, object: &Object) -> Result<Object, ClientError> {
        self.create_sync(object)
    }

    pub fn update_now(&self, object: &Object) -> Result<Object, ClientError> {
        self.update_sync(object, false)
    }

    pub fn update_status_now(&self, object: &Object) -> Result<Object, ClientError> {
        self.update_sync(object, true)
    }

    pub fn delete_now(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Object, ClientError> {
        self.delete_sync(kind, namespace, name, &DeleteOptions::default())
    }
}

impl ControllerApi for FakeApi {
    async fn list(
        &self,
        kind: Kind,
        opts: &ListOptions,
    ) -> Result<(Vec<Object>, u64), ClientError> {
        let labels = Selector::parse(&opts.label_selector)
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let inner = self.lock();
        let items = inner
            .state
            .list(
                kind,
                opts.namespace.as_deref(),
                &labels,
                &FieldSelector::default(),
            )
            .into_iter()
            .map(|o| (*o).clone())
            .collect();
        Ok((items, inner.state.revision()))
    }

    async fn watch(
        &self,
        kind: Kind,
        _opts: &ListOptions,
        revision: u64,
    ) -> Result<WatchStream, ClientError> {
        // Hand out what happened since `revision`; when nothing has, wait a
        // little for a change so a resuming informer does not spin.
        let notified = self.changed.notified();
        if self.lock().state.revision() <= revision {
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
        }
        let changes = self
            .lock()
            .state
            .changes_since(revision)
            .map_err(|e| ClientError::Gone(e.to_string()))?;
        let events: Vec<Result<WatchEvent, ClientError>> = changes
            .into_iter()
            .filter(|c| c.kind == kind)
            .map(|c| {
                Ok(WatchEvent {
                    type_: c.type_.as_str().to_string(),
                    object: (*c.object).clone(),
                    resource_version: c.revision,
                })
            })
            .collect();
        Ok(Box::pin(futures::stream::iter(events)))
    }

    async fn get(&self, kind: Kind, namespace: &str, name: &str) -> Result<Object, ClientError> {
        let ns = if kind.namespaced() { namespace } else { "" };
        self.lock()
            .state
            .get(kind, ns, name)
            .map(|o| (*o).clone())
            .ok_or_else(|| ClientError::NotFound(format!("{} {name:?} not found", kind.lower())))
    }

    async fn create(&self, object: &Object) -> Result<Object, ClientError> {
        self.create_sync(object)
    }

    async fn update(&self, object: &Object) -> Result<Object, ClientError> {
        self.update_sync(object, false)
    }

    async fn update_status(&self, object: &Object) -> Result<Object, ClientError> {
        self.update_sync(object, true)
    }

    async fn delete(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Object, ClientError> {
        self.delete_sync(kind, namespace, name, opts)
    }
}
