//! What the autoscaler sees of its target's pods (pure): readiness and cpu
//! requests from the pods, usage and request rates from the metrics
//! pipeline, joined by pod name.

use std::collections::{BTreeMap, HashMap};

use drover_proto::types::Pod;
use drover_proto::types::metrics::{PodMetrics, pod_cpu_cores};
use drover_proto::types::service::Service;

use super::replica_calc::{Observation, PodSample};

/// Requests the nodes' activators hold for the Services that front a
/// target whose pods carry `pod_labels` (a Service with a selector those
/// labels satisfy); `held` is by Service name, within the namespace.
pub fn pending_requests<'a>(
    pod_labels: &BTreeMap<String, String>,
    services: impl IntoIterator<Item = &'a Service>,
    held: &BTreeMap<String, u64>,
) -> u64 {
    services
        .into_iter()
        .filter(|s| {
            let sel = &s.spec.selector;
            !sel.is_empty() && sel.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
        })
        .filter_map(|s| held.get(&s.metadata.name))
        .sum()
}

/// The observation for a target at `current_replicas` whose live pods are
/// `pods`; `metrics` are the namespace's pod metrics (None: none scraped);
/// `pending_requests` are held for it by the nodes (scale from zero).
pub fn observe(
    current_replicas: i32,
    pods: &[&Pod],
    metrics: Option<&[PodMetrics]>,
    pending_requests: u64,
) -> Observation {
    let by_name: HashMap<&str, &PodMetrics> = metrics
        .unwrap_or_default()
        .iter()
        .map(|m| (m.metadata.name.as_str(), m))
        .collect();
    let pods = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && !p.is_terminal())
        .map(|p| {
            let m = by_name.get(p.metadata.name.as_str());
            PodSample {
                name: p.metadata.name.clone(),
                ready: p.is_ready(),
                cpu_millis: m.map(|m| pod_cpu_cores(m) * 1000.0),
                cpu_request_millis: p.total_request("cpu") as f64,
                rps: m
                    .and_then(|m| m.requests_per_second.as_ref())
                    .map(|q| q.as_f64()),
            }
        })
        .collect();
    Observation {
        current_replicas,
        pods,
        pending_requests,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ready: bool, terminating: bool) -> Pod {
        let mut p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [
                {"name": "a", "image": "x", "resources": {"requests": {"cpu": "200m"}}},
                {"name": "b", "image": "x", "resources": {"limits": {"cpu": "100m"}}}
            ]},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}
            ]}
        }))
        .expect("pod");
        if terminating {
            p.metadata.deletion_timestamp = Some(chrono::Utc::now());
        }
        p
    }

    #[test]
    fn pods_join_their_metrics_by_name() {
        let m: PodMetrics = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "default"},
            "timestamp": "2026-01-01T00:00:00Z", "window": "1s",
            "containers": [{"name": "a", "usage": {"cpu": "150m"}}],
            "requestsPerSecond": "4"
        }))
        .expect("metrics");
        let (a, b, c) = (
            pod("web-1", true, false),
            pod("web-2", false, false),
            pod("web-3", true, true),
        );
        let obs = observe(3, &[&a, &b, &c], Some(&[m]), 0);
        assert_eq!(obs.current_replicas, 3);
        assert_eq!(obs.pods.len(), 2, "the terminating pod is left out");
        let first = &obs.pods[0];
        assert_eq!((first.ready, first.cpu_request_millis), (true, 300.0));
        assert_eq!((first.cpu_millis, first.rps), (Some(150.0), Some(4.0)));
        let second = &obs.pods[1];
        assert_eq!(
            (second.ready, second.cpu_millis, second.rps),
            (false, None, None)
        );
        assert!(observe(1, &[&a], None, 0).pods[0].cpu_millis.is_none());
    }

    #[test]
    fn requests_held_for_the_services_selecting_the_targets_pods() {
        let svc = |name: &str, selector: serde_json::Value| -> Service {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"selector": selector, "ports": [{"port": 80}]}
            }))
            .expect("service")
        };
        let services = [
            svc("web", serde_json::json!({"app": "web"})),
            svc(
                "web-canary",
                serde_json::json!({"app": "web", "track": "canary"}),
            ),
            svc("api", serde_json::json!({"app": "api"})),
            svc("external", serde_json::json!({})),
        ];
        let held = BTreeMap::from([
            ("web".to_string(), 2),
            ("web-canary".to_string(), 5),
            ("api".to_string(), 7),
            ("external".to_string(), 11),
        ]);
        let labels = BTreeMap::from([
            ("app".to_string(), "web".to_string()),
            ("pod-template-hash".to_string(), "abc".to_string()),
        ]);
        // Only "web" selects these pods; a selector-less Service selects none.
        assert_eq!(pending_requests(&labels, &services, &held), 2);
        assert_eq!(pending_requests(&BTreeMap::new(), &services, &held), 0);
    }
}
