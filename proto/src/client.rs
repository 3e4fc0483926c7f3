//! A typed client for the gRPC API, used by the CLI, the agent and the tests.

use std::time::Duration;

use futures::{Stream, StreamExt};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Status};

use crate::grpc::api_client::ApiClient;
use crate::grpc::cluster_client::ClusterClient;
use crate::grpc::{self as pb};
use crate::{Kind, Object, Resource};

/// Largest message the client accepts (big lists of pods).
const MAX_MESSAGE: usize = 1 << 30;

/// What went wrong talking to the API; messages say what to do next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the Drover API at {url}: {message} (is `drover server` running? set --server or DROVER_SERVER)"
    )]
    Unreachable { url: String, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// Another writer changed the object first; re-read and retry.
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    /// A watch asked for history that was compacted: list again.
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    Unavailable(String),
    /// No valid credentials: the server does not know who is asking.
    #[error("unauthorized: {0} (check the client config's certificate or token)")]
    Unauthenticated(String),
    /// Known, but not allowed to do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("{0}")]
    Other(String),
    #[error("the server sent an unreadable object: {0}")]
    Decode(String),
}

impl ClientError {
    fn from_status(s: Status) -> ClientError {
        let m = s.message().to_string();
        match s.code() {
            Code::NotFound => ClientError::NotFound(m),
            Code::AlreadyExists => ClientError::AlreadyExists(m),
            Code::Aborted | Code::FailedPrecondition => ClientError::Conflict(m),
            Code::InvalidArgument => ClientError::Invalid(m),
            Code::OutOfRange => ClientError::Gone(m),
            Code::Unavailable => ClientError::Unavailable(m),
            Code::Unauthenticated => ClientError::Unauthenticated(m),
            Code::PermissionDenied => ClientError::Forbidden(m),
            _ => ClientError::Other(format!("{:?}: {m}", s.code())),
        }
    }
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchEvent {
    /// `ADDED`, `MODIFIED`, `DELETED` or `BOOKMARK`.
    pub type_: String,
    pub object: Object,
    pub resource_version: u64,
}

/// What to list or watch.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// None lists every namespace.
    pub namespace: Option<String>,
    pub label_selector: String,
    pub field_selector: String,
}

/// How to delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// Compare-and-set precondition; 0 means unconditional.
    pub resource_version: u64,
    /// `Background` (default), `Foreground` or `Orphan`.
    pub propagation_policy: String,
    /// Seconds a pod bound to a node gets to stop; None: the pod's own setting.
    pub grace_period_seconds: Option<i64>,
}

/// A connection to one API server.
#[derive(Debug, Clone)]
pub struct Client {
    api: ApiClient<Channel>,
    cluster: ClusterClient<Channel>,
    url: String,
    /// Reads served from the member's own state, without a ReadIndex round.
    stale_reads: bool,
    /// `Bearer TOKEN`, sent with every call.
    /// (Boxed: the client is moved around by value a lot.)
    token: Option<std::sync::Arc<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>>,
}

/// How a client proves who it is and whom it trusts (PEM bytes, as read
/// from the files a client config names).
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The cluster CA; without it, the system's roots are not used either,
    /// so an `https://` URL then fails to verify.
    pub ca_pem: Option<Vec<u8>>,
    /// Client certificate and key.
    pub cert_pem: Option<(Vec<u8>, Vec<u8>)>,
    pub token: Option<String>,
}

impl Credentials {
    fn tls(&self) -> ClientTlsConfig {
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = &self.ca_pem {
            tls = tls.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some((cert, key)) = &self.cert_pem {
            tls = tls.identity(tonic::transport::Identity::from_pem(cert, key));
        }
        tls
    }
}

fn decode(bytes: &[u8]) -> Result<Object, ClientError> {
    Object::from_json(bytes).map_err(|e| ClientError::Decode(e.to_string()))
}

impl Client {
    /// Connects to `url` (e.g. `http://127.0.0.1:7700`), failing fast if it is down.
    pub async fn connect(url: &str) -> Result<Client, ClientError> {
        Client::connect_with(url, &Credentials::default()).await
    }

    /// Connects to `url` with TLS and credentials (`https://...`).
    pub async fn connect_with(url: &str, credentials: &Credentials) -> Result<Client, ClientError> {
        let unreachable = |message: String| ClientError::Unreachable {
            url: url.to_string(),
            message,
        };
        let mut endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| unreachable(format!("invalid URL: {e}")))?
            .connect_timeout(Duration::from_secs(3))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_while_idle(true);
        if url.starts_with("https://") {
            endpoint = endpoint
                .tls_config(credentials.tls())
                .map_err(|e| unreachable(format!("TLS settings: {e}")))?;
        }
        let channel = endpoint.connect().await.map_err(|e| {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg = format!("{msg}: {s}");
                src = s.source();
            }
            unreachable(msg)
        })?;
        let token = match &credentials.token {
            None => None,
            Some(t) => {
                let header = format!("Bearer {t}").parse().map_err(|_| {
                    unreachable("the token has characters a header cannot carry".into())
                })?;
                Some(std::sync::Arc::new(header))
            }
        };
        Ok(Client {
            cluster: ClusterClient::new(channel.clone()),
            api: ApiClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
            url: url.to_string(),
            stale_reads: false,
            token,
        })
    }

    /// A request carrying the bearer token, if there is one.
    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        if let Some(token) = &self.token {
            request
                .metadata_mut()
                .insert("authorization", (**token).clone());
        }
        request
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Gets and lists from now on accept the member's local state, which a
    /// follower may serve slightly behind the leader (`--consistency=stale`).
    pub fn with_stale_reads(mut self, stale: bool) -> Client {
        self.stale_reads = stale;
        self
    }

    fn map(&self, s: Status) -> ClientError {
        if s.code() == Code::Unavailable && s.message().contains("transport") {
            return ClientError::Unreachable {
                url: self.url.clone(),
                message: s.message().to_string(),
            };
        }
        // TLS 1.3 servers refuse a client certificate after the client
        // thinks the handshake is done: the first call is cut off.
        let cut_off = s.code() == Code::Cancelled
            || (s.code() == Code::Unknown && s.message().contains("transport error"));
        if cut_off && self.url.starts_with("https://") {
            return ClientError::Unreachable {
                url: self.url.clone(),
                message: format!(
                    "the server closed the connection ({}); it refuses the client certificate: {}",
                    s.message(),
                    refusal(&s)
                ),
            };
        }
        ClientError::from_status(s)
    }

    /// Creates an object; returns it as stored plus the server's warnings.
    pub async fn create(&self, object: &Object) -> Result<(Object, Vec<String>), ClientError> {
        let req = pb::CreateRequest {
            object: object.to_json(),
            dry_run: false,
        };
        let reply = self
            .api
            .clone()
            .create(self.request(req))
            .await
            .map_err(|s| self.map(s))?
            .into_inner();
        Ok((decode(&reply.object)?, reply.warnings))
    }

    pub async fn get(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
    ) -> Result<Object, ClientError> {
        let req = pb::GetRequest {
            kind: kind.name().into(),
            namespace: namespace.into(),
            name: name.into(),
            stale: self.stale_reads,
        };
        let reply = self
            .api
            .clone()
            .get(self.request(req))
            .await
            .map_err(|s| self.map(s))?
            .into_inner();
        decode(&reply.object)
    }

    /// Lists objects; also returns the revision the list was read at.
    pub async fn list(
        &self,
        kind: Kind,
        opts: &ListOptions,
    ) -> Result<(Vec<Object>, u64), ClientError> {
        let req = pb::ListRequest {
            kind: kind.name().into(),
            namespace: opts.namespace.clone().unwrap_or_default(),
            label_selector: opts.label_selector.clone(),
            field_selector: opts.field_selector.clone(),
            stale: self.stale_reads,
        };
        let reply = self
            .api
            .clone()
            .list(self.request(req))
            .await
            .map_err(|s| self.map(s))?
            .into_inner();
        let items = reply
            .items
            .iter()
            .map(|b| decode(b))
            .collect::<Result<_, _>>()?;
        Ok((items, reply.resource_version))
    }

    /// Replaces spec and metadata; `metadata.resourceVersion` makes it compare-and-set.
    pub async fn update(&self, object: &Object) -> Result<(Object, Vec<String>), ClientError> {
        let req = pb::UpdateRequest {
            object: object.to_json(),
            dry_run: false,
        };
        let reply = self
            .api
            .clone()
            .update(self.request(req))
            .await
            .map_err(|s| self.map(s))?
            .into_inner();
        Ok((decode(&reply.object)?, reply.warnings))
    }

    /// Replaces status only.
    pub async fn update_status(&self, object: &Object) -> Result<Object, ClientError> {
        let req = pb::UpdateRequest {
            object: object.to_json(),
            dry_run: false,
        };
        let reply = self
            .api
            .clone()
            .update_status(self.request(req))
            .await
            .map_err(|s| self.map(s))?
            .into_inner();
        decode(&reply.object)
    }

    /// Binds pods to nodes, each by compare-and-set on the resourceVersion
    /// it names (0: none). One result per binding, in order; the outer error
    /// is for a call that failed as a whole.
    pub async fn bind(
        &self,
        bindings: Vec<pb::Binding>,
    ) -> Result<Vec<Result<(), ClientError>>, ClientError> {
        let count = bindings.len();
        let reply = self
            .api
            .clone()
            .bind(self.request(pb::BindRequest { bindings }))
            .await
            .map_err(|s| self.map(s))?
            .into_inner();
        if reply.results.len() != count {
            return Err(ClientError::Other(format!(
                "the server answered {} of {count} bindings",
                reply.results.len()
            )));
        }
        Ok(reply
            .results
            .into_iter()
            .map(|r| match Code::from(r.code) {
                Code::Ok => Ok(()),
                code => Err(ClientError::from_status(Status::new(code, r.message))),
            })
            .collect())
    }

    /// Deletes (or marks for deletion when finalizers or a grace period hold it).
    pub async fn delete(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<Object, ClientError> {
        let req = pb::DeleteRequest {
            kind: kind.name().into(),
            namespace: namespace.into(),
            name: name.into(),
            resource_version: opts.resource_version,
            propagation_policy: opts.propagation_policy.clone(),
            grace_period_seconds: opts.grace_period_seconds,
        };
        let reply = self
            .api
            .clone()
            .delete(self.request(req))
            .await
            .map_err(|s| self.map(s))?
            .into_inner();
        decode(&reply.object)
    }

    /// Streams every change after `resource_version` (None: from now). Pass
    /// the revision a list returned to see everything after it.
    pub async fn watch(
        &self,
        kind: Kind,
        opts: &ListOptions,
        resource_version: Option<u64>,
    ) -> Result<impl Stream<Item = Result<WatchEvent, ClientError>> + use<>, ClientError> {
        let req = pb::WatchRequest {
            kind: kind.name().into(),
            namespace: opts.namespace.clone().unwrap_or_default(),
            label_selector: opts.label_selector.clone(),
            field_selector: opts.field_selector.clone(),
            resource_version,
        };
        let stream = self
            .api
            .clone()
            .watch(self.request(req))
            .await
            .map_err(|s| self.map(s))?
            .into_inner();
        Ok(stream.map(|item| {
            let ev = item.map_err(ClientError::from_status)?;
            Ok(WatchEvent {
                type_: ev.r#type,
                object: decode(&ev.object)?,
                resource_version: ev.resource_version,
            })
        }))
    }

    /// The server's version and current revision.
    pub async fn version(&self) -> Result<(String, u64), ClientError> {
        let reply = self
            .api
            .clone()
            .version(self.request(pb::VersionRequest {}))
            .await
            .map_err(|s| self.map(s))?
            .into_inner();
        Ok((reply.version, reply.revision))
    }

    /// The replicated control plane's members, leader, indexes and lag.
    pub async fn cluster_status(&self) -> Result<pb::ClusterStatusReply, ClientError> {
        Ok(self
            .cluster
            .clone()
            .status(self.request(pb::ClusterStatusRequest {}))
            .await
            .map_err(|s| self.map(s))?
            .into_inner())
    }

    /// Adds member `id`, whose Raft transport listens on `peer_addr`.
    pub async fn add_member(&self, id: u64, peer_addr: &str) -> Result<(), ClientError> {
        self.cluster
            .clone()
            .add_member(self.request(pb::AddMemberRequest {
                id,
                peer_addr: peer_addr.to_string(),
            }))
            .await
            .map_err(|s| self.map(s))?;
        Ok(())
    }

    /// Removes member `id` (the leader too: it hands leadership over first).
    pub async fn remove_member(&self, id: u64) -> Result<(), ClientError> {
        self.cluster
            .clone()
            .remove_member(self.request(pb::RemoveMemberRequest { id }))
            .await
            .map_err(|s| self.map(s))?;
        Ok(())
    }

    /// Typed get.
    pub async fn get_as<T: Resource>(&self, namespace: &str, name: &str) -> Result<T, ClientError> {
        let o = self.get(T::KIND, namespace, name).await?;
        T::from_object(&o).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Typed list.
    pub async fn list_as<T: Resource>(
        &self,
        opts: &ListOptions,
    ) -> Result<(Vec<T>, u64), ClientError> {
        let (items, rv) = self.list(T::KIND, opts).await?;
        let typed = items
            .iter()
            .map(T::from_object)
            .collect::<Result<_, _>>()
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        Ok((typed, rv))
    }
}

/// Why a TLS server refused our certificate, from the alert it sent when
/// the error chain carries it.
fn refusal(status: &Status) -> &'static str {
    let mut chain = String::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(status);
    while let Some(e) = source {
        chain.push_str(&format!("{e} {e:?} "));
        source = e.source();
    }
    if chain.contains("CertificateRevoked") {
        "it has been revoked (drover cert revoke)"
    } else if chain.contains("CertificateExpired") {
        "it has expired"
    } else {
        "expired, revoked, or signed by another CA?"
    }
}
