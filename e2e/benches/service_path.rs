//! The service path's cost: HTTP requests per second and latency from one
//! node to a pod on the other node, directly to the pod's IP and through
//! the Service's cluster IP (nftables DNAT on the client's node), with the
//! same load in the same run, rounds interleaved. Needs root (namespaced
//! hosts); skips, saying why, otherwise.
//!
//! `DROVER_BIN=target/debug/drover cargo bench -p drover-e2e --bench service_path [-- SECONDS]`
//!
//! The load: CONNECTIONS client threads in the client node's network
//! namespace, each sending `GET /` over a new connection (HTTP/1.0, as
//! busybox httpd speaks) as soon as the last answer is in; every request
//! pays connection setup, which is where DNAT works (later packets follow
//! conntrack).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use drover_e2e::cluster::{Cluster, get_json, ready_endpoints, skip_reason};
use drover_e2e::load::run_for as load;
use drover_e2e::{eventually, skip_unless_supported};
use serde_json::Value;

const CONNECTIONS: usize = 4;
const ROUNDS: usize = 2;

const MANIFEST: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {kubernetes.io/hostname: n2}
      containers:
      - name: httpd
        image: example/busybox:1
        command: ["busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"#;

fn main() -> ExitCode {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    if skip_unless_supported("service_path") {
        return ExitCode::SUCCESS;
    }
    if let Some(why) = skip_reason() {
        eprintln!("skipped service_path: {why}");
        return ExitCode::SUCCESS;
    }
    let cluster = Cluster::start("bench", MANIFEST);
    let api = cluster.api.clone();
    eventually("a ready endpoint", Duration::from_secs(60), || {
        (ready_endpoints(&api) == 1).then_some(())
    });
    let svc = get_json(&api, &["service", "web"]).unwrap_or(Value::Null);
    let ep = get_json(&api, &["endpoints", "web"]).unwrap_or(Value::Null);
    let (Some(vip), Some(pod)) = (
        svc.pointer("/spec/clusterIP").and_then(Value::as_str),
        ep.pointer("/subsets/0/addresses/0/ip")
            .and_then(Value::as_str),
    ) else {
        eprintln!("service_path: no cluster IP or endpoint");
        return ExitCode::FAILURE;
    };
    let direct: SocketAddr = match format!("{pod}:8080").parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("service_path: pod address {pod}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let through: SocketAddr = match format!("{vip}:80").parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("service_path: cluster IP {vip}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let netns = format!("/run/netns/{}", cluster.n1.netns);
    // Warm up both paths (ARP, conntrack, the agent's rules in place).
    eventually("the cluster IP answers", Duration::from_secs(20), || {
        load(&netns, through, Duration::from_millis(200), 1).filter(|r| r.ok > 0 && r.failed == 0)
    });
    println!("service_path: {CONNECTIONS} connections, {seconds} s per round, n1 → pod on n2");
    println!(
        "{:<22} {:>9} {:>9} {:>9} {:>7}",
        "path", "req/s", "p50 ms", "p99 ms", "failed"
    );
    for round in 0..ROUNDS {
        let mut paths = [("pod IP (direct)", direct), ("cluster IP (DNAT)", through)];
        // Alternate which goes first, so drift hits both alike.
        if round % 2 == 1 {
            paths.reverse();
        }
        for (name, target) in paths {
            let Some(r) = load(&netns, target, Duration::from_secs(seconds), CONNECTIONS) else {
                eprintln!("service_path: could not enter {netns}");
                return ExitCode::FAILURE;
            };
            println!(
                "{name:<22} {:>9.0} {:>9.2} {:>9.2} {:>7}",
                r.ok as f64 / r.took.as_secs_f64(),
                r.percentile(0.50),
                r.percentile(0.99),
                r.failed
            );
        }
    }
    drop(cluster);
    ExitCode::SUCCESS
}
