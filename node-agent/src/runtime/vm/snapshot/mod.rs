//! VM snapshots on the qemu engine: `drover vm snapshot` pauses a VM,
//! saves its memory, vCPU and device state into
//! `DATA_DIR/vm/snapshots/NAME/` and resumes it; a pod with
//! `spec.vmSnapshot` starts from one instead of booting. The kvm engine
//! (drover-vmm) has snapshots in its library but no control channel to
//! its monitor process yet, so it refuses both.

pub mod client;
pub mod meta;
pub mod qmp;
pub mod resume;
pub mod take;
