//! `v1` Node: a machine running `drover agent`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::resource;
use crate::meta::{Condition, Time, is_false};
use crate::types::pod::{TaintEffect, Toleration, TolerationOperator};
use crate::{Kind, Quantity};

resource!(
    /// A machine that runs pods, registered by its agent.
    Node, Kind::Node, spec: NodeSpec, status: NodeStatus
);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    #[serde(default, rename = "podCIDR", skip_serializing_if = "Option::is_none")]
    pub pod_cidr: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub unschedulable: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub taints: Vec<Taint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Taint {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub effect: TaintEffect,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_added: Option<Time>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub capacity: BTreeMap<String, Quantity>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allocatable: BTreeMap<String, Quantity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NodeAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_info: Option<NodeSystemInfo>,
    /// Isolation levels this node can run (`container`, `vm`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runtimes: Vec<String>,
    /// The VM engine in use (`kvm` or `qemu`) when the node offers `vm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm_engine: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ContainerImage>,
    /// Where the node's agent serves logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon_endpoints: Option<NodeDaemonEndpoints>,
}

/// Ports the node's daemons listen on (Kubernetes' `daemonEndpoints`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeDaemonEndpoints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_endpoint: Option<DaemonEndpoint>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DaemonEndpoint {
    #[serde(rename = "Port")]
    pub port: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeAddress {
    #[serde(rename = "type")]
    pub type_: String,
    pub address: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSystemInfo {
    #[serde(default)]
    pub machine_id: String,
    #[serde(default)]
    pub kernel_version: String,
    #[serde(default)]
    pub os_image: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub operating_system: String,
    #[serde(default)]
    pub agent_version: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerImage {
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default)]
    pub size_bytes: i64,
}

impl Node {
    /// Allocatable amount of `resource` (milli-units for cpu), 0 when unknown.
    pub fn allocatable(&self, resource: &str) -> i64 {
        self.status
            .as_ref()
            .and_then(|s| {
                s.allocatable
                    .get(resource)
                    .or_else(|| s.capacity.get(resource))
            })
            .map(|q| {
                if resource == "cpu" {
                    q.millis()
                } else {
                    q.units()
                }
            })
            .unwrap_or(0)
    }

    /// `host:port` of the node's agent endpoint (logs, exec): its
    /// InternalIP and the port it reports; why not, when it has neither.
    pub fn agent_address(&self) -> Result<String, String> {
        let name = &self.metadata.name;
        let status = self.status.as_ref();
        let port = status
            .and_then(|s| s.daemon_endpoints.as_ref())
            .and_then(|d| d.agent_endpoint.as_ref())
            .map(|e| e.port)
            .ok_or_else(|| format!("node {name} does not serve logs"))?;
        let host = status
            .and_then(|s| s.addresses.iter().find(|a| a.type_ == "InternalIP"))
            .map(|a| a.address.as_str())
            .ok_or_else(|| format!("node {name} has no InternalIP address"))?;
        Ok(if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        })
    }

    /// Whether the `Ready` condition is `True`.
    pub fn is_ready(&self) -> bool {
        self.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
    }
}

impl Taint {
    /// Whether `t` tolerates this taint, with Kubernetes' matching rules (an
    /// empty key with `Exists` tolerates everything; no effect means any).
    pub fn tolerated_by(&self, t: &Toleration) -> bool {
        if t.effect.is_some_and(|e| e != self.effect) {
            return false;
        }
        match (&t.key, t.operator) {
            (None, TolerationOperator::Exists) => true,
            (None, TolerationOperator::Equal) => false,
            (Some(k), _) if *k != self.key => false,
            (Some(_), TolerationOperator::Exists) => true,
            (Some(_), TolerationOperator::Equal) => {
                t.value.as_deref().unwrap_or("") == self.value.as_deref().unwrap_or("")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_address_is_the_internal_ip_and_reported_port() {
        let mut n = Node::default();
        n.metadata.name = "n1".into();
        assert_eq!(
            n.agent_address().unwrap_err(),
            "node n1 does not serve logs"
        );
        let mut status = NodeStatus {
            daemon_endpoints: Some(NodeDaemonEndpoints {
                agent_endpoint: Some(DaemonEndpoint { port: 10250 }),
            }),
            ..NodeStatus::default()
        };
        n.status = Some(status.clone());
        assert_eq!(
            n.agent_address().unwrap_err(),
            "node n1 has no InternalIP address"
        );
        for (ip, want) in [
            ("10.0.0.4", "10.0.0.4:10250"),
            ("fd00::4", "[fd00::4]:10250"),
        ] {
            status.addresses = vec![NodeAddress {
                type_: "InternalIP".into(),
                address: ip.into(),
            }];
            n.status = Some(status.clone());
            assert_eq!(n.agent_address().unwrap(), want);
        }
    }
}
