//! Pod apply → Running on one real node (issue 5): a `drover server`
//! (scheduler on) and one real `drover agent` running containers with pod
//! networking, the example busybox image already in the node's store.
//! Latency per pod is from the create call to the watch event that shows
//! the pod Running (and Ready: no probes), measured for pods created one
//! at a time and for PODS pods created at once. Kubernetes' SLO for the
//! same measure is p99 ≤ 5 s; our target is p99 ≤ 100 ms.
//!
//! Run as root: `cargo bench -p drover-cli --bench pod_startup`
//! (PODS, default 100; SERIAL, default 20).

#[path = "../tests/common/mod.rs"]
mod harness;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use drover_proto::client::{Client, ListOptions};
use drover_proto::types::Pod;
use drover_proto::types::pod::{Container, PodPhase};
use drover_proto::{Kind, Resource};
use futures::StreamExt;
use harness::pod_net::PodNet;
use harness::{AgentProcess, Reaper, Server, ok};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pod(name: &str) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = name.into();
    pod.metadata.namespace = Some("default".into());
    pod.spec.termination_grace_period_seconds = 1;
    pod.spec.containers = vec![Container {
        name: "c".into(),
        image: "example/busybox:1".into(),
        command: vec!["sleep".into(), "3600".into()],
        ..Container::default()
    }];
    pod
}

fn running(p: &Pod) -> bool {
    p.status
        .as_ref()
        .is_some_and(|s| s.phase == PodPhase::Running)
        && p.is_ready()
}

/// Per pod: create → bound to the node, and create → Running.
#[derive(Default)]
struct Latencies {
    bound: Vec<Duration>,
    running: Vec<Duration>,
}

/// Creates `names` (all at once) and returns each pod's latencies, as seen
/// by one watch opened before the first create.
async fn start_pods(client: &Client, names: &[String]) -> Latencies {
    let (_, rv) = client
        .list_as::<Pod>(&ListOptions::default())
        .await
        .expect("list pods");
    let mut watch = Box::pin(
        client
            .watch(Kind::Pod, &ListOptions::default(), Some(rv))
            .await
            .expect("watch pods"),
    );
    let mut created: HashMap<String, Instant> = HashMap::new();
    let creates = names.iter().map(|name| {
        let client = client.clone();
        let object = pod(name).to_object();
        async move {
            let at = Instant::now();
            client.create(&object).await.expect("create pod");
            at
        }
    });
    // Creation times are taken as each create is sent; issue them together.
    let times = futures::future::join_all(creates).await;
    for (name, at) in names.iter().zip(times) {
        created.insert(name.clone(), at);
    }
    let mut latencies = Latencies::default();
    let mut unbound: std::collections::HashSet<String> = names.iter().cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(120);
    while latencies.running.len() < names.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = tokio::time::timeout(left, watch.next())
            .await
            .expect("pods not Running within 120 s")
            .expect("watch ended")
            .expect("watch failed");
        let Ok(p) = Pod::from_object(&ev.object) else {
            continue;
        };
        if p.spec.node_name.is_some()
            && unbound.remove(&p.metadata.name)
            && let Some(at) = created.get(&p.metadata.name)
        {
            latencies.bound.push(at.elapsed());
        }
        if running(&p)
            && let Some(at) = created.remove(&p.metadata.name)
        {
            latencies.running.push(at.elapsed());
        }
    }
    latencies
}

async fn delete_all(client: &Client, names: &[String]) {
    for name in names {
        let _ = client
            .delete(Kind::Pod, "default", name, &Default::default())
            .await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let left = client
            .list_as::<Pod>(&ListOptions::default())
            .await
            .map(|(pods, _)| pods.len())
            .unwrap_or(usize::MAX);
        if left == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `p50 …, p99 …, max …` of `samples` in milliseconds.
fn quantiles(mut samples: Vec<Duration>) -> String {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1e3
    };
    format!(
        "p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

fn report(what: &str, latencies: Latencies, wall: Duration) {
    println!(
        "{what}: {} pods, create → Running {}; create → bound {}; all Running after {:.2} s",
        latencies.running.len(),
        quantiles(latencies.running),
        quantiles(latencies.bound),
        wall.as_secs_f64()
    );
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn main() {
    if !is_root() {
        eprintln!("pod_startup skipped: the real agent needs root");
        return;
    }
    // A real node offers 110 pods, as Kubernetes' default.
    let (burst, serial) = (env_or("PODS", 100).min(110), env_or("SERIAL", 20));
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = harness::build_busybox(dir.path());
    let data = dir.path().join("agent");
    let data_arg = data.to_str().expect("utf-8 path");
    let _reaper = Reaper(data.clone());
    let server = Server::start(&dir.path().join("server"));
    ok(server.drover(&[
        "image",
        "import",
        layout.to_str().expect("utf-8"),
        "--data-dir",
        data_arg,
    ]));
    let net = PodNet::unique();
    let [b, bridge, c, cidr] = net.args();
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let _agent = AgentProcess::start(
        &server.url,
        &[
            "--node-name",
            "bench",
            "--data-dir",
            data_arg,
            b,
            bridge,
            c,
            cidr,
        ],
        "registered node bench",
        Duration::from_secs(30),
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let client = rt.block_on(Client::connect(&server.url)).expect("connect");
    println!(
        "one node ({cpus} CPUs), image present, pods `sleep 3600` with their own netns and veth"
    );

    let names: Vec<String> = (0..serial).map(|i| format!("serial-{i}")).collect();
    let t = Instant::now();
    let mut one_by_one = Latencies::default();
    for name in &names {
        let one = rt.block_on(start_pods(&client, std::slice::from_ref(name)));
        one_by_one.bound.extend(one.bound);
        one_by_one.running.extend(one.running);
    }
    report("one at a time", one_by_one, t.elapsed());
    rt.block_on(delete_all(&client, &names));

    let names: Vec<String> = (0..burst).map(|i| format!("burst-{i}")).collect();
    let t = Instant::now();
    let latencies = rt.block_on(start_pods(&client, &names));
    report("all at once", latencies, t.elapsed());
    rt.block_on(delete_all(&client, &names));
}
