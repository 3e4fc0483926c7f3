//! What makes a real node part of the cluster network beyond its own pods:
//! its InternalIP, the service proxy, the DNS server and routes to the
//! other nodes' pods.

use drover_proto::client::Client;

use super::informer;
use super::real::AgentConfig;

/// Serves DNS on the bridge's gateway address (port 53), for the pods.
fn start_dns(
    gateway: std::net::Ipv4Addr,
    services: informer::Cache<drover_proto::types::service::Service>,
) {
    let socket = std::net::UdpSocket::bind((gateway, 53))
        .and_then(|s| s.set_nonblocking(true).map(|()| s))
        .and_then(tokio::net::UdpSocket::from_std);
    let socket = match socket {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("dns: cannot listen on {gateway}:53: {e}; pods get no cluster DNS");
            return;
        }
    };
    let upstream = std::fs::read_to_string("/etc/resolv.conf")
        .ok()
        .and_then(|c| crate::network::dns::upstream_from(&c, gateway.into()));
    tracing::info!("dns: serving cluster names on {gateway}:53 (upstream {upstream:?})");
    tokio::spawn(crate::network::dns::serve(socket, services, upstream));
}

/// Replaces the InternalIP in `addresses` (or adds one).
pub fn set_internal_ip(
    addresses: &mut Vec<drover_proto::types::node::NodeAddress>,
    ip: std::net::Ipv4Addr,
) {
    addresses.retain(|a| a.type_ != "InternalIP");
    addresses.insert(
        0,
        drover_proto::types::node::NodeAddress {
            type_: "InternalIP".into(),
            address: ip.to_string(),
        },
    );
}

/// Starts the service proxy (ClusterIP/NodePort rules) with its activator
/// (returned, for the metrics), the DNS server and the routes to other
/// nodes' pods.
pub fn start(
    client: &Client,
    cfg: &AgentConfig,
    bridge: &str,
    node_ip: std::net::Ipv4Addr,
    cidr: crate::network::Cidr,
    cluster: crate::network::Cidr,
    serving: &crate::network::services::Serving,
) -> Option<crate::network::services::Activator> {
    use crate::network::services::{Activator, ProxyConfig, WhenNoEndpoints};
    let mut node_ips = vec![node_ip];
    if !node_ip.is_loopback() {
        node_ips.push(std::net::Ipv4Addr::LOCALHOST);
    }
    let proxy = ProxyConfig {
        table: crate::network::services::table(bridge),
        node_ips,
        local_cidr: cidr,
        cluster_cidr: cluster,
        when_no_endpoints: WhenNoEndpoints::Reject,
    };
    // On the bridge's gateway address: local to the node, reachable from
    // its pods and, after DNAT, from any host whose traffic enters here.
    let activator = match cfg.activator_timeout {
        Some(timeout) => {
            match Activator::start(std::net::SocketAddrV4::new(cidr.gateway(), 0), timeout) {
                Ok(a) => {
                    tracing::info!(
                        "activator: holding connections to services with no endpoints on {} (up to {timeout:?})",
                        a.addr()
                    );
                    Some(a)
                }
                Err(e) => {
                    tracing::warn!(
                        "activator: cannot listen on {}: {e}; services with no endpoints refuse connections",
                        cidr.gateway()
                    );
                    None
                }
            }
        }
        None => None,
    };
    let proxy = ProxyConfig {
        when_no_endpoints: activator.as_ref().map_or(WhenNoEndpoints::Reject, |a| {
            WhenNoEndpoints::Hold {
                activator: a.addr(),
            }
        }),
        ..proxy
    };
    let services = informer::Cache::default();
    tokio::spawn(crate::network::services::run(
        client.clone(),
        proxy,
        serving.clone(),
        activator.clone(),
        services.clone(),
        cfg.data_dir.join("network"),
    ));
    start_dns(cidr.gateway(), services);
    tokio::spawn(crate::network::routes::run(
        client.clone(),
        cfg.node_name.clone(),
        node_ip,
        cidr,
    ));
    activator
}
