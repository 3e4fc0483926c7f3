//! Autoscaler reaction: the time from a load step to the new replicas
//! being Ready and receiving traffic (containers), next to Kubernetes'
//! 15 s HPA sync period as the anchor. A lab of namespaced hosts (server +
//! two real agents), the autoscaling scenario's HPA (10 requests/s per
//! pod, 1 → 4 replicas), paced load through the Service's cluster IP from
//! both nodes (one request per connection). Needs root; skips, saying why,
//! otherwise.
//!
//! `DROVER_BIN=target/debug/drover cargo bench -p drover-e2e --bench autoscaler_reaction [-- ROUNDS]`

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use drover_e2e::autoscaling::{MANIFEST, TARGET_RPS, replicas, step_up, warm_up};
use drover_e2e::cluster::{Cluster, get_json, ready_endpoints, skip_reason};
use drover_e2e::load::Load;
use drover_e2e::{eventually, skip_unless_supported};

/// Kubernetes' `--horizontal-pod-autoscaler-sync-period` default.
const KUBERNETES_SYNC: Duration = Duration::from_secs(15);

fn main() -> ExitCode {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    if skip_unless_supported("autoscaler_reaction") {
        return ExitCode::SUCCESS;
    }
    if let Some(why) = skip_reason() {
        eprintln!("skipped autoscaler_reaction: {why}");
        return ExitCode::SUCCESS;
    }
    let cluster = Cluster::start("react", MANIFEST);
    let api = cluster.api.clone();
    eventually("one ready endpoint", Duration::from_secs(60), || {
        (ready_endpoints(&api) == 1).then_some(())
    });
    let Some(vip) = get_json(&api, &["service", "web"])
        .and_then(|s| s.pointer("/spec/clusterIP")?.as_str().map(str::to_string))
    else {
        eprintln!("autoscaler_reaction: the service has no cluster IP");
        return ExitCode::FAILURE;
    };
    let Ok(target) = format!("{vip}:80").parse::<SocketAddr>() else {
        eprintln!("autoscaler_reaction: bad cluster IP {vip}");
        return ExitCode::FAILURE;
    };
    println!(
        "autoscaler_reaction: 1 → 4 replicas, 50 requests/s step, target {TARGET_RPS}/s per pod"
    );
    println!(
        "{:<6} {:>12} {:>12} {:>12} {:>8}",
        "round", "scaled (s)", "ready (s)", "serving (s)", "failed"
    );
    warm_up(&cluster, target);
    for round in 1..=rounds {
        let (loads, r) = step_up(&cluster, target);
        let reports: Vec<_> = loads.into_iter().filter_map(Load::stop).collect();
        let failed: usize = reports.iter().map(|r| r.failed).sum();
        if let Some(e) = reports.iter().find_map(|r| r.first_error.as_ref()) {
            eprintln!("autoscaler_reaction: round {round}: first failure: {e}");
        }
        println!(
            "{round:<6} {:>12.2} {:>12.2} {:>12.2} {failed:>8}",
            r.scaled.as_secs_f64(),
            r.ready.as_secs_f64(),
            r.serving.as_secs_f64()
        );
        // Back to one replica before the next step.
        eventually("back to 1", Duration::from_secs(60), || {
            (replicas(&api) == Some(1) && ready_endpoints(&api) == 1).then_some(())
        });
    }
    println!(
        "anchor: Kubernetes syncs each HPA every {} s (metrics-server scrapes every 15 s too)",
        KUBERNETES_SYNC.as_secs()
    );
    drop(cluster);
    ExitCode::SUCCESS
}
