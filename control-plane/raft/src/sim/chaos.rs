//! Seeded chaos: partitions, cuts, crashes and restarts under a stream of
//! proposals; afterwards every member holds the same list, and every
//! acknowledged command exactly once.

use std::collections::BTreeSet;

use super::{Reply, Sim};

fn run_seed(seed: u64) {
    let mut sim = Sim::with_config(5, seed, |c| {
        c.snapshot_threshold = 25;
        c.compaction_margin = 5;
    });
    sim.drop_per_mille = 50;
    sim.max_delay = 2;
    let mut pending: Vec<(Vec<u8>, Reply)> = Vec::new();
    let mut acked: Vec<Vec<u8>> = Vec::new();
    let mut down: BTreeSet<u64> = BTreeSet::new();
    let mut next = 0u64;
    for round in 0..400u64 {
        match sim.rand() % 100 {
            0..=2 => {
                let id = 1 + sim.rand() % 5;
                sim.isolate(id);
            }
            3..=5 => {
                let (a, b) = (1 + sim.rand() % 5, 1 + sim.rand() % 5);
                if a != b {
                    sim.cut(a, b);
                }
            }
            6..=9 => sim.heal_all(),
            10..=11 if down.len() < 2 => {
                let id = 1 + sim.rand() % 5;
                if down.insert(id) {
                    sim.crash(id);
                }
            }
            12..=15 => {
                if let Some(&id) = down.iter().next() {
                    down.remove(&id);
                    sim.start(id, None);
                }
            }
            _ => {}
        }
        // A proposal every other round, on whoever claims to lead.
        if round % 2 == 0
            && let Some(&leader) = sim.leaders().first()
        {
            let cmd = format!("s{seed}-c{next}").into_bytes();
            next += 1;
            let rx = sim.propose(leader, &cmd);
            pending.push((cmd, rx));
        }
        sim.tick();
        pending.retain_mut(|(cmd, rx)| match rx.try_recv() {
            Ok(Ok(_)) => {
                acked.push(cmd.clone());
                false
            }
            Ok(Err(_)) | Err(tokio::sync::oneshot::error::TryRecvError::Closed) => false,
            Err(tokio::sync::oneshot::error::TryRecvError::Empty) => true,
        });
    }
    sim.heal_all();
    sim.drop_per_mille = 0;
    sim.max_delay = 0;
    for id in down {
        sim.start(id, None);
    }
    sim.wait_leader();
    assert!(
        sim.wait_converged(&[1, 2, 3, 4, 5]),
        "seed {seed}: no convergence"
    );
    let lists = sim.lists();
    let reference = lists.get(&1).cloned().unwrap_or_default();
    for (id, list) in &lists {
        assert_eq!(list, &reference, "seed {seed}: member {id} differs");
    }
    for cmd in &acked {
        let n = reference.iter().filter(|c| *c == cmd).count();
        assert_eq!(
            n,
            1,
            "seed {seed}: acknowledged {:?} present {n} times",
            String::from_utf8_lossy(cmd)
        );
    }
    let unique: BTreeSet<&Vec<u8>> = reference.iter().collect();
    assert_eq!(
        unique.len(),
        reference.len(),
        "seed {seed}: a command applied twice"
    );
    assert!(
        acked.len() > 20,
        "seed {seed}: too little progress ({} acked)",
        acked.len()
    );
}

/// Three seeds by default (each fsyncs a lot); `DROVER_RAFT_CHAOS_SEEDS=N` runs N.
#[test]
fn chaos_keeps_acknowledged_writes_exactly_once() {
    let seeds = std::env::var("DROVER_RAFT_CHAOS_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3u64);
    for seed in 100..100 + seeds {
        run_seed(seed);
    }
}
