//! Benchmark of the pure core: 150,000 pods onto 5,000 nodes (4 cpu / 16Gi /
//! 110 pods each, three zones), in workloads of 50 replicas with mixed
//! requests; some workloads spread over zones (DoNotSchedule), some are
//! anti-affine per host. Each pod is scheduled and then assumed, as the loop
//! does. Prints pods/s and per-pod latency percentiles.
//!
//! Run: `cargo bench -p drover-scheduler --bench schedule` (env NODES, PODS to resize).

use std::time::{Duration, Instant};

use drover_proto::types::Pod;
use drover_scheduler::snapshot::{HOSTNAME_LABEL, ZONE_LABEL};
use drover_scheduler::testing::{MI, NodeBuilder, PodBuilder};
use drover_scheduler::{ClusterSnapshot, Scheduler, SchedulerConfig};

const REPLICAS: usize = 50;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// This thread's CPU time, from /proc (the machine is shared, so wall time
/// alone overstates the cost when other work preempts the benchmark).
fn cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

fn pods(count: usize) -> Vec<Pod> {
    let cpus = [50, 100, 100, 150];
    let mems = [128 * MI, 256 * MI, 512 * MI, 640 * MI];
    (0..count)
        .map(|i| {
            let w = i / REPLICAS;
            let app = format!("w{w}");
            let mut b = PodBuilder::new(&format!("{app}-{}", i % REPLICAS))
                .label("app", &app)
                .owner(&format!("rs-{w}"))
                .requests(cpus[w % 4], mems[(w / 4) % 4]);
            match w % 20 {
                0 | 1 => b = b.spread(ZONE_LABEL, 1, true, &app),
                2 => b = b.anti_affinity(HOSTNAME_LABEL, &app),
                3 => b = b.spread(HOSTNAME_LABEL, 1, false, &app),
                _ => {}
            }
            b.build()
        })
        .collect()
}

fn main() {
    let num_nodes = env_or("NODES", 5000);
    let num_pods = env_or("PODS", 150_000);
    let mut snap = ClusterSnapshot::new();
    for i in 0..num_nodes {
        let zone = ["zone-a", "zone-b", "zone-c"][i % 3];
        snap.upsert_node(&NodeBuilder::new(&format!("node-{i}")).zone(zone).build());
    }
    let pods = pods(num_pods);
    let scheduler = Scheduler::new(SchedulerConfig::default());
    let mut latencies = Vec::with_capacity(pods.len());
    let mut failed = 0usize;
    let cpu_start = cpu_time();
    let start = Instant::now();
    for pod in &pods {
        let t = Instant::now();
        match scheduler.schedule(pod, &snap) {
            Ok(node) => snap.assume(pod, &node),
            Err(_) => failed += 1,
        }
        latencies.push(t.elapsed());
    }
    let elapsed = start.elapsed();
    let cpu = cpu_start.zip(cpu_time()).map(|(a, b)| b.saturating_sub(a));
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(Duration::ZERO)
    };
    println!(
        "scheduled {} pods onto {} nodes in {:.2?}: {:.0} pods/s; per pod p50 {:.1?}, p99 {:.1?}, max {:.1?}; unschedulable {}",
        pods.len() - failed,
        num_nodes,
        elapsed,
        pods.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        latencies.last().copied().unwrap_or_default(),
        failed
    );
    if let Some(cpu) = cpu {
        println!(
            "on-CPU time {:.2?}: {:.0} pods per CPU-second",
            cpu,
            pods.len() as f64 / cpu.as_secs_f64()
        );
    }
}
