//! `drover server`: opens the store (alone, or as a member of a replicated
//! control plane) and serves gRPC and the HTTP gateway on one listener
//! (tonic's routes inside the axum router; HTTP/1.1 and h2c side by side).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use drover_proto::grpc::api_server::ApiServer;
use drover_proto::grpc::cluster_server::ClusterServer;
use tokio::sync::watch;

use crate::api::cluster::ClusterApi;
use crate::api::{ApiCore, http, metrics};
use crate::auth::join::NodeSigner;
use crate::auth::{Auth, TlsListener, TlsMaterial, TlsPeer, authenticate};
use crate::encryption::SecretEncryption;
use crate::node_proxy::Agents;
use crate::replicated::{self, Member, RaftSettings};
use crate::store::{OpenError, Store};

/// Settings of one API server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Changes kept for watches to resume from.
    pub history_limit: usize,
    /// Member of a replicated control plane; `None`: a single server.
    pub raft: Option<RaftSettings>,
    /// TLS on every listener, with authentication and RBAC; `None`: plain
    /// HTTP/2 and no checks (the caller keeps such a server on loopback).
    pub security: Option<Security>,
    /// How Secrets are stored (`--encryption-key-file`; default plaintext).
    pub encryption: SecretEncryption,
}

/// What a server secured with TLS needs.
#[derive(Clone)]
pub struct Security {
    pub tls: TlsMaterial,
    pub auth: Auth,
    /// Signs the certificates of agents joining with a token (`--ca-key`);
    /// `None`: joins are refused.
    pub signer: Option<Arc<dyn NodeSigner>>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security").finish_non_exhaustive()
    }
}

/// What a started server tells its caller.
pub struct Ready {
    /// Where the API listens.
    pub addr: SocketAddr,
    /// Where the Raft transport listens (replicated members only).
    pub peer_addr: Option<SocketAddr>,
    /// True while this server may run leader-only work (controllers,
    /// scheduler): always for a single server, while it leads otherwise.
    pub leader: watch::Receiver<bool>,
    /// The resource metrics this server scrapes (for the autoscaler).
    pub metrics: crate::resource_metrics::MetricsSource,
}

/// Why the server stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Member(#[from] replicated::StartError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
    #[error(
        "the raft node stopped: {0}; this member no longer takes part in the cluster. Fix the cause (a full disk?) and restart it: it catches up from its peers"
    )]
    RaftFailed(String),
    #[error(transparent)]
    Tls(#[from] crate::auth::TlsError),
    #[error("{0}")]
    PeerIdentity(String),
    #[error("reaching agents: {0}")]
    Agents(#[from] drover_proto::dial::DialError),
}

/// Runs the server until `shutdown` resolves. `on_ready` learns where it listens.
pub async fn serve(
    config: ServerConfig,
    on_ready: impl FnOnce(Ready),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    metrics::install();
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(ServeError::Serve)?;
    let (store, member) = match &config.raft {
        None => (Store::open(&config.data_dir, config.history_limit)?, None),
        Some(settings) => {
            let tls = config.security.as_ref().map(|s| &s.tls);
            if let Some(tls) = tls {
                check_member_certificate(tls, settings.id)?;
            }
            let m =
                replicated::start(&config.data_dir, config.history_limit, settings, tls).await?;
            (m.store.clone(), Some(m))
        }
    };
    let leader = match &member {
        None => watch::channel(true).1,
        Some(m) => leader_signal(m.replicator.leadership()),
    };
    let auth = config.security.as_ref().map(|s| Arc::new(s.auth.clone()));
    // Revocations take effect without a restart: both files are polled.
    let reloads: Vec<_> = config
        .security
        .iter()
        .flat_map(|s| {
            let crl = s.tls.revocation().map(|r| r.spawn_reload());
            crl.into_iter().chain(s.auth.tokens.spawn_reload())
        })
        .collect();
    let mut core = ApiCore::new(store.clone(), auth.clone());
    log_secret_storage(&store, &config.encryption);
    core.at_rest = Arc::new(config.encryption.clone());
    if let Some(security) = &config.security {
        core.agents = Agents::from_tls(&security.tls)?;
    }
    let scraper = tokio::spawn(crate::resource_metrics::scrape::run(
        store,
        core.metrics.clone(),
        core.agents.clone(),
    ));
    let metrics_source = core.metrics.clone();
    let max = 1 << 30;
    let grpc = tonic::service::Routes::new(
        ApiServer::new(core.clone())
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    )
    .add_service(ClusterServer::new(ClusterApi::new(core.clone())))
    .into_axum_router();
    let bootstrap = config
        .security
        .as_ref()
        .map(|s| crate::auth::join::router(core.clone(), s.tls.ca_pem.clone(), s.signer.clone()));
    let app = grpc
        .merge(http::router(core.clone()))
        .merge(crate::ui::router(core));
    let tls = match (&config.security, auth, bootstrap) {
        (Some(security), Some(auth), Some(bootstrap)) => Some((
            security.tls.api_server_config()?,
            app.clone()
                .merge(bootstrap)
                .route(
                    "/ui/login",
                    axum::routing::get(crate::auth::login::login).with_state(auth.clone()),
                )
                .layer(axum::middleware::from_fn_with_state(auth, authenticate)),
        )),
        _ => None,
    };
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "drover API serving gRPC and HTTP");
    on_ready(Ready {
        addr,
        peer_addr: member.as_ref().map(|m| m.peer_addr),
        leader,
        metrics: metrics_source,
    });
    let serving = async move {
        match tls {
            Some((tls_config, app)) => {
                let listener = TlsListener::new(listener, tls_config).map_err(ServeError::Serve)?;
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<TlsPeer>(),
                )
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(ServeError::Serve)
            }
            None => serve_plain(listener, app, shutdown).await,
        }
    };
    let served = match member.as_ref().map(Member::failure) {
        None => serving.await,
        Some(failure) => tokio::select! {
            r = serving => r,
            why = failure => Err(ServeError::RaftFailed(why)),
        },
    };
    scraper.abort();
    reloads.iter().for_each(tokio::task::JoinHandle::abort);
    if let Some(m) = member {
        m.shutdown().await;
    }
    served
}

/// Says how Secrets are kept, warning when existing ones are plaintext on disk.
fn log_secret_storage(store: &Store, encryption: &SecretEncryption) {
    if encryption.encrypts() {
        tracing::info!("Secrets are encrypted at rest (--encryption-key-file)");
        return;
    }
    let everything = drover_proto::selector::Selector::default();
    let fields = drover_proto::selector::FieldSelector::default();
    let (secrets, _) = store.list(drover_proto::Kind::Secret, None, &everything, &fields);
    let plaintext = secrets
        .iter()
        .filter(|s| !crate::encryption::is_sealed(s))
        .count();
    if plaintext > 0 {
        tracing::warn!(
            plaintext,
            "Secrets are stored unencrypted in the data dir; give --encryption-key-file to encrypt new writes"
        );
    }
}

/// A member's certificate must prove the id it runs as, or its peers
/// would refuse every message it sends.
fn check_member_certificate(tls: &TlsMaterial, id: u64) -> Result<(), ServeError> {
    let own = tls.own_identity()?;
    match own.peer_id() {
        Some(cert_id) if cert_id == id => Ok(()),
        _ => Err(ServeError::PeerIdentity(format!(
            "this member is --id {id} but its certificate is for {:?}; issue one with `drover cert issue --kind peer --name {id}`",
            own.user
        ))),
    }
}

/// Serves without TLS (loopback, or `--insecure`).
async fn serve_plain(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    // Without TCP_NODELAY, small HTTP/2 frames wait on delayed ACKs (~40 ms per request).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServeError::Serve)
}

/// `true` while the member leads.
fn leader_signal(mut raft: watch::Receiver<drover_raft::Leadership>) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(raft.borrow_and_update().is_leader());
    tokio::spawn(async move {
        while raft.changed().await.is_ok() {
            let leads = raft.borrow_and_update().is_leader();
            tx.send_if_modified(|l| std::mem::replace(l, leads) != leads);
        }
        tx.send_replace(false);
    });
    rx
}
