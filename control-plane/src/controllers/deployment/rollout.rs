//! One Deployment sync: pick or create the new ReplicaSet, take one step of
//! the strategy (RollingUpdate or Recreate), clean up history, write status.
//! Each step returns after acting so the next one sees fresh caches.

use drover_proto::Resource;
use drover_proto::types::workload::{Deployment, DeploymentStrategyType, ReplicaSet};

use super::DeploymentController;
use super::history::to_clean_up;
use super::rolling::{Size, fenceposts, new_replicaset_target, old_replicasets_targets};
use super::status::{calculate, is_complete};
use crate::controllers::api::ControllerApi;
use crate::controllers::error::ControllerError;
use crate::controllers::pods::is_active;
use crate::controllers::runtime::Action;

fn size(rs: &ReplicaSet) -> Size {
    Size::new(
        rs.spec.replicas,
        rs.status
            .as_ref()
            .map(|s| s.available_replicas)
            .unwrap_or(0),
    )
}

impl<A: ControllerApi> DeploymentController<A> {
    pub(super) async fn sync(&self, d: &Deployment) -> Result<Action, ControllerError> {
        let invalid = |message: String| ControllerError::Invalid {
            object: format!("deployment/{}", d.name()),
            message,
        };
        let (surge, unavailable) = fenceposts(d).map_err(invalid)?;
        let rses = self.claim_replicasets(d).await?;
        let paused = d.spec.paused;
        let recreate = d.spec.strategy.type_ == DeploymentStrategyType::Recreate;

        // A paused Deployment only scales; Recreate creates the new
        // ReplicaSet only once the old pods are gone.
        let create = !paused && !recreate;
        let initial = || {
            let total: i32 = rses.iter().map(|rs| rs.spec.replicas).sum();
            new_replicaset_target(d.spec.replicas, surge, 0, total)
        };
        let (new, created) = self
            .new_replicaset(d, &rses, create, initial, surge)
            .await?;
        let new_uid = new.as_ref().and_then(|rs| rs.metadata.uid.clone());
        let mut old: Vec<ReplicaSet> = rses
            .into_iter()
            .filter(|rs| new_uid.is_none() || rs.metadata.uid != new_uid)
            .collect();
        let mut new = new;

        if !created {
            let acted = if paused {
                self.scale_paused(d, new.as_ref(), &old, surge).await?
            } else if recreate {
                self.step_recreate(d, &mut new, &old).await?
            } else if let Some(n) = &new {
                self.step_rolling(d, n, &mut old, surge, unavailable)
                    .await?
            } else {
                false
            };
            if acted {
                return self
                    .sync_status(d, new.as_ref(), &old, unavailable, false)
                    .await;
            }
        }
        let action = self
            .sync_status(d, new.as_ref(), &old, unavailable, created)
            .await?;
        let done = d.status.as_ref().is_some_and(|s| is_complete(d, s));
        if done || paused {
            for rs in to_clean_up(&old, d.spec.revision_history_limit) {
                self.delete_replicaset(&rs).await?;
            }
        }
        Ok(action)
    }

    /// Paused: keep the size right, touch no template.
    async fn scale_paused(
        &self,
        d: &Deployment,
        new: Option<&ReplicaSet>,
        old: &[ReplicaSet],
        surge: i32,
    ) -> Result<bool, ControllerError> {
        let active: Vec<&ReplicaSet> = new
            .into_iter()
            .chain(old.iter())
            .filter(|rs| rs.spec.replicas > 0)
            .collect();
        // Only the simple case: one active ReplicaSet follows spec.replicas.
        if let [only] = active.as_slice()
            && only.spec.replicas != d.spec.replicas
        {
            self.scale(d, only, d.spec.replicas, surge).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// One RollingUpdate step: grow the new ReplicaSet within maxSurge, or
    /// shrink old ones within maxUnavailable.
    async fn step_rolling(
        &self,
        d: &Deployment,
        new: &ReplicaSet,
        old: &mut [ReplicaSet],
        surge: i32,
        unavailable: i32,
    ) -> Result<bool, ControllerError> {
        let total: i32 = new.spec.replicas + old.iter().map(|rs| rs.spec.replicas).sum::<i32>();
        let target = new_replicaset_target(d.spec.replicas, surge, new.spec.replicas, total);
        if target != new.spec.replicas {
            self.scale(d, new, target, surge).await?;
            return Ok(true);
        }
        let sizes: Vec<Size> = old.iter().map(size).collect();
        let targets = old_replicasets_targets(d.spec.replicas, unavailable, size(new), &sizes);
        let mut acted = false;
        for (rs, t) in old.iter_mut().zip(targets) {
            if rs.spec.replicas != t {
                *rs = self.scale(d, rs, t, surge).await?;
                acted = true;
            }
        }
        Ok(acted)
    }

    /// One Recreate step: old ReplicaSets to zero, wait for their pods to be
    /// gone, then the new one to full size.
    async fn step_recreate(
        &self,
        d: &Deployment,
        new: &mut Option<ReplicaSet>,
        old: &[ReplicaSet],
    ) -> Result<bool, ControllerError> {
        let mut acted = false;
        for rs in old.iter().filter(|rs| rs.spec.replicas > 0) {
            self.scale(d, rs, 0, 0).await?;
            acted = true;
        }
        if acted {
            return Ok(true);
        }
        let old_uids: Vec<&str> = old
            .iter()
            .filter_map(|rs| rs.metadata.uid.as_deref())
            .collect();
        let old_pods_running = self.pods.list(d.namespace()).iter().any(|p| {
            let phase_done = !is_active(p) && p.metadata.deletion_timestamp.is_none();
            !phase_done
                && p.metadata
                    .controller_ref()
                    .is_some_and(|r| old_uids.contains(&r.uid.as_str()))
        });
        if old_pods_running {
            return Ok(false);
        }
        let rs = match new.take() {
            Some(rs) => rs,
            None => {
                let (created, _) = self.new_replicaset(d, old, true, || 0, 0).await?;
                match created {
                    Some(rs) => rs,
                    None => return Ok(true),
                }
            }
        };
        let scaled = self.scale(d, &rs, d.spec.replicas, 0).await?;
        let changed = scaled.spec.replicas != rs.spec.replicas;
        *new = Some(scaled);
        Ok(changed)
    }

    async fn sync_status(
        &self,
        d: &Deployment,
        new: Option<&ReplicaSet>,
        old: &[ReplicaSet],
        unavailable: i32,
        created: bool,
    ) -> Result<Action, ControllerError> {
        let all: Vec<ReplicaSet> = new
            .into_iter()
            .cloned()
            .chain(old.iter().cloned())
            .collect();
        let (status, requeue) = calculate(d, new, &all, unavailable, created, self.clock.now());
        self.write_status(d, status).await?;
        Ok(match requeue {
            Some(after) => Action::requeue(after),
            None => Action::await_change(),
        })
    }
}
