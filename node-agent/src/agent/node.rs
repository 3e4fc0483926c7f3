//! The Node object an agent registers: capacity and allocatable, runtimes,
//! addresses, labels and system info, built as a pure function of facts
//! about the machine (real or simulated).

use std::collections::BTreeMap;

use drover_proto::meta::Condition;
use drover_proto::types::Node;
use drover_proto::types::node::{
    DaemonEndpoint, NodeAddress, NodeDaemonEndpoints, NodeSpec, NodeStatus, NodeSystemInfo,
};
use drover_proto::{ObjectMeta, Quantity, Time};

use super::reasons;

/// The label carrying the node's host name, as in Kubernetes.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// What a node offers, measured on the machine or made up for hollow nodes.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeFacts {
    /// The Node's name.
    pub name: String,
    /// CPU capacity in millicores.
    pub cpu_millis: i64,
    /// Memory capacity in bytes.
    pub memory_bytes: i64,
    /// How many pods it takes.
    pub max_pods: i64,
    /// Held back from pods for the system and the agent (millicores, bytes).
    pub reserved_cpu_millis: i64,
    /// Memory held back, in bytes.
    pub reserved_memory_bytes: i64,
    /// `InternalIP` and `Hostname` addresses.
    pub addresses: Vec<NodeAddress>,
    /// `container`, and `vm` when it can run microVMs.
    pub runtimes: Vec<String>,
    /// Kernel, OS, architecture, agent version.
    pub node_info: NodeSystemInfo,
    /// Labels beyond the host name.
    pub labels: BTreeMap<String, String>,
    /// The pod CIDR when the agent chooses it (hollow nodes).
    pub pod_cidr: Option<String>,
    /// The port the agent serves logs on.
    pub agent_port: Option<u16>,
}

/// The Node to register for `facts`, Ready as of `now`.
pub fn node_object(facts: &NodeFacts, now: Time) -> Node {
    let mut labels = facts.labels.clone();
    labels.insert(HOSTNAME_LABEL.to_string(), facts.name.clone());
    let capacity = resources(facts.cpu_millis, facts.memory_bytes, facts.max_pods);
    let allocatable = resources(
        (facts.cpu_millis - facts.reserved_cpu_millis).max(0),
        (facts.memory_bytes - facts.reserved_memory_bytes).max(0),
        facts.max_pods,
    );
    Node {
        metadata: ObjectMeta {
            name: facts.name.clone(),
            labels,
            ..ObjectMeta::default()
        },
        spec: NodeSpec {
            pod_cidr: facts.pod_cidr.clone(),
            ..NodeSpec::default()
        },
        status: Some(NodeStatus {
            capacity,
            allocatable,
            conditions: vec![ready_condition(now, now)],
            addresses: facts.addresses.clone(),
            node_info: Some(facts.node_info.clone()),
            runtimes: facts.runtimes.clone(),
            daemon_endpoints: facts.agent_port.map(|port| NodeDaemonEndpoints {
                agent_endpoint: Some(DaemonEndpoint {
                    port: i32::from(port),
                }),
            }),
            ..NodeStatus::default()
        }),
        ..Node::default()
    }
}

fn resources(cpu_millis: i64, memory_bytes: i64, pods: i64) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), Quantity::from_millis(cpu_millis)),
        ("memory".to_string(), Quantity::from_units(memory_bytes)),
        ("pods".to_string(), Quantity::from_units(pods)),
    ])
}

fn ready_condition(heartbeat: Time, transition: Time) -> Condition {
    Condition {
        type_: reasons::READY.to_string(),
        status: "True".to_string(),
        last_heartbeat_time: Some(heartbeat),
        last_transition_time: Some(transition),
        reason: Some(reasons::AGENT_READY.to_string()),
        message: Some("drover agent is posting ready status".to_string()),
        ..Condition::default()
    }
}

/// Renews the Ready condition's heartbeat in `status`; the transition
/// time moves only when the condition was not already True (a controller
/// may have marked it Unknown while the agent was away).
pub fn renew_heartbeat(status: &mut NodeStatus, now: Time) {
    match status
        .conditions
        .iter_mut()
        .find(|c| c.type_ == reasons::READY)
    {
        Some(c) if c.status == "True" => c.last_heartbeat_time = Some(now),
        Some(c) => *c = ready_condition(now, now),
        None => status.conditions.push(ready_condition(now, now)),
    }
}

/// Where a hollow node's fake pod IPs come from: `10.X.Y.0/24` by index, from
/// 10.64.0.0 so it stays clear of the real default (10.88.0.0/16) for the
/// first 6,000 nodes.
pub fn hollow_pod_cidr(index: usize) -> String {
    let third = index % 256;
    let second = 64 + index / 256;
    format!("10.{}.{third}.0/24", second.min(255))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> NodeFacts {
        NodeFacts {
            name: "n1".into(),
            cpu_millis: 4000,
            memory_bytes: 16 << 30,
            max_pods: 110,
            reserved_cpu_millis: 100,
            reserved_memory_bytes: 256 << 20,
            addresses: vec![],
            runtimes: vec!["container".into()],
            node_info: NodeSystemInfo::default(),
            labels: BTreeMap::new(),
            pod_cidr: None,
            agent_port: None,
        }
    }

    #[test]
    fn allocatable_is_capacity_minus_reserved() {
        let n = node_object(&facts(), Time::default());
        let s = n.status.as_ref().expect("status");
        assert_eq!(s.capacity["cpu"].millis(), 4000);
        assert_eq!(s.allocatable["cpu"].millis(), 3900);
        assert_eq!(s.allocatable["memory"].units(), (16 << 30) - (256 << 20));
        assert_eq!(s.allocatable["pods"].units(), 110);
        assert_eq!(n.metadata.labels[HOSTNAME_LABEL], "n1");
        assert!(n.is_ready());
    }

    #[test]
    fn heartbeat_keeps_transition_time_while_ready() {
        let t0 = Time::default();
        let t1 = t0 + chrono::Duration::seconds(10);
        let mut s = node_object(&facts(), t0).status.expect("status");
        renew_heartbeat(&mut s, t1);
        let c = &s.conditions[0];
        assert_eq!(
            (c.last_heartbeat_time, c.last_transition_time),
            (Some(t1), Some(t0))
        );
        s.conditions[0].status = "Unknown".into();
        renew_heartbeat(&mut s, t1);
        let c = &s.conditions[0];
        assert_eq!(
            (c.status.as_str(), c.last_transition_time),
            ("True", Some(t1))
        );
    }

    #[test]
    fn hollow_cidrs_are_distinct() {
        assert_eq!(hollow_pod_cidr(0), "10.64.0.0/24");
        assert_eq!(hollow_pod_cidr(257), "10.65.1.0/24");
        let all: std::collections::HashSet<_> = (0..5000).map(hollow_pod_cidr).collect();
        assert_eq!(all.len(), 5000);
    }
}
