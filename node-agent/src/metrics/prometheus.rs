//! The last sample as Prometheus text (pure), beside the service counters
//! on the agent's `/metrics`.

use std::fmt::Write as _;

use drover_proto::types::metrics::AgentSummary;

/// Gauges for every pod's containers, the node, and request rates.
pub fn render(s: &AgentSummary) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, rows: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let node = format!("node=\"{}\"", s.node.metadata.name);
    let node_usage = |r: &str| {
        s.node
            .usage
            .get(r)
            .map(|q| vec![(node.clone(), q.as_f64())])
            .unwrap_or_default()
    };
    gauge(
        "drover_node_cpu_usage_cores",
        "CPU the node used over the last sample window.",
        node_usage("cpu"),
    );
    gauge(
        "drover_node_memory_working_set_bytes",
        "Memory in use on the node.",
        node_usage("memory"),
    );
    let containers = |r: &str| {
        s.pods
            .iter()
            .flat_map(|p| {
                let m = &p.metrics;
                m.containers.iter().filter_map(move |c| {
                    let labels = format!(
                        "namespace=\"{}\",pod=\"{}\",container=\"{}\"",
                        m.metadata.namespace.as_deref().unwrap_or_default(),
                        m.metadata.name,
                        c.name
                    );
                    Some((labels, c.usage.get(r)?.as_f64()))
                })
            })
            .collect::<Vec<_>>()
    };
    gauge(
        "drover_container_cpu_usage_cores",
        "CPU a container used over the last sample window.",
        containers("cpu"),
    );
    gauge(
        "drover_container_memory_working_set_bytes",
        "Memory working set of a container (usage minus inactive page cache).",
        containers("memory"),
    );
    gauge(
        "drover_service_requests_per_second",
        "Connections per second entering a service port through this node.",
        s.services
            .iter()
            .map(|r| {
                let l = format!(
                    "namespace=\"{}\",service=\"{}\",port=\"{}\"",
                    r.namespace, r.service, r.port
                );
                (l, r.per_second)
            })
            .collect(),
    );
    gauge(
        "drover_endpoint_requests_per_second",
        "Connections per second this node sent to a service endpoint.",
        s.endpoints
            .iter()
            .map(|r| {
                let l = format!(
                    "namespace=\"{}\",service=\"{}\",port=\"{}\",endpoint=\"{}:{}\"",
                    r.namespace, r.service, r.port, r.ip, r.target_port
                );
                (l, r.per_second)
            })
            .collect(),
    );
    let held = |value: fn(&drover_proto::types::metrics::HeldRequests) -> u64| {
        s.held
            .iter()
            .map(|h| {
                let l = format!(
                    "namespace=\"{}\",service=\"{}\",port=\"{}\"",
                    h.namespace, h.service, h.port
                );
                (l, value(h) as f64)
            })
            .collect()
    };
    gauge(
        "drover_activator_pending_requests",
        "Connections held for a service port with no ready endpoint (scale from zero).",
        held(|h| h.pending),
    );
    gauge(
        "drover_activator_expired_requests",
        "Held connections closed at the activator timeout since the agent started.",
        held(|h| h.expired_total),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::summary::{ContainerUsage, PodUsage, summarize};
    use std::collections::BTreeMap;
    use std::time::Duration;

    #[test]
    fn every_measurement_is_a_labelled_gauge() {
        let pods = vec![PodUsage {
            namespace: "default".into(),
            name: "web-1".into(),
            labels: BTreeMap::new(),
            pod_ip: None,
            containers: vec![ContainerUsage {
                name: "web".into(),
                cpu_cores: 0.5,
                memory_bytes: 4096,
            }],
        }];
        let rates = BTreeMap::from([("ep/default/web/http/10.88.1.2/8080".to_string(), 3.0)]);
        let s = summarize(
            "n1",
            chrono::Utc::now(),
            Duration::from_secs(1),
            Some((1.0, 8192)),
            pods,
            &rates,
            &BTreeMap::from([(
                "default/web/http".to_string(),
                crate::network::services::activator::HoldCount {
                    pending: 2,
                    forwarded_total: 0,
                    expired_total: 1,
                },
            )]),
        );
        let text = render(&s);
        assert!(text.contains(
            "drover_activator_pending_requests{namespace=\"default\",service=\"web\",port=\"http\"} 2\n"
        ));
        assert!(text.contains(
            "drover_activator_expired_requests{namespace=\"default\",service=\"web\",port=\"http\"} 1\n"
        ));
        assert!(text.contains("drover_node_cpu_usage_cores{node=\"n1\"} 1\n"));
        assert!(text.contains(
            "drover_container_cpu_usage_cores{namespace=\"default\",pod=\"web-1\",container=\"web\"} 0.5\n"
        ));
        assert!(text.contains(
            "drover_container_memory_working_set_bytes{namespace=\"default\",pod=\"web-1\",container=\"web\"} 4096\n"
        ));
        assert!(text.contains(
            "drover_endpoint_requests_per_second{namespace=\"default\",service=\"web\",port=\"http\",endpoint=\"10.88.1.2:8080\"} 3\n"
        ));
        assert!(text.contains("# TYPE drover_service_requests_per_second gauge\n"));
    }
}
