//! VM pods end to end, as root, with the real server and agent: a
//! `runtime: vm` pod from the busybox image boots under the node's engine
//! (QEMU microvm here, emulated where KVM cannot boot Linux), gets a pod
//! IP on the node bridge, serves HTTP, has its console in `drover logs`,
//! survives an agent restart; a VM whose command exits 3 is reported as 3;
//! deleting them leaves no tap, monitor process or files. Skips (saying
//! why) without root, QEMU, the guest kernel or /dev/net/tun.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::pod_net::PodNet;
use common::{AgentProcess, Server, eventually, ok};
use drover_proto::client::{Client, DeleteOptions};
use drover_proto::types::pod::{Container, RestartPolicy, Runtime};
use drover_proto::types::{Node, Pod};
use drover_proto::{Kind, Resource};

/// TCG boots take seconds, more on a busy machine.
const BOOT: Duration = Duration::from_secs(120);

fn kernel() -> PathBuf {
    std::env::var_os("DROVER_VM_KERNEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/drover/kernel/vmlinuz"))
}

fn skip_reason() -> Option<String> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        return Some("the real agent needs root".into());
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("/bin/busybox missing (apt-get install busybox-static)".into());
    }
    if Command::new("nft").arg("--version").output().is_err() {
        return Some("nft missing (apt-get install nftables)".into());
    }
    if Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_err()
    {
        return Some("qemu-system-x86_64 missing (apt-get install qemu-system-x86)".into());
    }
    if !kernel().exists() {
        return Some(format!(
            "no guest kernel at {} (drover vm install-kernel, or set DROVER_VM_KERNEL)",
            kernel().display()
        ));
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun missing".into());
    }
    None
}

fn vm_pod(name: &str, command: &[&str], restart: RestartPolicy) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = name.into();
    pod.metadata.namespace = Some("default".into());
    pod.spec.node_name = Some("n1".into());
    pod.spec.runtime = Runtime::Vm;
    pod.spec.restart_policy = restart;
    pod.spec.termination_grace_period_seconds = 10;
    pod.spec.containers = vec![Container {
        name: "c".into(),
        image: "example/busybox:1".into(),
        command: command.iter().map(|s| s.to_string()).collect(),
        ..Container::default()
    }];
    pod
}

fn curl(url: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "2", url])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Monitor processes whose command line mentions `needle`.
fn monitors_under(needle: &str) -> Vec<String> {
    let mut found = vec![];
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains("qemu-system") && text.contains(needle) {
            found.push(text);
        }
    }
    found
}

/// Kills the test's monitors and removes its taps even when the test
/// fails midway (declared after the PodNet, so it runs before the bridge
/// goes).
struct VmCleanup {
    data_dir: String,
    bridge: String,
}

impl Drop for VmCleanup {
    fn drop(&mut self) {
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let text = String::from_utf8_lossy(&cmdline);
            if text.contains("qemu-system") && text.contains(&self.data_dir) {
                let _ = Command::new("kill").arg("-9").arg(e.file_name()).status();
            }
        }
        let out = Command::new("ip")
            .args(["-o", "link", "show", "master", &self.bridge])
            .output();
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        for line in text.unwrap_or_default().lines() {
            if let Some(name) = line.split(": ").nth(1).and_then(|n| n.split('@').next())
                && name.starts_with("tap")
            {
                let _ = Command::new("ip").args(["link", "del", name]).status();
            }
        }
    }
}

#[test]
fn vm_pods_serve_log_report_exits_and_clean_up() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped vm_pods_serve_log_report_exits_and_clean_up: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = dir.path().join("layout");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/images/build-busybox.sh");
    let built = Command::new("sh").arg(&script).arg(&layout).status();
    assert!(built.is_ok_and(|s| s.success()), "build-busybox.sh failed");
    let data = dir.path().join("agent");
    let data_arg = data.to_str().expect("utf-8");
    let server = Server::start(&dir.path().join("server"));
    ok(server.drover(&[
        "image",
        "import",
        layout.to_str().expect("utf-8"),
        "--data-dir",
        data_arg,
    ]));
    let net = PodNet::unique();
    let [b, bridge, c, cidr] = net.args();
    let _cleanup = VmCleanup {
        data_dir: data_arg.to_string(),
        bridge: net.bridge.clone(),
    };
    let kernel = kernel();
    let kernel_arg = kernel.to_str().expect("utf-8");
    let args = [
        "--node-name",
        "n1",
        "--data-dir",
        data_arg,
        "--logs-listen",
        "127.0.0.1:0",
        "--vm-kernel",
        kernel_arg,
        b,
        bridge,
        c,
        cidr,
    ];
    let mut agent = AgentProcess::start(
        &server.url,
        &args,
        "registered node n1",
        Duration::from_secs(30),
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let client = rt.block_on(Client::connect(&server.url)).expect("connect");

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
    agent.kill9();
    drop(agent);
    let agent = AgentProcess::start(
        &server.url,
        &args,
        "registered node n1",
        Duration::from_secs(30),
    );
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
    for name in ["web-vm", "exit-3", "tiny"] {
        rt.block_on(client.delete(Kind::Pod, "default", name, &DeleteOptions::default()))
            .expect("delete");
    }
    eventually(BOOT, || {
        let left = rt
            .block_on(client.list(Kind::Pod, &Default::default()))
            .ok()?;
        left.0.is_empty().then_some(())
    });
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
    drop(agent);
}
