//! Services on this node: every node balances every Service, as
//! kube-proxy's nftables mode does. A table of our own per bridge holds
//! ClusterIP and NodePort DNAT to ready endpoints, chosen at random per
//! connection; it is rendered whole from the Services and Endpoints the
//! agent watches and applied in one transaction after each change.

pub mod activator;
pub mod existing;
pub mod localnet;
pub mod metrics;
pub mod model;
pub mod render;
pub mod serving;
pub mod sync;

pub use activator::Activator;
pub use model::{Backend, ServicePortRule, service_rules};
pub use render::{ProxyConfig, WhenNoEndpoints, render, table};
pub use serving::Serving;
pub use sync::{apply, read_counters, remove, run};
