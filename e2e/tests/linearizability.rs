//! Issue 9's linearizability check: on a 3-member control plane in lab
//! hosts, clients read, write and compare-and-set three ConfigMaps through
//! random members while a seeded nemesis kills, pauses and isolates
//! members. After healing, every member is read once more; each key's whole
//! history must be linearizable.
//!
//! CI runs two seeds; `DROVER_E2E_LONG=1` runs twenty, longer. A failing
//! seed replays with `DROVER_E2E_SEEDS=SEED[,SEED…]`.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use drover_e2e::control_plane::ControlPlane;
use drover_e2e::linearizability::clients::{self, Clients};
use drover_e2e::linearizability::{Entry, INITIAL, Op, Outcome, Verdict, check, nemesis};
use drover_e2e::{Lab, skip_unless_supported};

const KEYS: usize = 3;
const CLIENTS_PER_KEY: usize = 3;

#[test]
fn register_histories_stay_linearizable_under_random_member_faults() {
    let test = "linearizability";
    if skip_unless_supported(test) {
        return;
    }
    let long = std::env::var_os("DROVER_E2E_LONG").is_some();
    let (runs, run_for) = match long {
        true => (20, Duration::from_secs(30)),
        false => (2, Duration::from_secs(12)),
    };
    let seeds = seeds(runs);
    eprintln!("linearizability: seeds {seeds:?} (replay: DROVER_E2E_SEEDS=…)");
    let mut failures = Vec::new();
    for seed in seeds {
        let summary = run_one(seed, run_for);
        eprintln!("{summary}");
        if !summary.violations.is_empty() {
            failures.push(summary);
        }
    }
    assert!(
        failures.is_empty(),
        "non-linearizable histories: {failures:#?}"
    );
}

/// `DROVER_E2E_SEEDS`, else `runs` seeds from the clock (printed).
fn seeds(runs: u64) -> Vec<u64> {
    if let Ok(list) = std::env::var("DROVER_E2E_SEEDS") {
        return list
            .split(',')
            .map(|s| s.trim().parse().unwrap_or_else(|_| panic!("seed {s:?}")))
            .collect();
    }
    let base = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (0..runs)
        .map(|i| base.wrapping_mul(31).wrapping_add(i))
        .collect()
}

#[derive(Debug)]
struct Summary {
    seed: u64,
    ops: usize,
    ok: usize,
    cas_failed: usize,
    unknown: usize,
    faults: Vec<String>,
    check_time: Duration,
    violations: Vec<String>,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "linearizability seed {}: {} ops ({} ok, {} cas refused, {} unknown), {} faults, \
             checked in {:?}: {}\n  faults: {}",
            self.seed,
            self.ops,
            self.ok,
            self.cas_failed,
            self.unknown,
            self.faults.len(),
            self.check_time,
            match self.violations.is_empty() {
                true => "linearizable".to_string(),
                false => format!("VIOLATIONS\n  {}", self.violations.join("\n  ")),
            },
            self.faults.join("; ")
        )
    }
}

fn run_one(seed: u64, run_for: Duration) -> Summary {
    let root = std::env::temp_dir().join(format!("drover-e2e-lin-{}-{seed}", std::process::id()));
    let lab = Lab::new();
    let mut cp = ControlPlane::start(&lab, 3, &root);
    cp.wait_for_leader(None, Duration::from_secs(20));
    let apis: Vec<_> = cp.members.iter().map(|m| m.api()).collect();
    let keys: Vec<String> = (0..KEYS).map(|k| format!("lin-{seed}-{k}")).collect();
    if let Err(e) = clients::create_keys(&apis[0], &keys) {
        panic!("seed {seed}: {e}");
    }

    let plan = nemesis::schedule(seed, run_for, 3);
    let clock = Instant::now();
    let workers = Clients::start(&keys, CLIENTS_PER_KEY, &apis, seed, clock);
    let faults = nemesis::play(&mut cp, &lab, &plan, clock);
    let rest = run_for.saturating_sub(clock.elapsed());
    std::thread::sleep(rest);
    let logs = workers.stop();

    // Healed: every member answers a last read of every key, in the history.
    cp.wait_for_leader(None, Duration::from_secs(20));
    let mut histories: Vec<Vec<Entry>> = vec![Vec::new(); KEYS];
    for log in logs {
        let k = keys.iter().position(|key| *key == log.key).unwrap_or(0);
        histories[k].extend(log.entries);
    }
    let final_client = KEYS * CLIENTS_PER_KEY;
    for (k, key) in keys.iter().enumerate() {
        for (i, api) in apis.iter().enumerate() {
            let read = read_eventually(api, i as u64 + 1, key, final_client, clock);
            histories[k].push(read);
        }
    }

    let started = Instant::now();
    let mut violations = Vec::new();
    for (key, history) in keys.iter().zip(&histories) {
        match check(INITIAL, history) {
            Verdict::Linearizable => {}
            other => {
                let dump = dump_history(seed, key, history, &faults);
                violations.push(format!("{key}: {other}; history in {}", dump.display()));
            }
        }
    }
    let all: Vec<&Entry> = histories.iter().flatten().collect();
    let count = |f: &dyn Fn(&Entry) -> bool| all.iter().filter(|e| f(e)).count();
    let summary = Summary {
        seed,
        ops: all.len(),
        ok: count(&|e| matches!(e.outcome, Outcome::Ok | Outcome::Read(_))),
        cas_failed: count(&|e| e.outcome == Outcome::CasFailed),
        unknown: count(&|e| e.outcome == Outcome::Unknown),
        faults,
        check_time: started.elapsed(),
        violations,
    };
    // A run where the faults stopped every write would check nothing.
    let writes =
        count(&|e| matches!(e.op, Op::Write(_) | Op::Cas { .. }) && e.outcome == Outcome::Ok);
    assert!(
        writes >= 20,
        "seed {seed}: only {writes} acknowledged writes: {summary}"
    );
    drop(cp);
    drop(lab);
    let _ = std::fs::remove_dir_all(&root);
    summary
}

/// Writes a key's history in invocation order (and the faults) to a file
/// that outlives the run, for whoever debugs the violation.
fn dump_history(seed: u64, key: &str, history: &[Entry], faults: &[String]) -> std::path::PathBuf {
    let mut sorted: Vec<&Entry> = history.iter().collect();
    sorted.sort_by_key(|e| e.invoked);
    let mut text = format!("seed {seed}, key {key}\nfaults: {}\n", faults.join("; "));
    for e in sorted {
        text += &format!("{e}\n");
    }
    let path = std::env::temp_dir().join(format!("drover-linearizability-{seed}-{key}.txt"));
    if let Err(e) = std::fs::write(&path, text) {
        eprintln!("could not write {}: {e}", path.display());
    }
    path
}

/// The final read through `api`: retried until the member answers (it may
/// still be catching up after a restart).
fn read_eventually(
    api: &drover_e2e::pki::Api,
    id: u64,
    key: &str,
    client: usize,
    clock: Instant,
) -> Entry {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let entry = clients::read_entry(api, id, key, client, clock);
        if entry.outcome != Outcome::Unknown || Instant::now() > deadline {
            return entry;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
