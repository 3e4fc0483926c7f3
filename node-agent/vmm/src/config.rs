//! VM configuration: plain data that validates itself and does no I/O.

use std::fmt;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::arch::layout::{CMDLINE_MAX_SIZE, IRQ_MAX, VIRTIO_IRQ_BASE};

/// Smallest guest we boot: the boot structures and a kernel need room.
pub const MIN_MEM_MIB: u64 = 16;
/// Largest guest (bounded so sizes stay well inside u64 arithmetic and one host).
pub const MAX_MEM_MIB: u64 = 1 << 20;
/// Most vCPUs (the MADT and CPUID carry APIC ids in a byte; keep well under).
pub const MAX_VCPUS: u8 = 64;
/// Default kernel arguments: console on COM1, reboot through the i8042, no PCI probing,
/// and no probing for i8042 features our minimal controller lacks (as Firecracker does).
pub const DEFAULT_CMDLINE: &str =
    "console=ttyS0 reboot=k panic=1 pci=off i8042.noaux i8042.nomux i8042.dumbkbd";

/// A writer the serial console copies guest output into (shared so the caller can read it).
pub type SharedWriter = Arc<Mutex<dyn Write + Send>>;

/// Where COM1 output goes.
#[derive(Clone, Default)]
pub enum SerialOutput {
    /// Discard.
    #[default]
    Sink,
    /// Append to a file (the pod's log file).
    File(PathBuf),
    /// Copy into a caller-provided writer.
    Writer(SharedWriter),
}

impl fmt::Debug for SerialOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SerialOutput::Sink => write!(f, "Sink"),
            SerialOutput::File(p) => write!(f, "File({})", p.display()),
            SerialOutput::Writer(_) => write!(f, "Writer(..)"),
        }
    }
}

/// The guest kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelConfig {
    /// A bzImage or an ELF vmlinux (PVH entry used when the ELF has one).
    pub path: PathBuf,
    /// Optional initramfs.
    pub initrd: Option<PathBuf>,
    /// Extra kernel arguments appended to `DEFAULT_CMDLINE`.
    pub cmdline: String,
}

/// A virtio-net device backed by a tap interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetConfig {
    /// Tap name (created if absent, as TUNSETIFF does).
    pub tap: String,
    /// Guest MAC address.
    pub mac: [u8; 6],
}

/// A virtio-block device backed by a raw file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockConfig {
    /// Raw disk image.
    pub path: PathBuf,
    /// Refuse guest writes.
    pub read_only: bool,
}

/// Everything needed to start one microVM.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// Number of vCPUs.
    pub vcpus: u8,
    /// Guest RAM in MiB.
    pub mem_mib: u64,
    /// Kernel, initramfs, command line.
    pub kernel: KernelConfig,
    /// COM1 output.
    pub serial: SerialOutput,
    /// Network interfaces.
    pub net: Vec<NetConfig>,
    /// Disks.
    pub block: Vec<BlockConfig>,
}

/// Why a configuration was rejected; each message names the field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// vcpus out of range.
    #[error("vcpus must be between 1 and {MAX_VCPUS}, got {0}")]
    Vcpus(u8),
    /// Memory out of range.
    #[error("mem_mib must be between {MIN_MEM_MIB} and {MAX_MEM_MIB}, got {0}")]
    Memory(u64),
    /// Kernel path empty.
    #[error("kernel.path must name a kernel image")]
    KernelPath,
    /// Command line too long or containing a NUL.
    #[error("kernel.cmdline is invalid: {0}")]
    Cmdline(String),
    /// Tap name unusable.
    #[error("net[{0}].tap must be 1 to 15 bytes without '/' or NUL, got {1:?}")]
    TapName(usize, String),
    /// MAC not unicast.
    #[error("net[{0}].mac must be a unicast address")]
    Mac(usize),
    /// Disk path empty.
    #[error("block[{0}].path must name a disk image")]
    BlockPath(usize),
    /// More devices than IRQ lines.
    #[error("at most {max} virtio devices fit the interrupt lines, got {got}")]
    TooManyDevices {
        /// Configured devices.
        got: usize,
        /// Limit.
        max: usize,
    },
}

impl VmConfig {
    /// A config with defaults for everything but the kernel.
    pub fn new(kernel: PathBuf) -> Self {
        VmConfig {
            vcpus: 1,
            mem_mib: 128,
            kernel: KernelConfig {
                path: kernel,
                initrd: None,
                cmdline: String::new(),
            },
            serial: SerialOutput::Sink,
            net: Vec::new(),
            block: Vec::new(),
        }
    }

    /// The full kernel command line.
    pub fn cmdline(&self) -> String {
        if self.kernel.cmdline.is_empty() {
            DEFAULT_CMDLINE.to_string()
        } else {
            format!("{DEFAULT_CMDLINE} {}", self.kernel.cmdline)
        }
    }

    /// Checks every field; the builder trusts a validated config.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.vcpus == 0 || self.vcpus > MAX_VCPUS {
            return Err(ConfigError::Vcpus(self.vcpus));
        }
        if !(MIN_MEM_MIB..=MAX_MEM_MIB).contains(&self.mem_mib) {
            return Err(ConfigError::Memory(self.mem_mib));
        }
        if self.kernel.path.as_os_str().is_empty() {
            return Err(ConfigError::KernelPath);
        }
        let cmdline = self.cmdline();
        if cmdline.len() >= CMDLINE_MAX_SIZE {
            return Err(ConfigError::Cmdline(format!(
                "{} bytes, the limit is {}",
                cmdline.len(),
                CMDLINE_MAX_SIZE - 1
            )));
        }
        if cmdline.contains('\0') {
            return Err(ConfigError::Cmdline("contains a NUL byte".into()));
        }
        for (i, net) in self.net.iter().enumerate() {
            let bad = net.tap.is_empty() || net.tap.len() > 15 || net.tap.contains(['/', '\0']);
            if bad {
                return Err(ConfigError::TapName(i, net.tap.clone()));
            }
            if net.mac[0] & 1 == 1 {
                return Err(ConfigError::Mac(i));
            }
        }
        for (i, blk) in self.block.iter().enumerate() {
            if blk.path.as_os_str().is_empty() {
                return Err(ConfigError::BlockPath(i));
            }
        }
        let max = (IRQ_MAX - VIRTIO_IRQ_BASE + 1) as usize;
        let got = self.net.len() + self.block.len();
        if got > max {
            return Err(ConfigError::TooManyDevices { got, max });
        }
        Ok(())
    }

    /// Guest RAM in bytes.
    pub fn mem_bytes(&self) -> u64 {
        self.mem_mib << 20
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> VmConfig {
        VmConfig::new("/boot/vmlinuz".into())
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(valid().validate(), Ok(()));
        assert_eq!(valid().cmdline(), DEFAULT_CMDLINE);
    }

    #[test]
    fn table_of_rejections() {
        type Mutation = Box<dyn Fn(&mut VmConfig)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|c| c.vcpus = 0), "vcpus"),
            (Box::new(|c| c.vcpus = 65), "vcpus"),
            (Box::new(|c| c.mem_mib = 8), "mem_mib"),
            (Box::new(|c| c.kernel.path = PathBuf::new()), "kernel.path"),
            (
                Box::new(|c| c.kernel.cmdline = "x".repeat(3000)),
                "kernel.cmdline",
            ),
            (
                Box::new(|c| c.kernel.cmdline = "a\0b".into()),
                "kernel.cmdline",
            ),
            (
                Box::new(|c| {
                    c.net.push(NetConfig {
                        tap: "a/b".into(),
                        mac: [2, 0, 0, 0, 0, 1],
                    })
                }),
                "net[0].tap",
            ),
            (
                Box::new(|c| {
                    c.net.push(NetConfig {
                        tap: "tap0".into(),
                        mac: [1, 0, 0, 0, 0, 1],
                    })
                }),
                "net[0].mac",
            ),
            (
                Box::new(|c| {
                    c.block.push(BlockConfig {
                        path: PathBuf::new(),
                        read_only: false,
                    })
                }),
                "block[0].path",
            ),
            (
                Box::new(|c| {
                    for _ in 0..20 {
                        c.block.push(BlockConfig {
                            path: "d".into(),
                            read_only: true,
                        });
                    }
                }),
                "virtio devices",
            ),
        ];
        for (mutate, field) in cases {
            let mut cfg = valid();
            mutate(&mut cfg);
            let err = cfg.validate().expect_err(field).to_string();
            assert!(err.contains(field), "{err} should name {field}");
        }
    }
}
