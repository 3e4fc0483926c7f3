//! The Endpoints a Service should have, as a pure function of the Service
//! and the pods: ready pod addresses in `addresses`, the others in
//! `notReadyAddresses`, grouped by the ports they resolve to (a named
//! `targetPort` may resolve differently per pod, or not at all).

use std::collections::BTreeMap;
use std::sync::Arc;

use drover_proto::Resource;
use drover_proto::meta::{IntOrString, ObjectReference};
use drover_proto::types::Pod;
use drover_proto::types::pod::PodPhase;
use drover_proto::types::service::{
    EndpointAddress, EndpointPort, EndpointSubset, Service, ServicePort,
};

/// Whether a Service's selector (a non-empty set of equalities) selects `pod`.
pub fn selects(service: &Service, pod: &Pod) -> bool {
    let selector = &service.spec.selector;
    !selector.is_empty()
        && pod.namespace() == service.namespace()
        && selector
            .iter()
            .all(|(k, v)| pod.metadata.labels.get(k) == Some(v))
}

/// The pod port a service port sends to: the number, the port of the
/// container port so named (and of the same protocol), or the service's own
/// port when `targetPort` is unset. None when the name is not in the pod.
pub fn resolve_port(port: &ServicePort, pod: &Pod) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => pod
            .spec
            .containers
            .iter()
            .flat_map(|c| &c.ports)
            .find(|p| p.name.as_deref() == Some(name.as_str()) && p.protocol == port.protocol)
            .map(|p| p.container_port),
    }
}

/// The pod's address, if it has one an endpoint can use.
fn address(pod: &Pod) -> Option<EndpointAddress> {
    let ip = pod.status.as_ref()?.pod_ip.as_deref()?;
    ip.parse::<std::net::IpAddr>().ok()?;
    Some(EndpointAddress {
        ip: ip.to_string(),
        hostname: pod.spec.hostname.clone(),
        node_name: pod.spec.node_name.clone(),
        target_ref: Some(ObjectReference {
            kind: "Pod".into(),
            namespace: Some(pod.namespace().to_string()),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..ObjectReference::default()
        }),
    })
}

/// Whether a pod can serve at all: not terminating (it leaves the
/// endpoints before it is sent SIGTERM) and not finished.
fn serves(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().map(|s| s.phase).unwrap_or_default();
    pod.metadata.deletion_timestamp.is_none()
        && phase != PodPhase::Succeeded
        && phase != PodPhase::Failed
}

/// The subsets of the Endpoints of `service`, in a stable order.
pub fn desired_subsets(service: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let mut groups: BTreeMap<Vec<(String, i32, String)>, EndpointSubset> = BTreeMap::new();
    for pod in pods.iter().filter(|p| selects(service, p) && serves(p)) {
        let Some(addr) = address(pod) else { continue };
        let mut ports: Vec<EndpointPort> = service
            .spec
            .ports
            .iter()
            .filter_map(|sp| {
                Some(EndpointPort {
                    name: sp.name.clone(),
                    port: resolve_port(sp, pod)?,
                    protocol: sp.protocol,
                })
            })
            .collect();
        if ports.is_empty() && !service.spec.ports.is_empty() {
            // None of the service's ports exists on this pod.
            continue;
        }
        ports.sort_by(|a, b| (&a.name, a.port).cmp(&(&b.name, b.port)));
        let key = ports
            .iter()
            .map(|p| {
                let proto = serde_json::to_string(&p.protocol).unwrap_or_default();
                (p.name.clone().unwrap_or_default(), p.port, proto)
            })
            .collect();
        let subset = groups.entry(key).or_insert_with(|| EndpointSubset {
            ports,
            ..EndpointSubset::default()
        });
        if pod.is_ready() {
            subset.addresses.push(addr);
        } else {
            subset.not_ready_addresses.push(addr);
        }
    }
    let by_ip = |a: &EndpointAddress, b: &EndpointAddress| {
        let name = |x: &EndpointAddress| x.target_ref.as_ref().map(|r| r.name.clone());
        (&a.ip, name(a)).cmp(&(&b.ip, name(b)))
    };
    groups
        .into_values()
        .map(|mut s| {
            s.addresses.sort_by(by_ip);
            s.not_ready_addresses.sort_by(by_ip);
            s
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_proto::meta::Condition;
    use drover_proto::types::pod::{Container, ContainerPort, PodStatus, Protocol};

    fn service(ports: Vec<ServicePort>) -> Service {
        let mut s = Service::default();
        s.metadata.name = "web".into();
        s.spec.selector.insert("app".into(), "web".into());
        s.spec.ports = ports;
        s
    }

    fn port(name: &str, port: i32, target: Option<IntOrString>) -> ServicePort {
        ServicePort {
            name: Some(name.into()),
            port,
            target_port: target,
            ..ServicePort::default()
        }
    }

    fn pod(name: &str, ip: Option<&str>, ready: bool, named: &[(&str, i32)]) -> Arc<Pod> {
        let mut p = Pod::default();
        p.metadata.name = name.into();
        p.metadata.uid = Some(format!("uid-{name}"));
        p.metadata.labels.insert("app".into(), "web".into());
        p.spec.node_name = Some("n1".into());
        p.spec.containers = vec![Container {
            name: "c".into(),
            image: "x".into(),
            ports: named
                .iter()
                .map(|(n, port)| ContainerPort {
                    name: Some((*n).into()),
                    container_port: *port,
                    ..ContainerPort::default()
                })
                .collect(),
            ..Container::default()
        }];
        p.status = Some(PodStatus {
            phase: PodPhase::Running,
            pod_ip: ip.map(Into::into),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Condition::default()
            }],
            ..PodStatus::default()
        });
        Arc::new(p)
    }

    fn ips(list: &[EndpointAddress]) -> Vec<&str> {
        list.iter().map(|a| a.ip.as_str()).collect()
    }

    #[test]
    fn ready_and_not_ready_pods_with_their_node_and_reference() {
        let svc = service(vec![port("http", 80, Some(IntOrString::Int(8080)))]);
        let pods = vec![
            pod("b", Some("10.0.0.2"), true, &[]),
            pod("a", Some("10.0.0.1"), true, &[]),
            pod("c", Some("10.0.0.3"), false, &[]),
            pod("no-ip-yet", None, false, &[]),
            pod("bad-ip", Some("not-an-ip"), true, &[]),
        ];
        let subsets = desired_subsets(&svc, &pods);
        assert_eq!(subsets.len(), 1);
        let s = &subsets[0];
        assert_eq!(ips(&s.addresses), ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(ips(&s.not_ready_addresses), ["10.0.0.3"]);
        assert_eq!(
            s.ports,
            [EndpointPort {
                name: Some("http".into()),
                port: 8080,
                protocol: Protocol::Tcp
            }]
        );
        let a = &s.addresses[0];
        assert_eq!(a.node_name.as_deref(), Some("n1"));
        let r = a.target_ref.as_ref().expect("targetRef");
        assert_eq!(
            (r.kind.as_str(), r.name.as_str(), r.uid.as_deref()),
            ("Pod", "a", Some("uid-a"))
        );
    }

    #[test]
    fn terminating_finished_and_unselected_pods_are_left_out() {
        let svc = service(vec![port("http", 80, None)]);
        let mut terminating = (*pod("t", Some("10.0.0.1"), true, &[])).clone();
        terminating.metadata.deletion_timestamp = Some(chrono::Utc::now());
        let mut done = (*pod("d", Some("10.0.0.2"), true, &[])).clone();
        if let Some(s) = done.status.as_mut() {
            s.phase = PodPhase::Succeeded;
        }
        let mut other = (*pod("o", Some("10.0.0.3"), true, &[])).clone();
        other.metadata.labels.insert("app".into(), "db".into());
        let mut elsewhere = (*pod("e", Some("10.0.0.4"), true, &[])).clone();
        elsewhere.metadata.namespace = Some("other".into());
        let kept = pod("k", Some("10.0.0.5"), true, &[]);
        let pods: Vec<Arc<Pod>> = [terminating, done, other, elsewhere]
            .into_iter()
            .map(Arc::new)
            .chain([kept])
            .collect();
        let subsets = desired_subsets(&svc, &pods);
        assert_eq!(subsets.len(), 1);
        assert_eq!(ips(&subsets[0].addresses), ["10.0.0.5"]);
        assert!(subsets[0].not_ready_addresses.is_empty());
        assert_eq!(subsets[0].ports[0].port, 80, "targetPort defaults to port");
    }

    #[test]
    fn named_target_ports_resolve_per_pod() {
        let svc = service(vec![
            port("http", 80, Some(IntOrString::String("web".into()))),
            port("admin", 81, Some(IntOrString::String("admin".into()))),
        ]);
        let pods = vec![
            pod(
                "old",
                Some("10.0.0.1"),
                true,
                &[("web", 8080), ("admin", 9000)],
            ),
            pod(
                "new",
                Some("10.0.0.2"),
                true,
                &[("web", 8081), ("admin", 9000)],
            ),
            pod("web-only", Some("10.0.0.3"), true, &[("web", 8080)]),
            pod("neither", Some("10.0.0.4"), true, &[("metrics", 9100)]),
        ];
        let subsets = desired_subsets(&svc, &pods);
        let summary: Vec<(Vec<i32>, Vec<&str>)> = subsets
            .iter()
            .map(|s| (s.ports.iter().map(|p| p.port).collect(), ips(&s.addresses)))
            .collect();
        assert_eq!(
            summary,
            vec![
                (vec![9000, 8080], vec!["10.0.0.1"]),
                (vec![9000, 8081], vec!["10.0.0.2"]),
                (vec![8080], vec!["10.0.0.3"]),
            ]
        );
    }

    #[test]
    fn a_service_without_selector_selects_nothing() {
        let mut svc = service(vec![]);
        svc.spec.selector.clear();
        assert!(!selects(&svc, &pod("a", Some("10.0.0.1"), true, &[])));
        assert!(desired_subsets(&svc, &[pod("a", Some("10.0.0.1"), true, &[])]).is_empty());
    }
}
