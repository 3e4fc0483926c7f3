//! Proposals/s and latency on a 3-member in-process cluster with real sled fsync,
//! at 1, 16 and 256 concurrent proposers, plus leader failover time.
//!
//! `cargo bench -p drover-raft --bench propose` (env: BENCH_SECS, default 5;
//! FAILOVER_TRIALS, default 7; SNAPSHOT_THRESHOLD, default RaftConfig's). Data lives in a temp dir on the real disk.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Member, bootstrap_members, config, propose_anywhere, start_member, wait_leader};
use drover_raft::{LocalNetwork, RaftConfig, Startup};
use hdrhistogram::Histogram;

const PAYLOAD: usize = 256;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn bench_config(id: u64) -> RaftConfig {
    let mut cfg = config(id, RaftConfig::new(id).tick_interval);
    cfg.snapshot_threshold = env_u64("SNAPSHOT_THRESHOLD", cfg.snapshot_threshold);
    cfg
}

async fn throughput(leader: &Member, clients: usize, secs: u64) {
    let handle = leader.handle.clone();
    // Warm-up, untimed.
    for _ in 0..50 {
        handle.propose(vec![7u8; PAYLOAD]).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let h = handle.clone();
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new(3).unwrap();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let mut cmd = vec![0u8; PAYLOAD];
                cmd[..8].copy_from_slice(&(c as u64).to_be_bytes());
                cmd[8..16].copy_from_slice(&n.to_be_bytes());
                let t = Instant::now();
                h.propose(cmd).await.unwrap();
                hist.record(t.elapsed().as_micros() as u64).unwrap();
                n += 1;
            }
            hist
        }));
    }
    let mut hist = Histogram::<u64>::new(3).unwrap();
    for t in tasks {
        hist.add(t.await.unwrap()).unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "clients {clients:>4}: {:>8.0} writes/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} writes)",
        hist.len() as f64 / elapsed,
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
        hist.len()
    );
}

async fn failover(net: &LocalNetwork, dir: &std::path::Path, members: &mut [Member], trials: u64) {
    let mut times = Vec::new();
    for _ in 0..trials {
        let all: Vec<&Member> = members.iter().collect();
        let leader = wait_leader(&all, Duration::from_secs(10)).await;
        let idx = members
            .iter()
            .position(|m| m.handle.id() == leader)
            .unwrap();
        members[idx].handle.shutdown().await;
        net.unregister(leader);
        let killed = Instant::now();
        let rest: Vec<&Member> = members.iter().filter(|m| m.handle.id() != leader).collect();
        propose_anywhere(&rest, vec![1u8; PAYLOAD], Duration::from_secs(20))
            .await
            .unwrap();
        times.push(killed.elapsed());
        // Bring the killed member back from its data dir.
        if let Some(t) = members[idx].thread.take() {
            let _ = t.join();
        }
        members[idx] = start_member(net, dir, bench_config(leader), Startup::Restart);
        let all: Vec<&Member> = members.iter().collect();
        let _ = wait_leader(&all, Duration::from_secs(10)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    times.sort();
    let ms: Vec<String> = times
        .iter()
        .map(|t| format!("{:.0}", t.as_secs_f64() * 1000.0))
        .collect();
    println!(
        "failover (leader killed -> next write acknowledged): median {:.0} ms over {} trials [{}]",
        times[times.len() / 2].as_secs_f64() * 1000.0,
        times.len(),
        ms.join(", ")
    );
}

fn main() {
    let secs = env_u64("BENCH_SECS", 5);
    let trials = env_u64("FAILOVER_TRIALS", 7);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let net = LocalNetwork::new();
        let mut members: Vec<Member> = (1..=3)
            .map(|id| start_member(&net, dir.path(), bench_config(id), Startup::Bootstrap(bootstrap_members(3))))
            .collect();
        let all: Vec<&Member> = members.iter().collect();
        let leader = wait_leader(&all, Duration::from_secs(10)).await;
        let leader = members.iter().find(|m| m.handle.id() == leader).unwrap();
        println!("drover-raft: 3 members in one process, sled fsync per Ready, {PAYLOAD}-byte commands, {secs}s per level");
        for clients in [1usize, 16, 256] {
            throughput(leader, clients, secs).await;
        }
        failover(&net, dir.path(), &mut members, trials).await;
    });
}
