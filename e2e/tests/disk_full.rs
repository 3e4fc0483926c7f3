//! Issue 9 scenario 9 on namespaced hosts: the disk under the Raft leader's
//! data dir fills up under a steady stream of writes. The full member stops
//! acknowledging, the other two elect a leader and go on; when space
//! returns the member is back (restarted by its supervisor, as systemd's
//! `Restart=always` would) and catches up. Jepsen-style check at the end.

use std::path::Path;
use std::time::{Duration, Instant};

use drover_e2e::cluster::TempDir;
use drover_e2e::control_plane::ControlPlane;
use drover_e2e::writer::{Writers, converged_views};
use drover_e2e::{Lab, eventually, run, skip_unless_supported};

/// Fills the file system holding `dir` until the kernel says it is full.
fn fill(dir: &Path) {
    let filler = dir.join("filler");
    // dd stops with ENOSPC, which is the point: its status is not success.
    let out = run(
        "dd",
        &["if=/dev/zero", &format!("of={}", filler.display()), "bs=1M"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("No space left"),
        "dd did not fill the disk: {stderr}"
    );
}

#[test]
fn a_member_with_a_full_disk_stops_acknowledging_and_recovers_when_space_returns() {
    let test = "disk_full";
    if skip_unless_supported(test) {
        return;
    }
    let root = std::env::temp_dir().join(format!("drover-e2e-{test}-{}", std::process::id()));
    // Dropped after the lab (which unmounts the small disks), also on failure.
    let _files = TempDir(root.clone());
    let lab = Lab::new();
    for id in 1..=3 {
        lab.small_disk(&root.join(format!("member-{id}")), 96);
    }
    let mut cp = ControlPlane::start(&lab, 3, &root);
    let leader = cp.wait_for_leader(None, Duration::from_secs(20));
    let apis: Vec<_> = cp.members.iter().map(|m| m.api()).collect();
    let writers = Writers::start("df", 8, apis);
    eventually("first writes", Duration::from_secs(20), || {
        (writers.acked() >= 100).then_some(())
    });

    let full_dir = cp.member(leader).data_dir.clone();
    let filled = Instant::now();
    fill(&full_dir);
    // It stops, saying why, rather than serving on without a log.
    let full = cp.member(leader);
    let process = full.process.as_mut().expect("the leader runs");
    process.wait_for_line(
        "no longer takes part in the cluster",
        Duration::from_secs(20),
    );
    eventually("the full member exits", Duration::from_secs(10), || {
        (!process.alive()).then_some(())
    });
    let next = cp.wait_for_leader(Some(leader), Duration::from_secs(20));
    let before = writers.acked();
    eventually(
        "writes go on without the full member",
        Duration::from_secs(20),
        || (writers.acked() > before + 100).then_some(()),
    );
    eprintln!(
        "disk of leader {leader} full → member {next} leads and writes flow after {:?}",
        filled.elapsed()
    );

    // Space returns; the supervisor's next restart succeeds.
    std::fs::remove_file(full_dir.join("filler")).expect("free the disk");
    cp.member(leader).start();
    let history = writers.stop();
    let views = converged_views(&cp.apis(), "df-", Duration::from_secs(60));
    let violations = history.check(&views);
    eprintln!("{} acknowledged writes", history.acked());
    assert_eq!(views.len(), 3, "every member answers the list");
    assert!(violations.is_empty(), "violations: {violations:#?}");
}
