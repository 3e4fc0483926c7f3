//! Scale from zero on real namespaced hosts: a server and two agents; a web
//! Deployment at zero replicas behind a Service, with an HPA (minReplicas
//! 0) on requests per second. A single HTTP request through the cluster IP
//! from a node is held by that node's activator, the HPA scales to 1, and
//! the request is forwarded and answered 200; with no more load the HPA
//! takes the Deployment back to zero after its stabilization window, and
//! the next request (from the other node) wakes it again.

use std::time::{Duration, Instant};

use drover_e2e::autoscaling::replicas;
use drover_e2e::cluster::{Cluster, drover, skip_reason};
use drover_e2e::scale_from_zero::{
    FIRST_REQUEST_TIMEOUT, MANIFEST, STABILIZATION, first_request, service_address, wait_asleep,
};
use drover_e2e::{eventually, skip_unless_supported};

#[test]
fn scale_from_zero_serves_the_first_request() {
    let test = "scale_from_zero_serves_the_first_request";
    if skip_unless_supported(test) {
        return;
    }
    if let Some(why) = skip_reason() {
        eprintln!("skipped {test}: {why}");
        return;
    }
    let started = Instant::now();
    let cluster = Cluster::start("zero", MANIFEST);
    let api = cluster.api.clone();
    let target = eventually(
        "the service has a cluster IP",
        Duration::from_secs(20),
        || service_address(&api),
    );
    wait_asleep(&cluster, target, Duration::from_secs(30));

    let sent = Instant::now();
    let took = first_request(&cluster.n1, target).expect("the first request is answered 200");
    assert!(took < FIRST_REQUEST_TIMEOUT, "{took:?}");
    assert_eq!(replicas(&api), Some(1), "the HPA woke the Deployment");
    let described = drover(&api, &["describe", "hpa", "web"]);
    let described = String::from_utf8_lossy(&described.stdout);
    assert!(
        described.contains("New size: 1"),
        "drover describe hpa: {described}"
    );
    eprintln!("{test}: first request from zero answered in {took:?}");

    // No more load: back to zero, not before the window that began with
    // the wake-up (the last time the HPA was asked for a replica).
    wait_asleep(&cluster, target, STABILIZATION + Duration::from_secs(30));
    let slept = sent.elapsed();
    assert!(
        slept >= STABILIZATION,
        "back to zero {slept:?} after the request, before the {STABILIZATION:?} window"
    );
    eprintln!("{test}: request sent → back to zero after {slept:?}");

    // Woken again, through the other node's activator.
    let again = first_request(&cluster.n2, target).expect("the next request is answered 200");
    eprintln!("{test}: second wake-up (from n2) answered in {again:?}");
    eventually("one replica again", Duration::from_secs(5), || {
        (replicas(&api) == Some(1)).then_some(())
    });
    drop(cluster);
    assert!(
        started.elapsed() < Duration::from_secs(240),
        "bounded in time"
    );
}
