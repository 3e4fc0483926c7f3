//! Builds the agent's report from one sample's rates (pure): metrics.k8s.io
//! NodeMetrics and PodMetrics, and the service counters' rates parsed out
//! of their names (`svc/NS/NAME/PORT`, `ep/NS/NAME/PORT/IP/TARGETPORT`).

use std::collections::BTreeMap;
use std::time::Duration;

use drover_proto::Quantity;
use drover_proto::meta::{ObjectMeta, Time};
use drover_proto::types::metrics::{
    AgentSummary, ContainerMetrics, EndpointRate, HeldRequests, METRICS_API_VERSION, NodeMetrics,
    PodMetrics, PodSummary, ServiceRate, window_text,
};

use crate::network::services::activator::HoldCount;

/// One container's usage over the window.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerUsage {
    pub name: String,
    pub cpu_cores: f64,
    pub memory_bytes: u64,
}

/// One pod on the node and its containers' usage.
#[derive(Debug, Clone, PartialEq)]
pub struct PodUsage {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub pod_ip: Option<String>,
    pub containers: Vec<ContainerUsage>,
}

/// CPU in cores as a quantity in nanocores, as metrics-server writes it.
pub fn cpu_quantity(cores: f64) -> Quantity {
    let nanos = (cores.max(0.0) * 1e9).round() as i64;
    Quantity::parse(&format!("{nanos}n"))
        .unwrap_or_else(|_| Quantity::from_millis(nanos / 1_000_000))
}

/// Memory in bytes as a quantity in KiB, as metrics-server writes it.
pub fn memory_quantity(bytes: u64) -> Quantity {
    let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
    Quantity::parse(&format!("{}Ki", bytes / 1024)).unwrap_or_else(|_| Quantity::from_units(bytes))
}

fn usage(cpu_cores: f64, memory_bytes: u64) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), cpu_quantity(cpu_cores)),
        ("memory".to_string(), memory_quantity(memory_bytes)),
    ])
}

/// The report for `node` at `at` over `window`. `node_usage` is the node's
/// (cores, bytes) when it could be read; `counter_rates` are per-second
/// rates of the service counters by name (other names are left out);
/// `holds` the activator's counts by service port (`NS/NAME/PORT`).
pub fn summarize(
    node: &str,
    at: Time,
    window: Duration,
    node_usage: Option<(f64, u64)>,
    pods: Vec<PodUsage>,
    counter_rates: &BTreeMap<String, f64>,
    holds: &BTreeMap<String, HoldCount>,
) -> AgentSummary {
    let window = window_text(window);
    let (cpu, memory) = node_usage.unwrap_or_default();
    let node = NodeMetrics {
        api_version: METRICS_API_VERSION.into(),
        kind: "NodeMetrics".into(),
        metadata: ObjectMeta {
            name: node.to_string(),
            ..ObjectMeta::default()
        },
        timestamp: at,
        window: window.clone(),
        usage: if node_usage.is_some() {
            usage(cpu, memory)
        } else {
            BTreeMap::new()
        },
    };
    let pods = pods
        .into_iter()
        .map(|p| PodSummary {
            metrics: PodMetrics {
                api_version: METRICS_API_VERSION.into(),
                kind: "PodMetrics".into(),
                metadata: ObjectMeta {
                    name: p.name,
                    namespace: Some(p.namespace),
                    labels: p.labels,
                    ..ObjectMeta::default()
                },
                timestamp: at,
                window: window.clone(),
                containers: p
                    .containers
                    .into_iter()
                    .map(|c| ContainerMetrics {
                        usage: usage(c.cpu_cores, c.memory_bytes),
                        name: c.name,
                    })
                    .collect(),
                requests_per_second: None,
            },
            pod_ip: p.pod_ip,
        })
        .collect();
    let mut endpoints = Vec::new();
    let mut services = Vec::new();
    for (name, &per_second) in counter_rates {
        let parts: Vec<&str> = name.split('/').collect();
        match parts.as_slice() {
            ["svc", ns, svc, port] => services.push(ServiceRate {
                namespace: ns.to_string(),
                service: svc.to_string(),
                port: port.to_string(),
                per_second,
            }),
            ["ep", ns, svc, port, ip, target] => {
                let Ok(target_port) = target.parse() else {
                    continue;
                };
                endpoints.push(EndpointRate {
                    namespace: ns.to_string(),
                    service: svc.to_string(),
                    port: port.to_string(),
                    ip: ip.to_string(),
                    target_port,
                    per_second,
                });
            }
            _ => {}
        }
    }
    let held = holds
        .iter()
        .filter_map(|(id, c)| {
            let mut parts = id.splitn(3, '/');
            Some(HeldRequests {
                namespace: parts.next()?.to_string(),
                service: parts.next()?.to_string(),
                port: parts.next()?.to_string(),
                pending: c.pending,
                expired_total: c.expired_total,
            })
        })
        .collect();
    AgentSummary {
        node,
        pods,
        endpoints,
        services,
        held,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_becomes_metrics_k8s_io_shapes_and_rates() {
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("valid");
        let pods = vec![PodUsage {
            namespace: "default".into(),
            name: "web-1".into(),
            labels: BTreeMap::from([("app".into(), "web".into())]),
            pod_ip: Some("10.88.1.2".into()),
            containers: vec![ContainerUsage {
                name: "web".into(),
                cpu_cores: 0.25,
                memory_bytes: 10 << 20,
            }],
        }];
        let rates = BTreeMap::from([
            ("svc/default/web/http".to_string(), 12.0),
            ("ep/default/web/http/10.88.1.2/8080".to_string(), 7.5),
            ("ep/default/web/http/10.88.1.3/notaport".to_string(), 1.0),
            ("svc/default/shortened-h0123".to_string(), 3.0),
        ]);
        let s = summarize(
            "node-1",
            at,
            Duration::from_secs(1),
            Some((1.5, 2 << 30)),
            pods,
            &rates,
            &BTreeMap::from([(
                "default/web/http".to_string(),
                HoldCount {
                    pending: 2,
                    forwarded_total: 5,
                    expired_total: 1,
                },
            )]),
        );
        assert_eq!(s.node.metadata.name, "node-1");
        assert_eq!(s.node.usage["cpu"].as_str(), "1500000000n");
        assert_eq!(s.node.usage["memory"].as_str(), "2097152Ki");
        let p = &s.pods[0];
        assert_eq!(p.pod_ip.as_deref(), Some("10.88.1.2"));
        assert_eq!(p.metrics.window, "1s");
        assert_eq!(p.metrics.containers[0].usage["cpu"].millis(), 250);
        assert_eq!(p.metrics.containers[0].usage["memory"].units(), 10 << 20);
        assert_eq!(s.services.len(), 1);
        assert_eq!(s.services[0].per_second, 12.0);
        assert_eq!(s.endpoints.len(), 1);
        assert_eq!(
            (s.endpoints[0].ip.as_str(), s.endpoints[0].target_port),
            ("10.88.1.2", 8080)
        );
        let held = &s.held[0];
        assert_eq!((held.service.as_str(), held.port.as_str()), ("web", "http"));
        assert_eq!((held.pending, held.expired_total), (2, 1));
    }

    #[test]
    fn unreadable_node_usage_is_left_empty() {
        let s = summarize(
            "n",
            chrono::Utc::now(),
            Duration::from_millis(1200),
            None,
            vec![],
            &BTreeMap::new(),
            &BTreeMap::new(),
        );
        assert!(s.held.is_empty());
        assert!(s.node.usage.is_empty());
        assert_eq!(s.node.window, "1200ms");
    }
}
