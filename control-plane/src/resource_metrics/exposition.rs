//! The cluster's resource metrics on the server's `/metrics` (pure
//! rendering of the last scrape): per pod CPU, memory and requests per
//! second, and requests per second per service.

use std::fmt::Write as _;

use drover_proto::types::metrics::{pod_cpu_cores, pod_memory_bytes};

use super::Aggregate;

/// Prometheus text for `agg`.
pub fn render(agg: &Aggregate) -> String {
    let mut cpu = String::new();
    let mut memory = String::new();
    let mut rps = String::new();
    for ((ns, name), m) in &agg.pods {
        let labels = format!("namespace=\"{ns}\",pod=\"{name}\"");
        let _ = writeln!(
            cpu,
            "drover_pod_cpu_usage_cores{{{labels}}} {}",
            pod_cpu_cores(m)
        );
        let _ = writeln!(
            memory,
            "drover_pod_memory_working_set_bytes{{{labels}}} {}",
            pod_memory_bytes(m)
        );
        if let Some(r) = &m.requests_per_second {
            let _ = writeln!(
                rps,
                "drover_pod_requests_per_second{{{labels}}} {}",
                r.as_f64()
            );
        }
    }
    let mut services = String::new();
    for ((ns, name), r) in &agg.services {
        let _ = writeln!(
            services,
            "drover_service_requests_per_second{{namespace=\"{ns}\",service=\"{name}\"}} {r}"
        );
    }
    let section = |name: &str, help: &str, rows: &str| {
        format!("# HELP {name} {help}\n# TYPE {name} gauge\n{rows}")
    };
    [
        section(
            "drover_pod_cpu_usage_cores",
            "CPU a pod used over the last sample window.",
            &cpu,
        ),
        section(
            "drover_pod_memory_working_set_bytes",
            "Memory working set of a pod.",
            &memory,
        ),
        section(
            "drover_pod_requests_per_second",
            "Connections per second the services sent to a pod, all nodes summed.",
            &rps,
        ),
        section(
            "drover_service_requests_per_second",
            "Connections per second to a service, all ports and nodes summed.",
            &services,
        ),
    ]
    .concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource_metrics::aggregate::rate_quantity;
    use drover_proto::ObjectMeta;
    use drover_proto::types::metrics::{ContainerMetrics, PodMetrics};
    use std::collections::BTreeMap;

    #[test]
    fn pods_and_services_become_gauges() {
        let m = PodMetrics {
            metadata: ObjectMeta {
                name: "web-1".into(),
                namespace: Some("default".into()),
                ..Default::default()
            },
            containers: vec![ContainerMetrics {
                name: "web".into(),
                usage: BTreeMap::from([
                    ("cpu".into(), drover_proto::Quantity::from_millis(250)),
                    ("memory".into(), drover_proto::Quantity::from_units(1024)),
                ]),
            }],
            requests_per_second: Some(rate_quantity(7.5)),
            ..Default::default()
        };
        let agg = Aggregate {
            pods: BTreeMap::from([(("default".into(), "web-1".into()), m)]),
            services: BTreeMap::from([(("default".into(), "web".into()), 7.5)]),
            ..Default::default()
        };
        let text = render(&agg);
        assert!(
            text.contains("drover_pod_cpu_usage_cores{namespace=\"default\",pod=\"web-1\"} 0.25\n")
        );
        assert!(text.contains(
            "drover_pod_memory_working_set_bytes{namespace=\"default\",pod=\"web-1\"} 1024\n"
        ));
        assert!(
            text.contains(
                "drover_pod_requests_per_second{namespace=\"default\",pod=\"web-1\"} 7.5\n"
            )
        );
        assert!(text.contains(
            "drover_service_requests_per_second{namespace=\"default\",service=\"web\"} 7.5\n"
        ));
    }
}
