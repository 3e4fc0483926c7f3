//! `drover top` tables (pure): CPU in millicores, memory in MiB, as
//! `kubectl top` prints them, plus requests per second for pods behind a
//! Service.

use drover_proto::types::Node;
use drover_proto::types::metrics::{NodeMetrics, PodMetrics, pod_cpu_cores, pod_memory_bytes};

use crate::output::table::render;

fn cpu(cores: f64) -> String {
    format!("{}m", (cores * 1000.0).round() as i64)
}

fn memory(bytes: f64) -> String {
    format!("{}Mi", (bytes / 1048576.0).round() as i64)
}

/// One row per pod: NAME CPU(cores) MEMORY(bytes) REQUESTS/S.
pub fn pods(pods: &[PodMetrics], with_namespace: bool) -> String {
    let mut headers = vec!["NAME", "CPU(cores)", "MEMORY(bytes)", "REQUESTS/S"];
    if with_namespace {
        headers.insert(0, "NAMESPACE");
    }
    let rows = pods
        .iter()
        .map(|p| {
            let mut row = vec![
                p.metadata.name.clone(),
                cpu(pod_cpu_cores(p)),
                memory(pod_memory_bytes(p)),
                p.requests_per_second
                    .as_ref()
                    .map(|r| format!("{:.1}", r.as_f64()))
                    .unwrap_or_else(|| "–".into()),
            ];
            if with_namespace {
                row.insert(0, p.metadata.namespace.clone().unwrap_or_default());
            }
            row
        })
        .collect();
    render(&headers, rows, true)
}

/// One row per node, with usage as a share of the node's allocatable.
pub fn nodes(metrics: &[NodeMetrics], nodes: &[Node]) -> String {
    let rows = metrics
        .iter()
        .map(|m| {
            let used = |r: &str| m.usage.get(r).map(|q| q.as_f64());
            let node = nodes.iter().find(|n| n.metadata.name == m.metadata.name);
            let share = |r: &str, used: Option<f64>, scale: f64| {
                let total = node.map(|n| n.allocatable(r) as f64 / scale).unwrap_or(0.0);
                match used {
                    Some(u) if total > 0.0 => format!("{}%", (100.0 * u / total).round() as i64),
                    _ => "<unknown>".into(),
                }
            };
            let (c, mem) = (used("cpu"), used("memory"));
            vec![
                m.metadata.name.clone(),
                c.map(cpu).unwrap_or_else(|| "<unknown>".into()),
                share("cpu", c, 1000.0),
                mem.map(memory).unwrap_or_else(|| "<unknown>".into()),
                share("memory", mem, 1.0),
            ]
        })
        .collect();
    render(
        &["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"],
        rows,
        true,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_show_millicores_mebibytes_and_rates() {
        let p: PodMetrics = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "default"},
            "timestamp": "2026-01-01T00:00:00Z", "window": "1s",
            "containers": [{"name": "web", "usage": {"cpu": "250000000n", "memory": "12288Ki"}}],
            "requestsPerSecond": "12500m"
        }))
        .expect("pod metrics");
        let mut idle = p.clone();
        idle.metadata.name = "web-2".into();
        idle.requests_per_second = None;
        let text = pods(&[p, idle], false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAME"), "{text}");
        assert!(
            lines[1].contains("250m") && lines[1].contains("12Mi") && lines[1].contains("12.5")
        );
        assert!(lines[2].ends_with('–'));
    }

    #[test]
    fn nodes_show_their_share_of_allocatable() {
        let m: NodeMetrics = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1"}, "timestamp": "2026-01-01T00:00:00Z", "window": "1s",
            "usage": {"cpu": "500m", "memory": "1Gi"}
        }))
        .expect("node metrics");
        let n: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1"},
            "status": {"allocatable": {"cpu": "2", "memory": "4Gi"}}
        }))
        .expect("node");
        let text = nodes(std::slice::from_ref(&m), &[n]);
        let row = text.lines().nth(1).expect("a row");
        assert!(
            row.contains("500m") && row.contains("25%") && row.contains("1024Mi"),
            "{row}"
        );
        let unknown = nodes(&[m], &[]);
        assert!(unknown.contains("<unknown>"));
    }
}
