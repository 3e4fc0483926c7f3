//! Per-pod and per-node resource metrics, sampled every second: CPU
//! (cgroup CPU time → cores) and memory working set of every container's
//! cgroup (VM pods' monitors run in one too), the node's own usage, and
//! the service rules' connection counters turned into rates. Served as
//! JSON to the control plane's metrics source and as Prometheus text.

pub mod collector;
pub mod host;
pub mod prometheus;
pub mod rates;
pub mod summary;

pub use collector::{Latest, SAMPLE_PERIOD, run};
pub use rates::Rates;
