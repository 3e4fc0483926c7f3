//! Issue 9 scenarios 2 and 3 on a 3-member control plane in lab hosts:
//! kill -9 of the leader under a steady stream of writes, and a leader
//! partitioned away from the majority. Jepsen-style check afterwards: every
//! acknowledged write is on every member at the same revision, nothing
//! refused or never-sent appears.

use std::time::{Duration, Instant};

use drover_e2e::control_plane::ControlPlane;
use drover_e2e::faults::Fault;
use drover_e2e::history::Outcome;
use drover_e2e::http::request;
use drover_e2e::writer::{Writers, converged_views};
use drover_e2e::{Lab, eventually, skip_unless_supported};

fn data_root(test: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("drover-e2e-{test}-{}", std::process::id()))
}

fn api_list(cp: &ControlPlane) -> Vec<drover_e2e::pki::Api> {
    cp.members.iter().map(|m| m.api()).collect()
}

#[test]
fn no_acknowledged_write_is_lost_when_the_leader_is_killed_repeatedly() {
    let test = "leader_kill";
    if skip_unless_supported(test) {
        return;
    }
    let root = data_root(test);
    let lab = Lab::new();
    let mut cp = ControlPlane::start(&lab, 3, &root);
    let mut leader = cp.wait_for_leader(None, Duration::from_secs(20));
    let writers = Writers::start("lk", 8, api_list(&cp));
    eventually("first writes", Duration::from_secs(20), || {
        (writers.acked() >= 100).then_some(())
    });
    let mut failovers = Vec::new();
    for round in 0..3 {
        let before = writers.acked();
        let killed_at = Instant::now();
        cp.member(leader).kill9();
        let next = cp.wait_for_leader(Some(leader), Duration::from_secs(20));
        eventually(
            &format!("writes resume (round {round})"),
            Duration::from_secs(20),
            || (writers.acked() > before + 20).then_some(()),
        );
        failovers.push(killed_at.elapsed());
        cp.member(leader).start();
        leader = next;
    }
    let history = writers.stop();
    let views = converged_views(&cp.apis(), "lk-", Duration::from_secs(30));
    let violations = history.check(&views);
    eprintln!(
        "{} acknowledged writes; failover (kill → writes flowing again): {failovers:?}",
        history.acked()
    );
    assert_eq!(views.len(), 3, "every member answers the list");
    assert!(violations.is_empty(), "violations: {violations:?}");

    // Whole-cluster restart from disk keeps everything.
    for m in &mut cp.members {
        m.kill9();
    }
    for m in &mut cp.members {
        m.start();
    }
    cp.wait_for_leader(None, Duration::from_secs(20));
    let after = converged_views(&cp.apis(), "lk-", Duration::from_secs(30));
    assert_eq!(after, views, "a whole-cluster restart changed the data");
    drop(cp);
    drop(lab);
    let _ = std::fs::remove_dir_all(&root);
}

#[test]
fn a_partitioned_leader_cannot_commit_and_everything_converges_on_heal() {
    let test = "leader_partition";
    if skip_unless_supported(test) {
        return;
    }
    let root = data_root(test);
    let lab = Lab::new();
    let mut cp = ControlPlane::start(&lab, 3, &root);
    let old = cp.wait_for_leader(None, Duration::from_secs(20));
    let writers = Writers::start("lp", 4, api_list(&cp));
    eventually("first writes", Duration::from_secs(20), || {
        (writers.acked() >= 50).then_some(())
    });
    let old_host = cp.member(old).host.clone();
    let old_api = cp.member(old).api();
    lab.inject(&old_host, &Fault::Isolated);

    // The majority elects a new leader and keeps committing.
    let new = cp.wait_for_leader(Some(old), Duration::from_secs(20));
    assert_ne!(new, old);
    let before = writers.acked();
    eventually("majority commits", Duration::from_secs(20), || {
        (writers.acked() > before + 50).then_some(())
    });

    // The isolated old leader must not acknowledge anything (no split brain).
    let mut minority = drover_e2e::history::History::default();
    for i in 0..5 {
        let name = format!("lp-minority-{i}");
        let body = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name}, "data": {"v": "x"}})
        .to_string();
        let path = "/api/v1/namespaces/default/configmaps";
        let outcome = match request(&old_api, "POST", path, Some(&body), Duration::from_secs(1)) {
            Ok(r) if r.status == 201 => Outcome::Acked(None),
            Ok(r) if (400..500).contains(&r.status) => Outcome::Refused,
            _ => Outcome::Unknown,
        };
        assert_ne!(
            outcome,
            Outcome::Acked(None),
            "the isolated old leader acknowledged {name}"
        );
        minority.record(&name, outcome);
    }
    old_host.heal();
    let history = writers.stop();
    let views = converged_views(&cp.apis(), "lp-", Duration::from_secs(30));
    let mut all = history;
    for (name, outcome) in minority.writes {
        all.record(&name, outcome);
    }
    assert_eq!(views.len(), 3, "every member answers after heal");
    let violations = all.check(&views);
    assert!(violations.is_empty(), "violations: {violations:?}");
    drop(cp);
    drop(lab);
    let _ = std::fs::remove_dir_all(&root);
}
