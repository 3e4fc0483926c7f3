//! Issue 9 scenario 5 on namespaced hosts: `kill -9` of a node's agent and
//! a restart. Its workloads keep running (same container pid, same pod,
//! no restart), keep serving while the agent is down, and are re-adopted:
//! the restarted agent goes on managing them and starts new pods.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use drover_e2e::cluster::{Cluster, curl_in, drover, get_json, ready_pods, skip_reason};
use drover_e2e::pki::Api;
use drover_e2e::{eventually, skip_unless_supported};
use serde_json::Value;

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

/// The container's pid as the pod's shim recorded it.
fn container_pid(node_dir: &Path, uid: &str) -> Option<i64> {
    let state =
        std::fs::read_to_string(node_dir.join(format!("pods/{uid}/httpd/0/shim/state.json")))
            .ok()?;
    serde_json::from_str::<Value>(&state).ok()?["container_pid"].as_i64()
}

fn restart_count(api: &Api, pod: &str) -> Option<i64> {
    get_json(api, &["pod", pod])?
        .pointer("/status/containerStatuses/0/restartCount")?
        .as_i64()
}

#[test]
fn a_restarted_agent_readopts_its_running_workloads() {
    let test = "agent_restart";
    if skip_unless_supported(test) {
        return;
    }
    if let Some(why) = skip_reason() {
        eprintln!("skipped {test}: {why}");
        return;
    }
    let mut cluster = Cluster::start(test, MANIFEST);
    let api = cluster.api.clone();
    let before = eventually(
        "two ready replicas on two nodes",
        Duration::from_secs(60),
        || {
            ready_pods(&api).filter(|p| {
                p.len() == 2 && p.iter().any(|w| w.node == "n1") && p.iter().any(|w| w.node == "n2")
            })
        },
    );
    let pod = before.iter().find(|w| w.node == "n1").expect("a pod on n1");
    let n1_dir = cluster.tmp.join("n1");
    let pid = eventually("the shim's state", Duration::from_secs(10), || {
        container_pid(&n1_dir, &pod.uid)
    });

    // The pod serves from n2's host all along while n1's agent restarts.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let prober = {
        let (stop, served, failed) = (stop.clone(), served.clone(), failed.clone());
        let (n2, target) = (cluster.n2.clone(), format!("http://{}:8080/", pod.ip));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match curl_in(&n2, &target) {
                    Some(_) => served.fetch_add(1, Ordering::Relaxed),
                    None => failed.fetch_add(1, Ordering::Relaxed),
                };
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    cluster.nodes.restart(0, "adopted container httpd");
    // Let the restarted agent run a few status rounds before judging.
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let _ = prober.join();
    let (served, failed) = (
        served.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    eprintln!("during the agent restart: {served} requests served, {failed} failed");
    assert!(served > 10, "the prober ran ({served} requests)");
    assert_eq!(
        failed, 0,
        "the pod stopped serving while its agent restarted"
    );

    assert_eq!(
        container_pid(&n1_dir, &pod.uid),
        Some(pid),
        "the container was replaced"
    );
    assert!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "the container died"
    );
    let after = ready_pods(&api).expect("pods");
    assert!(
        after.iter().any(|w| w.uid == pod.uid && w.node == "n1"),
        "the same pod is still ready on n1"
    );
    assert_eq!(restart_count(&api, &pod.name), Some(0));

    // Re-adopted, not just left alone: the agent manages n1 again.
    let scaled = drover(&api, &["scale", "deployment/web", "--replicas", "4"]);
    assert!(
        scaled.status.success(),
        "scale: {}",
        String::from_utf8_lossy(&scaled.stderr)
    );
    let four = eventually(
        "four ready replicas, two on n1",
        Duration::from_secs(60),
        || {
            ready_pods(&api)
                .filter(|p| p.len() == 4 && p.iter().filter(|w| w.node == "n1").count() == 2)
        },
    );
    let new_on_n1 = four
        .iter()
        .find(|w| w.node == "n1" && w.uid != pod.uid)
        .expect("a new pod on n1");
    assert!(
        curl_in(&cluster.n2, &format!("http://{}:8080/", new_on_n1.ip)).is_some(),
        "the new pod on n1 serves"
    );
}
