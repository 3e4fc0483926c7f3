//! The entry point the server starts on the leader: informers for pods,
//! ReplicaSets, Deployments, Nodes, Services, Endpoints and
//! HorizontalPodAutoscalers, and the workers of each controller.

use std::future::Future;
use std::sync::Arc;

use drover_proto::client::Client;
use drover_proto::types::{
    Deployment, Endpoints, HorizontalPodAutoscaler, Node, Pod, ReplicaSet, Service,
};

use super::api::ControllerApi;
use super::autoscaler::HpaController;
use super::deployment::DeploymentController;
use super::endpoints::EndpointsController;
use super::node_lifecycle::{NodeLifecycleConfig, NodeLifecycleController};
use super::replicaset::ReplicaSetController;
use super::runtime::{
    Backoff, Cache, Clock, Handler, Informer, Notification, SystemClock, WorkQueue, run_workers,
};
use crate::resource_metrics::{MetricsSource, PodMetricsSource};

/// How many workers each controller runs, and their timings.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    pub replicaset_workers: usize,
    pub deployment_workers: usize,
    pub node_workers: usize,
    pub endpoints_workers: usize,
    pub node_lifecycle: NodeLifecycleConfig,
    /// Events last seen longer ago than this are deleted.
    pub event_ttl: std::time::Duration,
    pub hpa_workers: usize,
    /// How often every HorizontalPodAutoscaler is synced.
    pub hpa_sync_period: std::time::Duration,
    /// Where the autoscaler reads pod metrics (the server's scraper).
    pub metrics: Arc<dyn PodMetricsSource>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        // Kubernetes' defaults (--concurrent-replicaset-syncs, --concurrent-deployment-syncs).
        ControllerConfig {
            replicaset_workers: 5,
            deployment_workers: 5,
            node_workers: 2,
            endpoints_workers: 5,
            node_lifecycle: NodeLifecycleConfig::default(),
            event_ttl: super::event_ttl::DEFAULT_TTL,
            hpa_workers: 2,
            hpa_sync_period: super::autoscaler::DEFAULT_SYNC_PERIOD,
            metrics: Arc::new(MetricsSource::default()),
        }
    }
}

/// Runs the controllers against the API at `client` until `shutdown` resolves.
pub async fn run_controllers(
    client: Client,
    config: ControllerConfig,
    shutdown: impl Future<Output = ()>,
) {
    run_with(client, Arc::new(SystemClock), config, shutdown).await
}

/// Fans one notification out to several handlers.
fn both<T: Send + Sync + 'static>(a: Handler<T>, b: Handler<T>) -> Handler<T> {
    Arc::new(move |n: &Notification<T>| {
        a(n);
        b(n);
    })
}

/// [`run_controllers`] over any API and clock (tests and benchmarks).
pub async fn run_with<A: ControllerApi>(
    api: A,
    clock: Arc<dyn Clock>,
    config: ControllerConfig,
    shutdown: impl Future<Output = ()>,
) {
    let pods: Cache<Pod> = Cache::default();
    let replicasets: Cache<ReplicaSet> = Cache::default();
    let deployments: Cache<Deployment> = Cache::default();
    let rs_queue = Arc::new(WorkQueue::new(clock.clone(), Backoff::default()));
    let d_queue = Arc::new(WorkQueue::new(clock.clone(), Backoff::default()));
    let nodes: Cache<Node> = Cache::default();
    let n_queue = Arc::new(WorkQueue::new(clock.clone(), Backoff::default()));
    let nlc = Arc::new(NodeLifecycleController::new(
        api.clone(),
        clock.clone(),
        nodes.clone(),
        pods.clone(),
        n_queue.clone(),
        config.node_lifecycle,
    ));
    let rsc = Arc::new(ReplicaSetController::new(
        api.clone(),
        clock.clone(),
        replicasets.clone(),
        pods.clone(),
        rs_queue.clone(),
    ));
    let dc = Arc::new(DeploymentController::new(
        api.clone(),
        clock.clone(),
        deployments.clone(),
        replicasets.clone(),
        pods.clone(),
        d_queue.clone(),
    ));

    let services: Cache<Service> = Cache::default();
    let endpoints: Cache<Endpoints> = Cache::default();
    let e_queue = Arc::new(WorkQueue::new(clock.clone(), Backoff::default()));
    let ec = Arc::new(EndpointsController::new(
        api.clone(),
        services.clone(),
        pods.clone(),
        endpoints.clone(),
        e_queue.clone(),
    ));

    let hpas: Cache<HorizontalPodAutoscaler> = Cache::default();
    let h_queue = Arc::new(WorkQueue::new(clock.clone(), Backoff::default()));
    let hc = Arc::new(HpaController::new(
        api.clone(),
        clock.clone(),
        hpas.clone(),
        deployments.clone(),
        replicasets.clone(),
        pods.clone(),
        services.clone(),
        config.metrics.clone(),
        h_queue.clone(),
        config.hpa_sync_period,
    ));

    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(
        Informer {
            api: api.clone(),
            cache: hpas.clone(),
            handler: hc.hpa_handler(),
        }
        .run(),
    );
    tasks.spawn(
        Informer {
            api: api.clone(),
            cache: pods.clone(),
            handler: both(
                both(rsc.pod_handler(), dc.pod_handler()),
                both(nlc.pod_handler(), ec.pod_handler()),
            ),
        }
        .run(),
    );
    tasks.spawn(
        Informer {
            api: api.clone(),
            cache: replicasets.clone(),
            handler: both(rsc.replicaset_handler(), dc.replicaset_handler()),
        }
        .run(),
    );
    tasks.spawn(
        Informer {
            api: api.clone(),
            cache: deployments.clone(),
            handler: dc.deployment_handler(),
        }
        .run(),
    );
    tasks.spawn(
        Informer {
            api: api.clone(),
            cache: nodes.clone(),
            handler: nlc.node_handler(),
        }
        .run(),
    );
    tasks.spawn(
        Informer {
            api: api.clone(),
            cache: services.clone(),
            handler: ec.service_handler(),
        }
        .run(),
    );
    tasks.spawn(
        Informer {
            api: api.clone(),
            cache: endpoints.clone(),
            handler: ec.endpoints_handler(),
        }
        .run(),
    );
    // Workers start once every cache holds its first list, so no controller
    // acts on a partial view (a missing pod would be re-created).
    let synced = {
        let (p, r, d, n, s, e, h) = (
            pods.clone(),
            replicasets.clone(),
            deployments.clone(),
            nodes.clone(),
            services.clone(),
            endpoints.clone(),
            hpas.clone(),
        );
        async move {
            while !(p.has_synced()
                && r.has_synced()
                && d.has_synced()
                && n.has_synced()
                && s.has_synced()
                && e.has_synced()
                && h.has_synced())
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    tokio::pin!(shutdown);
    tokio::select! {
        _ = &mut shutdown => { tasks.abort_all(); return; }
        _ = synced => {}
    }
    tracing::info!(
        "controllers started (replicaset, deployment, node-lifecycle, endpoints, horizontal-pod-autoscaler, event-ttl)"
    );
    tasks.spawn(run_workers(
        rsc,
        rs_queue.clone(),
        config.replicaset_workers,
    ));
    tasks.spawn(run_workers(dc, d_queue.clone(), config.deployment_workers));
    tasks.spawn(run_workers(nlc, n_queue.clone(), config.node_workers));
    tasks.spawn(run_workers(ec, e_queue.clone(), config.endpoints_workers));
    tasks.spawn(run_workers(hc, h_queue.clone(), config.hpa_workers));
    tasks.spawn(super::event_ttl::run(
        api.clone(),
        clock.clone(),
        config.event_ttl,
    ));
    shutdown.await;
    rs_queue.shut_down();
    d_queue.shut_down();
    n_queue.shut_down();
    e_queue.shut_down();
    h_queue.shut_down();
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}
