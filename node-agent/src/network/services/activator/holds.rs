//! How many connections the activator holds per service port, and how many
//! it forwarded or gave up on (pure): what the agent reports so the
//! autoscaler wakes a service scaled to zero.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::network::services::Backend;

/// How a held connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An endpoint came up and the connection was spliced to it.
    Forwarded(Backend),
    /// No endpoint within the timeout: the connection was closed.
    Expired,
}

/// Counts for one service port (`namespace/name/port`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HoldCount {
    /// Held now, waiting for an endpoint.
    pub pending: u64,
    /// Since the agent started.
    pub forwarded_total: u64,
    pub expired_total: u64,
}

#[derive(Debug, Default)]
struct Counts {
    by_service_port: BTreeMap<String, HoldCount>,
    /// Forwarded connections by endpoint counter name
    /// (`ep/NS/NAME/PORT/IP/TARGETPORT`, as the service rules name theirs).
    by_endpoint: BTreeMap<String, u64>,
}

/// The counts of every service port the activator has seen, shared by the
/// connection tasks and the metrics sampler.
#[derive(Debug, Clone, Default)]
pub struct Holds(Arc<Mutex<Counts>>);

impl Holds {
    /// Starts holding a connection for `service_port`; the count drops when
    /// the returned guard is settled or dropped (a dropped guard counts as
    /// expired: the client got nothing).
    pub fn hold(&self, service_port: &str) -> Held {
        self.update(service_port, |c| c.pending += 1);
        Held {
            holds: self.clone(),
            service_port: service_port.to_string(),
            settled: false,
        }
    }

    /// A copy of the counts, by service port.
    pub fn snapshot(&self) -> BTreeMap<String, HoldCount> {
        self.lock().by_service_port.clone()
    }

    /// Connections forwarded per endpoint, named as the service rules'
    /// endpoint counters: they are requests that endpoint served, though
    /// they went around the rules.
    pub fn endpoint_counters(&self) -> BTreeMap<String, u64> {
        self.lock().by_endpoint.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, service_port: &str, change: impl FnOnce(&mut HoldCount)) {
        let mut all = self.lock();
        change(
            all.by_service_port
                .entry(service_port.to_string())
                .or_default(),
        );
    }
}

/// One held connection.
#[derive(Debug)]
pub struct Held {
    holds: Holds,
    service_port: String,
    settled: bool,
}

impl Held {
    /// The connection is no longer waiting.
    pub fn settle(mut self, outcome: Outcome) {
        self.finish(outcome);
    }

    fn finish(&mut self, outcome: Outcome) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        self.holds.update(&self.service_port, |c| {
            c.pending = c.pending.saturating_sub(1);
            match outcome {
                Outcome::Forwarded(_) => c.forwarded_total += 1,
                Outcome::Expired => c.expired_total += 1,
            }
        });
        if let Outcome::Forwarded(b) = outcome {
            let name = format!("ep/{}/{}/{}", self.service_port, b.ip, b.port);
            *self.holds.lock().by_endpoint.entry(name).or_default() += 1;
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.finish(Outcome::Expired);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_then_forwarded_expired_or_dropped() {
        let holds = Holds::default();
        let a = holds.hold("default/web/80");
        let b = holds.hold("default/web/80");
        let c = holds.hold("default/web/80");
        let other = holds.hold("shop/api/http");
        assert_eq!(holds.snapshot()["default/web/80"].pending, 3);
        let pod = Backend {
            ip: std::net::Ipv4Addr::new(10, 88, 1, 2),
            port: 8080,
        };
        a.settle(Outcome::Forwarded(pod));
        b.settle(Outcome::Expired);
        drop(c);
        let web = holds.snapshot()["default/web/80"];
        assert_eq!(
            web,
            HoldCount {
                pending: 0,
                forwarded_total: 1,
                expired_total: 2
            }
        );
        assert_eq!(holds.snapshot()["shop/api/http"].pending, 1);
        other.settle(Outcome::Forwarded(pod));
        assert_eq!(holds.snapshot()["shop/api/http"].forwarded_total, 1);
        assert_eq!(
            holds.endpoint_counters(),
            BTreeMap::from([
                ("ep/default/web/80/10.88.1.2/8080".to_string(), 1),
                ("ep/shop/api/http/10.88.1.2/8080".to_string(), 1),
            ])
        );
    }
}
