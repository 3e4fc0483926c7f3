//! The one linear recipe that turns a validated `VmConfig` into a running VM. Every KVM
//! ioctl that sets a VM up happens here, in order; the rest of the crate is pure or
//! per-device.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kvm_bindings::{
    KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY, kvm_pit_config, kvm_userspace_memory_region,
};
use kvm_ioctls::{Cap, Kvm, VcpuFd, VmFd};
use linux_loader::cmdline::Cmdline;
use linux_loader::loader::elf::PvhBootCapability;
use linux_loader::loader::elf::start_info::hvm_modlist_entry;
use linux_loader::loader::{BzImage, Elf, KernelLoader, load_cmdline};
use vm_memory::{
    Address, Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion,
};

use crate::arch::{acpi, boot_params, cpuid, e820, lapic, layout, msr, paging, regs};
use crate::config::{ConfigError, SerialOutput, VmConfig};
use crate::devices::IrqTrigger;
use crate::devices::boot_timer::BootTimer;
use crate::devices::bus::{Bus, BusError};
use crate::devices::i8042::I8042;
use crate::devices::serial::{SerialDevice, SerialSink};
use crate::devices::virtio::block::Block;
use crate::devices::virtio::mmio::MmioTransport;
use crate::devices::virtio::net::Net;
use crate::devices::virtio::tap::Tap;
use crate::devices::virtio::{VirtioDevice, VirtioInterrupt};
use crate::exit::ExitSignal;
use crate::snapshot::{self, SnapshotError};
use crate::vm::{Devices, RunningVm, VmParts};
use crate::vstate::memory::{self, MemoryError};
use crate::vstate::vcpu::{Vcpu, VcpuControl};

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
}

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
        models.push((name, Box::new(Net::new(tap, net.mac))));
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

/// Writes page tables, GDT, ACPI tables and the command line (everything but the kernel).
fn load_guest(
    config: &VmConfig,
    mem: &GuestMemoryMmap,
    devices: &Devices,
) -> Result<(), BuildError> {
    for page in paging::identity_map() {
        mem.write_slice(&paging::page_bytes(&page), GuestAddress(page.addr))
            .map_err(|_| BuildError::GuestWrite("page tables"))?;
    }
    let tables = acpi::build(layout::ACPI_ADDR, config.vcpus, &devices.mmio_infos);
    for (addr, blob) in &tables.blobs {
        mem.write_slice(blob, GuestAddress(*addr))
            .map_err(|_| BuildError::GuestWrite("ACPI tables"))?;
    }
    let cmdline = Cmdline::try_from(&config.cmdline(), layout::CMDLINE_MAX_SIZE)
        .map_err(|e| BuildError::Cmdline(e.to_string()))?;
    load_cmdline(mem, GuestAddress(layout::CMDLINE_ADDR), &cmdline)
        .map_err(|e| BuildError::Cmdline(e.to_string()))?;
    Ok(())
}

/// Loads the kernel and initramfs, writes the boot-protocol structures, and returns how
/// the vCPUs enter.
fn load_kernel_entry(
    config: &VmConfig,
    mem: &GuestMemoryMmap,
) -> Result<regs::EntryProtocol, BuildError> {
    let path = &config.kernel.path;
    let open_err = |source| BuildError::KernelFile {
        path: path.display().to_string(),
        source,
    };
    let mut kernel = File::open(path).map_err(open_err)?;
    let mut magic = [0u8; 4];
    kernel.read_exact(&mut magic).map_err(open_err)?;
    kernel.seek(SeekFrom::Start(0)).map_err(open_err)?;
    let high = Some(GuestAddress(layout::HIMEM_START));
    let is_elf = magic == *b"\x7fELF";
    let loaded = if is_elf {
        Elf::load(mem, None, &mut kernel, high)
    } else {
        BzImage::load(mem, None, &mut kernel, high)
    }
    .map_err(|e| BuildError::KernelLoad(e.to_string()))?;

    let e820_map = e820::memory_map(config.mem_bytes());
    let max_initrd_end = loaded
        .setup_header
        .map_or(0x3800_0000u64, |h| u64::from(h.initrd_addr_max) + 1);
    let initrd = load_initrd(config, mem, loaded.kernel_end, max_initrd_end)?;
    let cmdline_size = config.cmdline().len() as u32 + 1;
    let rsdp_addr = layout::ACPI_ADDR;

    if let PvhBootCapability::PvhEntryPresent(entry) = loaded.pvh_boot_cap {
        let (mut info, memmap) = boot_params::pvh_start_info(
            layout::CMDLINE_ADDR,
            rsdp_addr,
            layout::PVH_MEMMAP_ADDR,
            &e820_map,
        );
        for (i, entry) in memmap.iter().enumerate() {
            let addr = GuestAddress(layout::PVH_MEMMAP_ADDR + (i * size_of_val(entry)) as u64);
            mem.write_obj(*entry, addr)
                .map_err(|_| BuildError::GuestWrite("PVH memory map"))?;
        }
        if let Some((addr, size)) = initrd {
            let modlist = GuestAddress(layout::PVH_MEMMAP_ADDR + 0x800);
            let module = hvm_modlist_entry {
                paddr: addr,
                size: u64::from(size),
                ..Default::default()
            };
            mem.write_obj(module, modlist)
                .map_err(|_| BuildError::GuestWrite("PVH module list"))?;
            info.nr_modules = 1;
            info.modlist_paddr = modlist.raw_value();
        }
        mem.write_obj(info, GuestAddress(layout::PVH_INFO_ADDR))
            .map_err(|_| BuildError::GuestWrite("PVH start info"))?;
        return Ok(regs::EntryProtocol::Pvh {
            entry: entry.raw_value(),
            start_info: layout::PVH_INFO_ADDR,
        });
    }

    let spec = boot_params::ZeroPageSpec {
        setup_header: loaded.setup_header,
        cmdline_addr: layout::CMDLINE_ADDR,
        cmdline_size,
        initrd,
        e820: &e820_map,
        rsdp_addr,
    };
    let params = boot_params::zero_page(&spec)?;
    mem.write_obj(params, GuestAddress(layout::ZERO_PAGE_ADDR))
        .map_err(|_| BuildError::GuestWrite("zero page"))?;
    // bzImage: 64-bit entry (startup_64) sits 0x200 into the protected-mode code.
    let entry = if is_elf {
        loaded.kernel_load.raw_value()
    } else {
        loaded.kernel_load.raw_value() + 0x200
    };
    Ok(regs::EntryProtocol::Linux64 { entry })
}

/// Places the initramfs page-aligned as high as allowed below 4 GiB and the loader limit.
fn load_initrd(
    config: &VmConfig,
    mem: &GuestMemoryMmap,
    kernel_end: u64,
    limit: u64,
) -> Result<Option<(u64, u32)>, BuildError> {
    let Some(path) = &config.kernel.initrd else {
        return Ok(None);
    };
    let data =
        std::fs::read(path).map_err(|e| BuildError::Initrd(format!("{}: {e}", path.display())))?;
    let size =
        u32::try_from(data.len()).map_err(|_| BuildError::Initrd("larger than 4 GiB".into()))?;
    let low_ram_end = config.mem_bytes().min(layout::MMIO_GAP_START).min(limit);
    let addr = low_ram_end.checked_sub(u64::from(size)).map(|a| a & !0xfff);
    match addr {
        Some(addr) if addr >= kernel_end && addr >= layout::HIMEM_START => {
            mem.write_slice(&data, GuestAddress(addr))
                .map_err(|_| BuildError::GuestWrite("initramfs"))?;
            Ok(Some((addr, size)))
        }
        _ => Err(BuildError::Initrd(format!(
            "{} bytes do not fit in {} MiB of guest memory",
            data.len(),
            config.mem_mib
        ))),
    }
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

/// Writes the GDT and an empty IDT for `protocol`.
fn write_gdt(mem: &GuestMemoryMmap, protocol: regs::EntryProtocol) -> Result<(), BuildError> {
    let gdt: Vec<u8> = protocol
        .gdt()
        .iter()
        .flat_map(|e| e.to_le_bytes())
        .collect();
    mem.write_slice(&gdt, GuestAddress(layout::GDT_ADDR))
        .map_err(|_| BuildError::GuestWrite("GDT"))?;
    mem.write_obj(0u64, GuestAddress(layout::IDT_ADDR))
        .map_err(|_| BuildError::GuestWrite("IDT"))
}
