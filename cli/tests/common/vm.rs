//! What VM pod tests share: the reasons to skip, a server and agent with
//! the busybox image and a pod network of their own, VM pods, curl, and
//! the cleanup of monitors and taps a failed test would leave.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use drover_proto::Kind;
use drover_proto::client::{Client, DeleteOptions};
use drover_proto::types::Pod;
use drover_proto::types::pod::{Container, RestartPolicy, Runtime};

use super::pod_net::PodNet;
use super::{AgentProcess, Server, ok};

/// TCG boots take seconds, more on a busy machine.
pub const BOOT: Duration = Duration::from_secs(120);

pub fn kernel() -> PathBuf {
    std::env::var_os("DROVER_VM_KERNEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/drover/kernel/vmlinuz"))
}

/// Why VM pods cannot run here, if they cannot.
pub fn skip_reason() -> Option<String> {
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

/// A `runtime: vm` pod of the busybox image on node n1.
pub fn vm_pod(name: &str, command: &[&str], restart: RestartPolicy) -> Pod {
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

/// Deletes pods `names` of namespace default and waits until no pod is left.
pub fn delete_all(rt: &tokio::runtime::Runtime, client: &Client, names: &[&str]) {
    for name in names {
        rt.block_on(client.delete(Kind::Pod, "default", name, &DeleteOptions::default()))
            .expect("delete");
    }
    super::eventually(BOOT, || {
        let left = rt
            .block_on(client.list(Kind::Pod, &Default::default()))
            .ok()?;
        left.0.is_empty().then_some(())
    });
}

/// Monitor processes whose command line mentions `needle`.
pub fn monitors_under(needle: &str) -> Vec<String> {
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
pub struct VmCleanup {
    pub data_dir: String,
    pub bridge: String,
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

/// A server and the busybox image imported into agent data directory
/// `data`, with a pod network; [`VmNode::start_agent`] runs node n1.
/// Fields drop in order: the agent, the cleanup, then the network.
pub struct VmNode {
    pub agent: Option<AgentProcess>,
    pub cleanup: VmCleanup,
    pub net: PodNet,
    pub server: Server,
    pub data: PathBuf,
    args: Vec<String>,
}

impl VmNode {
    /// Builds the image under `dir`, starts the server, imports the image.
    pub fn prepare(dir: &Path) -> VmNode {
        let layout = super::build_busybox(dir);
        let data = dir.join("agent");
        let data_arg = data.to_str().expect("utf-8").to_string();
        let server = Server::start(&dir.join("server"));
        ok(server.drover(&[
            "image",
            "import",
            layout.to_str().expect("utf-8"),
            "--data-dir",
            &data_arg,
        ]));
        let net = PodNet::unique();
        let cleanup = VmCleanup {
            data_dir: data_arg.clone(),
            bridge: net.bridge.clone(),
        };
        let mut args: Vec<String> = [
            "--node-name",
            "n1",
            "--data-dir",
            &data_arg,
            "--logs-listen",
            "127.0.0.1:0",
            "--vm-kernel",
            kernel().to_str().expect("utf-8"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(net.args().iter().map(|s| s.to_string()));
        VmNode {
            agent: None,
            cleanup,
            net,
            server,
            data,
            args,
        }
    }

    /// [`VmNode::prepare`] with the agent running, an async runtime and
    /// a client of the server.
    pub fn running(dir: &Path) -> (VmNode, tokio::runtime::Runtime, Client) {
        let mut node = VmNode::prepare(dir);
        node.start_agent();
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let client = rt
            .block_on(Client::connect(&node.server.url))
            .expect("connect");
        (node, rt, client)
    }

    /// (Re)starts the agent of node n1.
    pub fn start_agent(&mut self) {
        self.agent = None;
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        self.agent = Some(AgentProcess::start(
            &self.server.url,
            &args,
            "registered node n1",
            Duration::from_secs(30),
        ));
    }
}
