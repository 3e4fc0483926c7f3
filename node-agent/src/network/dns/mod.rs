//! A small DNS server per node, on the pod bridge's gateway address:
//! `SERVICE.NAMESPACE.svc.cluster.local` → the Service's cluster IP, other
//! names forwarded to the machine's resolver.

pub mod message;
pub mod server;
pub mod zone;

pub use server::{serve, upstream_from};
