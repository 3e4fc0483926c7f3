//! Creates/s and latency through the gRPC API of a real `drover server`
//! process, at 1, 16 and 256 concurrent clients (ConfigMaps with a 256-byte
//! value, the payload of the etcd anchor in shared/anchors.md).
//!
//! Run: `cargo bench -p drover-cli --bench api_writes` (BENCH_SECONDS=N per level).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_proto::Object;
use drover_proto::client::Client;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::Mutex;

fn start_server(dir: &std::path::Path) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start drover server");
    let stderr = child.stderr.take().expect("stderr");
    let url = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("drover server listening on ")
                .map(str::to_string)
        })
        .expect("server address");
    (child, url)
}

fn object(name: String) -> Object {
    let value = "x".repeat(256);
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"v": value}}))
        .expect("object")
}

async fn level(url: &str, clients: usize, seconds: u64) -> (f64, f64, f64, u64) {
    let connections = clients.clamp(1, 10);
    let mut pool = Vec::new();
    for _ in 0..connections {
        pool.push(Client::connect(url).await.expect("connect"));
    }
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3).expect("histogram")));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..clients {
        let c = pool[i % connections].clone();
        let hist = hist.clone();
        tasks.push(tokio::spawn(async move {
            let mut local = Histogram::<u64>::new(3).expect("histogram");
            let mut n = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                c.create(&object(format!("c{clients}-{i}-{n}")))
                    .await
                    .expect("create");
                local.record(t.elapsed().as_micros() as u64).ok();
                n += 1;
            }
            hist.lock().await.add(local).ok();
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let elapsed = start.elapsed().as_secs_f64();
    let h = hist.lock().await;
    (
        h.len() as f64 / elapsed,
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.len(),
    )
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut child, url) = start_server(dir.path());
    println!(
        "drover server (single member, sled + fsync per batch), creates of 256-byte ConfigMaps, {seconds}s per level"
    );
    println!("| clients | creates/s | p50 | p99 | total |");
    println!("|---|---|---|---|---|");
    for clients in [1usize, 16, 256] {
        let (rate, p50, p99, n) = level(&url, clients, seconds).await;
        println!("| {clients} | {rate:.0} | {p50:.2} ms | {p99:.2} ms | {n} |");
    }
    let _ = child.kill();
    let _ = child.wait();
}
