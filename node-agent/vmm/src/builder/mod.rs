//! The one linear recipe that turns a validated `VmConfig` into a running VM. Every KVM
//! ioctl that sets a VM up happens here, in order; the rest of the crate is pure or
//! per-device.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kvm_bindings::{
    KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY, kvm_pit_config, kvm_userspace_memory_region,
};
use kvm_ioctls::{Cap, Kvm, VcpuFd, VmFd};
use vm_memory::{Address, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use crate::arch::{acpi, cpuid, lapic, layout, msr, regs};
use crate::config::{SerialOutput, VmConfig};
use crate::devices::IrqTrigger;
use crate::devices::boot_timer::BootTimer;
use crate::devices::bus::Bus;
use crate::devices::i8042::I8042;
use crate::devices::serial::{SerialDevice, SerialSink};
use crate::devices::virtio::block::Block;
use crate::devices::virtio::mmio::MmioTransport;
use crate::devices::virtio::net::Net;
use crate::devices::virtio::tap::Tap;
use crate::devices::virtio::{VirtioDevice, VirtioInterrupt};
use crate::exit::ExitSignal;
use crate::snapshot;
use crate::vm::{Devices, RunningVm, VmParts};
use crate::vstate::memory;
use crate::vstate::vcpu::{Vcpu, VcpuControl};

mod error;
mod guest_image;

pub use error::BuildError;
use guest_image::{load_guest, load_kernel_entry, write_gdt};

fn kvm_step(step: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> BuildError {
    move |source| BuildError::KvmSetup { step, source }
}

/// Boots a fresh VM from `config`.
pub fn build(config: &VmConfig) -> Result<RunningVm, BuildError> {
    build_inner(config, None)
}

/// Restores a VM saved by `RunningVm::snapshot` into a fresh KVM VM, per `config`'s devices.
pub fn restore(config: &VmConfig, snapshot_dir: &Path) -> Result<RunningVm, BuildError> {
    build_inner(config, Some(snapshot_dir))
}

fn build_inner(config: &VmConfig, snapshot_dir: Option<&Path>) -> Result<RunningVm, BuildError> {
    let start = Instant::now();
    config.validate()?;
    let saved = snapshot_dir
        .map(|dir| snapshot::read_state(dir, config))
        .transpose()?;

    let kvm = Kvm::new().map_err(BuildError::Kvm)?;
    for (cap, name) in [
        (Cap::Irqchip, "IRQCHIP"),
        (Cap::UserMemory, "USER_MEMORY"),
        (Cap::Irqfd, "IRQFD"),
    ] {
        if !kvm.check_extension(cap) {
            return Err(BuildError::MissingCap(name));
        }
    }
    let vm = kvm.create_vm().map_err(kvm_step("create_vm"))?;

    let mem = match snapshot_dir {
        Some(dir) => memory::restore(&dir.join(snapshot::MEMORY_FILE), config.mem_bytes())?,
        None => memory::create(config.mem_bytes())?,
    };
    register_memory(&vm, &mem)?;

    vm.set_tss_address(layout::KVM_TSS_ADDR as usize)
        .map_err(kvm_step("set_tss_address"))?;
    vm.create_irq_chip().map_err(kvm_step("create_irq_chip"))?;
    let pit = kvm_pit_config {
        flags: KVM_PIT_SPEAKER_DUMMY,
        ..Default::default()
    };
    vm.create_pit2(pit).map_err(kvm_step("create_pit2"))?;

    let exit = Arc::new(ExitSignal::default());
    let (devices, pio, mmio) = attach_devices(config, &vm, &mem, &exit, start)?;

    let msr_indices = snapshot_msr_indices(&kvm)?;
    let entry = match &saved {
        Some(state) => {
            state
                .restore_vm(&vm)
                .map_err(kvm_step("restore irqchip/pit/clock"))?;
            state.restore_devices(&devices)?;
            None
        }
        None => {
            load_guest(config, &mem, &devices)?;
            let protocol = load_kernel_entry(config, &mem)?;
            write_gdt(&mem, protocol)?;
            Some(protocol)
        }
    };
    let control = Arc::new(VcpuControl::default());
    let mut vcpus = Vec::new();
    let supported = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .map_err(kvm_step("get_supported_cpuid"))?;
    let vendor = cpuid::vendor(supported.as_slice());
    for index in 0..config.vcpus {
        let fd = vm
            .create_vcpu(u64::from(index))
            .map_err(kvm_step("create_vcpu"))?;
        let mut cpuid = supported.clone();
        cpuid::normalize(cpuid.as_mut_slice(), index, config.vcpus, vendor);
        fd.set_cpuid2(&cpuid).map_err(kvm_step("set_cpuid2"))?;
        match (&saved, entry) {
            (Some(state), _) => state.restore_vcpu(usize::from(index), &fd)?,
            (None, Some(protocol)) => setup_boot_vcpu(&fd, index, protocol)?,
            (None, None) => return Err(BuildError::KernelLoad("no entry point".into())),
        }
        vcpus.push(Vcpu {
            index,
            fd,
            pio: pio.clone(),
            mmio: mmio.clone(),
            exit: exit.clone(),
            control: control.clone(),
            msr_indices: msr_indices.clone(),
        });
    }
    let parts = VmParts {
        vm,
        mem,
        vcpus,
        devices,
        exit,
        control,
        started: start,
    };
    RunningVm::start(parts).map_err(BuildError::Thread)
}

fn register_memory(vm: &VmFd, mem: &GuestMemoryMmap) -> Result<(), BuildError> {
    for (slot, region) in mem.iter().enumerate() {
        let region_desc = kvm_userspace_memory_region {
            slot: slot as u32,
            flags: 0,
            guest_phys_addr: region.start_addr().raw_value(),
            memory_size: region.len(),
            userspace_addr: region.as_ptr() as u64,
        };
        // SAFETY: the mapping belongs to `mem`, which the RunningVm keeps alive for as long
        // as the VM fd (it is dropped after the vCPUs are joined).
        unsafe { vm.set_user_memory_region(region_desc) }
            .map_err(kvm_step("set_user_memory_region"))?;
    }
    Ok(())
}

/// MSRs to save: our list intersected with what this host's KVM can save.
fn snapshot_msr_indices(kvm: &Kvm) -> Result<Arc<Vec<u32>>, BuildError> {
    let host = kvm
        .get_msr_index_list()
        .map_err(kvm_step("get_msr_index_list"))?;
    let host = host.as_slice();
    Ok(Arc::new(
        msr::snapshot_msrs()
            .into_iter()
            .filter(|i| host.contains(i))
            .collect(),
    ))
}

fn serial_sink(out: &SerialOutput) -> Result<SerialSink, BuildError> {
    Ok(match out {
        SerialOutput::Sink => SerialSink::Sink,
        SerialOutput::File(path) => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| BuildError::Device {
                    device: format!("serial output {}", path.display()),
                    reason: e.to_string(),
                })?;
            SerialSink::Owned(Box::new(file))
        }
        SerialOutput::Writer(w) => SerialSink::Shared(w.clone()),
    })
}

fn irq_line(vm: &VmFd, gsi: u32) -> Result<IrqTrigger, BuildError> {
    let trigger = IrqTrigger::new().map_err(|e| BuildError::Device {
        device: format!("irq {gsi}"),
        reason: e.to_string(),
    })?;
    vm.register_irqfd(&trigger.0, gsi)
        .map_err(kvm_step("register_irqfd"))?;
    Ok(trigger)
}

fn attach_devices(
    config: &VmConfig,
    vm: &VmFd,
    mem: &GuestMemoryMmap,
    exit: &Arc<ExitSignal>,
    start: Instant,
) -> Result<(Devices, Arc<Bus>, Arc<Bus>), BuildError> {
    let mut pio = Bus::default();
    let mut mmio = Bus::default();

    let serial = Arc::new(Mutex::new(SerialDevice::new(
        irq_line(vm, layout::SERIAL_IRQ)?,
        serial_sink(&config.serial)?,
    )));
    pio.insert(serial.clone(), layout::SERIAL_PORT, 8)?;
    pio.insert(
        Arc::new(Mutex::new(I8042::new(exit.clone()))),
        layout::I8042_PORT,
        5,
    )?;
    let (timer, boot_time) = BootTimer::new(start);
    mmio.insert(
        Arc::new(Mutex::new(timer)),
        layout::BOOT_TIMER_ADDR,
        layout::MMIO_DEVICE_SIZE,
    )?;

    let mut models: Vec<(String, Box<dyn VirtioDevice>)> = Vec::new();
    for (i, blk) in config.block.iter().enumerate() {
        let name = format!("block[{i}] {}", blk.path.display());
        let file = OpenOptions::new()
            .read(true)
            .write(!blk.read_only)
            .open(&blk.path)
            .map_err(|e| BuildError::Device {
                device: name.clone(),
                reason: e.to_string(),
            })?;
        let dev = Block::new(file, blk.read_only, &format!("drover-blk{i}")).map_err(|e| {
            BuildError::Device {
                device: name.clone(),
                reason: e.to_string(),
            }
        })?;
        models.push((name, Box::new(dev)));
    }
    for (i, net) in config.net.iter().enumerate() {
        let name = format!("net[{i}] tap {}", net.tap);
        let tap = Tap::open(&net.tap).map_err(|e| BuildError::Device {
            device: name.clone(),
            reason: e.to_string(),
        })?;
        models.push((name, Box::new(Net::new(Box::new(tap), net.mac))));
    }
    let mut transports = Vec::new();
    let mut infos = Vec::new();
    for (slot, (_name, model)) in models.into_iter().enumerate() {
        let base = layout::VIRTIO_MMIO_BASE + slot as u64 * layout::MMIO_DEVICE_SIZE;
        let irq = layout::VIRTIO_IRQ_BASE + slot as u32;
        let interrupt = VirtioInterrupt::new(irq_line(vm, irq)?);
        let transport = Arc::new(Mutex::new(MmioTransport::new(
            model,
            mem.clone(),
            interrupt,
        )));
        mmio.insert(transport.clone(), base, layout::MMIO_DEVICE_SIZE)?;
        transports.push(transport);
        infos.push(acpi::MmioDeviceInfo { base, irq });
    }
    let devices = Devices {
        serial,
        transports,
        mmio_infos: infos,
        boot_time,
    };
    Ok((devices, Arc::new(pio), Arc::new(mmio)))
}
fn setup_boot_vcpu(
    fd: &VcpuFd,
    index: u8,
    protocol: regs::EntryProtocol,
) -> Result<(), BuildError> {
    let mut klapic = fd.get_lapic().map_err(kvm_step("get_lapic"))?;
    lapic::set_lint_modes(&mut klapic.regs);
    fd.set_lapic(&klapic).map_err(kvm_step("set_lapic"))?;
    crate::vstate::vcpu::write_msrs(fd, &msr::boot_msrs()).map_err(kvm_step("set_msrs"))?;
    fd.set_fpu(&regs::boot_fpu()).map_err(kvm_step("set_fpu"))?;
    // Only the boot CPU starts at the entry point; the others wait for INIT/SIPI in the
    // in-kernel LAPIC, which then gives them real-mode state of its own.
    if index == 0 {
        fd.set_regs(&regs::boot_regs(protocol))
            .map_err(kvm_step("set_regs"))?;
        let base = fd.get_sregs().map_err(kvm_step("get_sregs"))?;
        fd.set_sregs(&regs::boot_sregs(protocol, &base))
            .map_err(kvm_step("set_sregs"))?;
    }
    Ok(())
}
