//! The scale target of an HPA: a Deployment or a ReplicaSet (`apps/v1`),
//! read from the caches, with the one write the autoscaler makes to it.

use std::sync::Arc;

use drover_proto::selector::LabelSelector;
use drover_proto::types::hpa::CrossVersionObjectReference;
use drover_proto::types::{Deployment, ReplicaSet};
use drover_proto::{Object, Resource};

use crate::controllers::runtime::Cache;

/// A target as cached.
#[derive(Debug, Clone)]
pub enum Target {
    Deployment(Arc<Deployment>),
    ReplicaSet(Arc<ReplicaSet>),
}

/// Why a reference names no scalable target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unresolved {
    /// Not `apps/v1` Deployment or ReplicaSet (`apiVersion/kind`).
    #[error("{0} is not supported (apps/v1 Deployment or ReplicaSet)")]
    Unsupported(String),
    /// No such object (`kind/name`).
    #[error("{0} not found")]
    Missing(String),
}

/// Finds `reference` in namespace `ns`.
pub fn resolve(
    reference: &CrossVersionObjectReference,
    ns: &str,
    deployments: &Cache<Deployment>,
    replicasets: &Cache<ReplicaSet>,
) -> Result<Target, Unresolved> {
    let version = reference.api_version.as_deref().unwrap_or("apps/v1");
    let key = format!("{ns}/{}", reference.name);
    let missing = || {
        Unresolved::Missing(format!(
            "{}/{}",
            reference.kind.to_lowercase(),
            reference.name
        ))
    };
    match (version, reference.kind.as_str()) {
        ("apps/v1", "Deployment") => deployments
            .get(&key)
            .map(Target::Deployment)
            .ok_or_else(missing),
        ("apps/v1", "ReplicaSet") => replicasets
            .get(&key)
            .map(Target::ReplicaSet)
            .ok_or_else(missing),
        (v, k) => Err(Unresolved::Unsupported(format!("{v}/{k}"))),
    }
}

impl Target {
    /// `spec.replicas`.
    pub fn replicas(&self) -> i32 {
        match self {
            Target::Deployment(d) => d.spec.replicas,
            Target::ReplicaSet(r) => r.spec.replicas,
        }
    }

    /// `status.replicas` (pods that exist).
    pub fn status_replicas(&self) -> i32 {
        match self {
            Target::Deployment(d) => d.status.as_ref().map_or(0, |s| s.replicas),
            Target::ReplicaSet(r) => r.status.as_ref().map_or(0, |s| s.replicas),
        }
    }

    pub fn selector(&self) -> &LabelSelector {
        match self {
            Target::Deployment(d) => &d.spec.selector,
            Target::ReplicaSet(r) => &r.spec.selector,
        }
    }

    /// The labels its pods are made with (what a Service fronting them
    /// selects, even while there are none).
    pub fn pod_labels(&self) -> &std::collections::BTreeMap<String, String> {
        match self {
            Target::Deployment(d) => &d.spec.template.metadata.labels,
            Target::ReplicaSet(r) => &r.spec.template.metadata.labels,
        }
    }

    /// `kind/name`, for messages.
    pub fn display(&self) -> String {
        match self {
            Target::Deployment(d) => format!("deployment/{}", d.name()),
            Target::ReplicaSet(r) => format!("replicaset/{}", r.name()),
        }
    }

    /// The cached object with `spec.replicas` set to `n`; its
    /// resourceVersion makes the update a compare-and-set.
    pub fn scaled(&self, n: i32) -> Object {
        match self {
            Target::Deployment(d) => {
                let mut d = (**d).clone();
                d.spec.replicas = n;
                d.to_object()
            }
            Target::ReplicaSet(r) => {
                let mut r = (**r).clone();
                r.spec.replicas = n;
                r.to_object()
            }
        }
    }
}
