//! `drover cluster`: members, leader and lag of the replicated control plane
//! over gRPC, and the same status as JSON at `GET /cluster/status`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use drover_proto::grpc as pb;
use tonic::{Request, Response as GrpcResponse, Status};

use super::core::ApiCore;
use crate::replicated::{ClusterError, ClusterStatus};

/// The `Cluster` gRPC service.
#[derive(Clone)]
pub struct ClusterApi {
    core: ApiCore,
}

impl ClusterApi {
    pub fn new(core: ApiCore) -> ClusterApi {
        ClusterApi { core }
    }
}

/// A server started without `--peers` is its own one-member cluster.
pub(crate) fn single_member() -> ClusterStatus {
    ClusterStatus {
        id: 1,
        leader: Some(1),
        term: 0,
        role: "Single".into(),
        commit_index: 0,
        applied_index: 0,
        last_index: 0,
        snapshot_index: 0,
        members: vec![],
    }
}

/// The cluster's status as the member behind `core` sees it (the leader's
/// view when the leader can be reached), and who answered.
async fn cluster_status(core: &ApiCore) -> Result<(ClusterStatus, u64), ClusterError> {
    match core.store.replicator() {
        None => Ok((single_member(), 1)),
        Some(r) => Ok((r.status().await?, r.id())),
    }
}

fn status_of(e: ClusterError) -> Status {
    match e {
        ClusterError::Unavailable(m) => Status::unavailable(m),
        ClusterError::Refused(m) => Status::failed_precondition(m),
    }
}

const NOT_REPLICATED: &str =
    "this server is a single member (started without --peers); membership cannot change";

/// The pseudo-resource membership is authorized as (only `cluster-admin`
/// has it, through its wildcard).
const MEMBERS: &str = "cluster/members";

#[tonic::async_trait]
impl pb::cluster_server::Cluster for ClusterApi {
    async fn status(
        &self,
        req: Request<pb::ClusterStatusRequest>,
    ) -> Result<GrpcResponse<pb::ClusterStatusReply>, Status> {
        self.core.authorize(req.extensions(), "get", MEMBERS, "")?;
        let (status, answered_by) = cluster_status(&self.core).await.map_err(status_of)?;
        Ok(GrpcResponse::new(status.into_reply(answered_by)))
    }

    async fn add_member(
        &self,
        req: Request<pb::AddMemberRequest>,
    ) -> Result<GrpcResponse<pb::MemberChangeReply>, Status> {
        self.core
            .authorize(req.extensions(), "update", MEMBERS, "")?;
        let req = req.into_inner();
        if req.id == 0 {
            return Err(Status::invalid_argument("member id 0: ids start at 1"));
        }
        if req
            .peer_addr
            .rsplit_once(':')
            .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
        {
            return Err(Status::invalid_argument(format!(
                "peer address {:?} is not HOST:PORT",
                req.peer_addr
            )));
        }
        let r = self
            .core
            .store
            .replicator()
            .ok_or_else(|| Status::failed_precondition(NOT_REPLICATED))?;
        r.change_member(req.id, Some(req.peer_addr))
            .await
            .map_err(status_of)?;
        Ok(GrpcResponse::new(pb::MemberChangeReply {}))
    }

    async fn remove_member(
        &self,
        req: Request<pb::RemoveMemberRequest>,
    ) -> Result<GrpcResponse<pb::MemberChangeReply>, Status> {
        self.core
            .authorize(req.extensions(), "update", MEMBERS, "")?;
        let req = req.into_inner();
        let r = self
            .core
            .store
            .replicator()
            .ok_or_else(|| Status::failed_precondition(NOT_REPLICATED))?;
        r.change_member(req.id, None).await.map_err(status_of)?;
        Ok(GrpcResponse::new(pb::MemberChangeReply {}))
    }
}

/// `GET /cluster/status`.
pub async fn status_json(State(core): State<ApiCore>, request: axum::http::Extensions) -> Response {
    if let Err(e) = core.authorize(&request, "get", MEMBERS, "") {
        return super::http::error_response(e);
    }
    match cluster_status(&core).await {
        Ok((s, answered_by)) => {
            let mut v = serde_json::to_value(&s).unwrap_or_default();
            v["answered_by"] = answered_by.into();
            axum::Json(v).into_response()
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(
                serde_json::json!({"kind": "Status", "code": 503, "message": e.to_string()}),
            ),
        )
            .into_response(),
    }
}
