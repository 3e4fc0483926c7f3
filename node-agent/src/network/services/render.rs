//! The node's service ruleset as one `nft -f` transaction (pure): ClusterIP
//! and NodePort DNAT to ready endpoints with random balancing, masquerade
//! where replies would otherwise bypass this node, reject when a service
//! has no ready endpoint, and a named counter per service port and per
//! endpoint.
//!
//! The table is flushed and refilled each time rather than deleted, so the
//! counters keep their values; chains and counters that are no longer
//! wanted are deleted in the same transaction.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4};

use drover_proto::types::pod::Protocol;

use super::model::{Backend, ServicePortRule};
use crate::network::Cidr;

/// The packet mark bit asking postrouting to masquerade.
pub const MASQUERADE_MARK: u32 = 0x0001_0000;

/// What the node does with a connection to a service port that has no ready
/// endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenNoEndpoints {
    /// Refuse at once: TCP reset, ICMP port unreachable for UDP/SCTP.
    #[default]
    Reject,
    /// Scale from zero: DNAT TCP connections of the Services that opted in
    /// to the agent's activator at this address, which holds them until an
    /// endpoint is ready (others are refused, as are UDP and SCTP: there is
    /// no connection to hold).
    Hold { activator: SocketAddrV4 },
}

/// What the ruleset is rendered for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The nftables table (family ip).
    pub table: String,
    /// Addresses NodePorts answer on (the node's InternalIP; 127.0.0.1).
    pub node_ips: Vec<Ipv4Addr>,
    /// This node's pod CIDR: a pod reaching a local endpoint through a
    /// service is masqueraded, or the reply would go straight back over the
    /// bridge, past the DNAT.
    pub local_cidr: Cidr,
    /// Every node's pods: traffic from outside it is masqueraded.
    pub cluster_cidr: Cidr,
    pub when_no_endpoints: WhenNoEndpoints,
}

/// The chains and counters the table holds now (see `existing`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Existing {
    /// Whether the table exists (if not, nothing to flush or delete).
    pub table: bool,
    pub chains: BTreeSet<String>,
    pub counters: BTreeSet<String>,
}

/// The table name for `bridge`.
pub fn table(bridge: &str) -> String {
    format!(
        "drover_svc_{}",
        bridge.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    )
}

/// The counter (and chain) of a service port.
pub fn service_counter(rule: &ServicePortRule) -> String {
    ident(&format!("svc/{}", rule.id))
}

/// The counter (and chain) of one endpoint of a service port.
pub fn endpoint_counter(rule: &ServicePortRule, b: &Backend) -> String {
    ident(&format!("ep/{}/{}/{}", rule.id, b.ip, b.port))
}

fn node_port_chain(rule: &ServicePortRule) -> String {
    ident(&format!("np/{}", rule.id))
}

/// nftables names stop at 255 bytes: longer ones keep a prefix and a hash.
fn ident(name: &str) -> String {
    const MAX: usize = 200;
    if name.len() <= MAX {
        return name.to_string();
    }
    // FNV-1a: stable across builds, so counters survive agent upgrades.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let mut cut = MAX - 17;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{hash:016x}", &name[..cut])
}

fn proto(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
        Protocol::Sctp => "sctp",
    }
}

fn reject(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "reject with tcp reset",
        Protocol::Udp | Protocol::Sctp => "reject",
    }
}

fn addr_set(ips: &[Ipv4Addr]) -> String {
    match ips {
        [one] => one.to_string(),
        many => format!(
            "{{ {} }}",
            many.iter()
                .map(Ipv4Addr::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The whole ruleset for `rules`, replacing what `existing` describes.
pub fn render(cfg: &ProxyConfig, rules: &[ServicePortRule], existing: &Existing) -> String {
    let t = &cfg.table;
    let mark = format!("meta mark set meta mark | {MASQUERADE_MARK:#x}");
    let mut chains: Vec<(String, Vec<String>)> = Vec::new();
    let mut counters: Vec<String> = Vec::new();
    let mut dispatch = Vec::new();
    let mut refuse = Vec::new();
    let node_ips = (!cfg.node_ips.is_empty()).then(|| addr_set(&cfg.node_ips));

    for rule in rules {
        let p = proto(rule.protocol);
        let vip = format!("ip daddr {} {p} dport {}", rule.cluster_ip, rule.port);
        let node_port = rule
            .node_port
            .zip(node_ips.as_ref())
            .map(|(np, ips)| format!("ip daddr {ips} {p} dport {np}"));
        if rule.endpoints.is_empty() {
            match cfg.when_no_endpoints {
                WhenNoEndpoints::Hold { activator }
                    if rule.protocol == Protocol::Tcp && rule.scale_from_zero =>
                {
                    // The activator finds the service again from the
                    // connection's original destination (SO_ORIGINAL_DST).
                    dispatch.push(format!("{vip} dnat to {activator}"));
                    if let Some(np) = &node_port {
                        dispatch.push(format!("{np} dnat to {activator}"));
                    }
                }
                WhenNoEndpoints::Reject | WhenNoEndpoints::Hold { .. } => {
                    refuse.push(format!("{vip} {}", reject(rule.protocol)));
                    if let Some(np) = &node_port {
                        refuse.push(format!("{np} {}", reject(rule.protocol)));
                    }
                }
            }
            continue;
        }
        let svc = service_counter(rule);
        dispatch.push(format!("{vip} goto {svc}"));
        if let Some(np) = &node_port {
            let chain = node_port_chain(rule);
            dispatch.push(format!("{np} goto {chain}"));
            // From outside: replies must come back through this node.
            chains.push((chain, vec![mark.clone(), format!("goto {svc}")]));
        }
        let mut body = vec![
            format!("ip saddr != {} {mark}", cfg.cluster_cidr),
            format!("counter name {svc}"),
        ];
        let eps: Vec<String> = rule
            .endpoints
            .iter()
            .map(|b| endpoint_counter(rule, b))
            .collect();
        match eps.as_slice() {
            [one] => body.push(format!("goto {one}")),
            many => body.push(format!(
                "numgen random mod {} vmap {{ {} }}",
                many.len(),
                many.iter()
                    .enumerate()
                    .map(|(i, c)| format!("{i} : goto {c}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
        counters.push(svc.clone());
        chains.push((svc, body));
        for (b, name) in rule.endpoints.iter().zip(eps) {
            let mut body = vec![format!("counter name {name}")];
            if cfg.local_cidr.contains(b.ip) {
                body.push(format!("ip saddr {} {mark}", cfg.local_cidr));
            }
            body.push(format!("meta l4proto {p} dnat to {}:{}", b.ip, b.port));
            counters.push(name.clone());
            chains.push((name, body));
        }
    }

    let hook = |spec: &str, rules: Vec<String>| (spec.to_string(), rules);
    let base = [
        (
            "prerouting",
            hook(
                "type nat hook prerouting priority dstnat; policy accept;",
                vec!["jump services".into()],
            ),
        ),
        (
            "output",
            hook(
                "type nat hook output priority -100; policy accept;",
                vec!["jump services".into()],
            ),
        ),
        (
            "postrouting",
            hook(
                "type nat hook postrouting priority srcnat; policy accept;",
                vec![format!(
                    "meta mark & {MASQUERADE_MARK:#x} == {MASQUERADE_MARK:#x} masquerade"
                )],
            ),
        ),
        // `ct state` also switches connection tracking on in a namespace
        // where nothing else did (NAT needs it).
        (
            "filter_input",
            hook(
                "type filter hook input priority -10; policy accept;",
                vec![
                    // route_localnet (NodePorts on 127.0.0.1) must not open
                    // the node's loopback services to its network: only
                    // replies reach 127/8 from outside `lo` (kube-proxy's
                    // CVE-2020-8558 rule).
                    "iifname != \"lo\" ip daddr 127.0.0.0/8 ct state != { established, related } drop".into(),
                    "ct state new jump no_endpoints".into(),
                ],
            ),
        ),
        (
            "filter_forward",
            hook(
                "type filter hook forward priority -10; policy accept;",
                vec!["ct state new jump no_endpoints".into()],
            ),
        ),
        (
            "filter_output",
            hook(
                "type filter hook output priority -10; policy accept;",
                vec!["ct state new jump no_endpoints".into()],
            ),
        ),
    ];
    let mut all: Vec<(String, Option<String>, Vec<String>)> = base
        .into_iter()
        .map(|(name, (spec, rules))| (name.to_string(), Some(spec), rules))
        .collect();
    all.push(("services".into(), None, dispatch));
    all.push(("no_endpoints".into(), None, refuse));
    all.extend(chains.into_iter().map(|(n, r)| (n, None, r)));

    let wanted_chains: BTreeSet<&str> = all.iter().map(|(n, _, _)| n.as_str()).collect();
    let wanted_counters: BTreeSet<&str> = counters.iter().map(String::as_str).collect();
    let mut out = String::new();
    let _ = writeln!(out, "table ip {t}");
    if existing.table {
        let _ = writeln!(out, "flush table ip {t}");
        for stale in existing
            .chains
            .iter()
            .filter(|c| !wanted_chains.contains(c.as_str()))
        {
            let _ = writeln!(out, "delete chain ip {t} {stale}");
        }
        for stale in existing
            .counters
            .iter()
            .filter(|c| !wanted_counters.contains(c.as_str()))
        {
            let _ = writeln!(out, "delete counter ip {t} {stale}");
        }
    } else {
        // Nothing known of what is there (none, or it could not be read):
        // start from an empty table rather than add to unknown rules.
        let _ = writeln!(out, "delete table ip {t}");
        let _ = writeln!(out, "table ip {t}");
    }

    let _ = writeln!(out, "table ip {t} {{");
    for c in &counters {
        let _ = writeln!(out, "\tcounter {c} {{ }}");
    }
    for (name, spec, rules) in &all {
        let _ = writeln!(out, "\tchain {name} {{");
        if let Some(spec) = spec {
            let _ = writeln!(out, "\t\t{spec}");
        }
        for r in rules {
            let _ = writeln!(out, "\t\t{r}");
        }
        let _ = writeln!(out, "\t}}");
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests;
