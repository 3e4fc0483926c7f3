//! The pod-template hash that names a Deployment's ReplicaSets
//! (`web-5d8f7c9b6`) and labels their pods, so one template maps to one
//! ReplicaSet across restarts and leaders.

use drover_proto::types::pod::PodTemplateSpec;
use drover_proto::types::workload::ReplicaSet;

/// Label (on ReplicaSet selector, template and pods) carrying the hash.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Characters that never spell words, as Kubernetes' `SafeEncodeString` uses.
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a, 32 bits: stable across builds and platforms.
fn fnv1a(bytes: &[u8], mut h: u32) -> u32 {
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The hash of `template` (plus the collision count, which changes the name
/// when another object already took it).
pub fn template_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let json = serde_json::to_vec(template).unwrap_or_default();
    let mut h = fnv1a(&json, 0x811c_9dc5);
    if let Some(c) = collision_count {
        h = fnv1a(&c.to_le_bytes(), h);
    }
    h.to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// The template without the hash label: what the Deployment wrote.
pub fn without_hash(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = template.clone();
    t.metadata.labels.remove(POD_TEMPLATE_HASH);
    t
}

/// Whether `rs` runs `template` (ignoring the hash label).
pub fn runs_template(rs: &ReplicaSet, template: &PodTemplateSpec) -> bool {
    without_hash(&rs.spec.template) == without_hash(template)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_and_follows_the_template() {
        let mut t = PodTemplateSpec::default();
        t.metadata.labels.insert("app".into(), "web".into());
        let a = template_hash(&t, None);
        assert_eq!(a, template_hash(&t, None));
        assert!(a.bytes().all(|b| ALPHANUMS.contains(&b)), "{a}");
        assert_ne!(a, template_hash(&t, Some(1)));
        t.metadata.labels.insert("v".into(), "2".into());
        assert_ne!(a, template_hash(&t, None));
    }
}
