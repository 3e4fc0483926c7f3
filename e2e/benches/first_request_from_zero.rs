//! First-request latency from zero (containers): a web Deployment at zero
//! replicas with an HPA (minReplicas 0) on requests per second; one HTTP
//! request through the Service's cluster IP from a node is held by that
//! node's activator while the HPA starts a replica (schedule, start the
//! container, readiness probe, Endpoints, rules), then forwarded. Each
//! round waits for the HPA to bring the Deployment back to zero, then
//! times one request (alternating nodes), then a second one at once (the
//! warm path, for comparison). A lab of namespaced hosts (server + two
//! real agents). Needs root; skips, saying why, otherwise.
//!
//! `DROVER_BIN=target/debug/drover cargo bench -p drover-e2e --bench first_request_from_zero [-- ROUNDS]`

use std::process::ExitCode;
use std::time::Duration;

use drover_e2e::cluster::{Cluster, skip_reason};
use drover_e2e::scale_from_zero::{
    MANIFEST, STABILIZATION, first_request, service_address, wait_asleep,
};
use drover_e2e::{eventually, skip_unless_supported};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() -> ExitCode {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    if skip_unless_supported("first_request_from_zero") {
        return ExitCode::SUCCESS;
    }
    if let Some(why) = skip_reason() {
        eprintln!("skipped first_request_from_zero: {why}");
        return ExitCode::SUCCESS;
    }
    let cluster = Cluster::start("coldbench", MANIFEST);
    let api = cluster.api.clone();
    let target = eventually(
        "the service has a cluster IP",
        Duration::from_secs(20),
        || service_address(&api),
    );
    println!("first_request_from_zero: 0 → 1 replica (busybox httpd container), {rounds} rounds");
    println!(
        "{:<6} {:<5} {:>16} {:>12}",
        "round", "from", "from zero (ms)", "warm (ms)"
    );
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        wait_asleep(&cluster, target, STABILIZATION + Duration::from_secs(60));
        let host = if round % 2 == 1 {
            &cluster.n1
        } else {
            &cluster.n2
        };
        let first = match first_request(host, target) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("first_request_from_zero: round {round}: {e}");
                return ExitCode::FAILURE;
            }
        };
        let second = match first_request(host, target) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("first_request_from_zero: round {round}, warm: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!(
            "{round:<6} {:<5} {:>16.0} {:>12.2}",
            host.name,
            first.as_secs_f64() * 1000.0,
            second.as_secs_f64() * 1000.0
        );
        cold.push(first);
        warm.push(second);
    }
    println!(
        "median: from zero {:.0} ms, warm {:.2} ms",
        median(cold).as_secs_f64() * 1000.0,
        median(warm).as_secs_f64() * 1000.0
    );
    drop(cluster);
    ExitCode::SUCCESS
}
