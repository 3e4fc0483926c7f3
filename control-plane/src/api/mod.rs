//! The API: one set of verbs (`core`) served over gRPC (`grpc`) and a
//! Kubernetes-style JSON/HTTP gateway (`http`) on the same port, plus
//! Prometheus metrics.

pub mod cluster;
pub mod core;
#[doc(hidden)]
pub mod fuzz;
pub mod grpc;
pub mod http;
pub mod metrics;

pub use core::{ApiCore, ApiError, ErrorCode};
