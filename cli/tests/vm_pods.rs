//! VM pods end to end, as root, with the real server and agent: a
//! `runtime: vm` pod from the busybox image boots under the node's engine
//! (QEMU microvm here, emulated where KVM cannot boot Linux), gets a pod
//! IP on the node bridge, serves HTTP, has its console in `drover logs`,
//! survives an agent restart; a VM whose command exits 3 is reported as 3;
//! deleting them leaves no tap, monitor process or files. Skips (saying
//! why) without root, QEMU, the guest kernel or /dev/net/tun.

mod common;

use std::process::Command;
use std::time::Duration;

use common::curl;
use common::vm::{BOOT, VmNode, delete_all, monitors_under, skip_reason, vm_pod};
use common::{eventually, ok};
use drover_proto::Resource;
use drover_proto::types::pod::RestartPolicy;
use drover_proto::types::{Node, Pod};

#[test]
fn vm_pods_serve_log_report_exits_and_clean_up() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped vm_pods_serve_log_report_exits_and_clean_up: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut host, rt, client) = VmNode::running(dir.path());
    let (server, net, data) = (&host.server, &host.net, host.data.clone());
    let data_arg = data.to_str().expect("utf-8");

    // The Node offers vm and says which engine runs it.
    let node: Node = rt.block_on(client.get_as("", "n1")).expect("node");
    let status = node.status.clone().unwrap_or_default();
    assert!(status.runtimes.contains(&"vm".to_string()), "{status:?}");
    assert!(
        matches!(status.vm_engine.as_deref(), Some("qemu" | "kvm")),
        "{status:?}"
    );
    let engine = node.metadata.labels.get("drover.io/vm-engine").cloned();
    assert!(
        engine
            .as_deref()
            .is_some_and(|e| e.starts_with("qemu") || e == "kvm"),
        "{engine:?}"
    );

    let httpd = ["busybox", "httpd", "-f", "-p", "8080", "-h", "/www"];
    let mut web = vm_pod("web-vm", &httpd, RestartPolicy::Always);
    // Probed from the node at the pod IP: Ready only once httpd answers.
    web.spec.containers[0].readiness_probe = Some(
        serde_json::from_value(
            serde_json::json!({"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1}),
        )
        .expect("probe"),
    );
    rt.block_on(client.create(&web.to_object()))
        .expect("create web-vm");
    let ip = eventually(BOOT, || {
        let p: Pod = rt.block_on(client.get_as("default", "web-vm")).ok()?;
        p.status.as_ref()?.pod_ip.clone().filter(|_| p.is_ready())
    });
    let prefix = net.cidr.trim_end_matches(".0/24");
    assert!(ip.starts_with(prefix), "{ip} is not from {}", net.cidr);
    let url = format!("http://{ip}:8080/");
    let page = eventually(BOOT, || curl(&url));
    assert!(page.contains("Hello from Drover"), "{page}");
    let logs = ok(server.drover(&["logs", "web-vm"]));
    assert!(logs.contains("drover-init: started"), "{logs}");

    // The VM runs under its shim: an agent restart leaves it serving and
    // the new agent adopts it.
    host.start_agent();
    let server = &host.server;
    assert!(curl(&url).is_some_and(|t| t.contains("Hello")));

    // A command's exit code comes back through drover-init's console
    // line, and restartPolicy boots the VM again.
    let three = vm_pod(
        "exit-3",
        &["sh", "-c", "echo bye; exit 3"],
        RestartPolicy::OnFailure,
    );
    rt.block_on(client.create(&three.to_object()))
        .expect("create exit-3");
    let terminated = eventually(BOOT, || {
        let p: Pod = rt.block_on(client.get_as("default", "exit-3")).ok()?;
        let s = p.status?.container_statuses.first()?.clone();
        (s.restart_count >= 1).then_some(())?;
        s.last_state?.terminated
    });
    assert_eq!(terminated.exit_code, 3, "{terminated:?}");
    assert_eq!(terminated.reason.as_deref(), Some("Error"));
    // The console of a run, with init's exit line (a restarted run's log
    // fills as it boots again: poll until one is complete).
    eventually(BOOT, || {
        let out = server.drover(&["logs", "exit-3"]);
        let logs = String::from_utf8_lossy(&out.stdout).into_owned();
        (logs.contains("bye") && logs.contains("drover-init: exit 3")).then_some(())
    });

    // Too little memory for a guest: a clear reason, nothing started.
    let mut tiny = vm_pod("tiny", &["true"], RestartPolicy::Never);
    tiny.spec.containers[0].resources.limits.insert(
        "memory".into(),
        drover_proto::Quantity::parse("32Mi").expect("qty"),
    );
    rt.block_on(client.create(&tiny.to_object()))
        .expect("create tiny");
    let waiting = eventually(Duration::from_secs(30), || {
        let p: Pod = rt.block_on(client.get_as("default", "tiny")).ok()?;
        let w = p
            .status?
            .container_statuses
            .first()?
            .state
            .clone()?
            .waiting?;
        w.message.is_some().then_some(w)
    });
    assert_eq!(
        waiting.reason.as_deref(),
        Some("CreateContainerConfigError"),
        "{waiting:?}"
    );
    assert!(
        waiting
            .message
            .as_deref()
            .unwrap_or("")
            .contains("too little"),
        "{waiting:?}"
    );

    // Deleting stops the VMs and removes taps, monitors and files.
    let uids: Vec<String> = ["web-vm", "exit-3", "tiny"]
        .iter()
        .map(|n| {
            let p: Pod = rt.block_on(client.get_as("default", n)).expect("get");
            p.metadata.uid.unwrap_or_default()
        })
        .collect();
    delete_all(&rt, &client, &["web-vm", "exit-3", "tiny"]);
    let links = Command::new("ip")
        .args(["-o", "link"])
        .output()
        .expect("ip");
    let links = String::from_utf8_lossy(&links.stdout);
    for uid in &uids {
        let id: String = uid
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(11)
            .collect();
        assert!(
            !links.contains(&format!("tap{id}")),
            "tap of {uid} left: {links}"
        );
        assert!(!data.join("pods").join(uid).exists(), "files of {uid} left");
    }
    assert_eq!(
        monitors_under(data_arg),
        Vec::<String>::new(),
        "monitors left"
    );
    assert!(curl(&url).is_none(), "the address still answers");
}
