//! The API verbs shared by the gRPC service and the HTTP gateway: admission
//! (validate, default, stamp uid and timestamps) then a command to the store.

use std::sync::Arc;
use std::time::Instant;

use drover_proto::selector::{FieldSelector, Selector};
use drover_proto::validation::{AdmitError, admit};
use drover_proto::{Kind, Object};

use crate::auth::node_restriction::check_node_write;
use crate::auth::{Attributes, Auth, AuthError};
use crate::command::{ApplyError, Command, Propagation};
use crate::encryption::{EncryptionError, SecretEncryption};
use crate::store::{Store, StoreError, WatchFilter};
use drover_proto::identity::Identity;

/// Error classes, mapped to gRPC codes and HTTP statuses by the transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    NotFound,
    AlreadyExists,
    Conflict,
    Invalid,
    Gone,
    Unavailable,
    /// No credentials, or ones the server does not accept.
    Unauthenticated,
    /// Known caller, not allowed by any role bound to it.
    Forbidden,
    /// The server cannot serve a stored object (a Secret sealed with a key
    /// it no longer has).
    Internal,
}

/// An API error with a message for the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError {
            code: ErrorCode::Invalid,
            message: message.into(),
        }
    }

    pub fn label(&self) -> &'static str {
        match self.code {
            ErrorCode::NotFound => "NotFound",
            ErrorCode::AlreadyExists => "AlreadyExists",
            ErrorCode::Conflict => "Conflict",
            ErrorCode::Invalid => "Invalid",
            ErrorCode::Gone => "Gone",
            ErrorCode::Unavailable => "Unavailable",
            ErrorCode::Unauthenticated => "Unauthorized",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::Internal => "InternalError",
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let code = match &e {
            StoreError::Apply(ApplyError::NotFound { .. }) => ErrorCode::NotFound,
            StoreError::Apply(ApplyError::AlreadyExists { .. }) => ErrorCode::AlreadyExists,
            StoreError::Apply(ApplyError::Conflict { .. } | ApplyError::NotBindable { .. }) => {
                ErrorCode::Conflict
            }
            StoreError::Apply(ApplyError::Invalid(_)) => ErrorCode::Invalid,
            StoreError::Unavailable(_) => ErrorCode::Unavailable,
        };
        ApiError {
            code,
            message: e.to_string(),
        }
    }
}

impl From<EncryptionError> for ApiError {
    fn from(e: EncryptionError) -> ApiError {
        ApiError {
            code: ErrorCode::Internal,
            message: e.to_string(),
        }
    }
}

impl From<AdmitError> for ApiError {
    fn from(e: AdmitError) -> ApiError {
        ApiError::invalid(e.to_string())
    }
}

/// Parses a kind name as clients send it.
pub fn parse_kind(kind: &str) -> Result<Kind, ApiError> {
    Kind::parse(kind).ok_or_else(|| ApiError::invalid(format!("unknown kind {kind:?}")))
}

/// Parses selectors as clients send them.
pub fn parse_selectors(labels: &str, fields: &str) -> Result<(Selector, FieldSelector), ApiError> {
    let l = Selector::parse(labels).map_err(|e| ApiError::invalid(e.to_string()))?;
    let f = FieldSelector::parse(fields).map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok((l, f))
}

/// The verbs, over a store.
#[derive(Clone)]
pub struct ApiCore {
    pub store: Arc<Store>,
    /// Authentication and RBAC; `None` when the server runs without TLS.
    pub auth: Option<Arc<Auth>>,
    /// The last resource metrics scraped from the agents (not stored).
    pub metrics: crate::resource_metrics::MetricsSource,
    /// How this server reaches agents (logs, exec, metrics).
    pub agents: crate::node_proxy::Agents,
    /// How Secrets are stored: sealed before every command, opened on every read.
    pub at_rest: Arc<SecretEncryption>,
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> ApiError {
        let code = match e {
            AuthError::Unauthenticated => ErrorCode::Unauthenticated,
            AuthError::Forbidden(_) | AuthError::NodeRestricted(_) => ErrorCode::Forbidden,
        };
        ApiError {
            code,
            message: e.to_string(),
        }
    }
}

/// The namespace a request on `object` acts in, for authorization.
pub fn object_namespace(kind: Kind, object: &Object) -> &str {
    match object.metadata.namespace.as_deref() {
        _ if !kind.namespaced() => "",
        Some(ns) if !ns.is_empty() => ns,
        _ => drover_proto::DEFAULT_NAMESPACE,
    }
}

/// Records a request's outcome and latency in `/metrics`.
fn observe<T>(verb: &'static str, kind: &str, start: Instant, r: &Result<T, ApiError>) {
    let code = match r {
        Ok(_) => "OK",
        Err(e) => e.label(),
    };
    metrics::counter!("drover_api_requests_total", "verb" => verb, "kind" => kind.to_string(), "code" => code)
        .increment(1);
    metrics::histogram!("drover_api_request_duration_seconds", "verb" => verb)
        .record(start.elapsed().as_secs_f64());
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let id = uuid::Uuid::new_v4();
    id.as_bytes()[..5]
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

impl ApiCore {
    pub fn new(store: Arc<Store>, auth: Option<Arc<Auth>>) -> ApiCore {
        ApiCore {
            store,
            auth,
            metrics: Default::default(),
            agents: Default::default(),
            at_rest: Default::default(),
        }
    }

    /// Lets the request through if its caller (recorded by
    /// [`crate::auth::authenticate`]) may do `verb` on `resource` in
    /// `namespace`; always, when authorization is off.
    pub fn authorize(
        &self,
        request: &axum::http::Extensions,
        verb: &str,
        resource: &str,
        namespace: &str,
    ) -> Result<(), ApiError> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        let attributes = Attributes {
            verb,
            resource,
            namespace,
        };
        Ok(auth.check(request.get::<Identity>(), &attributes)?)
    }

    /// After [`ApiCore::authorize`] for a write to `kind/name`: an agent may
    /// change only its own Node and the pods bound to it.
    pub fn restrict_node_write(
        &self,
        request: &axum::http::Extensions,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        let node = match (&self.auth, request.get::<Identity>()) {
            (Some(_), Some(who)) => who.node_name(),
            _ => None,
        };
        let Some(node) = node else {
            return Ok(());
        };
        let stored = (kind == Kind::Pod)
            .then(|| self.store.get(kind, namespace, name))
            .flatten();
        let bound_to = stored
            .as_ref()
            .and_then(|p| p.body.get("spec")?.get("nodeName")?.as_str());
        check_node_write(node, kind, name, bound_to).map_err(|e| {
            metrics::counter!(
                "drover_authorization_denials_total",
                "verb" => "write",
                "resource" => kind.plural()
            )
            .increment(1);
            ApiError::from(AuthError::NodeRestricted(e))
        })
    }

    /// Makes the next local read linearizable (a Raft ReadIndex round on a
    /// replicated member) unless the client accepts a `stale` one.
    pub async fn read_barrier(&self, stale: bool) -> Result<(), ApiError> {
        if stale {
            return Ok(());
        }
        Ok(self.store.read_barrier().await?)
    }

    /// Creates an object; returns it as stored and warnings for the client.
    pub async fn create(
        &self,
        mut object: Object,
        dry_run: bool,
    ) -> Result<(Arc<Object>, Vec<String>), ApiError> {
        let start = Instant::now();
        if object.metadata.name.is_empty()
            && let Some(prefix) = object.metadata.generate_name.clone()
        {
            object.metadata.name = format!("{prefix}{}", random_suffix());
        }
        let kind_label = object.kind.clone();
        let r = async {
            let admitted = admit(object)?;
            let mut obj = admitted.object;
            // Identity and time are decided here, before the command, so the
            // state machine stays deterministic.
            obj.metadata.uid = Some(uuid::Uuid::new_v4().to_string());
            obj.metadata.creation_timestamp = Some(now_seconds());
            obj.metadata.resource_version = None;
            obj.metadata.deletion_timestamp = None;
            if admitted.kind.namespaced() {
                obj.metadata.namespace = Some(obj.metadata.namespace_or_default().to_string());
            } else {
                obj.metadata.namespace = None;
            }
            if dry_run {
                return Ok((Arc::new(obj), admitted.warnings));
            }
            let object = self.at_rest.seal(obj);
            let stored = self.store.propose(Command::Create { object }).await?;
            Ok((self.at_rest.open(stored)?, admitted.warnings))
        }
        .await;
        observe("create", &kind_label, start, &r);
        r
    }

    /// Replaces an object's metadata and spec (status is kept).
    pub async fn update(
        &self,
        object: Object,
        dry_run: bool,
    ) -> Result<(Arc<Object>, Vec<String>), ApiError> {
        let start = Instant::now();
        let kind_label = object.kind.clone();
        let r = async {
            let precondition = revision_precondition(&object)?;
            let admitted = admit(object)?;
            if dry_run {
                return Ok((Arc::new(admitted.object), admitted.warnings));
            }
            let stored = self
                .store
                .propose(Command::Update {
                    object: self.at_rest.seal(admitted.object),
                    precondition,
                })
                .await?;
            Ok((self.at_rest.open(stored)?, admitted.warnings))
        }
        .await;
        observe("update", &kind_label, start, &r);
        r
    }

    /// Binds a pending pod to `node` (`pods/binding`); `precondition` is
    /// the resourceVersion the scheduler decided on.
    pub async fn bind(
        &self,
        namespace: &str,
        name: &str,
        node: &str,
        precondition: Option<u64>,
    ) -> Result<(), ApiError> {
        let start = Instant::now();
        let r = async {
            drover_proto::validation::names::check_dns_subdomain(node)
                .map_err(|e| ApiError::invalid(format!("nodeName {node:?}: {e}")))?;
            let namespace = if namespace.is_empty() {
                drover_proto::DEFAULT_NAMESPACE
            } else {
                namespace
            };
            self.store
                .propose(Command::Bind {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    node: node.to_string(),
                    precondition,
                })
                .await?;
            Ok(())
        }
        .await;
        observe("bind", Kind::Pod.name(), start, &r);
        r
    }

    /// Replaces an object's status.
    pub async fn update_status(&self, object: Object) -> Result<Arc<Object>, ApiError> {
        let start = Instant::now();
        let kind_label = object.kind.clone();
        let r = async {
            let precondition = revision_precondition(&object)?;
            let admitted = admit(object)?;
            let stored = self
                .store
                .propose(Command::UpdateStatus {
                    object: self.at_rest.seal(admitted.object),
                    precondition,
                })
                .await?;
            Ok(self.at_rest.open(stored)?)
        }
        .await;
        observe("update_status", &kind_label, start, &r);
        r
    }

    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Result<Arc<Object>, ApiError> {
        let start = Instant::now();
        let r = self
            .store
            .get(kind, namespace, name)
            .ok_or_else(|| ApiError {
                code: ErrorCode::NotFound,
                message: format!("{} \"{name}\" not found", kind.plural()),
            })
            .and_then(|o| Ok(self.at_rest.open(o)?));
        observe("get", kind.name(), start, &r);
        r
    }

    pub fn list(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        labels: &str,
        fields: &str,
    ) -> Result<(Vec<Arc<Object>>, u64), ApiError> {
        let start = Instant::now();
        let r = parse_selectors(labels, fields).and_then(|(l, f)| {
            let (objects, revision) = self.store.list(kind, namespace, &l, &f);
            let opened = objects.into_iter().map(|o| self.at_rest.open(o));
            Ok((opened.collect::<Result<_, _>>()?, revision))
        });
        observe("list", kind.name(), start, &r);
        r
    }

    pub async fn delete(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        precondition: Option<u64>,
        propagation: &str,
        grace_period_seconds: Option<i64>,
    ) -> Result<Arc<Object>, ApiError> {
        let start = Instant::now();
        let r = async {
            let propagation = Propagation::parse(propagation).map_err(ApiError::invalid)?;
            let namespace = if kind.namespaced() {
                if namespace.is_empty() {
                    drover_proto::DEFAULT_NAMESPACE
                } else {
                    namespace
                }
            } else {
                ""
            };
            let deleted = self
                .store
                .propose(Command::Delete {
                    kind,
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    precondition,
                    propagation,
                    grace_period_seconds,
                    now: now_seconds(),
                })
                .await?;
            Ok(self.at_rest.open(deleted)?)
        }
        .await;
        observe("delete", kind.name(), start, &r);
        r
    }

    /// Starts a watch after `since` (None: from now).
    pub fn watch(
        &self,
        kind: Kind,
        namespace: Option<&str>,
        labels: &str,
        fields: &str,
        since: Option<u64>,
    ) -> Result<OpenedWatch, ApiError> {
        let (labels, fields) = parse_selectors(labels, fields)?;
        let filter = WatchFilter {
            kind,
            namespace: namespace.map(str::to_string),
            labels,
            fields,
        };
        metrics::counter!("drover_api_requests_total", "verb" => "watch", "kind" => kind.name(), "code" => "OK")
            .increment(1);
        let watch = self.store.watch(filter, since).map_err(|e| ApiError {
            code: ErrorCode::Gone,
            message: e.to_string(),
        })?;
        Ok(OpenedWatch {
            watch,
            at_rest: self.at_rest.clone(),
        })
    }
}

/// A watch whose Secrets arrive opened, as every other read returns them.
pub struct OpenedWatch {
    watch: crate::store::watch::Watch,
    at_rest: Arc<SecretEncryption>,
}

impl OpenedWatch {
    /// The next event; an error when the history it needs was compacted or
    /// a Secret cannot be opened.
    pub async fn next(&mut self) -> Option<Result<crate::store::WatchItem, ApiError>> {
        let item = match self.watch.next().await? {
            Ok(item) => item,
            Err(too_old) => {
                return Some(Err(ApiError {
                    code: ErrorCode::Gone,
                    message: too_old.to_string(),
                }));
            }
        };
        Some(match self.at_rest.open(item.object.clone()) {
            Ok(object) => Ok(crate::store::WatchItem { object, ..item }),
            Err(e) => Err(e.into()),
        })
    }
}

fn revision_precondition(object: &Object) -> Result<Option<u64>, ApiError> {
    match object.metadata.resource_version.as_deref() {
        None | Some("") => Ok(None),
        Some(rv) => rv.parse().map(Some).map_err(|_| {
            ApiError::invalid(format!(
                "metadata.resourceVersion: {rv:?} is not a resource version from this server"
            ))
        }),
    }
}

/// The current time at second precision, as Kubernetes timestamps are.
fn now_seconds() -> drover_proto::Time {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(0)
}
