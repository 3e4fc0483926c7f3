//! Stamps a pod out of a ReplicaSet's template, owned by the ReplicaSet.

use drover_proto::types::pod::Pod;
use drover_proto::types::workload::ReplicaSet;
use drover_proto::{ObjectMeta, OwnerReference, Resource};

/// The owner reference a controller puts on what it creates.
pub fn controller_ref<T: Resource>(owner: &T) -> OwnerReference {
    OwnerReference {
        api_version: T::KIND.api_version().to_string(),
        kind: T::KIND.name().to_string(),
        name: owner.name().to_string(),
        uid: owner.metadata().uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A new pod for `rs`: the template's labels, annotations and spec, named
/// `RS-<random>` by the server.
pub fn pod_from_template(rs: &ReplicaSet) -> Pod {
    let t = &rs.spec.template;
    let mut pod = Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}-", rs.name())),
            namespace: Some(rs.namespace().to_string()),
            labels: t.metadata.labels.clone(),
            annotations: t.metadata.annotations.clone(),
            owner_references: vec![controller_ref(rs)],
            ..ObjectMeta::default()
        },
        spec: t.spec.clone(),
        ..Pod::default()
    };
    pod.set_type_meta();
    pod
}
