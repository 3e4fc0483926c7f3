//! Snapshots: guest memory in one file, VM/vCPU/device state in another, restored into
//! a fresh VM built from the same config.

pub mod codec;

use std::path::Path;

use kvm_bindings::{
    KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, kvm_clock_data, kvm_irqchip,
    kvm_pit_state2,
};
use kvm_ioctls::{VcpuFd, VmFd};
use vm_memory::GuestMemoryMmap;
use vm_superio::serial::SerialState;

use self::codec::{CodecError, StateReader, StateWriter};
use crate::builder::BuildError;
use crate::config::VmConfig;
use crate::devices::virtio::mmio::TransportState;
use crate::vm::Devices;
use crate::vstate::memory::{self, MemoryError};
use crate::vstate::vcpu::VcpuState;

/// File holding guest RAM.
pub const MEMORY_FILE: &str = "memory";
/// File holding everything else.
pub const STATE_FILE: &str = "state";

/// Errors taking or reading a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The VM already ended.
    #[error("the VM is not running")]
    NotRunning,
    /// vCPUs did not pause in time.
    #[error("vCPUs did not pause within the timeout")]
    PauseTimeout,
    /// A vCPU failed to report its state.
    #[error("saving vCPU state: {0}")]
    Vcpu(String),
    /// A KVM state ioctl failed.
    #[error("KVM {0}: {1}")]
    Kvm(&'static str, kvm_ioctls::Error),
    /// File I/O.
    #[error("snapshot file: {0}")]
    Io(#[from] std::io::Error),
    /// Guest memory dump.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// Malformed state file.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Snapshot taken with another VM shape.
    #[error("snapshot does not match the config: {0}")]
    Mismatch(String),
    /// Device state rejected.
    #[error("restoring device state: {0}")]
    Device(String),
}

/// Everything but guest memory.
pub struct VmState {
    mem_bytes: u64,
    irqchips: Vec<kvm_irqchip>,
    pit: kvm_pit_state2,
    clock: kvm_clock_data,
    vcpus: Vec<VcpuState>,
    serial: SerialState,
    transports: Vec<TransportState>,
}

const CHIPS: [u32; 3] = [
    KVM_IRQCHIP_PIC_MASTER,
    KVM_IRQCHIP_PIC_SLAVE,
    KVM_IRQCHIP_IOAPIC,
];

/// Writes `dir/state` and `dir/memory`. vCPUs must be paused (their states given).
pub fn write(
    dir: &Path,
    vm: &VmFd,
    mem: &GuestMemoryMmap,
    devices: &Devices,
    vcpu_states: Vec<Result<VcpuState, String>>,
) -> Result<(), SnapshotError> {
    let vcpus = vcpu_states
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(SnapshotError::Vcpu)?;
    // Hold every transport so the I/O thread cannot write guest memory mid-dump.
    let transports: Vec<_> = devices
        .transports
        .iter()
        .map(|t| t.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
        .collect();
    let mut irqchips = Vec::new();
    for chip_id in CHIPS {
        let mut chip = kvm_irqchip {
            chip_id,
            ..Default::default()
        };
        vm.get_irqchip(&mut chip)
            .map_err(|e| SnapshotError::Kvm("get_irqchip", e))?;
        irqchips.push(chip);
    }
    let state = VmState {
        mem_bytes: vm_memory::GuestMemoryBackend::iter(mem)
            .map(vm_memory::GuestMemoryRegion::len)
            .sum(),
        irqchips,
        pit: vm
            .get_pit2()
            .map_err(|e| SnapshotError::Kvm("get_pit2", e))?,
        clock: vm
            .get_clock()
            .map_err(|e| SnapshotError::Kvm("get_clock", e))?,
        vcpus,
        serial: devices
            .serial
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .state(),
        transports: transports.iter().map(|t| t.state()).collect(),
    };
    std::fs::create_dir_all(dir)?;
    memory::save(mem, &dir.join(MEMORY_FILE))?;
    std::fs::write(dir.join(STATE_FILE), state.encode())?;
    Ok(())
}

/// Reads and checks `dir/state` against `config`.
pub fn read_state(dir: &Path, config: &VmConfig) -> Result<VmState, SnapshotError> {
    let bytes = std::fs::read(dir.join(STATE_FILE))?;
    let state = VmState::decode(&bytes)?;
    if state.mem_bytes != config.mem_bytes() {
        return Err(SnapshotError::Mismatch(format!(
            "snapshot has {} MiB of memory, config {}",
            state.mem_bytes >> 20,
            config.mem_mib
        )));
    }
    if state.vcpus.len() != usize::from(config.vcpus) {
        return Err(SnapshotError::Mismatch(format!(
            "snapshot has {} vCPUs, config {}",
            state.vcpus.len(),
            config.vcpus
        )));
    }
    if state.transports.len() != config.block.len() + config.net.len() {
        return Err(SnapshotError::Mismatch(
            "virtio device count differs".into(),
        ));
    }
    Ok(state)
}

impl VmState {
    fn encode(&self) -> Vec<u8> {
        let mut w = StateWriter::default();
        w.u64(self.mem_bytes);
        w.u64(self.irqchips.len() as u64);
        for chip in &self.irqchips {
            w.pod(chip);
        }
        w.pod(&self.pit);
        w.pod(&self.clock);
        w.u64(self.vcpus.len() as u64);
        for v in &self.vcpus {
            v.encode(&mut w);
        }
        let s = &self.serial;
        for b in [
            s.baud_divisor_low,
            s.baud_divisor_high,
            s.interrupt_enable,
            s.interrupt_identification,
            s.line_control,
            s.line_status,
            s.modem_control,
            s.modem_status,
            s.scratch,
        ] {
            w.u8(b);
        }
        w.bytes(&s.in_buffer);
        w.u64(self.transports.len() as u64);
        for t in &self.transports {
            w.u32(t.status);
            w.u64(t.driver_features);
            for sel in t.selectors {
                w.u32(sel);
            }
            w.u32(t.interrupt_status);
            w.u64(t.queues.len() as u64);
            for &(size, ready, desc, avail, used, next_avail, next_used) in &t.queues {
                w.u16(size);
                w.u8(u8::from(ready));
                w.u64(desc);
                w.u64(avail);
                w.u64(used);
                w.u16(next_avail);
                w.u16(next_used);
            }
        }
        w.finish()
    }

    fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut r = StateReader::open(bytes)?;
        let bounded = |n: u64, max: u64, what| {
            if n <= max {
                Ok(n)
            } else {
                Err(CodecError::Invalid(what))
            }
        };
        let mem_bytes = r.u64()?;
        let chips = bounded(r.u64()?, 3, "irqchip count")?;
        let irqchips = (0..chips).map(|_| r.pod()).collect::<Result<_, _>>()?;
        let pit = r.pod()?;
        let clock = r.pod()?;
        let n_vcpus = bounded(r.u64()?, 256, "vcpu count")?;
        let vcpus = (0..n_vcpus)
            .map(|_| VcpuState::decode(&mut r))
            .collect::<Result<_, _>>()?;
        let mut regs = [0u8; 9];
        for b in &mut regs {
            *b = r.u8()?;
        }
        let serial = SerialState {
            baud_divisor_low: regs[0],
            baud_divisor_high: regs[1],
            interrupt_enable: regs[2],
            interrupt_identification: regs[3],
            line_control: regs[4],
            line_status: regs[5],
            modem_control: regs[6],
            modem_status: regs[7],
            scratch: regs[8],
            in_buffer: r.bytes()?.to_vec(),
        };
        let n_transports = bounded(r.u64()?, 32, "device count")?;
        let mut transports = Vec::new();
        for _ in 0..n_transports {
            let status = r.u32()?;
            let driver_features = r.u64()?;
            let selectors = [r.u32()?, r.u32()?, r.u32()?];
            let interrupt_status = r.u32()?;
            let n_queues = bounded(r.u64()?, 16, "queue count")?;
            let mut queues = Vec::new();
            for _ in 0..n_queues {
                queues.push((
                    r.u16()?,
                    r.u8()? != 0,
                    r.u64()?,
                    r.u64()?,
                    r.u64()?,
                    r.u16()?,
                    r.u16()?,
                ));
            }
            transports.push(TransportState {
                status,
                driver_features,
                selectors,
                interrupt_status,
                queues,
            });
        }
        if !r.is_empty() {
            return Err(CodecError::Invalid("trailing bytes"));
        }
        Ok(VmState {
            mem_bytes,
            irqchips,
            pit,
            clock,
            vcpus,
            serial,
            transports,
        })
    }

    /// Loads irqchip, PIT and clock into a fresh VM.
    pub fn restore_vm(&self, vm: &VmFd) -> Result<(), kvm_ioctls::Error> {
        vm.set_pit2(&self.pit)?;
        let mut clock = self.clock;
        // Only the value is settable; KVM rejects flags it reported (e.g. TSC_STABLE).
        clock.flags = 0;
        vm.set_clock(&clock)?;
        for chip in &self.irqchips {
            vm.set_irqchip(chip)?;
        }
        Ok(())
    }

    /// Loads device state into freshly attached devices.
    pub fn restore_devices(&self, devices: &Devices) -> Result<(), BuildError> {
        let dev_err = |reason: String| BuildError::Snapshot(SnapshotError::Device(reason));
        devices
            .serial
            .lock()
            .map_err(|_| dev_err("serial lock poisoned".into()))?
            .restore(&self.serial)
            .map_err(dev_err)?;
        for (t, state) in devices.transports.iter().zip(&self.transports) {
            t.lock()
                .map_err(|_| dev_err("transport lock poisoned".into()))?
                .restore(state)
                .map_err(dev_err)?;
        }
        Ok(())
    }

    /// Loads vCPU `index`'s state.
    pub fn restore_vcpu(&self, index: usize, fd: &VcpuFd) -> Result<(), BuildError> {
        let state = self.vcpus.get(index).ok_or_else(|| {
            BuildError::Snapshot(SnapshotError::Mismatch(format!(
                "no state for vCPU {index}"
            )))
        })?;
        state
            .restore(fd)
            .map_err(|e| BuildError::Snapshot(SnapshotError::Kvm("restore vCPU", e)))
    }
}
