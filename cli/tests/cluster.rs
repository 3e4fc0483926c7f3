//! A replicated control plane of real `drover server` processes on
//! loopback: writes through any member, a leader killed with SIGKILL,
//! a member restarted and caught up, members added and the leader removed.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Server, ok};
use serde_json::Value;

/// Free loopback ports for the members' Raft transports.
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

fn peers(ports: &[u16]) -> String {
    ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}=127.0.0.1:{p}", i + 1))
        .collect::<Vec<_>>()
        .join(",")
}

fn member(root: &Path, id: usize, port: u16, peers: &str, join: bool) -> Server {
    let id_s = id.to_string();
    let peer = format!("127.0.0.1:{port}");
    // Small snapshots, so a member that missed writes catches up from one.
    let mut flags = vec![
        "--id",
        &id_s,
        "--peer-listen",
        &peer,
        "--peers",
        peers,
        "--snapshot-threshold",
        "100",
    ];
    if join {
        flags.push("--join");
    }
    Server::start_with(&root.join(format!("m{id}")), &flags)
}

/// `drover cluster status -o json` through `via`.
fn status(via: &Server) -> Option<Value> {
    let o = via.drover(&["cluster", "status", "-o", "json"]);
    o.status
        .success()
        .then(|| serde_json::from_slice(&o.stdout).ok())
        .flatten()
}

/// Waits until `via` reports a leader among `candidates`; returns its id.
fn leader(via: &Server, candidates: &[u64], timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = status(via)
            && let Some(l) = s["leader"].as_u64()
            && candidates.contains(&l)
            && s["role"] == "Leader"
        {
            return l;
        }
        assert!(
            Instant::now() < deadline,
            "no leader among {candidates:?} within {timeout:?}: {:?}",
            status(via)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn config_map(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  v: \"{value}\"\n")
}

/// The value of configmap `name` as `via` serves it (`stale`: from its own state).
fn read(via: &Server, name: &str, stale: bool) -> Option<String> {
    let mut args = vec!["get", "configmap", name, "-o", "json"];
    if stale {
        args.extend(["--consistency", "stale"]);
    }
    let o = via.drover(&args);
    let v: Value = serde_json::from_slice(&o.stdout).ok()?;
    v["data"]["v"].as_str().map(str::to_string)
}

/// Lines of a child's pipe, as they come.
fn watch_lines(out: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn eventually(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_killed_leader_loses_no_acknowledged_write_and_its_member_catches_up() {
    let root = tempfile::tempdir().expect("tempdir");
    let ports = free_ports(3);
    let p = peers(&ports);
    let mut members: Vec<Server> = (0..3)
        .map(|i| member(root.path(), i + 1, ports[i], &p, false))
        .collect();
    let first = leader(&members[0], &[1, 2, 3], Duration::from_secs(20));
    let follower = (first as usize) % 3; // index of a member that is not the leader
    // Writes through a follower are forwarded; every member then serves them.
    for i in 0..20 {
        ok(members[follower].drover_stdin(
            &["apply", "-f", "-"],
            Some(&config_map(&format!("c{i}"), &i.to_string())),
        ));
    }
    for m in &members {
        assert_eq!(
            read(m, "c19", false).as_deref(),
            Some("19"),
            "linearizable read"
        );
    }
    // kill -9 the leader; the others elect a new one and keep every write.
    members[first as usize - 1].kill9();
    let survivors: Vec<u64> = (1..=3).filter(|i| *i != first).collect();
    let via = &members[survivors[0] as usize - 1];
    let second = leader(via, &survivors, Duration::from_secs(20));
    assert_ne!(second, first);
    for i in 0..20 {
        assert_eq!(
            read(via, &format!("c{i}"), false),
            Some(i.to_string()),
            "c{i} lost"
        );
    }
    // A watch on the other survivor sees writes made through the leader.
    let watcher_id = survivors[1] as usize;
    let mut watch = std::process::Command::new(common::drover_bin())
        .args([
            "get",
            "configmaps",
            "-w",
            "--server",
            &members[watcher_id - 1].url,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn watch");
    let lines = watch_lines(watch.stdout.take().expect("stdout"));
    // Many writes while the old leader is down: more than a snapshot's worth.
    let batch: String = (0..250)
        .map(|i| format!("{}---\n", config_map(&format!("m{i}"), &i.to_string())))
        .collect();
    ok(via.drover_stdin(&["apply", "-f", "-"], Some(&batch)));
    ok(via.drover_stdin(&["apply", "-f", "-"], Some(&config_map("after", "x"))));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the follower's watch shows configmap/after");
        if line.starts_with("after ") {
            break;
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    // The killed member restarts from its data dir and catches up (from a
    // snapshot: the log it missed was compacted).
    let idx = first as usize - 1;
    members[idx] = member(root.path(), first as usize, ports[idx], &p, false);
    eventually(
        "the restarted member serves the writes it missed",
        Duration::from_secs(30),
        || {
            read(&members[idx], "after", true).as_deref() == Some("x")
                && read(&members[idx], "m249", true).as_deref() == Some("249")
        },
    );
    let s = status(&members[idx]).expect("status");
    assert_eq!(s["members"].as_array().map(Vec::len), Some(3), "{s}");
    assert!(
        s["snapshot_index"].as_u64() > Some(100),
        "no snapshot taken: {s}"
    );
}

#[test]
fn members_join_and_the_leader_can_be_removed() {
    let root = tempfile::tempdir().expect("tempdir");
    let ports = free_ports(4);
    let p3 = peers(&ports[..3]);
    let mut members: Vec<Server> = (0..3)
        .map(|i| member(root.path(), i + 1, ports[i], &p3, false))
        .collect();
    let first = leader(&members[0], &[1, 2, 3], Duration::from_secs(20));
    ok(members[0].drover_stdin(&["apply", "-f", "-"], Some(&config_map("before", "1"))));
    // Add member 4, then start it empty with --join: it catches up.
    let four = format!("4=127.0.0.1:{}", ports[3]);
    ok(members[1].drover(&["cluster", "add-member", &four]));
    members.push(member(root.path(), 4, ports[3], &p3, true));
    eventually("member 4 holds the data", Duration::from_secs(20), || {
        read(&members[3], "before", false).as_deref() == Some("1")
    });
    // Remove the leader: another member takes over and writes go on.
    ok(members[3].drover(&["cluster", "remove-member", &first.to_string()]));
    let rest: Vec<u64> = (1..=4).filter(|i| *i != first).collect();
    let second = leader(&members[3], &rest, Duration::from_secs(20));
    assert_ne!(second, first);
    ok(members[3].drover_stdin(&["apply", "-f", "-"], Some(&config_map("after", "2"))));
    let s = status(&members[3]).expect("status");
    let ids: Vec<u64> = s["members"]
        .as_array()
        .expect("members")
        .iter()
        .filter_map(|m| m["id"].as_u64())
        .collect();
    assert_eq!(ids.len(), 3, "{s}");
    assert!(!ids.contains(&first), "{s}");
    // Bad requests are refused with the field named.
    let e = common::fails(members[3].drover(&["cluster", "add-member", "5=nowhere"]));
    assert!(e.contains("HOST:PORT"), "{e}");
}

#[test]
fn a_single_server_reports_itself_and_refuses_membership_changes() {
    let root = tempfile::tempdir().expect("tempdir");
    let s = Server::start(root.path());
    let out = ok(s.drover(&["cluster", "status"]));
    assert!(out.contains("single member"), "{out}");
    let e = common::fails(s.drover(&["cluster", "add-member", "2=127.0.0.1:1"]));
    assert!(e.contains("single member"), "{e}");
    let o = std::process::Command::new(common::drover_bin())
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--peers",
            "1=127.0.0.1:1",
            "--data-dir",
        ])
        .arg(root.path().join("other"))
        .output()
        .expect("run drover server");
    let e = common::fails(o);
    assert!(e.contains("--id"), "{e}");
    // Safe default: no TLS yet, so only loopback without --insecure.
    let o = std::process::Command::new(common::drover_bin())
        .args(["server", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(root.path().join("open"))
        .output()
        .expect("run drover server");
    let e = common::fails(o);
    assert!(e.contains("--insecure") && e.contains("0.0.0.0"), "{e}");
    let mut open = std::process::Command::new(common::drover_bin())
        .args([
            "server",
            "--listen",
            "0.0.0.0:0",
            "--insecure",
            "--data-dir",
        ])
        .arg(root.path().join("open"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run drover server");
    let lines = watch_lines(open.stderr.take().expect("stderr"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let listening = loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the --insecure server starts");
        if line.contains("listening on") {
            break line;
        }
    };
    let _ = open.kill();
    let _ = open.wait();
    assert!(listening.contains("0.0.0.0"), "{listening}");
}

#[test]
fn a_damaged_raft_log_refuses_to_start_with_the_path_named() {
    let root = tempfile::tempdir().expect("tempdir");
    let ports = free_ports(1);
    let p = peers(&ports);
    let m = member(root.path(), 1, ports[0], &p, false);
    ok(m.drover_stdin(&["apply", "-f", "-"], Some(&config_map("c", "1"))));
    drop(m);
    // Overwrite the raft log's files with garbage, as a bad disk would.
    let raft = root.path().join("m1").join("raft");
    let mut damaged = 0;
    for entry in walk(&raft) {
        let len = std::fs::metadata(&entry).map(|m| m.len()).unwrap_or(0);
        if len > 0 {
            std::fs::write(&entry, vec![0xa5u8; len as usize]).expect("damage");
            damaged += 1;
        }
    }
    assert!(damaged > 0, "no raft files under {}", raft.display());
    let o = std::process::Command::new(common::drover_bin())
        .args([
            "server",
            "--listen",
            "127.0.0.1:0",
            "--id",
            "1",
            "--peers",
            &p,
        ])
        .args([
            "--peer-listen",
            &format!("127.0.0.1:{}", ports[0]),
            "--data-dir",
        ])
        .arg(root.path().join("m1"))
        .env("RUST_LOG", "off")
        .output()
        .expect("run drover server");
    let e = common::fails(o);
    assert!(e.contains("raft"), "the error names the raft dir: {e}");
    assert!(!e.contains("panicked"), "{e}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn web(image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 20\n  minReadySeconds: 2\n  selector:\n    matchLabels: {{app: web}}\n  strategy:\n    type: RollingUpdate\n    rollingUpdate: {{maxSurge: 25%, maxUnavailable: 0}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: c\n        image: {image}\n"
    )
}

/// (name, image) of each live pod of web.
type PodImages = Vec<(String, String)>;
/// (name, replicas) of each ReplicaSet.
type SetSizes = Vec<(String, i64)>;

/// The pods of web with their images, and the ReplicaSets with their replicas.
fn web_state(via: &Server) -> (PodImages, SetSizes) {
    let pods: Value = serde_json::from_str(&ok(
        via.drover(&["get", "pods", "-l", "app=web", "-o", "json"])
    ))
    .expect("pods json");
    let pods = pods["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| {
            (
                p["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                p["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    let rs: Value =
        serde_json::from_str(&ok(via.drover(&["get", "rs", "-o", "json"]))).expect("rs json");
    let rs = rs["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                r["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                r["spec"]["replicas"].as_i64().unwrap_or(0),
            )
        })
        .collect();
    (pods, rs)
}

#[test]
fn a_rollout_interrupted_by_a_leader_kill_finishes_on_the_new_leader() {
    let root = tempfile::tempdir().expect("tempdir");
    let ports = free_ports(3);
    let p = peers(&ports);
    let mut members: Vec<Server> = (0..3)
        .map(|i| member(root.path(), i + 1, ports[i], &p, false))
        .collect();
    let first = leader(&members[0], &[1, 2, 3], Duration::from_secs(20));
    // Clients and the hollow nodes talk to a member that stays up.
    let stay = first as usize % 3;
    let _agent = common::AgentProcess::start(
        &members[stay].url,
        &["--hollow", "--count", "4", "--heartbeat-seconds", "1"],
        "4 hollow nodes registered",
        Duration::from_secs(60),
    );
    let via = &members[stay];
    ok(via.drover_stdin(&["apply", "-f", "-"], Some(&web("example/busybox:1"))));
    ok(via.drover(&["rollout", "status", "deploy/web", "--timeout", "90s"]));
    ok(via.drover_stdin(&["apply", "-f", "-"], Some(&web("example/busybox:2"))));
    // Mid-rollout: some new pods exist, old ones still serve.
    eventually("the rollout has started", Duration::from_secs(30), || {
        let (pods, _) = web_state(via);
        let new = pods
            .iter()
            .filter(|(_, i)| i == "example/busybox:2")
            .count();
        new > 0 && new < 20
    });
    members[first as usize - 1].kill9();
    let survivors: Vec<u64> = (1..=3).filter(|i| *i != first).collect();
    let second = leader(&members[stay], &survivors, Duration::from_secs(20));
    assert_ne!(second, first);
    // The new leader's controllers finish it: exactly 20 pods, all new.
    ok(members[stay].drover(&["rollout", "status", "deploy/web", "--timeout", "120s"]));
    eventually("old pods are gone", Duration::from_secs(30), || {
        let (pods, _) = web_state(&members[stay]);
        pods.len() == 20 && pods.iter().all(|(_, i)| i == "example/busybox:2")
    });
    let (pods, rs) = web_state(&members[stay]);
    let mut names: Vec<_> = pods.iter().map(|(n, _)| n.clone()).collect();
    names.dedup();
    assert_eq!(names.len(), 20, "no duplicate pods: {pods:?}");
    assert_eq!(rs.len(), 2, "{rs:?}");
    assert_eq!(
        rs.iter().map(|(_, r)| r).sum::<i64>(),
        20,
        "old set scaled to 0: {rs:?}"
    );
}
