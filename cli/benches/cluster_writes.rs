//! Replicated writes side by side: a 3-member `drover server` control plane
//! and a 3-member etcd (Debian's `etcd-server`, default flags), both on
//! 127.0.0.1 with data on the same disk, at 1, 16, 64 and 256 concurrent
//! clients sent to the leader; then failover: SIGKILL the leader and time
//! until a write succeeds on the survivors (100 ms timeout, 5 ms pause).
//! Drover writes 256-byte ConfigMaps through its gRPC API; etcd puts
//! 8-byte keys with 256-byte values through its gRPC KV API.
//!
//! Run: `cargo bench -p drover-cli --bench cluster_writes`
//! (BENCH_SECONDS=N per level, ROUNDS=N failovers; etcd skipped when absent).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_proto::Object;
use drover_proto::client::Client;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

/// A tiny HTTP/1.1 exchange on loopback (status JSON of either system).
fn http(addr: &str, method: &str, path: &str, body: &str) -> Option<Value> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_millis(500))).ok()?;
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let (_, body) = out.split_once("\r\n\r\n")?;
    serde_json::from_str(body).ok()
}

struct Cluster {
    children: Vec<Option<Child>>,
    /// Client (API) address per member, in id order.
    apis: Vec<String>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn start_drover(dir: &Path) -> Cluster {
    let ports = free_ports(6);
    let peers = (0..3)
        .map(|i| format!("{}=127.0.0.1:{}", i + 1, ports[3 + i]))
        .collect::<Vec<_>>()
        .join(",");
    let mut children = Vec::new();
    let mut apis = Vec::new();
    for i in 0..3 {
        let api = format!("127.0.0.1:{}", ports[i]);
        let child = Command::new(env!("CARGO_BIN_EXE_drover"))
            .args(["server", "--no-controllers", "--no-scheduler", "--id"])
            .arg((i + 1).to_string())
            .args(["--listen", &api, "--peer-listen"])
            .arg(format!("127.0.0.1:{}", ports[3 + i]))
            .args(["--peers", &peers, "--data-dir"])
            .arg(dir.join(format!("d{}", i + 1)))
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .expect("start drover server");
        children.push(Some(child));
        apis.push(api);
    }
    Cluster { children, apis }
}

fn start_etcd(dir: &Path) -> Option<Cluster> {
    if Command::new("etcd").arg("--version").output().is_err() {
        println!("etcd not installed (apt-get install etcd-server): skipping the etcd side");
        return None;
    }
    let ports = free_ports(6);
    let initial = (0..3)
        .map(|i| format!("e{}=http://127.0.0.1:{}", i + 1, ports[3 + i]))
        .collect::<Vec<_>>()
        .join(",");
    let mut children = Vec::new();
    let mut apis = Vec::new();
    for i in 0..3 {
        let client = format!("http://127.0.0.1:{}", ports[i]);
        let peer = format!("http://127.0.0.1:{}", ports[3 + i]);
        let child = Command::new("etcd")
            .arg("--name")
            .arg(format!("e{}", i + 1))
            .arg("--data-dir")
            .arg(dir.join(format!("e{}", i + 1)))
            .args([
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
            ])
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .args([
                "--initial-cluster",
                &initial,
                "--initial-cluster-state",
                "new",
            ])
            .args(["--log-level", "error"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        children.push(Some(child));
        apis.push(format!("127.0.0.1:{}", ports[i]));
    }
    Some(Cluster { children, apis })
}

/// Index of the drover leader, asking every running member.
fn drover_leader(c: &Cluster) -> Option<usize> {
    c.apis.iter().enumerate().find_map(|(i, a)| {
        c.children[i].as_ref()?;
        let s = http(a, "GET", "/cluster/status", "")?;
        (s["role"] == "Leader" && s["answered_by"] == s["id"]).then_some(i)
    })
}

/// Index of the etcd leader (its JSON gateway's maintenance status).
fn etcd_leader(c: &Cluster) -> Option<usize> {
    c.apis.iter().enumerate().find_map(|(i, a)| {
        c.children[i].as_ref()?;
        let s = http(a, "POST", "/v3/maintenance/status", "{}")?;
        (s["leader"].as_str().is_some() && s["leader"] == s["header"]["member_id"]).then_some(i)
    })
}

fn wait_leader(c: &Cluster, find: fn(&Cluster) -> Option<usize>) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(l) = find(c) {
            return l;
        }
        assert!(Instant::now() < deadline, "no leader within 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

// etcd's KV.Put, the fields this benchmark uses (etcdserverpb/rpc.proto).
#[derive(Clone, PartialEq, prost::Message)]
struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    value: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct PutResponse {}

/// One write to either system.
#[derive(Clone)]
enum Writer {
    Drover(Box<Client>),
    Etcd(tonic::client::Grpc<Channel>),
}

impl Writer {
    async fn connect(system: &str, addr: &str) -> Result<Writer, String> {
        let url = format!("http://{addr}");
        match system {
            "drover" => Client::connect(&url)
                .await
                .map(|c| Writer::Drover(Box::new(c)))
                .map_err(|e| e.to_string()),
            _ => {
                let ch = tonic::transport::Endpoint::from_shared(url)
                    .map_err(|e| e.to_string())?
                    .connect_timeout(Duration::from_millis(500))
                    .tcp_nodelay(true)
                    .connect()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Writer::Etcd(tonic::client::Grpc::new(ch)))
            }
        }
    }

    async fn write(&mut self, key: String) -> Result<(), String> {
        match self {
            Writer::Drover(c) => {
                let o: Object =
                    serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": key}, "data": {"v": "x".repeat(256)}}))
                    .map_err(|e| e.to_string())?;
                c.create(&o).await.map(|_| ()).map_err(|e| e.to_string())
            }
            Writer::Etcd(g) => {
                g.ready().await.map_err(|e| e.to_string())?;
                let req = PutRequest {
                    key: key.into_bytes(),
                    value: vec![b'x'; 256],
                };
                let codec = tonic_prost::ProstCodec::<PutRequest, PutResponse>::default();
                g.unary(
                    tonic::Request::new(req),
                    PathAndQuery::from_static("/etcdserverpb.KV/Put"),
                    codec,
                )
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
            }
        }
    }
}

/// Writes/s, p50 ms, p99 ms.
type Level = (f64, f64, f64);

async fn level(system: &str, addr: &str, clients: usize, seconds: u64) -> Level {
    let connections = clients.clamp(1, 10);
    let mut pool = Vec::new();
    for _ in 0..connections {
        pool.push(Writer::connect(system, addr).await.expect("connect"));
    }
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3).expect("histogram")));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..clients {
        let mut w = pool[i % connections].clone();
        let hist = hist.clone();
        tasks.push(tokio::spawn(async move {
            let mut local = Histogram::<u64>::new(3).expect("histogram");
            let mut n = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                // 8-byte keys for etcd, as in the anchor; unique names for drover.
                let key = format!("{:08x}", (clients as u64) << 40 | (i as u64) << 24 | n);
                w.write(key).await.expect("write");
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
    )
}

/// SIGKILL the leader, then retry writes on the survivors until one succeeds.
async fn failover(c: &mut Cluster, system: &str, find: fn(&Cluster) -> Option<usize>) -> Duration {
    let leader = wait_leader(c, find);
    let survivors: Vec<String> = (0..3)
        .filter(|i| *i != leader)
        .map(|i| c.apis[i].clone())
        .collect();
    if let Some(mut child) = c.children[leader].take() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        for addr in &survivors {
            n += 1;
            let attempt = async {
                let mut w = Writer::connect(system, addr).await?;
                w.write(format!("f{:07x}", n)).await
            };
            if let Ok(Ok(())) = tokio::time::timeout(Duration::from_millis(100), attempt).await {
                return start.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{system}: no write within 30 s of the kill"
        );
    }
}

#[tokio::main]
async fn main() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let seconds = env("BENCH_SECONDS", 5);
    let rounds = env("ROUNDS", 5);
    let dir = tempfile::tempdir().expect("temp dir");
    let levels = [1usize, 16, 64, 256];
    let mut rows: Vec<(usize, Level, Option<Level>)> = Vec::new();
    {
        let drover = start_drover(&dir.path().join("drover"));
        let dl = wait_leader(&drover, drover_leader);
        let etcd = start_etcd(&dir.path().join("etcd"));
        let el = etcd.as_ref().map(|e| wait_leader(e, etcd_leader));
        for clients in levels {
            let d = level("drover", &drover.apis[dl], clients, seconds).await;
            let e = match (&etcd, el) {
                (Some(e), Some(l)) => Some(level("etcd", &e.apis[l], clients, seconds).await),
                _ => None,
            };
            rows.push((clients, d, e));
        }
    }
    println!("3 members on 127.0.0.1, writes to the leader, {seconds}s per level");
    println!("| clients | drover writes/s | p50 | p99 | etcd puts/s | p50 | p99 | drover/etcd |");
    println!("|---|---|---|---|---|---|---|---|");
    for (clients, d, e) in rows {
        match e {
            Some(e) => println!(
                "| {clients} | {:.0} | {:.2} ms | {:.2} ms | {:.0} | {:.2} ms | {:.2} ms | {:.2}× |",
                d.0,
                d.1,
                d.2,
                e.0,
                e.1,
                e.2,
                d.0 / e.0
            ),
            None => println!(
                "| {clients} | {:.0} | {:.2} ms | {:.2} ms | - | - | - | - |",
                d.0, d.1, d.2
            ),
        }
    }
    let mut dro = Vec::new();
    let mut etc = Vec::new();
    for r in 0..rounds {
        let mut d = start_drover(&dir.path().join(format!("fd{r}")));
        wait_leader(&d, drover_leader);
        dro.push(failover(&mut d, "drover", drover_leader).await);
        if let Some(mut e) = start_etcd(&dir.path().join(format!("fe{r}"))) {
            wait_leader(&e, etcd_leader);
            etc.push(failover(&mut e, "etcd", etcd_leader).await);
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v.get(v.len() / 2).copied()
    };
    println!(
        "failover (kill -9 leader → first write on a survivor), {rounds} rounds: drover {:?} (median {:?}); etcd {:?} (median {:?})",
        dro,
        median(&mut dro.clone()),
        etc,
        median(&mut etc.clone())
    );
}
