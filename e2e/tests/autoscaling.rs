//! Autoscaling under load and back, across nodes, on real namespaced hosts:
//! a server and two agents; a web Deployment behind a Service with an HPA
//! on requests per second per pod. HTTP load through the Service's cluster
//! IP from both nodes (one request per connection, paced) raises the
//! replicas to meet the target; the new replicas become Ready on both
//! nodes and receive traffic, with no failed request; when the load stops
//! the replicas fall back after the manifest's stabilization window.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use drover_e2e::autoscaling::{MANIFEST, STABILIZATION, replicas, step_up, warm_up};
use drover_e2e::cluster::{Cluster, drover, get_json, ready_endpoints, ready_pods, skip_reason};
use drover_e2e::{eventually, skip_unless_supported};

#[test]
fn autoscaling_under_load_and_back_across_nodes() {
    let test = "autoscaling_under_load_and_back_across_nodes";
    if skip_unless_supported(test) {
        return;
    }
    if let Some(why) = skip_reason() {
        eprintln!("skipped {test}: {why}");
        return;
    }
    let started = Instant::now();
    let cluster = Cluster::start("hpa", MANIFEST);
    let api = cluster.api.clone();
    eventually("one ready endpoint", Duration::from_secs(60), || {
        (ready_endpoints(&api) == 1).then_some(())
    });
    let vip = get_json(&api, &["service", "web"])
        .and_then(|s| s.pointer("/spec/clusterIP")?.as_str().map(str::to_string))
        .expect("the service has a cluster IP");
    let target: SocketAddr = format!("{vip}:80").parse().expect("cluster IP:port");
    eventually("drover top shows the pod", Duration::from_secs(20), || {
        let out = drover(&api, &["top", "pods", "-l", "app=web"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && text.contains("web-") && text.contains("CPU(cores)")).then_some(())
    });
    let nodes = drover(&api, &["top", "nodes"]);
    let text = String::from_utf8_lossy(&nodes.stdout);
    assert!(
        nodes.status.success() && text.contains("n1") && text.contains("n2"),
        "drover top nodes: {text}{}",
        String::from_utf8_lossy(&nodes.stderr)
    );

    // The load step: both nodes send through the cluster IP.
    warm_up(&cluster, target);
    let (loads, reaction) = step_up(&cluster, target);
    let pods = ready_pods(&api).expect("pods");
    let on = |n: &str| pods.iter().filter(|p| p.node == n).count();
    assert!(
        on("n1") > 0 && on("n2") > 0,
        "replicas on both nodes: n1 {}, n2 {}",
        on("n1"),
        on("n2")
    );
    let hpa = drover(&api, &["get", "hpa", "web"]);
    let hpa_text = String::from_utf8_lossy(&hpa.stdout);
    assert!(
        hpa_text.contains("requests_per_second: ") && hpa_text.contains("/10"),
        "drover get hpa: {hpa_text}"
    );
    let described = drover(&api, &["describe", "hpa", "web"]);
    let described = String::from_utf8_lossy(&described.stdout);
    assert!(
        described.contains("SuccessfulRescale") && described.contains("New size: 4"),
        "drover describe hpa: {described}"
    );
    eprintln!("{test}: load step → {reaction:?}");

    let stopped = Instant::now();
    for (i, load) in loads.into_iter().enumerate() {
        let report = load.stop().expect("the load entered the node's namespace");
        assert!(report.ok > 0, "node {} load served nothing", i + 1);
        assert_eq!(
            report.failed,
            0,
            "failed requests from n{}: {:?}",
            i + 1,
            report.first_error
        );
    }
    eventually("the HPA scales back to 1", Duration::from_secs(45), || {
        (replicas(&api) == Some(1)).then_some(())
    });
    let down = stopped.elapsed();
    assert!(
        down >= STABILIZATION,
        "scaled down after {down:?}, before the {STABILIZATION:?} window"
    );
    eventually("one ready endpoint again", Duration::from_secs(30), || {
        (ready_endpoints(&api) == 1).then_some(())
    });
    eprintln!("{test}: load stopped → scaled to 1 after {down:?}");
    drop(cluster);
    assert!(
        started.elapsed() < Duration::from_secs(300),
        "bounded in time"
    );
}
