//! The HorizontalPodAutoscaler controller: every HPA is synced each
//! `sync_period` (Kubernetes' `--horizontal-pod-autoscaler-sync-period`,
//! 15 s there, 1 s here since the metrics are a second old): read the
//! target Deployment (or ReplicaSet) and its pods from the caches and their metrics from
//! the [`PodMetricsSource`], [`plan`] the sync, then scale the Deployment,
//! write the HPA's status and record Events.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_proto::selector::Selector;
use drover_proto::types::service::Service;
use drover_proto::types::{Deployment, HorizontalPodAutoscaler, Pod, ReplicaSet};
use drover_proto::{Resource, Time};

use super::behavior::History;
use super::observe::{observe, pending_requests};
use super::sync::{Plan, TargetScale, plan};
use super::target::{Target, Unresolved, resolve};
use crate::controllers::api::{ControllerApi, write_status};
use crate::controllers::error::ControllerError;
use crate::controllers::events::{EventRecorder, EventType};
use crate::controllers::runtime::clock::elapsed;
use crate::controllers::runtime::{
    Action, Cache, Clock, Handler, Notification, Reconciler, WorkQueue, key_of,
};
use crate::resource_metrics::PodMetricsSource;

/// Kubernetes' default is 15 s; Drover's metrics are fresh every second.
pub const DEFAULT_SYNC_PERIOD: Duration = Duration::from_secs(1);

pub struct HpaController<A: ControllerApi> {
    pub api: A,
    pub clock: Arc<dyn Clock>,
    pub hpas: Cache<HorizontalPodAutoscaler>,
    pub deployments: Cache<Deployment>,
    pub replicasets: Cache<ReplicaSet>,
    pub pods: Cache<Pod>,
    /// The Services fronting targets (whose held requests wake them).
    pub services: Cache<Service>,
    pub metrics: Arc<dyn PodMetricsSource>,
    pub queue: Arc<WorkQueue>,
    pub sync_period: Duration,
    events: EventRecorder<A>,
    /// Past recommendations and scale events per HPA (by uid).
    histories: Mutex<HashMap<String, History>>,
    origin: Time,
}

impl<A: ControllerApi> HpaController<A> {
    #[allow(clippy::too_many_arguments)] // the caches and seams it reads
    pub fn new(
        api: A,
        clock: Arc<dyn Clock>,
        hpas: Cache<HorizontalPodAutoscaler>,
        deployments: Cache<Deployment>,
        replicasets: Cache<ReplicaSet>,
        pods: Cache<Pod>,
        services: Cache<Service>,
        metrics: Arc<dyn PodMetricsSource>,
        queue: Arc<WorkQueue>,
        sync_period: Duration,
    ) -> Self {
        HpaController {
            events: EventRecorder::new(api.clone(), clock.clone(), "horizontal-pod-autoscaler"),
            origin: clock.now(),
            api,
            clock,
            hpas,
            deployments,
            replicasets,
            pods,
            services,
            metrics,
            queue,
            sync_period,
            histories: Mutex::default(),
        }
    }

    /// A new or changed HPA is synced at once (then every sync period).
    pub fn hpa_handler(&self) -> Handler<HorizontalPodAutoscaler> {
        let queue = self.queue.clone();
        Arc::new(move |n| match n {
            Notification::Added(h)
            | Notification::Updated { new: h, .. }
            | Notification::Deleted(h) => queue.add(key_of(h.as_ref())),
        })
    }

    /// The target's scale and what its pods show, from the caches.
    fn read_target(
        &self,
        hpa: &HorizontalPodAutoscaler,
    ) -> Result<(Target, TargetScale), Unresolved> {
        let ns = hpa.namespace();
        let target = resolve(
            &hpa.spec.scale_target_ref,
            ns,
            &self.deployments,
            &self.replicasets,
        )?;
        let selector = Selector::from_label_selector(target.selector()).unwrap_or_default();
        let pods: Vec<Arc<Pod>> = self
            .pods
            .list(ns)
            .into_iter()
            .filter(|p| !selector.is_empty() && selector.matches(&p.metadata.labels))
            .collect();
        let pods: Vec<&Pod> = pods.iter().map(Arc::as_ref).collect();
        let metrics = self.metrics.pod_metrics(ns);
        let services = self.services.list(ns);
        let pending = pending_requests(
            target.pod_labels(),
            services.iter().map(Arc::as_ref),
            &self.metrics.held_requests(ns),
        );
        let scale = TargetScale {
            spec_replicas: target.replicas(),
            status_replicas: target.status_replicas(),
            observation: observe(target.replicas(), &pods, metrics.as_deref(), pending),
        };
        Ok((target, scale))
    }

    async fn perform(
        &self,
        hpa: &HorizontalPodAutoscaler,
        target: Option<Target>,
        plan: Plan,
    ) -> Result<(), ControllerError> {
        let Plan {
            scale_to,
            status,
            notes,
        } = plan;
        let mut updated = hpa.clone();
        updated.status = Some(status);
        if let (Some(n), Some(target)) = (scale_to, &target)
            && let Err(e) = self
                .api
                .update(&target.scaled(n))
                .await
                .map_err(|e| ControllerError::api("scaling", target.display(), e))
        {
            // A conflict (the target changed meanwhile) retries the whole
            // sync against fresh state.
            self.events
                .record(
                    hpa,
                    EventType::Warning,
                    "FailedRescale",
                    format!("New size: {n}; error: {e}"),
                )
                .await;
            return Err(e);
        }
        for note in notes {
            let type_ = if note.warning {
                EventType::Warning
            } else {
                EventType::Normal
            };
            self.events
                .record(hpa, type_, note.reason, note.message)
                .await;
        }
        write_status(&self.api, hpa, updated).await
    }
}

impl<A: ControllerApi> Reconciler for HpaController<A> {
    fn name(&self) -> &'static str {
        "horizontal-pod-autoscaler"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, ControllerError> {
        let Some(hpa) = self.hpas.get(key) else {
            // Deleted: its history goes with it (the uid is gone from the cache).
            let live: Vec<String> = self
                .hpas
                .all()
                .iter()
                .filter_map(|h| h.metadata.uid.clone())
                .collect();
            self.histories
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|uid, _| live.contains(uid));
            return Ok(Action::await_change());
        };
        let now = self.clock.now();
        let since = elapsed(self.origin, now);
        let read = self.read_target(&hpa);
        let (target, scale) = match read {
            Ok((t, s)) => (Some(t), Ok(s)),
            Err(why) => (None, Err(why)),
        };
        let planned = {
            let mut histories = self.histories.lock().unwrap_or_else(|p| p.into_inner());
            let history = histories
                .entry(hpa.metadata.uid.clone().unwrap_or_default())
                .or_default();
            plan(&hpa, scale, history, since, now)
        };
        self.perform(&hpa, target, planned).await?;
        Ok(Action::requeue(self.sync_period))
    }
}
