//! Routes to the other nodes' pods (host-gw): for every other node with a
//! pod CIDR and an InternalIP, `PODCIDR via INTERNALIP`, kept in step with
//! the Nodes the agent watches. Nodes must share a link (one L2 segment);
//! a route whose gateway is not on a link here is refused by the kernel
//! and reported.

pub mod sync;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use drover_proto::types::Node;

use super::Cidr;
use crate::agent::hollow::HOLLOW_LABEL;

pub use sync::{remove_all, run};

/// The routing protocol number our routes carry, so they can be told from
/// everyone else's (`ip route show proto 78`).
pub const ROUTE_PROTOCOL: u8 = 78;

/// A node's InternalIP, if it has a usable IPv4 one.
pub fn internal_ip(node: &Node) -> Option<Ipv4Addr> {
    node.status
        .as_ref()?
        .addresses
        .iter()
        .find(|a| a.type_ == "InternalIP")?
        .address
        .parse()
        .ok()
}

/// The routes this node wants: other nodes' pod CIDRs via their addresses.
/// Left out: this node, hollow nodes (nothing to reach), nodes at this
/// node's own address or on loopback (agents sharing a host: their bridges
/// are local already), and CIDRs that overlap `own`.
pub fn desired_routes(
    nodes: &[Node],
    self_name: &str,
    self_ip: Ipv4Addr,
    own: Cidr,
) -> BTreeMap<Cidr, Ipv4Addr> {
    let mut routes = BTreeMap::new();
    for node in nodes {
        if node.metadata.name == self_name || node.metadata.labels.contains_key(HOLLOW_LABEL) {
            continue;
        }
        let Some(cidr) = node
            .spec
            .pod_cidr
            .as_deref()
            .and_then(|c| Cidr::parse_range(c).ok())
        else {
            continue;
        };
        let Some(ip) = internal_ip(node) else {
            continue;
        };
        if ip == self_ip || ip.is_loopback() || ip.is_unspecified() {
            continue;
        }
        if cidr.contains(own.network) || own.contains(cidr.network) {
            continue;
        }
        routes.insert(cidr, ip);
    }
    routes
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_proto::types::node::{NodeAddress, NodeStatus};

    fn node(name: &str, cidr: Option<&str>, ip: &str) -> Node {
        let mut n = Node::default();
        n.metadata.name = name.into();
        n.spec.pod_cidr = cidr.map(str::to_string);
        n.status = Some(NodeStatus {
            addresses: vec![
                NodeAddress {
                    type_: "Hostname".into(),
                    address: name.into(),
                },
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: ip.into(),
                },
            ],
            ..NodeStatus::default()
        });
        n
    }

    #[test]
    fn routes_to_every_other_reachable_node() {
        let own = Cidr::parse("10.88.1.0/24").unwrap();
        let me = Ipv4Addr::new(192, 168, 1, 10);
        let mut hollow = node("hollow-0", Some("10.64.0.0/24"), "172.16.0.1");
        hollow
            .metadata
            .labels
            .insert(HOLLOW_LABEL.into(), "true".into());
        let nodes = [
            node("a", Some("10.88.1.0/24"), "192.168.1.10"),
            node("b", Some("10.88.2.0/24"), "192.168.1.11"),
            node("c", Some("10.88.3.0/24"), "192.168.1.12"),
            node("no-cidr", None, "192.168.1.13"),
            node("no-ip", Some("10.88.5.0/24"), "not an address"),
            node("same-host", Some("10.88.6.0/24"), "192.168.1.10"),
            node("loop", Some("10.88.7.0/24"), "127.0.0.1"),
            node("overlap", Some("10.88.0.0/16"), "192.168.1.14"),
            hollow,
        ];
        let routes = desired_routes(&nodes, "a", me, own);
        let got: Vec<String> = routes
            .iter()
            .map(|(c, ip)| format!("{c} via {ip}"))
            .collect();
        assert_eq!(
            got,
            [
                "10.88.2.0/24 via 192.168.1.11",
                "10.88.3.0/24 via 192.168.1.12"
            ]
        );
    }
}
