//! Resource metrics: `metrics.k8s.io/v1beta1` NodeMetrics and PodMetrics
//! (what `drover top` and the autoscaler read), and what one agent reports
//! to the control plane's metrics source ([`AgentSummary`]). Not stored
//! objects: they are sampled every second and never go through Raft.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Quantity;
use crate::meta::{ObjectMeta, Time};

/// The group/version of the resource metrics API.
pub const METRICS_API_VERSION: &str = "metrics.k8s.io/v1beta1";

/// A node's usage over `window`, ending at `timestamp`: `cpu` in cores,
/// `memory` (working set) in bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeMetrics {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub timestamp: Time,
    /// A duration such as `1s` (Kubernetes' `metav1.Duration` text).
    pub window: String,
    #[serde(default)]
    pub usage: BTreeMap<String, Quantity>,
}

/// A pod's containers' usage over `window`, ending at `timestamp`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMetrics {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub timestamp: Time,
    pub window: String,
    #[serde(default)]
    pub containers: Vec<ContainerMetrics>,
    /// Drover's addition: connections per second the cluster's service
    /// rules sent to this pod (summed over every node), one request per
    /// connection for HTTP/1.0-style clients. Absent when no service
    /// counts traffic to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<Quantity>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerMetrics {
    pub name: String,
    #[serde(default)]
    pub usage: BTreeMap<String, Quantity>,
}

/// A list, as `GET /apis/metrics.k8s.io/v1beta1/...` returns it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsList<T> {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    pub items: Vec<T>,
}

impl<T> MetricsList<T> {
    /// `kind` is the item kind (`NodeMetrics`), the list is `NodeMetricsList`.
    pub fn new(kind: &str, items: Vec<T>) -> Self {
        MetricsList {
            api_version: METRICS_API_VERSION.into(),
            kind: format!("{kind}List"),
            metadata: BTreeMap::new(),
            items,
        }
    }
}

/// What one agent measured in its last sample (`GET /metrics/summary` on
/// its HTTP endpoint).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentSummary {
    pub node: NodeMetrics,
    #[serde(default)]
    pub pods: Vec<PodSummary>,
    /// Connection rates this node's service rules counted, per endpoint.
    #[serde(default)]
    pub endpoints: Vec<EndpointRate>,
    /// Connection rates per service port entering through this node.
    #[serde(default)]
    pub services: Vec<ServiceRate>,
    /// Connections this node's activator holds for service ports with no
    /// ready endpoint (scale from zero).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held: Vec<HeldRequests>,
}

/// One pod on the node: its metrics and its address (the control plane
/// matches endpoint rates from every node to pods by address).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSummary {
    pub metrics: PodMetrics,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
}

/// Connections per second a node sent to one endpoint of a service port.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointRate {
    pub namespace: String,
    pub service: String,
    /// The service port's name (its number when unnamed).
    pub port: String,
    pub ip: String,
    pub target_port: u16,
    pub per_second: f64,
}

/// Connections per second entering a service port through one node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRate {
    pub namespace: String,
    pub service: String,
    pub port: String,
    pub per_second: f64,
}

/// Requests one node's activator holds for a service port (pending now)
/// and gave up on (past its timeout, since the agent started).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeldRequests {
    pub namespace: String,
    pub service: String,
    pub port: String,
    pub pending: u64,
    pub expired_total: u64,
}

/// `window` text for a duration, in whole milliseconds when not whole seconds.
pub fn window_text(window: std::time::Duration) -> String {
    let ms = window.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Summed `cpu` usage of a pod's containers, in cores.
pub fn pod_cpu_cores(p: &PodMetrics) -> f64 {
    pod_usage(p, "cpu")
}

/// Summed `memory` usage of a pod's containers, in bytes.
pub fn pod_memory_bytes(p: &PodMetrics) -> f64 {
    pod_usage(p, "memory")
}

fn pod_usage(p: &PodMetrics, resource: &str) -> f64 {
    p.containers
        .iter()
        .filter_map(|c| c.usage.get(resource))
        .map(Quantity::as_f64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_metrics_read_as_kubernetes_writes_them() {
        let json = r#"{"kind":"PodMetrics","apiVersion":"metrics.k8s.io/v1beta1",
          "metadata":{"name":"web-1","namespace":"default"},
          "timestamp":"2026-01-01T00:00:00Z","window":"1s",
          "containers":[{"name":"web","usage":{"cpu":"250m","memory":"12Mi"}},
                        {"name":"side","usage":{"cpu":"50m","memory":"1Mi"}}]}"#;
        let p: PodMetrics = serde_json::from_str(json).expect("decodes");
        assert!((pod_cpu_cores(&p) - 0.3).abs() < 1e-9);
        assert_eq!(pod_memory_bytes(&p), 13.0 * 1048576.0);
        assert_eq!(p.requests_per_second, None);
        let back = serde_json::to_value(&p).expect("encodes");
        assert!(back.get("requestsPerSecond").is_none());
    }

    #[test]
    fn windows_read_like_durations() {
        assert_eq!(window_text(std::time::Duration::from_secs(1)), "1s");
        assert_eq!(
            window_text(std::time::Duration::from_millis(1003)),
            "1003ms"
        );
        let l = MetricsList::new("PodMetrics", Vec::<PodMetrics>::new());
        assert_eq!(l.kind, "PodMetricsList");
    }
}
