//! The VM runtime: a pod with `runtime: vm` boots the node's guest kernel
//! with an initramfs made from its image plus `drover-init`, under the
//! node's engine (QEMU microvm, or Drover's own monitor on hardware KVM),
//! on a tap in the pod network. The engine process runs under the same
//! per-pod shim as a container, its serial console is the container log.

pub mod cgroup;
pub mod engine;
pub mod guest;
pub mod host;
pub mod initramfs;
pub mod kernel;
pub mod monitor;
pub mod prepare;
pub mod snapshot;

/// `drover-init`, compiled static by the build script (empty if that
/// failed; [`init_build_error`] says why).
pub const GUEST_INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/drover-init"));

const INIT_BUILD_ERROR: &str = include_str!(concat!(env!("OUT_DIR"), "/drover-init.error"));

/// Why the build could not produce `drover-init`, if it could not.
pub fn init_build_error() -> Option<&'static str> {
    (GUEST_INIT.is_empty()).then_some(if INIT_BUILD_ERROR.is_empty() {
        "drover-init was not built"
    } else {
        INIT_BUILD_ERROR
    })
}
