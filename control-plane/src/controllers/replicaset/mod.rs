//! The ReplicaSet controller: keeps `spec.replicas` active pods matching the
//! selector and owned by the ReplicaSet, and reports what it sees in status.

mod pod_template;
pub mod rank;
pub mod status;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use drover_proto::client::{ClientError, DeleteOptions};
use drover_proto::selector::Selector;
use drover_proto::types::pod::Pod;
use drover_proto::types::workload::{ReplicaSet, ReplicaSetStatus};
use drover_proto::{Kind, Resource};
use futures::future::join_all;

pub use pod_template::{controller_ref, pod_from_template};

use crate::controllers::api::ControllerApi;
use crate::controllers::claim::{Claimer, claim, owners_matching};
use crate::controllers::error::ControllerError;
use crate::controllers::events::{EventRecorder, EventType};
use crate::controllers::expectations::Expectations;
use crate::controllers::pods::{is_active, seconds, until_available};
use crate::controllers::runtime::{
    Action, Cache, Clock, Handler, Notification, Reconciler, WorkQueue, key_of,
};

/// Most pods created or deleted by one reconcile (Kubernetes' burstReplicas).
pub const BURST_REPLICAS: usize = 500;

/// The controller's state: caches it reads, the queue it feeds, and its expectations.
pub struct ReplicaSetController<A: ControllerApi> {
    pub api: A,
    pub clock: Arc<dyn Clock>,
    pub replicasets: Cache<ReplicaSet>,
    pub pods: Cache<Pod>,
    pub queue: Arc<WorkQueue>,
    pub expectations: Arc<Expectations>,
    pub events: EventRecorder<A>,
}

/// The ReplicaSet key (`namespace/name`) a pod's controller reference names.
fn owner_key(pod: &Pod) -> Option<String> {
    let r = pod.metadata.controller_ref()?;
    (r.kind == "ReplicaSet").then(|| format!("{}/{}", pod.namespace(), r.name))
}

impl<A: ControllerApi> ReplicaSetController<A> {
    pub fn new(
        api: A,
        clock: Arc<dyn Clock>,
        replicasets: Cache<ReplicaSet>,
        pods: Cache<Pod>,
        queue: Arc<WorkQueue>,
    ) -> Self {
        ReplicaSetController {
            events: EventRecorder::new(api.clone(), clock.clone(), "replicaset-controller"),
            expectations: Arc::new(Expectations::new(clock.clone())),
            api,
            clock,
            replicasets,
            pods,
            queue,
        }
    }

    /// Enqueues a ReplicaSet whenever it changes.
    pub fn replicaset_handler(&self) -> Handler<ReplicaSet> {
        let queue = self.queue.clone();
        Arc::new(move |n| match n {
            Notification::Added(rs) | Notification::Updated { new: rs, .. } => {
                queue.add(key_of(rs.as_ref()))
            }
            Notification::Deleted(rs) => queue.add(key_of(rs.as_ref())),
        })
    }

    /// Observes expectations and enqueues the owning ReplicaSet of a changed
    /// pod, or every ReplicaSet that may adopt it when it is an orphan.
    pub fn pod_handler(&self) -> Handler<Pod> {
        let queue = self.queue.clone();
        let exp = self.expectations.clone();
        let replicasets = self.replicasets.clone();
        let adopters = move |pod: &Pod| {
            let candidates = replicasets.list(pod.namespace());
            let keys = owners_matching(
                &candidates,
                |rs: &ReplicaSet| Selector::from_label_selector(&rs.spec.selector).ok(),
                &pod.metadata.labels,
            );
            for k in keys {
                queue.add(k);
            }
        };
        let queue = self.queue.clone();
        Arc::new(move |n| match n {
            Notification::Added(pod) if pod.metadata.controller_ref().is_none() => adopters(pod),
            Notification::Updated { old, new }
                if new.metadata.controller_ref().is_none()
                    && (old.metadata.labels != new.metadata.labels
                        || old.metadata.owner_references != new.metadata.owner_references) =>
            {
                // Released or relabelled: the old owner lets go, others may adopt.
                if let Some(rs) = owner_key(old) {
                    queue.add(rs);
                }
                adopters(new)
            }
            Notification::Added(pod) => {
                if let Some(rs) = owner_key(pod) {
                    if pod.metadata.deletion_timestamp.is_some() {
                        exp.deletion_observed(&rs, &key_of(pod.as_ref()));
                    } else {
                        exp.creation_observed(&rs);
                    }
                    queue.add(rs);
                }
            }
            Notification::Updated { old, new } => {
                let (old_owner, new_owner) = (owner_key(old), owner_key(new));
                if let Some(rs) = &new_owner
                    && new.metadata.deletion_timestamp.is_some()
                    && old.metadata.deletion_timestamp.is_none()
                {
                    // Marked for graceful deletion: as good as gone for counting.
                    exp.deletion_observed(rs, &key_of(new.as_ref()));
                }
                if let Some(rs) = old_owner
                    && Some(&rs) != new_owner.as_ref()
                {
                    queue.add(rs);
                }
                if let Some(rs) = new_owner {
                    queue.add(rs);
                }
            }
            Notification::Deleted(pod) => {
                if let Some(rs) = owner_key(pod) {
                    exp.deletion_observed(&rs, &key_of(pod.as_ref()));
                    queue.add(rs);
                }
            }
        })
    }

    /// Active pods this ReplicaSet controls, after adopting matching
    /// orphans and releasing pods that no longer match.
    async fn claim_pods(
        &self,
        rs: &ReplicaSet,
        selector: &Selector,
    ) -> Result<Vec<Arc<Pod>>, ControllerError> {
        let uid = rs.metadata.uid.as_deref().unwrap_or_default();
        let deleting = rs.metadata.deletion_timestamp.is_some();
        let claims = claim(uid, deleting, selector, self.pods.list(rs.namespace()));
        let claimer = Claimer {
            api: &self.api,
            owner: rs,
        };
        claimer.release(claims.release).await?;
        let adopted = claimer.adopt(claims.adopt).await?;
        Ok(claims
            .owned
            .into_iter()
            .chain(adopted)
            .filter(|p| is_active(p))
            .collect())
    }

    async fn create_pods(
        &self,
        rs: &ReplicaSet,
        key: &str,
        count: usize,
    ) -> Result<(), ControllerError> {
        self.expectations.expect_creations(key, count);
        // Slow start (1, 2, 4, ...): a quota or validation error fails one
        // request, not hundreds.
        let (mut done, mut batch) = (0, 1);
        while done < count {
            let n = batch.min(count - done);
            let pod = pod_from_template(rs).to_object();
            let results = join_all((0..n).map(|_| self.api.create(&pod))).await;
            let mut first_error = None;
            let mut events = Vec::with_capacity(results.len());
            for r in results {
                match r {
                    Ok(created) => events.push((
                        EventType::Normal,
                        "SuccessfulCreate",
                        format!("Created pod: {}", created.metadata.name),
                    )),
                    Err(e) => {
                        self.expectations.creation_observed(key);
                        events.push((
                            EventType::Warning,
                            "FailedCreate",
                            format!("Error creating: {e}"),
                        ));
                        first_error.get_or_insert(e);
                    }
                }
            }
            // Events are written side by side, not one fsync after another.
            join_all(
                events
                    .into_iter()
                    .map(|(t, reason, message)| self.events.record(rs, t, reason, message)),
            )
            .await;
            done += n;
            if let Some(e) = first_error {
                // The creations never issued will never be observed either.
                for _ in done..count {
                    self.expectations.creation_observed(key);
                }
                return Err(ControllerError::api(
                    "creating pods for",
                    format!("replicaset/{}", rs.name()),
                    e,
                ));
            }
            batch *= 2;
        }
        Ok(())
    }

    async fn delete_pods(
        &self,
        rs: &ReplicaSet,
        key: &str,
        victims: Vec<Arc<Pod>>,
    ) -> Result<(), ControllerError> {
        self.expectations
            .expect_deletions(key, victims.iter().map(|p| key_of(p.as_ref())));
        let opts = DeleteOptions::default();
        let results = join_all(
            victims
                .iter()
                .map(|p| self.api.delete(Kind::Pod, p.namespace(), p.name(), &opts)),
        )
        .await;
        let mut first_error = None;
        let mut events = Vec::new();
        for (pod, r) in victims.iter().zip(results) {
            match r {
                Ok(_) => events.push((
                    EventType::Normal,
                    "SuccessfulDelete",
                    format!("Deleted pod: {}", pod.name()),
                )),
                Err(ClientError::NotFound(_)) => self
                    .expectations
                    .deletion_observed(key, &key_of(pod.as_ref())),
                Err(e) => {
                    self.expectations
                        .deletion_observed(key, &key_of(pod.as_ref()));
                    events.push((
                        EventType::Warning,
                        "FailedDelete",
                        format!("Error deleting: {e}"),
                    ));
                    first_error.get_or_insert(e);
                }
            }
        }
        join_all(
            events
                .into_iter()
                .map(|(t, reason, message)| self.events.record(rs, t, reason, message)),
        )
        .await;
        match first_error {
            Some(e) => Err(ControllerError::api(
                "deleting pods of",
                format!("replicaset/{}", rs.name()),
                e,
            )),
            None => Ok(()),
        }
    }

    /// Creates or deletes pods so that `pods.len()` becomes `spec.replicas`.
    async fn manage_replicas(
        &self,
        rs: &ReplicaSet,
        key: &str,
        pods: &[Arc<Pod>],
    ) -> Result<(), ControllerError> {
        let want = usize::try_from(rs.spec.replicas).unwrap_or(0);
        if pods.len() < want {
            self.create_pods(rs, key, (want - pods.len()).min(BURST_REPLICAS))
                .await
        } else if pods.len() > want {
            let n = (pods.len() - want).min(BURST_REPLICAS);
            self.delete_pods(rs, key, rank::pods_to_delete(pods, n))
                .await
        } else {
            Ok(())
        }
    }

    async fn write_status(
        &self,
        rs: &ReplicaSet,
        status: ReplicaSetStatus,
    ) -> Result<(), ControllerError> {
        let mut updated = rs.clone();
        updated.status = Some(status);
        crate::controllers::api::write_status(&self.api, rs, updated).await
    }
}

impl<A: ControllerApi> Reconciler for ReplicaSetController<A> {
    fn name(&self) -> &'static str {
        "replicaset"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, ControllerError> {
        let Some(rs) = self.replicasets.get(key) else {
            self.expectations.forget(key);
            return Ok(Action::await_change());
        };
        let selector = Selector::from_label_selector(&rs.spec.selector).map_err(|e| {
            ControllerError::Invalid {
                object: format!("replicaset/{}", rs.name()),
                message: e.to_string(),
            }
        })?;
        let pods = self.claim_pods(&rs, &selector).await?;
        let managed =
            if self.expectations.satisfied(key) && rs.metadata.deletion_timestamp.is_none() {
                self.manage_replicas(&rs, key, &pods).await
            } else {
                Ok(())
            };
        let now = self.clock.now();
        let status = status::calculate(&rs, &pods, now);
        self.write_status(&rs, status).await?;
        managed?;
        // Pods ready but not yet available become available with time alone.
        let min_ready = seconds(rs.spec.min_ready_seconds);
        let next = pods
            .iter()
            .filter_map(|p| until_available(p, min_ready, now))
            .min();
        Ok(match next {
            Some(d) => Action::requeue(d + std::time::Duration::from_millis(10)),
            None => Action::await_change(),
        })
    }
}
