//! The one error type of VM construction; each message reads as a pod status reason.

use crate::arch::boot_params;
use crate::config::ConfigError;
use crate::devices::bus::BusError;
use crate::snapshot::SnapshotError;
use crate::vstate::memory::MemoryError;

/// Why a VM could not be built. The message is what a pod's status reason shows.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Bad configuration.
    #[error("invalid VM config: {0}")]
    Config(#[from] ConfigError),
    /// /dev/kvm missing or unusable.
    #[error("cannot use /dev/kvm: {0}")]
    Kvm(kvm_ioctls::Error),
    /// A KVM capability we rely on is absent.
    #[error("KVM lacks capability {0}")]
    MissingCap(&'static str),
    /// A KVM setup ioctl failed.
    #[error("KVM {step} failed: {source}")]
    KvmSetup {
        /// Which step.
        step: &'static str,
        /// The error.
        source: kvm_ioctls::Error,
    },
    /// Guest memory.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// Kernel image unreadable.
    #[error("cannot open kernel {path}: {source}")]
    KernelFile {
        /// Path.
        path: String,
        /// Error.
        source: std::io::Error,
    },
    /// Kernel image not a bzImage or ELF, or does not fit.
    #[error("cannot load kernel: {0}")]
    KernelLoad(String),
    /// Initramfs unreadable or does not fit.
    #[error("cannot load initramfs: {0}")]
    Initrd(String),
    /// Command line rejected.
    #[error("kernel command line: {0}")]
    Cmdline(String),
    /// Boot structure could not be built.
    #[error(transparent)]
    BootParams(#[from] boot_params::BootParamsError),
    /// Writing a boot structure into guest memory failed.
    #[error("writing {0} into guest memory failed")]
    GuestWrite(&'static str),
    /// Device setup failed.
    #[error("device {device}: {reason}")]
    Device {
        /// Which device.
        device: String,
        /// Why.
        reason: String,
    },
    /// Bus layout conflict (a monitor bug).
    #[error(transparent)]
    Bus(#[from] BusError),
    /// Snapshot unreadable or incompatible.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// Thread spawn failed.
    #[error("cannot start vCPU thread: {0}")]
    Thread(std::io::Error),
    /// The seccomp filter could not be installed.
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
}
