//! Service address allocation inside the state machine, so every replica
//! hands out the same cluster IP and node port: the lowest free one.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use drover_proto::{Kind, Object};
use serde_json::{Value, json};

use super::StateMachine;
use crate::command::ApplyError;

/// Cluster IPs come from 10.96.0.0/16; .0 and .1 are kept back (network, gateway-style).
const SERVICE_NET: u32 = u32::from_be_bytes([10, 96, 0, 0]);
const SERVICE_HOSTS: u32 = 1 << 16;
const NODE_PORTS: std::ops::RangeInclusive<i64> = 30000..=32767;

fn spec(o: &Object) -> Option<&Value> {
    o.body.get("spec")
}

fn cluster_ip(o: &Object) -> Option<&str> {
    spec(o)?
        .get("clusterIP")?
        .as_str()
        .filter(|s| !s.is_empty())
}

fn node_ports(o: &Object) -> impl Iterator<Item = i64> + '_ {
    spec(o)
        .and_then(|s| s.get("ports"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("nodePort").and_then(Value::as_i64))
}

impl StateMachine {
    fn services_except(&self, key: &str) -> impl Iterator<Item = &Object> {
        let prefix = format!("{}/", Kind::Service.name());
        self.objects
            .range(prefix.clone()..)
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .filter(move |(k, _)| k.as_str() != key)
            .map(|(_, o)| o.as_ref())
    }

    /// Fills in `spec.clusterIP` and missing node ports; refuses taken ones.
    /// `existing` is the stored service on update (its addresses are kept).
    pub(super) fn assign_service_addresses(
        &self,
        key: &str,
        new: &mut Object,
        existing: Option<&Object>,
    ) -> Result<(), ApplyError> {
        let used_ips: BTreeSet<String> = self
            .services_except(key)
            .filter_map(cluster_ip)
            .map(str::to_string)
            .collect();
        let used_ports: BTreeSet<i64> = self.services_except(key).flat_map(node_ports).collect();
        let old_ip = existing.and_then(cluster_ip).map(str::to_string);
        let wants_node_ports = spec(new)
            .and_then(|s| s.get("type"))
            .and_then(Value::as_str)
            .is_some_and(|t| t == "NodePort" || t == "LoadBalancer");
        let Some(spec) = new.body.get_mut("spec").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        let requested = spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let ip = match (requested, old_ip) {
            (Some(r), Some(old)) if r != old => {
                return Err(ApplyError::Invalid(format!(
                    "spec.clusterIP: field is immutable (is {old})"
                )));
            }
            (Some(r), _) if r == "None" => r,
            (Some(r), None) => {
                if used_ips.contains(&r) {
                    return Err(ApplyError::Invalid(format!(
                        "spec.clusterIP: {r} is already allocated"
                    )));
                }
                r
            }
            (_, Some(old)) => old,
            (None, None) => (2..SERVICE_HOSTS - 1)
                .map(|i| Ipv4Addr::from(SERVICE_NET + i).to_string())
                .find(|ip| !used_ips.contains(ip))
                .ok_or_else(|| {
                    ApplyError::Invalid(
                        "spec.clusterIP: the service range 10.96.0.0/16 is full".into(),
                    )
                })?,
        };
        spec.insert("clusterIP".into(), json!(ip));

        let old_ports: Vec<(i64, i64)> = existing
            .and_then(|o| o.body.get("spec"))
            .and_then(|s| s.get("ports"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|p| Some((p.get("port")?.as_i64()?, p.get("nodePort")?.as_i64()?)))
            .collect();
        let mut taken = used_ports;
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for (i, p) in ports.iter_mut().enumerate() {
                let Some(p) = p.as_object_mut() else { continue };
                if !wants_node_ports {
                    continue;
                }
                let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
                let node_port = match p.get("nodePort").and_then(Value::as_i64) {
                    Some(np) => {
                        if taken.contains(&np) {
                            return Err(ApplyError::Invalid(format!(
                                "spec.ports[{i}].nodePort: {np} is already allocated"
                            )));
                        }
                        np
                    }
                    None => match old_ports.iter().find(|(pp, _)| *pp == port) {
                        Some((_, np)) if !taken.contains(np) => *np,
                        _ => NODE_PORTS
                            .clone()
                            .find(|np| !taken.contains(np))
                            .ok_or_else(|| {
                                ApplyError::Invalid(
                                    "spec.ports: no node port left in 30000-32767".into(),
                                )
                            })?,
                    },
                };
                taken.insert(node_port);
                p.insert("nodePort".into(), json!(node_port));
            }
        }
        Ok(())
    }
}
