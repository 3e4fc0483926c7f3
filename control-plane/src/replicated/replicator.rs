//! The API server's side of Raft: propose on the leader, forward from a
//! follower (then wait for the local apply, so a client reads its own write
//! on the member it talks to), linearizable read barriers, cluster status and
//! membership. Every call has a deadline; no leader → `Unavailable`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_proto::Object;
use drover_proto::raft_grpc::ForwardRequest;
use drover_proto::raft_grpc::raft_transport_client::RaftTransportClient;
use drover_raft::{MembershipError, ProposeError, RaftHandle, ReadError, Role};
use tokio::sync::watch;
use tokio::time::Instant;
use tonic::transport::{Channel, ClientTlsConfig};

use super::state::Applied;
use super::wire::{ClusterStatus, ForwardReply, Forwarded};
use crate::command::Command;
use crate::store::StoreError;

/// How long a write or read barrier waits for a leader before `Unavailable`.
const DEADLINE: Duration = Duration::from_secs(10);
/// Pause between attempts while there is no (reachable) leader.
const RETRY: Duration = Duration::from_millis(25);

/// Why a cluster operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// No leader could be reached before the deadline (clients retry).
    #[error("{0}")]
    Unavailable(String),
    /// The change was refused (already a member, last member...).
    #[error("{0}")]
    Refused(String),
}

/// Raft handle plus what forwarding needs.
#[derive(Clone)]
pub struct Replicator {
    raft: RaftHandle<Applied>,
    applied: watch::Receiver<u64>,
    /// Leader connections by peer address (tonic channels multiplex).
    clients: Arc<Mutex<HashMap<String, RaftTransportClient<Channel>>>>,
    /// Mutual TLS towards the leader; `None`: plain HTTP/2.
    peer_tls: Option<Arc<ClientTlsConfig>>,
}

fn unavailable(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!(
        "{what}: {detail}; the cluster has no reachable leader (is a majority of members up?), retry"
    ))
}

impl Replicator {
    pub(super) fn new(
        raft: RaftHandle<Applied>,
        applied: watch::Receiver<u64>,
        peer_tls: Option<ClientTlsConfig>,
    ) -> Replicator {
        Replicator {
            raft,
            applied,
            clients: Arc::default(),
            peer_tls: peer_tls.map(Arc::new),
        }
    }

    pub fn id(&self) -> u64 {
        self.raft.id()
    }

    /// Stops the Raft node; later calls answer `Unavailable`.
    pub async fn shutdown(&self) {
        self.raft.shutdown().await;
    }

    /// The leadership signal (`role == Leader` while leader-only work may run).
    pub fn leadership(&self) -> watch::Receiver<drover_raft::Leadership> {
        self.raft.leadership()
    }

    /// Commits `command` through the log and returns its result once it is
    /// applied on this member.
    pub async fn propose(&self, command: &Command) -> Result<Arc<Object>, StoreError> {
        let bytes = serde_json::to_vec(command)
            .map_err(|e| StoreError::Unavailable(format!("cannot encode the command: {e}")))?;
        let deadline = Instant::now() + DEADLINE;
        let mut last = String::from("no leader elected yet");
        while Instant::now() < deadline {
            match self.raft.propose(bytes.clone()).await {
                Ok(applied) => return applied.result.map_err(StoreError::Apply),
                Err(ProposeError::NotLeader { leader: Some(id) }) if id != self.id() => {
                    match self
                        .forward(id, &Forwarded::Command(Box::new(command.clone())))
                        .await
                    {
                        Ok(ForwardReply::Applied { index, result }) => {
                            self.wait_applied(index, deadline).await?;
                            return result.map(|o| Arc::new(*o)).map_err(StoreError::Apply);
                        }
                        Ok(other) => {
                            return Err(StoreError::Unavailable(format!(
                                "the leader answered a write with {other:?}"
                            )));
                        }
                        Err(Forward::Retry(why)) => last = why,
                        Err(Forward::Failed(why)) => return Err(StoreError::Unavailable(why)),
                    }
                }
                Err(e @ (ProposeError::NotLeader { .. } | ProposeError::Dropped)) => {
                    last = e.to_string()
                }
                Err(e) => return Err(unavailable("write failed", e)),
            }
            self.leader_changed_or(RETRY).await;
        }
        Err(unavailable("write timed out", last))
    }

    /// Resolves once this member has applied everything committed before
    /// the call (Raft ReadIndex): local reads after it are linearizable.
    pub async fn read_barrier(&self) -> Result<(), StoreError> {
        let deadline = Instant::now() + DEADLINE;
        let mut last = String::new();
        while Instant::now() < deadline {
            match tokio::time::timeout_at(deadline, self.raft.read_index()).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e @ (ReadError::NoLeader { .. } | ReadError::LeadershipChanged))) => {
                    last = e.to_string()
                }
                Ok(Err(e)) => return Err(unavailable("read failed", e)),
                Err(_) => break,
            }
            self.leader_changed_or(RETRY).await;
        }
        Err(unavailable("linearizable read timed out", last))
    }

    /// The leader's view of the cluster (with per-member lag), or this
    /// member's own when no leader is reachable.
    pub async fn status(&self) -> Result<ClusterStatus, ClusterError> {
        let local: ClusterStatus = self
            .raft
            .status()
            .await
            .map_err(|e| ClusterError::Unavailable(e.to_string()))?
            .into();
        match local.leader {
            Some(leader) if leader != local.id => {
                match self.forward(leader, &Forwarded::Status).await {
                    Ok(ForwardReply::Status(s)) => Ok(s),
                    _ => Ok(local),
                }
            }
            _ => Ok(local),
        }
    }

    /// Adds (`Some(addr)`) or removes a member, on the leader.
    pub async fn change_member(
        &self,
        id: u64,
        peer_addr: Option<String>,
    ) -> Result<(), ClusterError> {
        let deadline = Instant::now() + DEADLINE;
        let mut last = String::from("no leader elected yet");
        while Instant::now() < deadline {
            let r = match &peer_addr {
                Some(a) => self.raft.add_member(id, a.clone()).await,
                None => self.raft.remove_member(id).await,
            };
            match r {
                Ok(()) => return Ok(()),
                Err(MembershipError::Propose(ProposeError::NotLeader { leader: Some(l) }))
                    if l != self.id() =>
                {
                    let req = match &peer_addr {
                        Some(a) => Forwarded::AddMember {
                            id,
                            peer_addr: a.clone(),
                        },
                        None => Forwarded::RemoveMember { id },
                    };
                    match self.forward(l, &req).await {
                        Ok(_) => return Ok(()),
                        Err(Forward::Retry(why)) => last = why,
                        Err(Forward::Failed(why)) => return Err(ClusterError::Refused(why)),
                    }
                }
                Err(
                    e @ (MembershipError::Propose(
                        ProposeError::NotLeader { .. } | ProposeError::Dropped,
                    )
                    | MembershipError::ChangeInProgress),
                ) => last = e.to_string(),
                Err(e @ MembershipError::Propose(_)) => {
                    return Err(ClusterError::Unavailable(e.to_string()));
                }
                Err(e) => return Err(ClusterError::Refused(e.to_string())),
            }
            self.leader_changed_or(RETRY).await;
        }
        Err(ClusterError::Unavailable(format!(
            "membership change timed out: {last}"
        )))
    }

    /// Serves a request a follower forwarded here; never forwards again.
    pub(super) async fn serve_forwarded(
        &self,
        req: Forwarded,
    ) -> Result<ForwardReply, tonic::Status> {
        let not_leader =
            |e: &dyn std::fmt::Display| tonic::Status::failed_precondition(e.to_string());
        match req {
            Forwarded::Command(c) => {
                let bytes = serde_json::to_vec(&c)
                    .map_err(|e| tonic::Status::invalid_argument(e.to_string()))?;
                match self.raft.propose(bytes).await {
                    Ok(a) => Ok(ForwardReply::Applied {
                        index: a.index,
                        result: a.result.map(|o| Box::new((*o).clone())),
                    }),
                    Err(e @ (ProposeError::NotLeader { .. } | ProposeError::Dropped)) => {
                        Err(not_leader(&e))
                    }
                    Err(e) => Err(tonic::Status::unavailable(e.to_string())),
                }
            }
            Forwarded::AddMember { id, peer_addr } => self
                .local_change(self.raft.add_member(id, peer_addr).await)
                .map(|()| ForwardReply::MemberChanged),
            Forwarded::RemoveMember { id } => self
                .local_change(self.raft.remove_member(id).await)
                .map(|()| ForwardReply::MemberChanged),
            Forwarded::Status => {
                let s = self
                    .raft
                    .status()
                    .await
                    .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
                if s.leadership.role != Role::Leader {
                    return Err(not_leader(&"not the leader"));
                }
                Ok(ForwardReply::Status(s.into()))
            }
        }
    }

    fn local_change(&self, r: Result<(), MembershipError>) -> Result<(), tonic::Status> {
        match r {
            Ok(()) => Ok(()),
            Err(e @ (MembershipError::Propose(_) | MembershipError::ChangeInProgress)) => {
                Err(tonic::Status::failed_precondition(e.to_string()))
            }
            Err(e) => Err(tonic::Status::invalid_argument(e.to_string())),
        }
    }

    /// Waits until this member applied `index` (read-your-writes here).
    async fn wait_applied(&self, index: u64, deadline: Instant) -> Result<(), StoreError> {
        let mut applied = self.applied.clone();
        match tokio::time::timeout_at(deadline, applied.wait_for(|a| *a >= index)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(StoreError::Unavailable("the raft node stopped".into())),
            Err(_) => Err(StoreError::Unavailable(format!(
                "the write was committed at index {index} but this member has not applied it yet; read from the leader or retry the read"
            ))),
        }
    }

    /// Returns when leadership changes or after `pause`, whichever is first.
    async fn leader_changed_or(&self, pause: Duration) {
        let mut l = self.raft.leadership();
        l.borrow_and_update();
        let _ = tokio::time::timeout(pause, l.changed()).await;
    }

    async fn forward(&self, leader: u64, req: &Forwarded) -> Result<ForwardReply, Forward> {
        let addr = self.peer_addr(leader).await.ok_or_else(|| {
            Forward::Retry(format!("the address of leader {leader} is not known yet"))
        })?;
        let mut client = self.client(&addr).await?;
        let command = serde_json::to_vec(req)
            .map_err(|e| Forward::Failed(format!("cannot encode the forwarded request: {e}")))?;
        match client.forward(ForwardRequest { command }).await {
            Ok(reply) => serde_json::from_slice(&reply.into_inner().response).map_err(|e| {
                Forward::Failed(format!("unreadable answer from leader {leader}: {e}"))
            }),
            // The leader had stepped down before proposing: nothing happened.
            Err(s) if s.code() == tonic::Code::FailedPrecondition => Err(Forward::Retry(format!(
                "member {leader} is no longer the leader: {}",
                s.message()
            ))),
            Err(s) if s.code() == tonic::Code::InvalidArgument => {
                Err(Forward::Failed(s.message().to_string()))
            }
            Err(s) => {
                // The connection broke mid-call: the write may or may not
                // have been committed, so it must not be retried blindly.
                self.drop_client(&addr);
                Err(Forward::Failed(format!(
                    "lost the leader (member {leader}) while it handled the request ({}); the write may or may not have happened: check before retrying",
                    s.message()
                )))
            }
        }
    }

    async fn peer_addr(&self, id: u64) -> Option<String> {
        let status = self.raft.status().await.ok()?;
        status
            .members
            .into_iter()
            .find(|m| m.id == id)
            .and_then(|m| m.addr)
    }

    async fn client(&self, addr: &str) -> Result<RaftTransportClient<Channel>, Forward> {
        if let Some(c) = self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(addr)
        {
            return Ok(c.clone());
        }
        let client = drover_raft::grpc::connect(addr, self.peer_tls.as_deref())
            .await
            // Not connected: the request never left, so retrying is safe.
            .map_err(|e| Forward::Retry(format!("cannot reach the leader at {addr}: {e}")))?;
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(addr.to_string(), client.clone());
        Ok(client)
    }

    fn drop_client(&self, addr: &str) {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(addr);
    }
}

/// Why forwarding failed: safe to retry (nothing was sent or the leader
/// refused before proposing) or not.
enum Forward {
    Retry(String),
    Failed(String),
}
