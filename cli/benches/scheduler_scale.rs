//! End to end scheduling through the real control plane: `PODS` bare pods
//! created through the API onto `NODES` hollow nodes (`drover agent
//! --hollow`), timed until every pod is bound and until every pod is
//! reported Running; also the server's peak memory.
//!
//! Run: `NODES=5000 PODS=150000 cargo bench -p drover-cli --bench scheduler_scale`
//! (defaults 5,000 nodes and 150,000 pods; `PODS=1000000` for the 1M run).

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use drover_proto::client::{Client, ListOptions};
use drover_proto::{Kind, Object};
use futures::StreamExt;
use serde_json::json;

fn pod(i: usize) -> Object {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("p{i}"), "labels": {"app": format!("a{}", i % 100)}},
        "spec": {"containers": [{"name": "c", "image": "example/busybox:1",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
    }))
    .expect("pod")
}

fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

#[tokio::main]
async fn main() {
    let nodes = common::env_or("NODES", 5000);
    let pods = common::env_or("PODS", 150_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().display().to_string();
    let (mut server, url) = common::spawn(
        &[
            "server",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
            "--no-controllers",
        ],
        "drover server listening on ",
    );
    let client = Client::connect(&url).await.expect("connect");
    let count = nodes.to_string();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["agent", "--hollow", "--count", &count, "--server", &url])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start hollow agent");
    let t = Instant::now();
    loop {
        let (items, _) = client
            .list(Kind::Node, &ListOptions::default())
            .await
            .expect("list nodes");
        if items.len() >= nodes {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "nodes did not register"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "{nodes} hollow nodes registered in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    // Count binds and Running reports from one watch, starting now.
    let (_, rv) = client
        .list(Kind::Pod, &ListOptions::default())
        .await
        .expect("list pods");
    let bound = Arc::new(AtomicUsize::new(0));
    let running = Arc::new(AtomicUsize::new(0));
    let mut stream = client
        .watch(Kind::Pod, &ListOptions::default(), Some(rv))
        .await
        .expect("watch");
    let (b, r) = (bound.clone(), running.clone());
    let start = Instant::now();
    let watcher = tokio::spawn(async move {
        let mut seen_bound = std::collections::HashSet::new();
        let mut seen_running = std::collections::HashSet::new();
        let (mut t_bound, mut t_running) = (None, None);
        while let Some(Ok(ev)) = stream.next().await {
            let v = ev.object.to_value();
            let name = v["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if v["spec"]["nodeName"].is_string() && seen_bound.insert(name.clone()) {
                b.fetch_add(1, Ordering::Relaxed);
                if seen_bound.len() == pods {
                    t_bound = Some(start.elapsed());
                }
            }
            if v["status"]["phase"] == "Running" && seen_running.insert(name) {
                r.fetch_add(1, Ordering::Relaxed);
                if seen_running.len() == pods {
                    t_running = Some(start.elapsed());
                    break;
                }
            }
        }
        (t_bound, t_running)
    });

    let next = Arc::new(AtomicUsize::new(0));
    let mut creators = Vec::new();
    for _ in 0..256 {
        let (c, next) = (client.clone(), next.clone());
        creators.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= pods {
                    break;
                }
                let p = pod(i);
                while c.create(&p).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }));
    }
    for c in creators {
        c.await.expect("creator");
    }
    let created = start.elapsed();
    println!(
        "created {pods} pods in {:.1}s ({:.0}/s)",
        created.as_secs_f64(),
        pods as f64 / created.as_secs_f64()
    );
    let deadline = Duration::from_secs(1800);
    let progress = tokio::spawn({
        let (b, r) = (bound.clone(), running.clone());
        async move {
            loop {
                tokio::time::sleep(Duration::from_secs(10)).await;
                println!(
                    "  … {}s: bound {} running {}",
                    start.elapsed().as_secs(),
                    b.load(Ordering::Relaxed),
                    r.load(Ordering::Relaxed)
                );
            }
        }
    });
    let (t_bound, t_running) = tokio::time::timeout(deadline, watcher)
        .await
        .expect("pods did not all run in time")
        .expect("watcher");
    progress.abort();
    let rate = |d: Option<Duration>| d.map(|d| pods as f64 / d.as_secs_f64()).unwrap_or(0.0);
    println!(
        "| nodes | pods | all bound | pods/s bound | all Running | pods/s Running | server peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {nodes} | {pods} | {:.1} s | {:.0} | {:.1} s | {:.0} | {:.0} MiB |",
        t_bound.map(|d| d.as_secs_f64()).unwrap_or(f64::NAN),
        rate(t_bound),
        t_running.map(|d| d.as_secs_f64()).unwrap_or(f64::NAN),
        rate(t_running),
        peak_rss_mib(server.id()),
    );
    let _ = agent.kill();
    let _ = server.kill();
    let _ = agent.wait();
    let _ = server.wait();
}
