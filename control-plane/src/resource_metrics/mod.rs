//! The resource metrics pipeline's control-plane end, as metrics-server
//! does it: every member scrapes each Ready node's agent every second
//! ([`scrape`]), merges the reports ([`aggregate`]) and keeps them in
//! memory only (never through Raft); the gateway serves them as
//! `metrics.k8s.io/v1beta1` ([`api`]) and on `/metrics`, and the autoscaler
//! reads them through [`PodMetricsSource`].

pub mod aggregate;
pub mod api;
pub mod exposition;
pub mod scrape;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use drover_proto::types::metrics::PodMetrics;

pub use aggregate::{Aggregate, aggregate};

/// What the autoscaler needs of the metrics pipeline (a fake in tests).
pub trait PodMetricsSource: Send + Sync + std::fmt::Debug + 'static {
    /// The last metrics of the pods in `namespace`; None when nothing has
    /// been scraped yet.
    fn pod_metrics(&self, namespace: &str) -> Option<Vec<PodMetrics>>;

    /// Requests the nodes' activators hold now, by Service name in
    /// `namespace` (scale from zero).
    fn held_requests(&self, namespace: &str) -> BTreeMap<String, u64>;
}

/// The last scrape's view, shared by the scraper, the gateway and the
/// autoscaler.
#[derive(Debug, Clone, Default)]
pub struct MetricsSource(Arc<RwLock<Option<Aggregate>>>);

impl MetricsSource {
    /// Replaces the view with a new scrape's.
    pub fn set(&self, a: Aggregate) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(a);
    }

    /// Reads the view (None before the first scrape).
    pub fn with<R>(&self, read: impl FnOnce(Option<&Aggregate>) -> R) -> R {
        read(self.0.read().unwrap_or_else(|p| p.into_inner()).as_ref())
    }

    /// Requests per second through a service (all ports, all nodes).
    pub fn service_rate(&self, namespace: &str, name: &str) -> Option<f64> {
        self.with(|a| {
            a?.services
                .get(&(namespace.to_string(), name.to_string()))
                .copied()
        })
    }
}

impl PodMetricsSource for MetricsSource {
    fn pod_metrics(&self, namespace: &str) -> Option<Vec<PodMetrics>> {
        self.with(|a| {
            Some(
                a?.pods
                    .iter()
                    .filter(|((ns, _), _)| ns == namespace)
                    .map(|(_, m)| m.clone())
                    .collect(),
            )
        })
    }

    fn held_requests(&self, namespace: &str) -> BTreeMap<String, u64> {
        self.with(|a| {
            a.map(|a| {
                a.held
                    .iter()
                    .filter(|((ns, _), _)| ns == namespace)
                    .map(|((_, name), n)| (name.clone(), *n))
                    .collect()
            })
            .unwrap_or_default()
        })
    }
}
