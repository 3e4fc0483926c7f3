//! Writes a Deployment makes to its ReplicaSets: create the new one, bump its
//! revision, scale one, delete old ones.

use drover_proto::client::{ClientError, DeleteOptions};
use drover_proto::selector::LabelSelector;
use drover_proto::types::workload::{Deployment, ReplicaSet, ReplicaSetSpec};
use drover_proto::{Kind, ObjectMeta, Resource};

use super::DeploymentController;
use super::hash::{POD_TEMPLATE_HASH, runs_template, template_hash};
use super::history::{
    CHANGE_CAUSE, DESIRED_REPLICAS, MAX_REPLICAS, REVISION, max_revision, revision_of,
};
use crate::controllers::api::ControllerApi;
use crate::controllers::error::ControllerError;
use crate::controllers::events::EventType;
use crate::controllers::replicaset::controller_ref;

fn api_error(action: &'static str, rs: &str, e: ClientError) -> ControllerError {
    ControllerError::api(action, format!("replicaset/{rs}"), e)
}

fn decode(o: &drover_proto::Object) -> Result<ReplicaSet, ControllerError> {
    ReplicaSet::from_object(o).map_err(|e| ControllerError::Invalid {
        object: format!("replicaset/{}", o.metadata.name),
        message: e.to_string(),
    })
}

impl<A: ControllerApi> DeploymentController<A> {
    /// Finds the ReplicaSet running the Deployment's template, making sure it
    /// carries the newest revision; creates it (at `initial` replicas) when
    /// `create` and there is none. Returns it and whether it was created.
    pub(super) async fn new_replicaset(
        &self,
        d: &Deployment,
        rses: &[ReplicaSet],
        create: bool,
        initial: impl FnOnce() -> i32,
        max_surge: i32,
    ) -> Result<(Option<ReplicaSet>, bool), ControllerError> {
        let collision = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = template_hash(&d.spec.template, collision);
        let existing = rses.iter().find(|rs| {
            rs.metadata.labels.get(POD_TEMPLATE_HASH) == Some(&hash)
                || runs_template(rs, &d.spec.template)
        });
        let old_max = max_revision(
            rses.iter()
                .filter(|rs| existing.is_none_or(|e| e.metadata.uid != rs.metadata.uid)),
        );
        let revision = (old_max + 1).to_string();
        if let Some(rs) = existing {
            if revision_of(rs) > old_max {
                return Ok((Some(rs.clone()), false));
            }
            // An old template came back (rollback): it becomes the newest revision.
            let mut copy = rs.clone();
            copy.metadata.annotations.insert(REVISION.into(), revision);
            let stored = self
                .api
                .update(&copy.to_object())
                .await
                .map_err(|e| api_error("updating revision of", rs.name(), e))?;
            return Ok((Some(decode(&stored)?), false));
        }
        if !create {
            return Ok((None, false));
        }
        let replicas = initial();
        let mut template = d.spec.template.clone();
        template
            .metadata
            .labels
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut selector: LabelSelector = d.spec.selector.clone();
        selector
            .match_labels
            .insert(POD_TEMPLATE_HASH.into(), hash.clone());
        let mut annotations = std::collections::BTreeMap::new();
        annotations.insert(REVISION.to_string(), revision);
        annotations.insert(DESIRED_REPLICAS.to_string(), d.spec.replicas.to_string());
        annotations.insert(
            MAX_REPLICAS.to_string(),
            (d.spec.replicas + max_surge).to_string(),
        );
        if let Some(cause) = d.metadata.annotations.get(CHANGE_CAUSE) {
            annotations.insert(CHANGE_CAUSE.to_string(), cause.clone());
        }
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: format!("{}-{hash}", d.name()),
                namespace: Some(d.namespace().to_string()),
                labels: template.metadata.labels.clone(),
                annotations,
                owner_references: vec![controller_ref(d)],
                ..ObjectMeta::default()
            },
            spec: ReplicaSetSpec {
                replicas,
                min_ready_seconds: d.spec.min_ready_seconds,
                selector,
                template,
            },
            ..ReplicaSet::default()
        };
        rs.set_type_meta();
        match self.api.create(&rs.to_object()).await {
            Ok(stored) => {
                let rs = decode(&stored)?;
                if replicas > 0 {
                    let msg = format!("Scaled up replica set {} from 0 to {replicas}", rs.name());
                    self.events
                        .record(d, EventType::Normal, "ScalingReplicaSet", msg)
                        .await;
                }
                Ok((Some(rs), true))
            }
            Err(ClientError::AlreadyExists(m)) => {
                // Someone else holds the name with another template: change the
                // hash by counting the collision, then try again.
                if let Some(theirs) =
                    self.replicasets
                        .get(&format!("{}/{}", d.namespace(), rs.name()))
                    && runs_template(&theirs, &d.spec.template)
                {
                    return Ok((Some((*theirs).clone()), false));
                }
                let mut copy = d.clone();
                let status = copy.status.get_or_insert_with(Default::default);
                status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                copy.metadata.resource_version = None;
                let _ = self.api.update_status(&copy.to_object()).await;
                Err(api_error(
                    "creating",
                    rs.name(),
                    ClientError::AlreadyExists(m),
                ))
            }
            Err(e) => Err(api_error("creating", rs.name(), e)),
        }
    }

    /// Sets `rs`'s replicas (compare-and-set on its resourceVersion, so a
    /// stale cache loses the race instead of undoing a newer scale).
    pub(super) async fn scale(
        &self,
        d: &Deployment,
        rs: &ReplicaSet,
        replicas: i32,
        max_surge: i32,
    ) -> Result<ReplicaSet, ControllerError> {
        let desired = d.spec.replicas.to_string();
        let max = (d.spec.replicas + max_surge).to_string();
        let a = &rs.metadata.annotations;
        if rs.spec.replicas == replicas
            && a.get(DESIRED_REPLICAS) == Some(&desired)
            && a.get(MAX_REPLICAS) == Some(&max)
        {
            return Ok(rs.clone());
        }
        let mut copy = rs.clone();
        copy.spec.replicas = replicas;
        copy.metadata
            .annotations
            .insert(DESIRED_REPLICAS.into(), desired);
        copy.metadata.annotations.insert(MAX_REPLICAS.into(), max);
        let stored = self
            .api
            .update(&copy.to_object())
            .await
            .map_err(|e| api_error("scaling", rs.name(), e))?;
        let from = rs.spec.replicas;
        if from != replicas {
            let direction = if replicas > from { "up" } else { "down" };
            let msg = format!(
                "Scaled {direction} replica set {} from {from} to {replicas}",
                rs.name()
            );
            self.events
                .record(d, EventType::Normal, "ScalingReplicaSet", msg)
                .await;
        }
        decode(&stored)
    }

    pub(super) async fn delete_replicaset(&self, rs: &ReplicaSet) -> Result<(), ControllerError> {
        let opts = DeleteOptions {
            resource_version: rs.metadata.revision().unwrap_or(0),
            ..DeleteOptions::default()
        };
        match self
            .api
            .delete(Kind::ReplicaSet, rs.namespace(), rs.name(), &opts)
            .await
        {
            Ok(_) | Err(ClientError::NotFound(_)) => Ok(()),
            Err(e) => Err(api_error("deleting", rs.name(), e)),
        }
    }
}
