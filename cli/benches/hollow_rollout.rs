//! A Deployment at scale through the real binaries: a `drover server`
//! process (API, controllers, scheduler) and a `drover agent --hollow`
//! process whose nodes bind, run and report pods. Measures 0 → N ready
//! replicas, then a full rolling update of the image (maxSurge 25%,
//! maxUnavailable 0), sampling the peak pod count during it.
//!
//! Run: `cargo bench -p drover-cli --bench hollow_rollout`
//! (BENCH_REPLICAS, default 1000; BENCH_NODES, default replicas / 20).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use drover_proto::client::Client;
use drover_proto::types::Deployment;
use drover_proto::{Kind, Resource};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Starts `drover ARGS`, waits for a stderr line containing `marker` and
/// returns the child with the text after `marker` on that line.
fn start(args: &[&str], server: Option<&str>, marker: &str) -> (Child, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_drover"));
    cmd.args(args)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped());
    if let Some(url) = server {
        cmd.env("DROVER_SERVER", url);
    }
    let mut child = cmd.spawn().expect("start drover");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let marker = marker.to_string();
    std::thread::spawn(move || {
        // Keep draining so the child never blocks on a full pipe.
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(i) = line.find(&marker) {
                let _ = tx.send(line[i + marker.len()..].to_string());
            }
        }
    });
    let rest = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("drover did not start");
    (child, rest)
}

fn manifest(replicas: usize, image: &str) -> drover_proto::Object {
    let yaml = format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: bench}}
spec:
  replicas: {replicas}
  strategy: {{rollingUpdate: {{maxSurge: "25%", maxUnavailable: 0}}}}
  selector: {{matchLabels: {{app: bench}}}}
  template:
    metadata: {{labels: {{app: bench}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{{name: c, image: "{image}", resources: {{requests: {{cpu: 10m, memory: 16Mi}}}}}}]
"#
    );
    drover_proto::manifest::parse_manifests(&yaml, "bench")
        .expect("manifest")
        .remove(0)
        .object
}

/// Polls the Deployment until `done`, returning the elapsed time and the
/// largest `status.replicas` seen.
async fn wait(
    client: &Client,
    start: Instant,
    done: impl Fn(&Deployment) -> bool,
) -> (Duration, i32) {
    let mut peak = 0;
    loop {
        if let Ok(d) = client.get_as::<Deployment>("default", "bench").await {
            peak = peak.max(d.status.as_ref().map_or(0, |s| s.replicas));
            if done(&d) {
                return (start.elapsed(), peak);
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "did not converge"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn converged(d: &Deployment, replicas: i32) -> bool {
    d.status.as_ref().is_some_and(|s| {
        s.observed_generation >= d.metadata.generation.unwrap_or(0)
            && s.replicas == replicas
            && s.updated_replicas == replicas
            && s.ready_replicas == replicas
            && s.available_replicas == replicas
    })
}

#[tokio::main]
async fn main() {
    let replicas = env_usize("BENCH_REPLICAS", 1000);
    let nodes = env_usize("BENCH_NODES", (replicas / 20).max(4));
    // Room for the surge with some slack.
    let pods_per_node = (replicas * 2).div_ceil(nodes).max(10);
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    let (mut server, url) = start(
        &[
            "server",
            "--listen",
            "127.0.0.1:0",
            "--history-limit",
            "1000000",
            "--data-dir",
            data.to_str().expect("utf-8 path"),
        ],
        None,
        "drover server listening on ",
    );
    let (count, pods) = (nodes.to_string(), pods_per_node.to_string());
    let (mut agent, _) = start(
        &["agent", "--hollow", "--count", &count, "--pods", &pods],
        Some(&url),
        "hollow nodes registered",
    );
    let client = Client::connect(&url).await.expect("connect");
    let want = i32::try_from(replicas).unwrap_or(i32::MAX);

    let t = Instant::now();
    client
        .create(&manifest(replicas, "example/bench:1"))
        .await
        .expect("create deployment");
    let (up, _) = wait(&client, t, |d| converged(d, want)).await;
    println!(
        "0 -> {replicas} ready replicas on {nodes} hollow nodes: {:.2} s ({:.0} pods/s)",
        up.as_secs_f64(),
        replicas as f64 / up.as_secs_f64()
    );

    let mut d: Deployment = client.get_as("default", "bench").await.expect("get");
    d.spec.template.spec.containers[0].image = "example/bench:2".into();
    d.metadata.resource_version = None;
    let t = Instant::now();
    client.update(&d.to_object()).await.expect("update image");
    let (rolled, peak) = wait(&client, t, |d| {
        converged(d, want) && d.spec.template.spec.containers[0].image == "example/bench:2"
    })
    .await;
    // Old pods may still be finishing; the rollout is complete when the new
    // ones are all available and the old ReplicaSet is at 0.
    println!(
        "rolling update of {replicas} (maxSurge 25%, maxUnavailable 0): {:.2} s, peak {peak} pods (limit {})",
        rolled.as_secs_f64(),
        want + (want + 3) / 4
    );
    let _ = client
        .delete(Kind::Deployment, "default", "bench", &Default::default())
        .await;
    let _ = agent.kill();
    let _ = server.kill();
    let _ = agent.wait();
    let _ = server.wait();
}
