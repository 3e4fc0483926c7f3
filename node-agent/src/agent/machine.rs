//! Facts about this machine for its Node: CPUs, memory, kernel, OS, host
//! name, and the address the API server sees it by.

use std::collections::BTreeMap;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs, UdpSocket};

use drover_proto::types::node::{NodeAddress, NodeSystemInfo};

use super::node::NodeFacts;

/// Pods per node, as Kubernetes' default.
pub const DEFAULT_MAX_PODS: i64 = 110;

/// Parses `MemTotal:  16318412 kB` from `/proc/meminfo`, in bytes.
pub fn parse_mem_total(meminfo: &str) -> Option<i64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: i64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// `PRETTY_NAME` from `/etc/os-release`.
pub fn parse_os_release(text: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
}

/// The local address used to reach `server` (`host:port`): the address
/// the control plane and other nodes can reach this node at. No packet is
/// sent: connecting a UDP socket only picks a route.
pub fn address_towards(server: &str) -> IpAddr {
    let target = server.to_socket_addrs().ok().and_then(|mut a| a.next());
    target
        .and_then(|t| {
            let bind: IpAddr = if t.is_ipv4() {
                Ipv4Addr::UNSPECIFIED.into()
            } else {
                std::net::Ipv6Addr::UNSPECIFIED.into()
            };
            let s = UdpSocket::bind((bind, 0)).ok()?;
            s.connect(t).ok()?;
            s.local_addr().ok().map(|a| a.ip())
        })
        .unwrap_or(Ipv4Addr::LOCALHOST.into())
}

/// The host name, for the default node name.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// This machine's facts; `server` is the API's `host:port`.
pub fn machine_facts(name: &str, server: &str) -> NodeFacts {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let memory = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| parse_mem_total(&t))
        .unwrap_or(0);
    let uname = nix::sys::utsname::uname().ok();
    let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
        uname
            .as_ref()
            .map(|u| f(u).to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let ip = address_towards(server);
    let cpu_millis = i64::try_from(cpus).unwrap_or(1).saturating_mul(1000);
    NodeFacts {
        name: name.to_string(),
        cpu_millis,
        memory_bytes: memory,
        max_pods: DEFAULT_MAX_PODS,
        // Kept for the system and the agent, as kubelet's defaults reserve.
        reserved_cpu_millis: 100.min(cpu_millis / 10),
        reserved_memory_bytes: (256 << 20).min(memory / 10),
        addresses: vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: hostname(),
            },
        ],
        runtimes: vec!["container".into()],
        node_info: NodeSystemInfo {
            machine_id: fs::read_to_string("/etc/machine-id")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
            kernel_version: field(|u| u.release()),
            os_image: fs::read_to_string("/etc/os-release")
                .ok()
                .and_then(|t| parse_os_release(&t))
                .unwrap_or_default(),
            architecture: std::env::consts::ARCH.into(),
            operating_system: field(|u| u.sysname()).to_lowercase(),
            agent_version: drover_proto::VERSION.into(),
        },
        labels: BTreeMap::new(),
        pod_cidr: None,
        agent_port: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let meminfo = "MemTotal:       16318412 kB\nMemFree:         1000 kB\n";
        assert_eq!(parse_mem_total(meminfo), Some(16318412 * 1024));
        assert_eq!(parse_mem_total("nothing"), None);
        let os = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n";
        assert_eq!(
            parse_os_release(os).as_deref(),
            Some("Debian GNU/Linux 13 (trixie)")
        );
    }

    #[test]
    fn loopback_server_is_reached_from_loopback() {
        assert_eq!(
            address_towards("127.0.0.1:7700"),
            IpAddr::from(Ipv4Addr::LOCALHOST)
        );
    }
}
