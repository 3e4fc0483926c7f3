//! A pod network of the test's own: a bridge named after this process and a
//! /24 that nothing on the host routes yet.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

/// Prefixes (`10.X.Y`) handed out by this process and not yet dropped: the
/// agents of parallel tests create their bridges only later.
static CLAIMED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
static NEXT: AtomicU32 = AtomicU32::new(0);

/// The bridge and NAT tables are removed on drop.
pub struct PodNet {
    pub bridge: String,
    pub cidr: String,
}

impl PodNet {
    /// A bridge left by a killed run still routes its /24: a test that
    /// reused it would send its pods' traffic there. So bridges of dead
    /// test processes are removed first, and the /24 is one no address or
    /// route on the host falls in.
    pub fn unique() -> PodNet {
        remove_bridges_of_dead_processes();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let used = host_prefixes();
        let mut claimed = CLAIMED.lock().unwrap_or_else(|p| p.into_inner());
        let claimed = claimed.get_or_insert_with(HashSet::new);
        let start = (pid % 100) * 250 + n * 37;
        let prefix = (0..25_000u32)
            .map(|i| {
                let k = (start + i) % 25_000;
                format!("10.{}.{}", 100 + k / 250, k % 250)
            })
            .find(|p| !used.contains(p) && !claimed.contains(p))
            .unwrap_or_else(|| panic!("no free 10.100-199.X.0/24 left for a pod network"));
        claimed.insert(prefix.clone());
        PodNet {
            bridge: format!("dt{pid}x{n}"),
            cidr: format!("{prefix}.0/24"),
        }
    }

    /// `drover agent` flags for this network.
    pub fn args(&self) -> [&str; 4] {
        ["--bridge", &self.bridge, "--pod-cidr", &self.cidr]
    }
}

impl Drop for PodNet {
    fn drop(&mut self) {
        remove_bridge(&self.bridge);
        let prefix = self.cidr.trim_end_matches(".0/24");
        if let Some(claimed) = CLAIMED.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            claimed.remove(prefix);
        }
    }
}

/// The bridge and its outbound NAT and service proxy tables.
fn remove_bridge(bridge: &str) {
    let _ = Command::new("ip")
        .args(["link", "del", bridge])
        .stderr(Stdio::null())
        .status();
    for table in [format!("drover_{bridge}"), format!("drover_svc_{bridge}")] {
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &table])
            .stderr(Stdio::null())
            .status();
    }
}

/// `dtPIDxN` bridges whose process is gone (a run killed before its drops).
fn remove_bridges_of_dead_processes() {
    let links = ip(&["-o", "link", "show", "type", "bridge"]);
    for line in links.lines() {
        let Some(name) = line.split(": ").nth(1) else {
            continue;
        };
        let pid = name
            .strip_prefix("dt")
            .and_then(|rest| rest.split_once('x'))
            .and_then(|(pid, n)| n.parse::<u32>().ok().and(pid.parse::<u32>().ok()));
        if let Some(pid) = pid
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        {
            remove_bridge(name);
        }
    }
}

/// Every `10.X.Y` that an address or route of the host falls in.
fn host_prefixes() -> HashSet<String> {
    let text = ip(&["-4", "-o", "addr"]) + &ip(&["-4", "route"]);
    text.split_whitespace()
        .filter_map(|word| word.split('/').next()?.parse::<Ipv4Addr>().ok())
        .map(|a| {
            let [a, b, c, _] = a.octets();
            format!("{a}.{b}.{c}")
        })
        .collect()
}

fn ip(args: &[&str]) -> String {
    Command::new("ip")
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}
