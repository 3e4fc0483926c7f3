//! Drover's API contract: object types (Kubernetes-shaped), quantities, label
//! selectors, validation and defaulting, the generated gRPC code, and a typed
//! client. Every other crate speaks to the cluster through these types.

pub mod client;
pub mod decode;
pub mod dial;
pub mod identity;
pub mod kind;
pub mod manifest;
pub mod meta;
pub mod object;
pub mod quantity;
pub mod selector;
pub mod types;
pub mod validation;

pub use kind::Kind;
pub use meta::{ObjectMeta, OwnerReference, Time};
pub use object::{Object, Resource};
pub use quantity::Quantity;

/// Generated gRPC code for the public API.
pub mod grpc {
    tonic::include_proto!("drover.api");
}

/// Generated gRPC code for the control plane's peer transport.
pub mod raft_grpc {
    tonic::include_proto!("drover.raft");
}

/// Version of this build, reported by `drover version` and the server.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The namespace objects land in when none is given.
pub const DEFAULT_NAMESPACE: &str = "default";
