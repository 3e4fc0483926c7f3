//! Which service port a held connection was for, and when it can go (pure
//! apart from waiting on the rules): the connection's original destination
//! is a cluster IP and port, or a NodePort on one of the node's addresses.

use std::net::SocketAddrV4;
use std::sync::Arc;

use drover_proto::types::pod::Protocol;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::network::services::{Backend, ServicePortRule};

/// The rules last applied on this node.
pub type Rules = Arc<Vec<ServicePortRule>>;

/// The TCP service port `dst` (a connection's original destination) was
/// for: by cluster IP and port, else by node port.
pub fn service_port_for(rules: &[ServicePortRule], dst: SocketAddrV4) -> Option<&ServicePortRule> {
    let tcp = || rules.iter().filter(|r| r.protocol == Protocol::Tcp);
    tcp()
        .find(|r| r.cluster_ip == *dst.ip() && r.port == dst.port())
        .or_else(|| tcp().find(|r| r.node_port == Some(dst.port())))
}

/// The `seq`-th connection's endpoint (round robin), if any is ready.
pub fn pick(endpoints: &[Backend], seq: usize) -> Option<Backend> {
    endpoints.get(seq.checked_rem(endpoints.len())?).copied()
}

/// Waits until the service port `id` has a ready endpoint in `rules`, up
/// to `deadline`; None when the deadline passes or the rules stop coming.
pub async fn ready_endpoints(
    rules: &mut watch::Receiver<Rules>,
    id: &str,
    deadline: Instant,
) -> Option<Vec<Backend>> {
    let wait = rules.wait_for(|rules| rules.iter().any(|r| r.id == id && !r.endpoints.is_empty()));
    let seen = tokio::time::timeout_at(deadline, wait).await.ok()?.ok()?;
    seen.iter()
        .find(|r| r.id == id)
        .map(|r| r.endpoints.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn rule(id: &str, ip: [u8; 4], port: u16, node_port: Option<u16>) -> ServicePortRule {
        ServicePortRule {
            id: id.into(),
            cluster_ip: Ipv4Addr::from(ip),
            protocol: Protocol::Tcp,
            port,
            node_port,
            endpoints: vec![],
            scale_from_zero: true,
        }
    }

    fn backend(last: u8) -> Backend {
        Backend {
            ip: Ipv4Addr::new(10, 88, 1, last),
            port: 8080,
        }
    }

    #[test]
    fn original_destinations_map_to_service_ports() {
        let mut dns = rule("default/dns/53", [10, 96, 0, 10], 53, None);
        dns.protocol = Protocol::Udp;
        let rules = [
            dns,
            rule("default/web/80", [10, 96, 0, 2], 80, Some(30080)),
            rule("default/web/admin", [10, 96, 0, 2], 81, None),
        ];
        let at = |s: &str| s.parse::<SocketAddrV4>().ok();
        let id = |dst| {
            at(dst)
                .and_then(|d| service_port_for(&rules, d))
                .map(|r| r.id.as_str())
        };
        assert_eq!(id("10.96.0.2:80"), Some("default/web/80"));
        assert_eq!(id("10.96.0.2:81"), Some("default/web/admin"));
        assert_eq!(id("192.168.1.10:30080"), Some("default/web/80"));
        assert_eq!(id("10.96.0.10:53"), None, "UDP is never held");
        assert_eq!(id("10.96.0.2:82"), None);
    }

    #[test]
    fn endpoints_are_taken_in_turn() {
        let eps = [backend(2), backend(3)];
        assert_eq!(pick(&eps, 0), Some(backend(2)));
        assert_eq!(pick(&eps, 3), Some(backend(3)));
        assert_eq!(pick(&[], 1), None);
    }

    #[tokio::test(start_paused = true)]
    async fn released_when_an_endpoint_appears_or_given_up_at_the_deadline() {
        let web = rule("default/web/80", [10, 96, 0, 2], 80, None);
        let (tx, rx) = watch::channel(Arc::new(vec![web.clone()]));
        let start = Instant::now();
        let mut waiting = rx.clone();
        let held = tokio::spawn(async move {
            ready_endpoints(
                &mut waiting,
                "default/web/80",
                start + Duration::from_secs(30),
            )
            .await
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        // Another service's change does not release it.
        let mut other = rule("default/api/80", [10, 96, 0, 3], 80, None);
        other.endpoints = vec![backend(9)];
        tx.send_replace(Arc::new(vec![web.clone(), other.clone()]));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!held.is_finished());
        let mut ready = web.clone();
        ready.endpoints = vec![backend(2)];
        tx.send_replace(Arc::new(vec![ready, other]));
        let got = held.await.ok().flatten();
        assert_eq!(got, Some(vec![backend(2)]));
        assert_eq!(start.elapsed(), Duration::from_secs(4));

        // Nothing comes up: given up at the deadline exactly.
        tx.send_replace(Arc::new(vec![web]));
        let mut waiting = rx.clone();
        let start = Instant::now();
        let got = ready_endpoints(
            &mut waiting,
            "default/web/80",
            start + Duration::from_secs(30),
        )
        .await;
        assert_eq!(got, None);
        assert_eq!(start.elapsed(), Duration::from_secs(30));
    }
}
