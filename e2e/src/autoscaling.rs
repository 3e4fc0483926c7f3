//! The autoscaling scenario shared by the e2e test and the reaction
//! benchmark: a web Deployment (busybox httpd) behind a Service with an HPA
//! on requests per second per pod, and readers for what the cluster shows.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::{Cluster, get_json, ready_endpoints};
use crate::load::Load;
use crate::pki::Api;
use crate::{Host, eventually, http};

/// The per-pod target of the HPA, requests per second.
pub const TARGET_RPS: f64 = 10.0;

/// Deployment `web` (1 replica), Service `web`, HPA `web` (1–4 replicas,
/// 10 requests/s per pod, 5 s scale-down window).
pub const MANIFEST: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: httpd
        image: example/busybox:1
        command: ["sh", "-c", "mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]
        ports: [{name: http, containerPort: 8080}]
        resources: {requests: {cpu: 50m, memory: 16Mi}}
        readinessProbe: {httpGet: {path: /, port: http}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 4
  metrics:
  - type: Pods
    pods:
      metric: {name: requests_per_second}
      target: {type: AverageValue, averageValue: "10"}
  behavior:
    scaleDown: {stabilizationWindowSeconds: 5}
"#;

/// The manifest's scale-down stabilization window.
pub const STABILIZATION: Duration = Duration::from_secs(5);

/// The Deployment's `spec.replicas`.
pub fn replicas(api: &Api) -> Option<i64> {
    get_json(api, &["deployment", "web"])?
        .pointer("/spec/replicas")?
        .as_i64()
}

/// Requests per second the metrics API reports per web pod.
pub fn pod_rates(api: &Api) -> Option<Vec<(String, f64)>> {
    let r = http::request(
        api,
        "GET",
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?labelSelector=app%3Dweb",
        None,
        Duration::from_secs(2),
    )
    .ok()?;
    let items = r.json().get("items")?.as_array()?.clone();
    Some(
        items
            .iter()
            .filter_map(|p| {
                let name = p.pointer("/metadata/name")?.as_str()?.to_string();
                let rps = p
                    .get("requestsPerSecond")
                    .and_then(Value::as_str)
                    .and_then(|q| match q.strip_suffix('m') {
                        Some(m) => m.parse::<f64>().ok().map(|m| m / 1000.0),
                        None => q.parse().ok(),
                    })
                    .unwrap_or(0.0);
                Some((name, rps))
            })
            .collect(),
    )
}

/// How long a load step took to show, from its start.
#[derive(Debug, Clone)]
pub struct Reaction {
    /// The HPA wrote 4 replicas.
    pub scaled: Duration,
    /// 4 ready endpoints.
    pub ready: Duration,
    /// The metrics API shows every replica receiving requests.
    pub serving: Duration,
    /// Requests per second per pod at that moment.
    pub rates: Vec<(String, f64)>,
}

/// Waits until the cluster IP answers from both nodes (each node's rules
/// follow the Endpoints a moment after they change).
pub fn warm_up(cluster: &Cluster, target: SocketAddr) {
    for host in [&cluster.n1, &cluster.n2] {
        let netns = format!("/run/netns/{}", host.netns);
        eventually("the cluster IP answers", Duration::from_secs(20), || {
            crate::load::run_for(&netns, target, Duration::from_millis(200), 1)
                .filter(|r| r.ok > 0 && r.failed == 0)
        });
    }
}

/// Steps the load from zero to `5 × TARGET_RPS` (paced, through `target`,
/// half from each node) and waits for the 4 replicas to serve; the load
/// keeps running until the caller stops it.
pub fn step_up(cluster: &Cluster, target: SocketAddr) -> (Vec<Load>, Reaction) {
    let api = &cluster.api;
    let netns = |h: &Host| format!("/run/netns/{}", h.netns);
    let step = Instant::now();
    let loads = vec![
        Load::start(&netns(&cluster.n1), target, 2, Some(2.5 * TARGET_RPS)),
        Load::start(&netns(&cluster.n2), target, 2, Some(2.5 * TARGET_RPS)),
    ];
    eventually("the HPA scales to 4", Duration::from_secs(60), || {
        (replicas(api) == Some(4)).then_some(())
    });
    let scaled = step.elapsed();
    eventually("4 ready endpoints", Duration::from_secs(60), || {
        (ready_endpoints(api) == 4).then_some(())
    });
    let ready = step.elapsed();
    let rates = eventually(
        "every replica receives traffic",
        Duration::from_secs(30),
        || {
            let rates = pod_rates(api)?;
            (rates.len() == 4 && rates.iter().all(|(_, r)| *r > 0.0)).then_some(rates)
        },
    );
    let reaction = Reaction {
        scaled,
        ready,
        serving: step.elapsed(),
        rates,
    };
    (loads, reaction)
}
