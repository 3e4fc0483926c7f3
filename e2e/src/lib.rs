//! Drover's multi-host end-to-end harness: several "hosts" on one machine,
//! each a network namespace with its own address on a shared bridge, running
//! the real `drover` binary, with tools to break them on purpose (kill -9,
//! pause, partitions, packet loss, a full disk).
//!
//! Everything a [`Lab`] makes (namespaces, the bridge, veths, nftables
//! tables, tmpfs mounts, processes) is removed when it is dropped, also when
//! a test panics. Traffic only flows between the lab's own addresses.

pub mod autoscaling;
mod binary;
pub mod cluster;
mod cmd;
pub mod control_plane;
pub mod faults;
pub mod history;
pub mod http;
mod lab;
pub mod linearizability;
pub mod load;
pub mod member;
pub mod pki;
mod process;
pub mod registry;
pub mod scale_from_zero;
mod wait;
pub mod writer;

pub use binary::drover_bin;
pub use cmd::{run, run_ok};
pub use lab::{Host, Lab};
pub use process::HostProcess;
pub use wait::eventually;

/// Why this machine cannot run the namespaced-host tests, if it cannot:
/// they need root (network namespaces, bridges, nftables).
pub fn unsupported_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root for network namespaces".into());
    }
    for tool in ["ip", "nft"] {
        if !cmd::on_path(tool) {
            return Some(format!(
                "`{tool}` is not installed (scripts/install-deps.sh)"
            ));
        }
    }
    None
}

/// Prints why a test is skipped and returns true when it must be.
pub fn skip_unless_supported(test: &str) -> bool {
    match unsupported_reason() {
        Some(why) => {
            eprintln!("skipped {test}: {why}");
            true
        }
        None => false,
    }
}
