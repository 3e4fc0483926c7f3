//! Typed API objects with Kubernetes' field names. Defaults are applied by
//! deserialisation (`#[serde(default = ...)]`), so a decoded object is a
//! defaulted object, as the Kubernetes API server returns it.

pub mod config;
pub mod event;
pub mod hpa;
pub mod metrics;
pub mod node;
pub mod pod;
pub mod service;
pub mod workload;

pub use config::{ConfigMap, Namespace, Secret};
pub use event::Event;
pub use hpa::HorizontalPodAutoscaler;
pub use node::Node;
pub use pod::Pod;
pub use service::{Endpoints, Service};
pub use workload::{Deployment, ReplicaSet};

/// Declares a kind's struct: type meta, metadata, spec and status, and its
/// [`crate::Resource`] impl.
macro_rules! resource {
    ($(#[$doc:meta])* $name:ident, $kind:expr, spec: $spec:ty, status: $status:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            #[serde(default)]
            pub api_version: String,
            #[serde(default)]
            pub kind: String,
            #[serde(default)]
            pub metadata: crate::ObjectMeta,
            #[serde(default)]
            pub spec: $spec,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            pub status: Option<$status>,
        }

        impl crate::Resource for $name {
            const KIND: crate::Kind = $kind;
            fn metadata(&self) -> &crate::ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut crate::ObjectMeta {
                &mut self.metadata
            }
            fn set_type_meta(&mut self) {
                self.api_version = $kind.api_version().to_string();
                self.kind = $kind.name().to_string();
            }
        }
    };
}
pub(crate) use resource;

pub(crate) fn is_zero(v: &i32) -> bool {
    *v == 0
}
