//! Pod CIDR allocation inside the state machine (as Kubernetes' node IPAM
//! controller does, but deterministic so every replica agrees): each Node
//! gets the lowest free /24 of 10.88.0.0/16 unless it asks for one.

use std::collections::BTreeSet;

use drover_proto::{Kind, Object};
use serde_json::Value;

use super::StateMachine;
use crate::command::ApplyError;

/// The cluster's pod network: 256 /24s, one per node.
const POD_NET: [u8; 2] = [10, 88];

fn pod_cidr(o: &Object) -> Option<&str> {
    o.body
        .get("spec")?
        .get("podCIDR")?
        .as_str()
        .filter(|s| !s.is_empty())
}

impl StateMachine {
    /// Fills in `spec.podCIDR` (kept from `existing` on update; a /24 the
    /// node asked for is honoured unless another node has it). A full pool
    /// leaves it unset rather than refusing the node.
    pub(super) fn assign_pod_cidr(
        &self,
        key: &str,
        new: &mut Object,
        existing: Option<&Object>,
    ) -> Result<(), ApplyError> {
        let prefix = format!("{}/", Kind::Node.name());
        let used: BTreeSet<&str> = self
            .objects
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| k.as_str() != key)
            .filter_map(|(_, o)| pod_cidr(o))
            .collect();
        let requested = pod_cidr(new).map(str::to_string);
        let kept = existing.and_then(pod_cidr).map(str::to_string);
        let cidr = match (requested, kept) {
            (Some(r), Some(old)) if r != old => {
                return Err(ApplyError::Invalid(format!(
                    "spec.podCIDR: field is immutable (is {old})"
                )));
            }
            (Some(r), _) => {
                validate(&r)?;
                if used.contains(r.as_str()) {
                    return Err(ApplyError::Invalid(format!(
                        "spec.podCIDR: {r} is already assigned to another node"
                    )));
                }
                r
            }
            (None, Some(old)) => old,
            (None, None) => match (0..=255u8)
                .map(|i| format!("{}.{}.{i}.0/24", POD_NET[0], POD_NET[1]))
                .find(|c| !used.contains(c.as_str()))
            {
                Some(c) => c,
                None => return Ok(()),
            },
        };
        if let Some(spec) = new
            .body
            .entry("spec")
            .or_insert_with(|| Value::Object(Default::default()))
            .as_object_mut()
        {
            spec.insert("podCIDR".into(), Value::String(cidr));
        }
        Ok(())
    }
}

/// A pod CIDR must be an IPv4 network with a prefix of /16 to /28.
fn validate(cidr: &str) -> Result<(), ApplyError> {
    let bad = || {
        ApplyError::Invalid(format!(
            "spec.podCIDR: {cidr:?} is not an IPv4 network such as 10.88.3.0/24"
        ))
    };
    let (addr, len) = cidr.split_once('/').ok_or_else(bad)?;
    let addr: std::net::Ipv4Addr = addr.parse().map_err(|_| bad())?;
    let len: u32 = len.parse().map_err(|_| bad())?;
    if !(16..=28).contains(&len) || u32::from(addr) & ((1u64 << (32 - len)) - 1) as u32 != 0 {
        return Err(bad());
    }
    Ok(())
}
