//! A member of a replicated control plane: the store's state machine driven
//! by the Raft log (`drover-raft`), the peer transport served on
//! `--peer-listen`, and the handle the API uses to propose, read and change
//! membership.

mod replicator;
mod state;
mod wire;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use drover_raft::grpc::{Forwarder, GrpcTransport, RaftService};
use drover_raft::{Members, NodeThread, RaftConfig, RaftNode, Startup};
use tokio::sync::watch;

pub use replicator::{ClusterError, Replicator};
pub use wire::{ClusterMember, ClusterStatus};

use crate::auth::TlsMaterial;
use crate::store::{OpenError, Store, disk};

/// How this server takes part in a replicated control plane.
#[derive(Debug, Clone)]
pub struct RaftSettings {
    /// This member's id (non-zero).
    pub id: u64,
    /// Where the Raft transport listens.
    pub peer_listen: SocketAddr,
    /// Every initial member's id and peer address, this one's included.
    /// Empty with `join`: the member waits to be added.
    pub peers: Members,
    /// Start as a new member of a running cluster (after `cluster
    /// add-member`) rather than as one of the initial members.
    pub join: bool,
    /// Entries applied between snapshots (the log is compacted behind each).
    pub snapshot_threshold: u64,
}

/// Why a replicated member could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("--peers must list this member (id {id}) with its peer address")]
    NotInPeers { id: u64 },
    #[error("cannot start the raft node in {path}: {source}")]
    Raft {
        path: PathBuf,
        source: drover_raft::StartError,
    },
    #[error("TLS for the Raft transport: {0}")]
    PeerTls(String),
    #[error("cannot listen for peers on {addr}: {source}")]
    PeerListen {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running member: the store the API serves from, plus what stops it.
pub struct Member {
    pub store: Arc<Store>,
    pub replicator: Replicator,
    pub peer_addr: SocketAddr,
    /// How the Raft node thread ended, once it has.
    exit: watch::Receiver<Option<NodeExit>>,
}

/// How a member's Raft node ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NodeExit {
    /// Shut down, or removed from the cluster.
    Clean,
    /// It could not go on (a store write failed, e.g. on a full disk).
    Failed(String),
}

impl Member {
    /// Resolves with the reason if the Raft node fails; never if it stops
    /// cleanly. A failed node cannot continue in this process (its store
    /// refuses writes after an I/O error): the server exits so that its
    /// supervisor restarts it once the cause is fixed.
    pub fn failure(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let mut exit = self.exit.clone();
        async move {
            if let Ok(e) = exit.wait_for(Option::is_some).await
                && let Some(NodeExit::Failed(why)) = e.clone()
            {
                return why;
            }
            std::future::pending().await
        }
    }

    /// Stops the Raft node and waits for its thread (its store closes).
    pub async fn shutdown(mut self) {
        self.replicator.shutdown().await;
        if let Ok(e) = self.exit.wait_for(Option::is_some).await
            && let Some(NodeExit::Failed(why)) = e.clone()
        {
            tracing::warn!(error = %why, "raft node stopped with an error");
        }
    }
}

/// Joins the node thread on a thread of its own and reports how it ended.
fn watch_exit(thread: NodeThread) -> watch::Receiver<Option<NodeExit>> {
    let (tx, rx) = watch::channel(None);
    std::thread::spawn(move || {
        let exit = match thread.join() {
            Ok(Ok(())) => NodeExit::Clean,
            Ok(Err(e)) => NodeExit::Failed(e.to_string()),
            Err(_) => NodeExit::Failed("the raft node thread panicked".into()),
        };
        tx.send_replace(Some(exit));
    });
    rx
}

/// Opens the member's store and Raft log under `data_dir`, starts the Raft
/// node and serves the peer transport. Must run inside a tokio runtime.
pub async fn start(
    data_dir: &Path,
    history_limit: usize,
    settings: &RaftSettings,
    tls: Option<&TlsMaterial>,
) -> Result<Member, StartError> {
    if !settings.join && !settings.peers.contains_key(&settings.id) {
        return Err(StartError::NotInPeers { id: settings.id });
    }
    let (db, tree, loaded) = disk::open(data_dir, history_limit)?;
    let applied = disk::applied_index(&tree).map_err(|message| OpenError::Corrupt {
        path: data_dir.display().to_string(),
        message,
    })?;
    let (sm, applied_rx) = state::ReplicatedState::new(loaded, db.clone(), tree, applied);
    let shared_state = sm.state.clone();
    let events = sm.events.clone();
    let listener = tokio::net::TcpListener::bind(settings.peer_listen)
        .await
        .map_err(|source| StartError::PeerListen {
            addr: settings.peer_listen,
            source,
        })?;
    let peer_addr = listener
        .local_addr()
        .map_err(|source| StartError::PeerListen {
            addr: settings.peer_listen,
            source,
        })?;
    let startup = if settings.join {
        Startup::Join(settings.peers.clone())
    } else {
        Startup::Bootstrap(settings.peers.clone())
    };
    let raft_dir = data_dir.join("raft");
    let mut transport = GrpcTransport::new(settings.id, tokio::runtime::Handle::current());
    if let Some(tls) = tls {
        transport = transport.with_tls(tls.peer_client_tls());
    }
    let mut config = RaftConfig::new(settings.id);
    config.snapshot_threshold = settings.snapshot_threshold;
    config.compaction_margin = config
        .compaction_margin
        .min(settings.snapshot_threshold / 10);
    let (raft, thread) =
        RaftNode::start(config, &raft_dir, sm, transport, startup).map_err(|source| {
            StartError::Raft {
                path: raft_dir.clone(),
                source,
            }
        })?;
    let replicator = Replicator::new(raft.clone(), applied_rx, tls.map(|t| t.peer_client_tls()));
    let mut service = RaftService::new(raft.inbox(), Some(forwarder(replicator.clone())));
    let server = tonic::transport::Server::builder().tcp_nodelay(true);
    let stop = raft.leadership();
    match tls {
        // Our own acceptor rather than tonic's TLS settings: the client
        // certificate verifier is ours (it knows the revocation list).
        Some(tls) => {
            service = service.requiring_peer_certificates();
            if let Some(revocation) = tls.revocation().cloned() {
                service = service.checking_certificates(Arc::new(move |der: &[u8]| {
                    if revocation.revokes_certificate(der) {
                        Err("the certificate has been revoked".to_string())
                    } else {
                        Ok(())
                    }
                }));
            }
            let config = tls
                .peer_server_config()
                .map_err(|e| StartError::PeerTls(e.to_string()))?;
            let incoming = crate::auth::listener::tls_incoming(listener, config);
            tokio::spawn(serve_peers(server, service, incoming, stop));
        }
        None => {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            tokio::spawn(serve_peers(server, service, incoming, stop));
        }
    }
    tracing::info!(member = settings.id, %peer_addr, "raft member started");
    let store = Store::replicated(shared_state, events, db, replicator.clone());
    Ok(Member {
        store,
        replicator,
        peer_addr,
        exit: watch_exit(thread),
    })
}

/// Serves the Raft transport on `incoming` until the node stops.
async fn serve_peers<IO, IE>(
    mut server: tonic::transport::Server,
    service: RaftService,
    incoming: impl futures::Stream<Item = Result<IO, IE>>,
    stop: tokio::sync::watch::Receiver<drover_raft::Leadership>,
) where
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let served = server
        .add_service(service.into_server())
        .serve_with_incoming_shutdown(incoming, stopped(stop))
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "the raft peer transport stopped");
    }
}

/// Resolves when the node stops for good (shut down or removed).
async fn stopped(mut leadership: tokio::sync::watch::Receiver<drover_raft::Leadership>) {
    let _ = leadership
        .wait_for(|l| matches!(l.role, drover_raft::Role::Stopped))
        .await;
}

/// Serves what followers forward to this member when it leads.
fn forwarder(replicator: Replicator) -> Forwarder {
    Arc::new(move |bytes: Vec<u8>| {
        let replicator = replicator.clone();
        Box::pin(async move {
            let request: wire::Forwarded = serde_json::from_slice(&bytes).map_err(|e| {
                tonic::Status::invalid_argument(format!("unreadable forwarded request: {e}"))
            })?;
            let reply = replicator.serve_forwarded(request).await?;
            serde_json::to_vec(&reply)
                .map_err(|e| tonic::Status::internal(format!("cannot encode the reply: {e}")))
        })
    })
}

/// Parses `--peers 1=HOST:PORT,2=HOST:PORT`.
pub fn parse_peers(s: &str) -> Result<Members, String> {
    let mut members = Members::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?} is not ID=HOST:PORT"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| format!("member id {id:?} in {part:?} is not a number"))?;
        if id == 0 {
            return Err(format!("member id 0 in {part:?}: ids start at 1"));
        }
        let addr = addr.trim();
        if addr
            .rsplit_once(':')
            .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        {
            return Err(format!(
                "peer address {addr:?} of member {id} is not HOST:PORT"
            ));
        }
        if members.insert(id, addr.to_string()).is_some() {
            return Err(format!("member {id} is listed twice"));
        }
    }
    Ok(members)
}

#[cfg(test)]
mod restart_tests;

#[cfg(test)]
mod tests {
    use super::parse_peers;

    #[test]
    fn peers_parse_and_bad_ones_are_named() {
        let m = parse_peers("1=10.0.0.1:7701, 2=[::1]:7701,3=h:1").unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m[&2], "[::1]:7701");
        assert!(parse_peers("1=a:1,1=b:2").unwrap_err().contains("twice"));
        assert!(parse_peers("x=a:1").unwrap_err().contains("not a number"));
        assert!(parse_peers("0=a:1").unwrap_err().contains("ids start at 1"));
        assert!(parse_peers("1=a").unwrap_err().contains("HOST:PORT"));
        assert!(parse_peers("1").unwrap_err().contains("ID=HOST:PORT"));
    }
}
