//! The dashboard at scale: a real server holding `NODES` hollow nodes
//! (`drover agent --hollow`) and `PODS` pods bound across them, then the
//! first render of each view (time to the full HTML, and its size), as a
//! browser's first load or a live refresh would fetch it.
//!
//! Run: `NODES=5000 PODS=50000 cargo bench -p drover-cli --bench dashboard_render`

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_proto::Object;
use drover_proto::client::Client;
use serde_json::json;

fn pod(i: usize, nodes: usize) -> Object {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("p{i}"), "labels": {"app": format!("a{}", i % 100)}},
        "spec": {"nodeName": format!("hollow-{}", i % nodes),
            "containers": [{"name": "c", "image": "example/busybox:1",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
    }))
    .expect("pod")
}

/// GET `path`: (seconds to the last byte, body bytes, status line).
fn get(addr: &str, path: &str) -> (f64, usize, String) {
    let start = Instant::now();
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    let elapsed = start.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out);
    let status = text.lines().next().unwrap_or_default().to_string();
    let body = text.split_once("\r\n\r\n").map_or(0, |(_, b)| b.len());
    (elapsed, body, status)
}

#[tokio::main]
async fn main() {
    let nodes = common::env_or("NODES", 5000);
    let pods = common::env_or("PODS", 50_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    let data = data.to_str().expect("path");
    let (mut server, url) = common::spawn(
        &[
            "server",
            "--listen",
            "127.0.0.1:0",
            "--no-scheduler",
            "--no-controllers",
            "--data-dir",
            data,
        ],
        "listening on ",
    );
    let addr = url.trim_start_matches("http://").to_string();
    let count = nodes.to_string();
    let (mut agent, _) = common::spawn(
        &[
            "--server",
            &url,
            "agent",
            "--hollow",
            "--count",
            &count,
            "--heartbeat-seconds",
            "30",
        ],
        "hollow nodes registered",
    );
    let client = Arc::new(Client::connect(&url).await.expect("connect"));
    let created = Instant::now();
    let workers = 64;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < pods {
                client.create(&pod(i, nodes)).await.expect("create pod");
                i += workers;
            }
        }));
    }
    for t in tasks {
        t.await.expect("creator");
    }
    println!(
        "{nodes} hollow nodes, {pods} pods created in {:.1} s",
        created.elapsed().as_secs_f64()
    );
    // Let the hollow nodes report their pods Running before measuring.
    tokio::time::sleep(Duration::from_secs(5)).await;
    println!("| view | first render | HTML size | status |");
    println!("|---|---|---|---|");
    let last = pods.div_ceil(100).saturating_sub(1);
    for path in [
        "/ui/cluster".to_string(),
        "/ui/cluster?fragment=1".to_string(),
        "/ui/workloads".to_string(),
        format!("/ui/workloads?page={last}"),
        "/ui/services".to_string(),
        "/ui/events".to_string(),
        format!("/ui/pods/default/p{}", pods / 2),
    ] {
        let (secs, bytes, status) = get(&addr, &path);
        println!(
            "| `{path}` | {:.0} ms | {:.0} KiB | {status} |",
            secs * 1000.0,
            bytes as f64 / 1024.0
        );
    }
    let _ = agent.kill();
    let _ = agent.wait();
    let _ = server.kill();
    let _ = server.wait();
}
