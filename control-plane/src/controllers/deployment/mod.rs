//! The Deployment controller: one ReplicaSet per pod template (named by its
//! hash), rolled from old to new by the RollingUpdate or Recreate strategy,
//! with revision history, pause, and Available/Progressing conditions.

pub mod hash;
pub mod history;
mod replicasets;
pub mod rolling;
mod rollout;
pub mod status;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use drover_proto::Resource;
use drover_proto::selector::Selector;
use drover_proto::types::pod::Pod;
use drover_proto::types::workload::{Deployment, DeploymentStatus, ReplicaSet};

use crate::controllers::api::ControllerApi;
use crate::controllers::claim::{Claimer, claim, owners_matching};
use crate::controllers::error::ControllerError;
use crate::controllers::events::EventRecorder;
use crate::controllers::runtime::{
    Action, Cache, Clock, Handler, Notification, Reconciler, WorkQueue, key_of,
};

/// The controller's state: the caches it reads and the queue it feeds.
pub struct DeploymentController<A: ControllerApi> {
    pub api: A,
    pub clock: Arc<dyn Clock>,
    pub deployments: Cache<Deployment>,
    pub replicasets: Cache<ReplicaSet>,
    pub pods: Cache<Pod>,
    pub queue: Arc<WorkQueue>,
    pub events: EventRecorder<A>,
}

/// The Deployment key a ReplicaSet's controller reference names.
fn owner_key(rs: &ReplicaSet) -> Option<String> {
    let r = rs.metadata.controller_ref()?;
    (r.kind == "Deployment").then(|| format!("{}/{}", rs.namespace(), r.name))
}

impl<A: ControllerApi> DeploymentController<A> {
    pub fn new(
        api: A,
        clock: Arc<dyn Clock>,
        deployments: Cache<Deployment>,
        replicasets: Cache<ReplicaSet>,
        pods: Cache<Pod>,
        queue: Arc<WorkQueue>,
    ) -> Self {
        DeploymentController {
            events: EventRecorder::new(api.clone(), clock.clone(), "deployment-controller"),
            api,
            clock,
            deployments,
            replicasets,
            pods,
            queue,
        }
    }

    pub fn deployment_handler(&self) -> Handler<Deployment> {
        let queue = self.queue.clone();
        Arc::new(move |n| match n {
            Notification::Added(d)
            | Notification::Updated { new: d, .. }
            | Notification::Deleted(d) => queue.add(key_of(d.as_ref())),
        })
    }

    /// A ReplicaSet changed: its Deployment looks again; an orphan is
    /// offered to every Deployment whose selector matches it.
    pub fn replicaset_handler(&self) -> Handler<ReplicaSet> {
        let queue = self.queue.clone();
        let deployments = self.deployments.clone();
        let adopters = move |rs: &ReplicaSet| {
            if rs.metadata.controller_ref().is_some() {
                return vec![];
            }
            owners_matching(
                &deployments.list(rs.namespace()),
                |d: &Deployment| Selector::from_label_selector(&d.spec.selector).ok(),
                &rs.metadata.labels,
            )
        };
        Arc::new(move |n| match n {
            Notification::Added(rs) | Notification::Deleted(rs) => {
                for k in owner_key(rs).into_iter().chain(adopters(rs)) {
                    queue.add(k);
                }
            }
            Notification::Updated { old, new } => {
                for k in [owner_key(old), owner_key(new)].into_iter().flatten() {
                    queue.add(k);
                }
                if old.metadata.labels != new.metadata.labels
                    || old.metadata.owner_references != new.metadata.owner_references
                {
                    for k in adopters(new) {
                        queue.add(k);
                    }
                }
            }
        })
    }

    /// A pod went away: a Recreate rollout may be waiting for exactly that.
    pub fn pod_handler(&self) -> Handler<Pod> {
        let queue = self.queue.clone();
        let replicasets = self.replicasets.clone();
        Arc::new(move |n| {
            if let Notification::Deleted(pod) = n
                && let Some(r) = pod.metadata.controller_ref()
                && r.kind == "ReplicaSet"
                && let Some(rs) = replicasets.get(&format!("{}/{}", pod.namespace(), r.name))
                && let Some(k) = owner_key(&rs)
            {
                queue.add(k);
            }
        })
    }

    /// The ReplicaSets this Deployment controls, oldest first, after
    /// adopting matching orphans and releasing those that no longer match.
    async fn claim_replicasets(&self, d: &Deployment) -> Result<Vec<ReplicaSet>, ControllerError> {
        let uid = d.metadata.uid.as_deref().unwrap_or_default();
        let selector = Selector::from_label_selector(&d.spec.selector).map_err(|e| {
            ControllerError::Invalid {
                object: format!("deployment/{}", d.name()),
                message: e.to_string(),
            }
        })?;
        let deleting = d.metadata.deletion_timestamp.is_some();
        let claims = claim(
            uid,
            deleting,
            &selector,
            self.replicasets.list(d.namespace()),
        );
        let claimer = Claimer {
            api: &self.api,
            owner: d,
        };
        claimer.release(claims.release).await?;
        let adopted = claimer.adopt(claims.adopt).await?;
        let mut v: Vec<ReplicaSet> = claims
            .owned
            .into_iter()
            .chain(adopted)
            .map(|rs| (*rs).clone())
            .collect();
        v.sort_by(|a, b| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
                .then_with(|| a.metadata.name.cmp(&b.metadata.name))
        });
        Ok(v)
    }

    async fn write_status(
        &self,
        d: &Deployment,
        status: DeploymentStatus,
    ) -> Result<(), ControllerError> {
        let mut updated = d.clone();
        updated.status = Some(status);
        crate::controllers::api::write_status(&self.api, d, updated).await
    }
}

impl<A: ControllerApi> Reconciler for DeploymentController<A> {
    fn name(&self) -> &'static str {
        "deployment"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, ControllerError> {
        let Some(d) = self.deployments.get(key) else {
            return Ok(Action::await_change());
        };
        if d.metadata.deletion_timestamp.is_some() {
            return Ok(Action::await_change());
        }
        self.sync(&d).await
    }
}
