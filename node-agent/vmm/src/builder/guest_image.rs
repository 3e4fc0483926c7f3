//! Writes what the guest finds in memory at its first instruction: kernel, initramfs,
//! command line, page tables, GDT, ACPI tables and the boot protocol's info block.
//! File and guest-memory I/O only; no KVM calls.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};

use linux_loader::cmdline::Cmdline;
use linux_loader::loader::elf::PvhBootCapability;
use linux_loader::loader::elf::start_info::hvm_modlist_entry;
use linux_loader::loader::{BzImage, Elf, KernelLoader, load_cmdline};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};

use super::BuildError;
use crate::arch::{acpi, boot_params, e820, layout, paging, regs};
use crate::config::VmConfig;
use crate::vm::Devices;

/// Writes page tables, GDT, ACPI tables and the command line (everything but the kernel).
pub(super) fn load_guest(
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
pub(super) fn load_kernel_entry(
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

/// Writes the GDT and an empty IDT for `protocol`.
pub(super) fn write_gdt(
    mem: &GuestMemoryMmap,
    protocol: regs::EntryProtocol,
) -> Result<(), BuildError> {
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
