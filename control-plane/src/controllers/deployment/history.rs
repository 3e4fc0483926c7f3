//! Revisions: each ReplicaSet of a Deployment carries the revision it was
//! last rolled out at; old ones beyond `revisionHistoryLimit` are deleted;
//! rollback copies an old ReplicaSet's template back into the Deployment.

use drover_proto::types::pod::PodTemplateSpec;
use drover_proto::types::workload::ReplicaSet;

use super::hash::without_hash;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Why a revision was made; shown by `rollout history`.
pub const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// The revision a ReplicaSet carries (0 when missing or unreadable).
pub fn revision_of(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// Highest revision among `rses`.
pub fn max_revision<'a>(rses: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    rses.into_iter().map(revision_of).max().unwrap_or(0)
}

/// Old ReplicaSets to delete: scaled to zero with no pods left, oldest
/// revision first, beyond the newest `limit`.
pub fn to_clean_up(old: &[ReplicaSet], limit: i32) -> Vec<ReplicaSet> {
    let mut idle: Vec<&ReplicaSet> = old
        .iter()
        .filter(|rs| {
            rs.spec.replicas == 0
                && rs.status.as_ref().is_none_or(|s| s.replicas == 0)
                && rs.metadata.deletion_timestamp.is_none()
        })
        .collect();
    let keep = usize::try_from(limit).unwrap_or(0);
    if idle.len() <= keep {
        return Vec::new();
    }
    idle.sort_by_key(|rs| (revision_of(rs), rs.metadata.creation_timestamp));
    let n = idle.len() - keep;
    idle.into_iter().take(n).cloned().collect()
}

/// Why a rollback cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RollbackError {
    #[error("no rollout history found")]
    NoHistory,
    #[error("unable to find specified revision {0} in history")]
    RevisionNotFound(i64),
    #[error("no previous revision to roll back to")]
    NoPrevious,
}

/// The template to put back into the Deployment: revision `to` (0: the one
/// before the current), without the hash label, as `kubectl rollout undo`
/// does.
pub fn rollback_template(rses: &[ReplicaSet], to: i64) -> Result<PodTemplateSpec, RollbackError> {
    if rses.is_empty() {
        return Err(RollbackError::NoHistory);
    }
    let rs = if to > 0 {
        rses.iter()
            .find(|rs| revision_of(rs) == to)
            .ok_or(RollbackError::RevisionNotFound(to))?
    } else {
        let current = max_revision(rses);
        rses.iter()
            .filter(|rs| revision_of(rs) < current && revision_of(rs) > 0)
            .max_by_key(|rs| revision_of(rs))
            .ok_or(RollbackError::NoPrevious)?
    };
    Ok(without_hash(&rs.spec.template))
}
