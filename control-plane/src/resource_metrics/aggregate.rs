//! Merges the agents' reports into one cluster view (pure): nodes' and
//! pods' usage as reported, and each pod's requests per second summed over
//! every node's counters (a connection is counted on the node where it
//! entered, which may not be the pod's node).

use std::collections::BTreeMap;

use drover_proto::Quantity;
use drover_proto::types::metrics::{AgentSummary, NodeMetrics, PodMetrics};

/// The cluster's metrics as of the last scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Aggregate {
    pub nodes: Vec<NodeMetrics>,
    /// By `(namespace, name)`.
    pub pods: BTreeMap<(String, String), PodMetrics>,
    /// Requests per second per service, `(namespace, name)`, all ports and
    /// nodes summed.
    pub services: BTreeMap<(String, String), f64>,
    /// Requests the nodes' activators hold per service, `(namespace,
    /// name)`, all ports and nodes summed (scale from zero).
    pub held: BTreeMap<(String, String), u64>,
}

/// Requests per second as a quantity (thousandths).
pub fn rate_quantity(per_second: f64) -> Quantity {
    Quantity::from_millis((per_second.max(0.0) * 1000.0).round() as i64)
}

/// One view from the reports of the nodes that answered.
pub fn aggregate(reports: &[AgentSummary]) -> Aggregate {
    // Endpoint rates by (namespace, ip), summed over nodes and services.
    let mut by_ip: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    let mut services = BTreeMap::new();
    let mut held = BTreeMap::new();
    for r in reports {
        for h in &r.held {
            *held
                .entry((h.namespace.clone(), h.service.clone()))
                .or_default() += h.pending;
        }
        for e in &r.endpoints {
            *by_ip.entry((&e.namespace, &e.ip)).or_default() += e.per_second;
        }
        for s in &r.services {
            *services
                .entry((s.namespace.clone(), s.service.clone()))
                .or_default() += s.per_second;
        }
    }
    let mut pods = BTreeMap::new();
    for r in reports {
        for p in &r.pods {
            let mut m = p.metrics.clone();
            let ns = m.metadata.namespace.clone().unwrap_or_default();
            m.requests_per_second = p
                .pod_ip
                .as_deref()
                .and_then(|ip| by_ip.get(&(ns.as_str(), ip)))
                .map(|r| rate_quantity(*r));
            pods.insert((ns, m.metadata.name.clone()), m);
        }
    }
    Aggregate {
        nodes: reports.iter().map(|r| r.node.clone()).collect(),
        pods,
        services,
        held,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_proto::ObjectMeta;
    use drover_proto::types::metrics::{EndpointRate, HeldRequests, PodSummary, ServiceRate};

    fn pod(ns: &str, name: &str, ip: &str) -> PodSummary {
        PodSummary {
            metrics: PodMetrics {
                metadata: ObjectMeta {
                    name: name.into(),
                    namespace: Some(ns.into()),
                    ..Default::default()
                },
                ..Default::default()
            },
            pod_ip: Some(ip.into()),
        }
    }

    fn ep(ip: &str, per_second: f64) -> EndpointRate {
        EndpointRate {
            namespace: "default".into(),
            service: "web".into(),
            port: "http".into(),
            ip: ip.into(),
            target_port: 8080,
            per_second,
        }
    }

    #[test]
    fn request_rates_are_summed_across_the_nodes_traffic_entered() {
        let a = AgentSummary {
            pods: vec![pod("default", "web-a", "10.88.1.2")],
            endpoints: vec![ep("10.88.1.2", 4.0), ep("10.88.2.2", 6.0)],
            services: vec![ServiceRate {
                namespace: "default".into(),
                service: "web".into(),
                port: "http".into(),
                per_second: 10.0,
            }],
            ..Default::default()
        };
        let b = AgentSummary {
            pods: vec![
                pod("default", "web-b", "10.88.2.2"),
                pod("default", "lonely", "10.88.2.3"),
            ],
            endpoints: vec![ep("10.88.1.2", 1.5)],
            held: ["http", "admin"]
                .map(|port| HeldRequests {
                    namespace: "default".into(),
                    service: "idle".into(),
                    port: port.into(),
                    pending: 2,
                    expired_total: 1,
                })
                .into(),
            ..Default::default()
        };
        let agg = aggregate(&[a, b]);
        let rps = |n: &str| {
            agg.pods[&("default".to_string(), n.to_string())]
                .requests_per_second
                .as_ref()
                .map(Quantity::as_f64)
        };
        assert_eq!(rps("web-a"), Some(5.5));
        assert_eq!(rps("web-b"), Some(6.0));
        assert_eq!(rps("lonely"), None);
        assert_eq!(agg.services[&("default".into(), "web".into())], 10.0);
        assert_eq!(agg.nodes.len(), 2);
        assert_eq!(agg.held[&("default".into(), "idle".into())], 4);
    }
}
