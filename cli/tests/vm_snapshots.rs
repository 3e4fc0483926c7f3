//! VM snapshots end to end, as root, with the real server, agent and
//! QEMU: `drover vm snapshot` saves a serving VM pod and resumes it; a pod
//! with `spec.vmSnapshot` starts from it on its own pod IP, serving the
//! token the first VM made at boot (its memory came along), sooner than a
//! boot; a corrupt, missing or mismatched snapshot is a Waiting reason.
//! Skips (saying why) where VM pods cannot run.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::curl;
use common::vm::{BOOT, VmNode, delete_all, monitors_under, skip_reason, vm_pod};
use common::{eventually, ok};
use drover_proto::Resource;
use drover_proto::client::Client;
use drover_proto::types::Pod;
use drover_proto::types::pod::RestartPolicy;

/// httpd serving a token made at boot: a booted VM makes another one.
const SERVE_TOKEN: &[&str] = &[
    "sh",
    "-c",
    "cat /proc/sys/kernel/random/uuid > /www/token; exec busybox httpd -f -p 8080 -h /www",
];

fn serving_pod(name: &str, snapshot: Option<&str>) -> Pod {
    let mut pod = vm_pod(name, SERVE_TOKEN, RestartPolicy::Always);
    pod.spec.vm_snapshot = snapshot.map(str::to_string);
    pod
}

/// Creates `pod` and returns its IP and how long until it served `/token`.
fn create_and_time(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    pod: &Pod,
) -> (String, String, Duration) {
    let started = Instant::now();
    rt.block_on(client.create(&pod.to_object()))
        .expect("create");
    let ip = eventually(BOOT, || {
        let p: Pod = rt.block_on(client.get_as("default", pod.name())).ok()?;
        p.status?.pod_ip
    });
    let token = eventually(BOOT, || curl(&format!("http://{ip}:8080/token")));
    (ip, token.trim().to_string(), started.elapsed())
}

fn waiting_reason(rt: &tokio::runtime::Runtime, client: &Client, name: &str) -> (String, String) {
    eventually(Duration::from_secs(60), || {
        let p: Pod = rt.block_on(client.get_as("default", name)).ok()?;
        let w = p
            .status?
            .container_statuses
            .first()?
            .state
            .clone()?
            .waiting?;
        Some((w.reason?, w.message?))
    })
}

#[test]
fn snapshots_restore_on_a_new_address_and_bad_ones_are_refused() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped snapshots_restore_on_a_new_address_and_bad_ones_are_refused: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (host, rt, client) = VmNode::running(dir.path());
    let server = &host.server;

    let (ip, token, boot) = create_and_time(&rt, &client, &serving_pod("web", None));

    let out = ok(server.drover(&["vm", "snapshot", "web", "--name", "warm"]));
    assert!(out.contains("snapshot warm taken"), "{out}");
    let snapshots = host.data.join("vm/snapshots");
    assert!(snapshots.join("warm/state").is_file(), "{out}");
    // The source VM runs on after its snapshot.
    assert_eq!(
        curl(&format!("http://{ip}:8080/token")).map(|t| t.trim().to_string()),
        Some(token.clone())
    );
    // Names are unique per node.
    let again = server.drover(&["vm", "snapshot", "web", "--name", "warm"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let (ip2, token2, restore) =
        create_and_time(&rt, &client, &serving_pod("web-restored", Some("warm")));
    assert_ne!(ip2, ip, "the restored VM has an address of its own");
    assert_eq!(token2, token, "the restored VM has the first VM's memory");
    assert!(
        curl(&format!("http://{ip}:8080/token")).is_some(),
        "both VMs serve side by side"
    );
    let logs = ok(server.drover(&["logs", "web-restored"]));
    assert!(logs.contains("drover-init: readdressed"), "{logs}");
    assert!(!logs.contains("drover-init: started"), "it booted: {logs}");
    eprintln!("boot to serving {boot:?}, restore to serving {restore:?}");
    assert!(
        restore < boot,
        "restore {restore:?} not faster than boot {boot:?}"
    );

    // A corrupt state file, a missing snapshot and another machine shape
    // are refused before QEMU runs.
    let broken = snapshots.join("broken");
    ok_status(
        Command::new("cp")
            .arg("-r")
            .arg(snapshots.join("warm"))
            .arg(&broken),
    );
    let state = broken.join("state");
    let mut bytes = std::fs::read(&state).expect("state");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&state, bytes).expect("write");
    let mut big = serving_pod("big", Some("warm"));
    big.spec.containers[0].resources.limits.insert(
        "memory".into(),
        drover_proto::Quantity::parse("512Mi").expect("qty"),
    );
    for (pod, reason, says) in [
        (
            serving_pod("corrupt", Some("broken")),
            "SnapshotCorrupt",
            "digest",
        ),
        (
            serving_pod("missing", Some("nope")),
            "SnapshotNotFound",
            "not found",
        ),
        (
            big,
            "SnapshotMismatch",
            "memory 256 MiB (the pod asks 512 MiB)",
        ),
    ] {
        rt.block_on(client.create(&pod.to_object()))
            .expect("create");
        let (got, message) = waiting_reason(&rt, &client, pod.name());
        assert_eq!(got, reason, "{}: {message}", pod.name());
        assert!(message.contains(says), "{}: {message}", pod.name());
    }

    let names = ["web", "web-restored", "corrupt", "missing", "big"];
    delete_all(&rt, &client, &names);
    let data_arg = host.data.to_str().expect("utf-8");
    assert_eq!(
        monitors_under(data_arg),
        Vec::<String>::new(),
        "monitors left"
    );
    let taps = Command::new("ip")
        .args(["-o", "link", "show", "master", &host.net.bridge])
        .output()
        .expect("ip");
    let taps = String::from_utf8_lossy(&taps.stdout);
    assert!(!taps.contains("tap"), "taps left: {taps}");
    assert!(curl(&format!("http://{ip2}:8080/token")).is_none());
}

fn ok_status(cmd: &mut Command) {
    assert!(cmd.status().is_ok_and(|s| s.success()), "{cmd:?} failed");
}
