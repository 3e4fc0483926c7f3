//! The scale-from-zero scenario shared by the e2e test and the first-request
//! benchmark: a web Deployment at zero replicas behind a Service, with an
//! HPA (minReplicas 0) on requests per second; the first request through
//! the cluster IP is held by the node's activator while the HPA starts a
//! replica, then forwarded.

use std::net::SocketAddr;
use std::time::Duration;

use crate::cluster::{Cluster, get_json, ready_endpoints};
use crate::pki::Api;
use crate::{Host, eventually};

/// Deployment `web` (0 replicas), Service `web`, HPA `web` (0–2 replicas,
/// 10 requests/s per pod, 8 s scale-down window).
pub const MANIFEST: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 0
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
metadata:
  name: web
  annotations: {autoscaling.drover.io/scale-from-zero: "true"}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 0
  maxReplicas: 2
  metrics:
  - type: Pods
    pods:
      metric: {name: requests_per_second}
      target: {type: AverageValue, averageValue: "10"}
  behavior:
    scaleDown: {stabilizationWindowSeconds: 8}
"#;

/// The manifest's scale-down stabilization window.
pub const STABILIZATION: Duration = Duration::from_secs(8);

/// How long the first request may wait (the agents' default activator
/// timeout is 30 s).
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The Service's cluster IP and port 80.
pub fn service_address(api: &Api) -> Option<SocketAddr> {
    let vip = get_json(api, &["service", "web"])?
        .pointer("/spec/clusterIP")?
        .as_str()?
        .to_string();
    format!("{vip}:80").parse().ok()
}

/// Waits until the Deployment is at zero with no endpoint, and every
/// node's service table sends the cluster IP to its activator.
pub fn wait_asleep(cluster: &Cluster, target: SocketAddr, within: Duration) {
    let api = &cluster.api;
    eventually("scaled to zero", within, || {
        (crate::autoscaling::replicas(api) == Some(0) && ready_endpoints(api) == 0).then_some(())
    });
    let held = format!(
        "ip daddr {} tcp dport {} dnat to",
        target.ip(),
        target.port()
    );
    for (host, _, bridge) in &cluster.nodes.nodes {
        let table = format!("drover_svc_{bridge}");
        eventually(
            "the node's rules hold the cluster IP",
            Duration::from_secs(20),
            || {
                let out = host.exec("nft", &["list", "table", "ip", &table]);
                String::from_utf8_lossy(&out.stdout)
                    .contains(&held)
                    .then_some(())
            },
        );
    }
}

/// One request through `target` from `host`: how long until it was
/// answered 200, or why not.
pub fn first_request(host: &Host, target: SocketAddr) -> Result<Duration, String> {
    let netns = format!("/run/netns/{}", host.netns);
    crate::load::request_in(&netns, target, FIRST_REQUEST_TIMEOUT)
}
