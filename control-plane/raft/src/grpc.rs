//! Raft transport over tonic: one client stream per peer out, the `RaftTransport` service in.
//!
//! Messages travel as opaque bytes in `drover.raft.RaftEnvelope` (raft's own
//! codec inside), so the API's prost version never meets raft's. Sending never
//! blocks the node: each peer has a bounded queue drained by its own task,
//! which reconnects with backoff; when a queue is full or a peer is down,
//! messages are dropped and raft retransmits.

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use drover_proto::identity::Identity;
use drover_proto::raft_grpc::raft_transport_client::RaftTransportClient;
use drover_proto::raft_grpc::raft_transport_server::{RaftTransport, RaftTransportServer};
use drover_proto::raft_grpc::{ForwardReply, ForwardRequest, RaftEnvelope, SendReply};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::ClientTlsConfig;
use tonic::{Request, Response, Status, Streaming};

use crate::envelope::Members;
use crate::error::StepError;
use crate::transport::{Inbox, Transport};

const PEER_QUEUE: usize = 8192;
/// Snapshots travel in one message; allow large ones.
pub const MAX_MESSAGE_BYTES: usize = 512 << 20;

/// Outbound gRPC transport for member `id`.
pub struct GrpcTransport {
    id: u64,
    /// Mutual TLS towards peers; `None`: plain HTTP/2.
    tls: Option<ClientTlsConfig>,
    runtime: tokio::runtime::Handle,
    peers: HashMap<u64, Peer>,
    unreachable: BTreeSet<u64>,
}

struct Peer {
    addr: String,
    queue: mpsc::Sender<RaftEnvelope>,
    /// Set by the peer's task while a stream is open.
    connected: Arc<AtomicBool>,
}

impl GrpcTransport {
    /// Peer tasks run on `runtime` (the node thread has its own small one).
    pub fn new(id: u64, runtime: tokio::runtime::Handle) -> Self {
        Self {
            id,
            tls: None,
            runtime,
            peers: HashMap::new(),
            unreachable: BTreeSet::new(),
        }
    }
}

impl GrpcTransport {
    /// Dials peers with TLS, presenting this member's certificate.
    pub fn with_tls(mut self, tls: ClientTlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }
}

impl Transport for GrpcTransport {
    fn send(&mut self, to: u64, msg: Vec<u8>) {
        let Some(peer) = self.peers.get(&to) else {
            tracing::debug!(from = self.id, to, "no address for peer; message dropped");
            return;
        };
        let env = RaftEnvelope {
            from: self.id,
            to,
            message: msg,
        };
        // Full, closed or not connected: drop; raft retransmits once it
        // hears the peer is unreachable.
        if !peer.connected.load(Ordering::Relaxed) || peer.queue.try_send(env).is_err() {
            self.unreachable.insert(to);
        }
    }

    fn take_unreachable(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.unreachable).into_iter().collect()
    }

    fn set_members(&mut self, members: &Members) {
        self.peers
            .retain(|id, p| members.get(id).is_some_and(|a| *a == p.addr));
        for (&id, addr) in members {
            if id == self.id || self.peers.contains_key(&id) {
                continue;
            }
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            let connected = Arc::new(AtomicBool::new(false));
            let link = Link {
                from: self.id,
                to: id,
                addr: addr.clone(),
                tls: self.tls.clone(),
            };
            self.runtime.spawn(pump(link, rx, connected.clone()));
            self.peers.insert(
                id,
                Peer {
                    addr: addr.clone(),
                    queue: tx,
                    connected,
                },
            );
        }
    }
}

/// Keeps one client stream to a peer open and feeds it from the queue; ends
/// when the peer is dropped from the address book.
async fn pump(link: Link, mut queue: mpsc::Receiver<RaftEnvelope>, connected: Arc<AtomicBool>) {
    let Link {
        from,
        to,
        addr,
        tls,
    } = link;
    let mut backoff = Duration::from_millis(20);
    loop {
        let client = match connect(&addr, tls.as_ref()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(from, to, %addr, "raft peer unreachable: {e}");
                // Messages queued meanwhile are stale; raft will resend.
                let deadline = tokio::time::sleep(backoff);
                tokio::pin!(deadline);
                loop {
                    tokio::select! {
                        _ = &mut deadline => break,
                        m = queue.recv() => if m.is_none() { return },
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(20);
        connected.store(true, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(PEER_QUEUE);
        let mut client = client;
        let mut call = Box::pin(async move { client.send(ReceiverStream::new(rx)).await });
        loop {
            tokio::select! {
                m = queue.recv() => match m {
                    Some(m) => if tx.send(m).await.is_err() { break },
                    None => return,
                },
                r = &mut call => {
                    if let Err(e) = r {
                        tracing::debug!(from, to, "raft stream ended: {e}");
                    }
                    break;
                }
            }
        }
        connected.store(false, Ordering::Relaxed);
    }
}

/// One direction between two members.
struct Link {
    from: u64,
    to: u64,
    addr: String,
    tls: Option<ClientTlsConfig>,
}

/// Dials a member's Raft transport (`https` when `tls` is given).
pub async fn connect(
    addr: &str,
    tls: Option<&ClientTlsConfig>,
) -> Result<RaftTransportClient<tonic::transport::Channel>, tonic::transport::Error> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut endpoint = tonic::transport::Endpoint::from_shared(format!("{scheme}://{addr}"))?
        .connect_timeout(Duration::from_millis(500))
        .tcp_nodelay(true);
    if let Some(tls) = tls {
        endpoint = endpoint.tls_config(tls.clone())?;
    }
    let channel = endpoint.connect().await?;
    Ok(RaftTransportClient::new(channel)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
        .max_decoding_message_size(MAX_MESSAGE_BYTES))
}

/// Sends a command to the member at `addr` (the leader hint's address) via
/// `Forward`; returns whatever that member's [`Forwarder`] encoded.
pub async fn forward(addr: &str, command: Vec<u8>) -> Result<Vec<u8>, Status> {
    let mut client = connect(addr, None)
        .await
        .map_err(|e| Status::unavailable(format!("cannot reach {addr}: {e}")))?;
    let reply = client.forward(ForwardRequest { command }).await?;
    Ok(reply.into_inner().response)
}

/// Handles `Forward`: runs a command a follower forwarded to this (leader)
/// member and returns the encoded response. The control plane supplies it.
pub type Forwarder = Arc<
    dyn Fn(Vec<u8>) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, Status>> + Send>> + Send + Sync,
>;

/// The inbound side: the `RaftTransport` gRPC service for one member.
pub struct RaftService {
    inbox: Inbox,
    forwarder: Option<Forwarder>,
    /// Callers must present a member's certificate (`CN=peer:ID`), and
    /// may only send as that member.
    require_peer_certificates: bool,
    /// Says why a certificate (DER) may no longer be used, e.g. revoked
    /// since its connection was opened; checked on every call.
    certificate_check: Option<CertificateCheck>,
}

/// See [`RaftService::checking_certificates`].
pub type CertificateCheck = Arc<dyn Fn(&[u8]) -> Result<(), String> + Send + Sync>;

impl RaftService {
    pub fn new(inbox: Inbox, forwarder: Option<Forwarder>) -> Self {
        Self {
            inbox,
            forwarder,
            require_peer_certificates: false,
            certificate_check: None,
        }
    }

    /// Refuses calls whose certificate `check` rejects (a connection
    /// outlives the revocation of the certificate it was opened with).
    pub fn checking_certificates(mut self, check: CertificateCheck) -> Self {
        self.certificate_check = Some(check);
        self
    }

    /// Served over mutual TLS: accept only members' certificates and bind
    /// each message's sender to the certificate's member id.
    pub fn requiring_peer_certificates(mut self) -> Self {
        self.require_peer_certificates = true;
        self
    }

    /// The member id the caller's certificate proves; `None` without TLS.
    fn proven_peer<T>(&self, request: &Request<T>) -> Result<Option<u64>, Status> {
        if !self.require_peer_certificates {
            return Ok(None);
        }
        let refuse = |why: &str| {
            Status::permission_denied(format!(
                "the Raft transport only accepts control-plane members' certificates (CN=peer:ID): {why}"
            ))
        };
        let certs = request
            .peer_certs()
            .ok_or_else(|| refuse("no client certificate"))?;
        let der = certs
            .first()
            .ok_or_else(|| refuse("no client certificate"))?;
        if let Some(check) = &self.certificate_check {
            check(der).map_err(|why| refuse(&why))?;
        }
        let identity = Identity::from_certificate_der(der).map_err(|e| refuse(&e.to_string()))?;
        identity
            .peer_id()
            .map(Some)
            .ok_or_else(|| refuse(&format!("the certificate is {:?}'s", identity.user)))
    }

    /// The tonic service, with message limits large enough for snapshots.
    pub fn into_server(self) -> RaftTransportServer<Self> {
        RaftTransportServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

fn step_status(e: StepError) -> Status {
    match e {
        StepError::UnknownPeer { .. } | StepError::Impersonation { .. } => {
            Status::permission_denied(e.to_string())
        }
        StepError::Stopped => Status::unavailable(e.to_string()),
        StepError::Decode(_) | StepError::WrongRecipient { .. } | StepError::Raft(_) => {
            Status::invalid_argument(e.to_string())
        }
    }
}

#[tonic::async_trait]
impl RaftTransport for RaftService {
    async fn send(
        &self,
        request: Request<Streaming<RaftEnvelope>>,
    ) -> Result<Response<SendReply>, Status> {
        let proven = self.proven_peer(&request)?;
        let mut stream = request.into_inner();
        while let Some(env) = stream.message().await? {
            // A bad message ends the stream: the peer is misconfigured or hostile.
            self.inbox
                .deliver_from(&env.message, proven)
                .map_err(step_status)?;
        }
        Ok(Response::new(SendReply {}))
    }

    async fn forward(
        &self,
        request: Request<ForwardRequest>,
    ) -> Result<Response<ForwardReply>, Status> {
        self.proven_peer(&request)?;
        let Some(forward) = &self.forwarder else {
            return Err(Status::unimplemented(
                "this member does not accept forwarded commands",
            ));
        };
        let response = forward(request.into_inner().command).await?;
        Ok(Response::new(ForwardReply { response }))
    }
}
