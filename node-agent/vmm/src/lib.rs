//! Drover's microVM monitor (the `kvm` engine): validated config, a linear builder that
//! makes every KVM call, emulated devices on PIO/MMIO buses, and snapshot/restore.

pub mod arch;
pub mod builder;
pub mod config;
pub mod devices;
pub mod exit;
pub mod seccomp;
pub mod snapshot;
pub mod vm;
pub mod vstate;

pub use builder::{BuildError, build, restore};
pub use config::{BlockConfig, KernelConfig, NetConfig, SerialOutput, VmConfig};
pub use exit::VmExit;
pub use vm::{RunningVm, StopHandle};

/// Boots `config` and blocks until the VM ends: the entry point a per-VM monitor
/// process calls.
pub fn run(config: VmConfig) -> Result<VmExit, BuildError> {
    Ok(build(&config)?.wait())
}

/// Like `run`, but installs the monitor's seccomp allowlist on every thread once the VM
/// is built: the form a per-VM monitor process uses. The filter is process-wide and
/// permanent, so call it only in a process that exists for this one VM.
pub fn run_confined(config: VmConfig) -> Result<VmExit, BuildError> {
    let vm = build(&config)?;
    seccomp::apply(&seccomp::monitor_allowlist())?;
    Ok(vm.wait())
}

/// Restores the snapshot in `snapshot_dir` and blocks until the VM ends.
pub fn run_from_snapshot(
    config: VmConfig,
    snapshot_dir: &std::path::Path,
) -> Result<VmExit, BuildError> {
    Ok(restore(&config, snapshot_dir)?.wait())
}
