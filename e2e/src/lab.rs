//! A lab: one bridge in the root namespace and hosts hanging off it, each a
//! network namespace with a veth (`eth0` inside) and an address of the
//! lab's own /24.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::cmd::{run, run_ok, run_with_stdin};
use crate::faults::{self, Fault};

static NEXT_LAB: AtomicU32 = AtomicU32::new(0);

/// One end-to-end lab. Dropping it removes everything it made.
pub struct Lab {
    id: String,
    bridge: String,
    /// First three octets of the lab's /24 (10.213.X).
    prefix: String,
    state: Mutex<LabState>,
}

#[derive(Default)]
struct LabState {
    hosts: Vec<Host>,
    mounts: Vec<PathBuf>,
}

/// A namespaced host of a lab: cheap to clone, owned by the lab.
#[derive(Clone, Debug)]
pub struct Host {
    pub name: String,
    /// The network namespace (`ip netns exec NETNS …`).
    pub netns: String,
    /// The host's address on the lab bridge.
    pub ip: String,
}

impl Lab {
    /// Creates the lab's bridge and picks a /24 no interface here uses.
    pub fn new() -> Lab {
        let n = NEXT_LAB.fetch_add(1, Ordering::Relaxed);
        let id = format!("{:x}{n:x}", std::process::id() % 0xffff);
        let bridge = format!("dlb{id}");
        let prefix = free_prefix(std::process::id() + n);
        run_ok("ip", &["link", "add", &bridge, "type", "bridge"]);
        let lab = Lab {
            id,
            bridge,
            prefix,
            state: Mutex::new(LabState::default()),
        };
        run_ok(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}.1/24", lab.prefix),
                "dev",
                &lab.bridge,
            ],
        );
        run_ok("ip", &["link", "set", &lab.bridge, "up"]);
        lab
    }

    /// The lab's gateway address (the bridge, in the root namespace).
    pub fn gateway(&self) -> String {
        format!("{}.1", self.prefix)
    }

    /// Adds a host named `name` (a new network namespace on the bridge).
    pub fn add_host(&self, name: &str) -> Host {
        let mut state = self.lock();
        let index = state.hosts.len() + 2;
        let host = Host {
            name: name.to_string(),
            netns: format!("drover-e2e-{}-{name}", self.id),
            ip: format!("{}.{index}", self.prefix),
        };
        let outside = format!("dl{}h{index}", self.id);
        let inside = format!("dl{}p{index}", self.id);
        run_ok("ip", &["netns", "add", &host.netns]);
        // Recorded before the rest so a failure below still cleans it up.
        state.hosts.push(host.clone());
        drop(state);
        run_ok(
            "ip",
            &[
                "link", "add", &outside, "type", "veth", "peer", "name", &inside,
            ],
        );
        run_ok(
            "ip",
            &["link", "set", &outside, "master", &self.bridge, "up"],
        );
        run_ok("ip", &["link", "set", &inside, "netns", &host.netns]);
        host.ip_cmd(&["link", "set", &inside, "name", "eth0"]);
        host.ip_cmd(&["addr", "add", &format!("{}/24", host.ip), "dev", "eth0"]);
        host.ip_cmd(&["link", "set", "eth0", "up"]);
        host.ip_cmd(&["link", "set", "lo", "up"]);
        host.ip_cmd(&["route", "add", "default", "via", &self.gateway()]);
        host
    }

    /// Mounts a tmpfs of `size_mib` at `dir` (a data dir that fills up).
    pub fn small_disk(&self, dir: &Path, size_mib: u32) {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let size = format!("size={size_mib}m");
        let path = dir.to_string_lossy();
        run_ok("mount", &["-t", "tmpfs", "-o", &size, "tmpfs", &path]);
        self.lock().mounts.push(dir.to_path_buf());
    }

    /// Applies `fault` to `host` (replacing any fault it had).
    pub fn inject(&self, host: &Host, fault: &Fault) {
        let hosts = self.lock().hosts.clone();
        let ruleset = faults::ruleset(fault, &hosts);
        host.heal();
        run_with_stdin(
            "ip",
            &["netns", "exec", &host.netns, "nft", "-f", "-"],
            &ruleset,
        );
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LabState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

impl Host {
    /// Runs `ip ARGS` inside this host.
    pub fn ip_cmd(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.netns.as_str()];
        full.extend_from_slice(args);
        run_ok("ip", &full)
    }

    /// Runs a command inside this host and returns its output.
    pub fn exec(&self, program: &str, args: &[&str]) -> std::process::Output {
        let mut full = vec!["netns", "exec", self.netns.as_str(), program];
        full.extend_from_slice(args);
        run("ip", &full)
    }

    /// As [`Host::exec`], entering only the network namespace (the mounts,
    /// /sys and its cgroups included, stay the machine's).
    pub fn exec_net_only(&self, program: &str, args: &[&str]) -> std::process::Output {
        let ns = format!("--net=/run/netns/{}", self.netns);
        let mut full = vec![ns.as_str(), "--", program];
        full.extend_from_slice(args);
        run("nsenter", &full)
    }

    /// Removes every fault injected into this host.
    pub fn heal(&self) {
        let _ = self.exec("nft", &["delete", "table", "inet", faults::TABLE]);
    }

    /// Pids of every process whose network namespace is this host's.
    pub fn pids(&self) -> Vec<i32> {
        let out = run("ip", &["netns", "pids", &self.netns]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let state = std::mem::take(&mut *self.lock());
        for host in &state.hosts {
            for pid in host.pids() {
                // SAFETY: plain kill(2) on a pid we just listed.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        for host in &state.hosts {
            // Deleting the namespace destroys its veth end and so the pair.
            let _ = run("ip", &["netns", "del", &host.netns]);
        }
        for dir in &state.mounts {
            let _ = run("umount", &["-l", &dir.to_string_lossy()]);
        }
        let _ = run("ip", &["link", "del", &self.bridge]);
    }
}

/// A 10.213.X prefix that no interface on this machine has an address in.
fn free_prefix(seed: u32) -> String {
    let used = String::from_utf8_lossy(&run("ip", &["-4", "-o", "addr"]).stdout).into_owned();
    (0..250u32)
        .map(|i| format!("10.213.{}", (seed + i * 7) % 250 + 1))
        .find(|p| !used.contains(&format!(" {p}.")))
        .unwrap_or_else(|| panic!("no free 10.213.X.0/24 left for a lab"))
}
