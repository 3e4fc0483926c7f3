//! Which pod addresses this node's service rules send connections to, so a
//! terminating pod can be kept serving until it is out of them (the
//! Endpoints controller drops it at once, but every node's rules follow a
//! moment later: SIGTERM before that would fail connections in flight to
//! it).

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use super::model::ServicePortRule;

/// After this node's rules drop an address, how long the other nodes are
/// given to apply the same change (each applies 50 ms after the Endpoints
/// update, in a few ms).
pub const PROPAGATION: Duration = Duration::from_millis(500);
const POLL: Duration = Duration::from_millis(20);
/// How long a dropped address is remembered (far past [`PROPAGATION`]).
const REMEMBER: Duration = Duration::from_secs(30);

/// The endpoint addresses of the rules last applied here, and when the
/// addresses they no longer hold were dropped.
#[derive(Debug, Clone, Default)]
pub struct Serving(Arc<RwLock<Routed>>);

#[derive(Debug, Default)]
struct Routed {
    now: HashSet<Ipv4Addr>,
    dropped: HashMap<Ipv4Addr, Instant>,
}

impl Serving {
    /// Records what the rules just applied send to.
    pub fn set(&self, rules: &[ServicePortRule]) {
        let ips: HashSet<Ipv4Addr> = rules
            .iter()
            .flat_map(|r| r.endpoints.iter().map(|b| b.ip))
            .collect();
        let now = Instant::now();
        let mut routed = self.0.write().unwrap_or_else(|p| p.into_inner());
        let gone: Vec<Ipv4Addr> = routed.now.difference(&ips).copied().collect();
        routed
            .dropped
            .retain(|ip, at| !ips.contains(ip) && now - *at < REMEMBER);
        routed.dropped.extend(gone.into_iter().map(|ip| (ip, now)));
        routed.now = ips;
    }

    /// Whether any service rule here sends to `ip`.
    pub fn routes_to(&self, ip: Ipv4Addr) -> bool {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .now
            .contains(&ip)
    }

    fn dropped_at(&self, ip: Ipv4Addr) -> Option<Instant> {
        let routed = self.0.read().unwrap_or_else(|p| p.into_inner());
        routed.dropped.get(&ip).copied()
    }

    /// Waits until no rule here sends to `ip`, then until [`PROPAGATION`]
    /// has passed since they stopped, for the other nodes, all within
    /// `cap`. Returns at once for an address no rule here sent to lately.
    /// (The rules here may drop the address before the pod's worker hears
    /// of the deletion: the other nodes still get their time.)
    pub async fn drained(&self, ip: Ipv4Addr, cap: Duration) {
        let deadline = Instant::now() + cap;
        while self.routes_to(ip) && Instant::now() < deadline {
            tokio::time::sleep(POLL).await;
        }
        if let Some(at) = self.dropped_at(ip) {
            tokio::time::sleep_until((at + PROPAGATION).min(deadline)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::services::Backend;
    use drover_proto::types::pod::Protocol;

    fn rule(ips: &[[u8; 4]]) -> ServicePortRule {
        ServicePortRule {
            id: "default/web/80".into(),
            cluster_ip: Ipv4Addr::new(10, 96, 0, 2),
            protocol: Protocol::Tcp,
            port: 80,
            node_port: None,
            scale_from_zero: false,
            endpoints: ips
                .iter()
                .map(|ip| Backend {
                    ip: Ipv4Addr::from(*ip),
                    port: 8080,
                })
                .collect(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_the_rules_to_drop_an_address_then_for_the_others() {
        let serving = Serving::default();
        let ip = Ipv4Addr::new(10, 88, 1, 2);
        serving.set(&[rule(&[[10, 88, 1, 2], [10, 88, 1, 3]])]);
        assert!(serving.routes_to(ip));
        let start = tokio::time::Instant::now();
        let s = serving.clone();
        let dropper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            s.set(&[rule(&[[10, 88, 1, 3]])]);
        });
        serving.drained(ip, Duration::from_secs(5)).await;
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(200) + PROPAGATION, "{took:?}");
        assert!(took < Duration::from_millis(300) + PROPAGATION, "{took:?}");
        let _ = dropper.await;

        // Dropped here before the worker asked: the others still get their
        // time, counted from the drop.
        tokio::time::sleep(Duration::from_millis(100)).await;
        serving.set(&[rule(&[])]);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let start = tokio::time::Instant::now();
        serving
            .drained(Ipv4Addr::new(10, 88, 1, 3), Duration::from_secs(5))
            .await;
        assert_eq!(start.elapsed(), PROPAGATION - Duration::from_millis(200));
        serving.set(&[rule(&[[10, 88, 1, 3]])]);

        // Not served here: no wait. Never dropped: the cap holds.
        let start = tokio::time::Instant::now();
        serving
            .drained(Ipv4Addr::new(10, 88, 9, 9), Duration::from_secs(5))
            .await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        serving
            .drained(Ipv4Addr::new(10, 88, 1, 3), Duration::from_secs(2))
            .await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }
}
