//! The service ports a node balances, from Services and their Endpoints
//! (pure): one entry per service port with its virtual address, node port
//! and ready backends.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use drover_proto::Resource;
use drover_proto::types::pod::Protocol;
use drover_proto::types::service::{Endpoints, SCALE_FROM_ZERO_ANNOTATION, Service, ServiceType};

/// One port of one Service, as the node balances it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortRule {
    /// `namespace/name/port` (the port's name, or its number when unnamed):
    /// names the nftables chain and counter.
    pub id: String,
    pub cluster_ip: Ipv4Addr,
    pub protocol: Protocol,
    pub port: u16,
    /// Set for `type: NodePort` (and LoadBalancer) services.
    pub node_port: Option<u16>,
    /// Ready backends, sorted and without duplicates.
    pub endpoints: Vec<Backend>,
    /// The Service opted in to scale from zero
    /// ([`SCALE_FROM_ZERO_ANNOTATION`]): with no endpoint, hold
    /// connections for the activator rather than refuse them.
    pub scale_from_zero: bool,
}

/// A ready pod address and the port the service port resolves to on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Backend {
    pub ip: Ipv4Addr,
    pub port: u16,
}

/// The rules for `services`, with backends from `endpoints` (matched by
/// namespace and name). Services without a usable cluster IP (headless,
/// not yet assigned) are left out; ports out of range are skipped.
pub fn service_rules(services: &[Service], endpoints: &[Endpoints]) -> Vec<ServicePortRule> {
    let by_key: HashMap<(&str, &str), &Endpoints> = endpoints
        .iter()
        .map(|e| ((e.namespace(), e.name()), e))
        .collect();
    let mut rules = Vec::new();
    for svc in services {
        let Some(cluster_ip) = svc
            .spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
        else {
            continue;
        };
        let exposes_node_ports = matches!(
            svc.spec.type_,
            ServiceType::NodePort | ServiceType::LoadBalancer
        );
        let eps = by_key.get(&(svc.namespace(), svc.name()));
        let scale_from_zero = svc
            .metadata
            .annotations
            .get(SCALE_FROM_ZERO_ANNOTATION)
            .is_some_and(|v| v == "true");
        for sp in &svc.spec.ports {
            let Ok(port) = u16::try_from(sp.port) else {
                continue;
            };
            let port_id = match sp.name.as_deref() {
                Some(n) if !n.is_empty() => n.to_string(),
                _ => sp.port.to_string(),
            };
            let node_port = sp
                .node_port
                .filter(|_| exposes_node_ports)
                .and_then(|p| u16::try_from(p).ok())
                .filter(|p| *p != 0);
            let mut backends = BTreeSet::new();
            for subset in eps.iter().flat_map(|e| &e.subsets) {
                // The Endpoints controller names each endpoint port after
                // its service port (named target ports already resolved).
                let Some(target) = subset.ports.iter().find(|p| {
                    p.protocol == sp.protocol
                        && p.name.as_deref().unwrap_or("") == sp.name.as_deref().unwrap_or("")
                }) else {
                    continue;
                };
                let Ok(target) = u16::try_from(target.port) else {
                    continue;
                };
                for addr in &subset.addresses {
                    if let Ok(ip) = addr.ip.parse::<Ipv4Addr>() {
                        backends.insert(Backend { ip, port: target });
                    }
                }
            }
            rules.push(ServicePortRule {
                id: format!("{}/{}/{port_id}", svc.namespace(), svc.name()),
                cluster_ip,
                protocol: sp.protocol,
                port,
                node_port,
                endpoints: backends.into_iter().collect(),
                scale_from_zero,
            });
        }
    }
    rules.sort_by(|a, b| a.id.cmp(&b.id));
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_proto::types::service::{
        EndpointAddress, EndpointPort, EndpointSubset, ServicePort,
    };

    pub(crate) fn service(name: &str, ip: &str, ports: Vec<ServicePort>) -> Service {
        let mut s = Service::default();
        s.metadata.name = name.into();
        s.metadata.namespace = Some("default".into());
        s.spec.cluster_ip = Some(ip.into());
        s.spec.ports = ports;
        s
    }

    fn port(name: Option<&str>, port: i32) -> ServicePort {
        ServicePort {
            name: name.map(str::to_string),
            port,
            ..ServicePort::default()
        }
    }

    /// (ports by name, ready addresses, not-ready addresses)
    type Subset<'a> = (Vec<(Option<&'a str>, i32)>, Vec<&'a str>, Vec<&'a str>);

    fn endpoints(name: &str, subsets: Vec<Subset>) -> Endpoints {
        let addr = |ip: &&str| EndpointAddress {
            ip: ip.to_string(),
            ..EndpointAddress::default()
        };
        let mut e = Endpoints::default();
        e.metadata.name = name.into();
        e.metadata.namespace = Some("default".into());
        e.subsets = subsets
            .into_iter()
            .map(|(ports, ready, not_ready)| EndpointSubset {
                addresses: ready.iter().map(addr).collect(),
                not_ready_addresses: not_ready.iter().map(addr).collect(),
                ports: ports
                    .into_iter()
                    .map(|(n, p)| EndpointPort {
                        name: n.map(str::to_string),
                        port: p,
                        protocol: Protocol::Tcp,
                    })
                    .collect(),
            })
            .collect();
        e
    }

    #[test]
    fn ready_addresses_of_matching_ports_across_subsets() {
        let svc = service(
            "web",
            "10.96.0.10",
            vec![port(Some("http"), 80), port(Some("admin"), 81)],
        );
        // Two subsets: a named target port resolved to 8080 on some pods and
        // 9090 on another; a not-ready pod stays out.
        let eps = endpoints(
            "web",
            vec![
                (
                    vec![(Some("http"), 8080), (Some("admin"), 8081)],
                    vec!["10.88.1.3", "10.88.1.2"],
                    vec!["10.88.1.9"],
                ),
                (vec![(Some("http"), 9090)], vec!["10.88.2.2"], vec![]),
            ],
        );
        let rules = service_rules(&[svc], &[eps]);
        assert_eq!(rules.len(), 2);
        assert_eq!(rules[0].id, "default/web/admin");
        assert_eq!(rules[0].endpoints.len(), 2);
        assert_eq!(rules[1].id, "default/web/http");
        let http: Vec<String> = rules[1]
            .endpoints
            .iter()
            .map(|b| format!("{}:{}", b.ip, b.port))
            .collect();
        assert_eq!(http, ["10.88.1.2:8080", "10.88.1.3:8080", "10.88.2.2:9090"]);
        assert_eq!(rules[1].node_port, None);
    }

    #[test]
    fn unnamed_ports_node_ports_and_services_left_out() {
        let mut np = service(
            "np",
            "10.96.0.11",
            vec![ServicePort {
                node_port: Some(30080),
                ..port(None, 80)
            }],
        );
        np.spec.type_ = ServiceType::NodePort;
        let mut cluster_only = service(
            "c",
            "10.96.0.12",
            vec![ServicePort {
                node_port: Some(30081),
                ..port(None, 80)
            }],
        );
        cluster_only.spec.type_ = ServiceType::ClusterIP;
        cluster_only
            .metadata
            .annotations
            .insert(SCALE_FROM_ZERO_ANNOTATION.into(), "true".into());
        let headless = service("h", "None", vec![port(None, 80)]);
        let unassigned = {
            let mut s = service("u", "", vec![port(None, 80)]);
            s.spec.cluster_ip = None;
            s
        };
        let eps = endpoints("np", vec![(vec![(None, 8080)], vec!["10.88.1.2"], vec![])]);
        let rules = service_rules(&[np, cluster_only, headless, unassigned], &[eps]);
        let ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["default/c/80", "default/np/80"]);
        assert_eq!(
            rules[0].node_port, None,
            "ClusterIP services get no node port"
        );
        assert!(
            rules[0].endpoints.is_empty(),
            "no Endpoints object: no backends"
        );
        assert!(rules[0].scale_from_zero && !rules[1].scale_from_zero);
        assert_eq!(rules[1].node_port, Some(30080));
        assert_eq!(
            rules[1].endpoints,
            [Backend {
                ip: Ipv4Addr::new(10, 88, 1, 2),
                port: 8080
            }]
        );
    }
}
