//! Issue 9 scenario 6 on namespaced hosts: the whole control plane is
//! restarted (`kill -9` of the server, then the same server on its data
//! dir). Every object comes back as it was, the agents reconnect on their
//! own, their pods keep running and serving through it, and the
//! controllers, the scheduler and the agents go on working together.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use drover_e2e::cluster::{Cluster, curl_in, drover, get_json, ready_pods, skip_reason};
use drover_e2e::pki::Api;
use drover_e2e::{eventually, skip_unless_supported};

const MANIFEST: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {greeting: hello}
---
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
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"#;

/// `kind/name` → (uid, resourceVersion) of every object of `kinds`.
fn objects(api: &Api, kinds: &[&str]) -> Option<BTreeMap<String, (String, String)>> {
    let mut all = BTreeMap::new();
    for kind in kinds {
        for o in get_json(api, &[kind])?.get("items")?.as_array()? {
            let meta = o.get("metadata")?;
            let field = |f: &str| meta.get(f)?.as_str().map(str::to_string);
            all.insert(
                format!("{kind}/{}", field("name")?),
                (field("uid")?, field("resourceVersion")?),
            );
        }
    }
    Some(all)
}

fn node_version(api: &Api, name: &str) -> Option<u64> {
    get_json(api, &["node", name])?
        .pointer("/metadata/resourceVersion")?
        .as_str()?
        .parse()
        .ok()
}

#[test]
fn the_control_plane_restarts_with_its_state_and_the_agents_reconnect() {
    let test = "control_plane_restart";
    if skip_unless_supported(test) {
        return;
    }
    if let Some(why) = skip_reason() {
        eprintln!("skipped {test}: {why}");
        return;
    }
    let mut cluster = Cluster::start("cprestart", MANIFEST);
    let api = cluster.api.clone();
    let pods = eventually("two ready pods", Duration::from_secs(60), || {
        ready_pods(&api).filter(|p| p.len() == 2)
    });
    let vip = get_json(&api, &["service", "web"])
        .and_then(|s| s.pointer("/spec/clusterIP")?.as_str().map(str::to_string))
        .expect("the service has a cluster IP");
    let url = format!("http://{vip}/");
    eventually("the service answers", Duration::from_secs(30), || {
        curl_in(&cluster.n1, &url)
    });
    // Objects no agent writes to: they must come back exactly as they were.
    let still = ["configmaps", "deployments", "replicasets", "services"];
    let before = objects(&api, &still).expect("objects before");
    assert!(before.len() >= 4, "{before:?}");

    // The service keeps answering from n2 while the control plane is down.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let prober = {
        let (stop, served, failed) = (stop.clone(), served.clone(), failed.clone());
        let (n2, url) = (cluster.n2.clone(), url.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let counter = match curl_in(&n2, &url) {
                    Some(_) => &served,
                    None => &failed,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    cluster.restart_server();

    let after = eventually("objects after the restart", Duration::from_secs(20), || {
        objects(&api, &still)
    });
    assert_eq!(after, before, "objects changed across the restart");

    // Each agent reconnected: its node's heartbeat moves again.
    for node in ["n1", "n2"] {
        let first = eventually("the node is readable", Duration::from_secs(20), || {
            node_version(&api, node)
        });
        eventually(
            "the agent writes its node again",
            Duration::from_secs(30),
            || node_version(&api, node).filter(|v| *v > first),
        );
    }

    // The pods never stopped: same pods, ready, not restarted.
    let now = eventually("the pods are ready", Duration::from_secs(30), || {
        ready_pods(&api).filter(|p| p.len() == 2)
    });
    let uids = |p: &[drover_e2e::cluster::WebPod]| {
        let mut u: Vec<String> = p.iter().map(|w| w.uid.clone()).collect();
        u.sort();
        u
    };
    assert_eq!(uids(&now), uids(&pods), "the pods were replaced");
    for pod in &now {
        let restarts = get_json(&api, &["pod", &pod.name]).and_then(|p| {
            p.pointer("/status/containerStatuses/0/restartCount")?
                .as_i64()
        });
        assert_eq!(restarts, Some(0), "{} restarted", pod.name);
    }
    stop.store(true, Ordering::Relaxed);
    prober.join().expect("prober");
    let (served, failed) = (
        served.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    assert!(served > 0, "no request was served during the restart");
    assert_eq!(failed, 0, "{failed} of {} requests failed", served + failed);

    // Controllers, scheduler and agents work together again: a scale-up
    // becomes a ready pod.
    let scaled = drover(&api, &["scale", "deployment/web", "--replicas", "3"]);
    assert!(
        scaled.status.success(),
        "scale: {}",
        String::from_utf8_lossy(&scaled.stderr)
    );
    let three = eventually("three ready pods", Duration::from_secs(60), || {
        ready_pods(&api).filter(|p| p.len() == 3)
    });
    let old = uids(&pods);
    let new = three.iter().filter(|p| !old.contains(&p.uid)).count();
    assert_eq!(new, 1, "one new pod expected beside the two that lived on");
    eprintln!(
        "control plane restart: {} objects intact, {served} requests served while it restarted, none failed",
        after.len()
    );
}
