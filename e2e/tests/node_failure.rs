//! Issue 9 scenario 4 on namespaced hosts: a node's host is cut off from
//! the network. Its pods are replaced on the other node within the
//! toleration time plus scheduling; when it comes back, the stale copies it
//! still ran are stopped.

use std::time::{Duration, Instant};

use drover_e2e::cluster::{Cluster, curl_in, ready_pods, skip_reason};
use drover_e2e::faults::Fault;
use drover_e2e::pki::Api;
use drover_e2e::{eventually, skip_unless_supported};

const MANIFEST: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: httpd
        image: example/busybox:1
        command: ["sh", "-c", "mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
"#;

#[test]
fn pods_of_a_cut_off_node_are_replaced_and_its_stale_copies_stop_on_return() {
    let test = "node_failure";
    if skip_unless_supported(test) {
        return;
    }
    if let Some(why) = skip_reason() {
        eprintln!("skipped {test}: {why}");
        return;
    }
    // Short timings: unreachable after 3 s of silence, evicted 2 s later.
    let cluster = Cluster::start_with(
        test,
        MANIFEST,
        &[
            "--node-monitor-grace-period",
            "3s",
            "--pod-eviction-timeout",
            "2s",
        ],
    );
    let api = cluster.api.clone();
    // The scheduler spreads the two replicas over both nodes.
    let before = eventually(
        "two ready replicas on two nodes",
        Duration::from_secs(60),
        || {
            ready_pods(&api).filter(|p| {
                p.len() == 2 && p.iter().any(|w| w.node == "n1") && p.iter().any(|w| w.node == "n2")
            })
        },
    );
    let stale = before
        .iter()
        .find(|w| w.node == "n1")
        .map(|w| (w.name.clone(), w.ip.clone()))
        .expect("a pod on n1");
    assert!(
        curl_in(&cluster.n1, &format!("http://{}:8080/", stale.1)).is_some(),
        "the n1 pod serves before the fault"
    );

    let cut = Instant::now();
    cluster.lab.inject(&cluster.n1, &Fault::Isolated);
    let live = |api: &Api| {
        ready_pods(api).map(|p| p.into_iter().filter(|w| !w.terminating).collect::<Vec<_>>())
    };
    let after = eventually("both replicas ready on n2", Duration::from_secs(60), || {
        let p = live(&api);
        p.filter(|p| p.len() == 2 && p.iter().all(|w| w.node == "n2"))
    });
    let replaced_in = cut.elapsed();
    assert!(
        after.iter().all(|w| w.name != stale.0),
        "the n1 pod was replaced, not moved"
    );
    eprintln!(
        "n1 cut off → both replicas ready on n2 in {replaced_in:?} (grace 3 s + eviction 2 s)"
    );

    // Back on the network: n1's agent learns its pod is gone and stops it.
    cluster.n1.heal();
    eventually(
        "the stale copy on n1 stops",
        Duration::from_secs(60),
        || {
            curl_in(&cluster.n1, &format!("http://{}:8080/", stale.1))
                .is_none()
                .then_some(())
        },
    );
    let now = live(&api).unwrap_or_default();
    assert_eq!(now.len(), 2, "still exactly two replicas");
}
