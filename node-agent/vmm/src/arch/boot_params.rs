//! The Linux zero page (`struct boot_params`) for the 64-bit boot protocol, and the
//! PVH start info for ELF kernels that carry a PVH entry note.

use linux_loader::loader::bootparam::{boot_params, setup_header};
use linux_loader::loader::elf::start_info::{hvm_memmap_table_entry, hvm_start_info};

use super::e820::E820Entry;

/// `boot_flag` value at 0x1fe.
pub const BOOT_FLAG_MAGIC: u16 = 0xaa55;
/// `header` value at 0x202: "HdrS".
pub const HDRS_MAGIC: u32 = 0x5372_6448;
/// `type_of_loader`: undefined loader, which the kernel accepts from any boot loader.
pub const LOADER_TYPE_UNDEFINED: u8 = 0xff;
/// Kernel alignment we advertise for ELF kernels without a real setup header (16 MiB).
pub const KERNEL_ALIGNMENT: u32 = 0x0100_0000;
/// `hvm_start_info.magic`.
pub const PVH_MAGIC: u32 = 0x336e_c578;

/// Errors building boot parameters. Each message is the reason a VM cannot boot.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BootParamsError {
    /// The memory map has more entries than the zero page holds.
    #[error("e820 map has {0} entries; the zero page holds at most 128")]
    TooManyE820Entries(usize),
    /// An address the 32-bit header fields must carry lies above 4 GiB.
    #[error("{0} at {1:#x} lies above 4 GiB where the boot protocol cannot point")]
    AddressTooHigh(&'static str, u64),
}

/// What goes into the zero page besides the kernel's own setup header.
#[derive(Debug, Clone)]
pub struct ZeroPageSpec<'a> {
    /// The bzImage's header as read from the image; `None` for ELF kernels.
    pub setup_header: Option<setup_header>,
    /// Guest address of the NUL-terminated command line.
    pub cmdline_addr: u64,
    /// Command line length in bytes, NUL included.
    pub cmdline_size: u32,
    /// Initramfs location and size, if any.
    pub initrd: Option<(u64, u32)>,
    /// The e820 map.
    pub e820: &'a [E820Entry],
    /// Where the RSDP is, so the kernel need not scan for it.
    pub rsdp_addr: u64,
}

fn low32(what: &'static str, addr: u64) -> Result<u32, BootParamsError> {
    u32::try_from(addr).map_err(|_| BootParamsError::AddressTooHigh(what, addr))
}

/// Fills a zero page following Documentation/arch/x86/boot.rst ("64-bit boot protocol").
pub fn zero_page(spec: &ZeroPageSpec<'_>) -> Result<boot_params, BootParamsError> {
    let mut params = boot_params::default();
    if let Some(hdr) = spec.setup_header {
        params.hdr = hdr;
    } else {
        params.hdr.kernel_alignment = KERNEL_ALIGNMENT;
    }
    params.hdr.type_of_loader = LOADER_TYPE_UNDEFINED;
    params.hdr.boot_flag = BOOT_FLAG_MAGIC;
    params.hdr.header = HDRS_MAGIC;
    params.hdr.cmd_line_ptr = low32("command line", spec.cmdline_addr)?;
    params.hdr.cmdline_size = spec.cmdline_size;
    if let Some((addr, size)) = spec.initrd {
        params.hdr.ramdisk_image = low32("initramfs", addr)?;
        params.hdr.ramdisk_size = size;
    }
    params.acpi_rsdp_addr = spec.rsdp_addr;
    if spec.e820.len() > params.e820_table.len() {
        return Err(BootParamsError::TooManyE820Entries(spec.e820.len()));
    }
    for (slot, entry) in params.e820_table.iter_mut().zip(spec.e820) {
        slot.addr = entry.addr;
        slot.size = entry.size;
        slot.r#type = entry.kind;
    }
    // Bounded by the check above (at most 128).
    params.e820_entries = spec.e820.len() as u8;
    Ok(params)
}

/// Fills the PVH start info (xen/include/public/arch-x86/hvm/start_info.h, version 1)
/// and its memory map; `memmap_addr` is where the caller writes the returned table.
pub fn pvh_start_info(
    cmdline_addr: u64,
    rsdp_addr: u64,
    memmap_addr: u64,
    e820: &[E820Entry],
) -> (hvm_start_info, Vec<hvm_memmap_table_entry>) {
    let memmap: Vec<hvm_memmap_table_entry> = e820
        .iter()
        .map(|e| hvm_memmap_table_entry {
            addr: e.addr,
            size: e.size,
            type_: e.kind,
            reserved: 0,
        })
        .collect();
    let info = hvm_start_info {
        magic: PVH_MAGIC,
        version: 1,
        cmdline_paddr: cmdline_addr,
        rsdp_paddr: rsdp_addr,
        memmap_paddr: memmap_addr,
        memmap_entries: memmap.len() as u32,
        ..Default::default()
    };
    (info, memmap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::e820::memory_map;
    use vm_memory::ByteValued;

    fn u16_at(b: &[u8], off: usize) -> u16 {
        u16::from_le_bytes([b[off], b[off + 1]])
    }
    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
    }
    fn u64_at(b: &[u8], off: usize) -> u64 {
        (u64::from(u32_at(b, off + 4)) << 32) | u64::from(u32_at(b, off))
    }

    #[test]
    fn zero_page_fields_sit_at_boot_protocol_offsets() {
        let e820 = memory_map(256 << 20);
        let spec = ZeroPageSpec {
            setup_header: None,
            cmdline_addr: 0x20000,
            cmdline_size: 42,
            initrd: Some((0x0800_0000, 0x1234)),
            e820: &e820,
            rsdp_addr: 0xe0000,
        };
        let params = zero_page(&spec).unwrap();
        let b = params.as_slice();
        assert_eq!(b.len(), 4096);
        assert_eq!(u64_at(b, 0x070), 0xe0000, "acpi_rsdp_addr");
        assert_eq!(usize::from(b[0x1e8]), e820.len(), "e820_entries");
        assert_eq!(u16_at(b, 0x1fe), 0xaa55, "boot_flag");
        assert_eq!(u32_at(b, 0x202), 0x5372_6448, "header");
        assert_eq!(b[0x210], 0xff, "type_of_loader");
        assert_eq!(u32_at(b, 0x218), 0x0800_0000, "ramdisk_image");
        assert_eq!(u32_at(b, 0x21c), 0x1234, "ramdisk_size");
        assert_eq!(u32_at(b, 0x228), 0x20000, "cmd_line_ptr");
        assert_eq!(u32_at(b, 0x230), KERNEL_ALIGNMENT, "kernel_alignment");
        assert_eq!(u32_at(b, 0x238), 42, "cmdline_size");
        // e820_table at 0x2d0, 20-byte packed entries.
        for (i, e) in e820.iter().enumerate() {
            let off = 0x2d0 + 20 * i;
            assert_eq!(u64_at(b, off), e.addr);
            assert_eq!(u64_at(b, off + 8), e.size);
            assert_eq!(u32_at(b, off + 16), e.kind);
        }
    }

    #[test]
    fn keeps_the_kernels_header_but_overrides_loader_fields() {
        let hdr = setup_header {
            version: 0x020f,
            kernel_alignment: 0x20_0000,
            ..Default::default()
        };
        let spec = ZeroPageSpec {
            setup_header: Some(hdr),
            cmdline_addr: 0x20000,
            cmdline_size: 1,
            initrd: None,
            e820: &[],
            rsdp_addr: 0,
        };
        let params = zero_page(&spec).unwrap();
        let b = params.as_slice();
        assert_eq!(u16_at(b, 0x206), 0x020f, "version preserved");
        assert_eq!(
            u32_at(b, 0x230),
            0x20_0000,
            "kernel's own alignment preserved"
        );
        assert_eq!(b[0x210], 0xff);
    }

    #[test]
    fn rejects_what_the_zero_page_cannot_hold() {
        let many = vec![
            E820Entry {
                addr: 0,
                size: 1,
                kind: 1
            };
            129
        ];
        let spec = |e820| ZeroPageSpec {
            setup_header: None,
            cmdline_addr: 0x20000,
            cmdline_size: 1,
            initrd: None,
            e820,
            rsdp_addr: 0,
        };
        assert_eq!(
            zero_page(&spec(&many)).unwrap_err(),
            BootParamsError::TooManyE820Entries(129)
        );
        let high = ZeroPageSpec {
            cmdline_addr: 1 << 33,
            ..spec(&[])
        };
        assert!(matches!(
            zero_page(&high),
            Err(BootParamsError::AddressTooHigh(..))
        ));
    }

    #[test]
    fn pvh_start_info_layout() {
        let e820 = memory_map(64 << 20);
        let (info, memmap) = pvh_start_info(0x20000, 0xe0000, 0x6040, &e820);
        assert_eq!(info.magic, 0x336e_c578);
        assert_eq!(info.version, 1);
        assert_eq!(info.memmap_entries as usize, e820.len());
        assert_eq!(memmap[0].type_, 1);
        assert_eq!(std::mem::size_of::<hvm_start_info>(), 56);
        assert_eq!(std::mem::offset_of!(hvm_start_info, cmdline_paddr), 24);
        assert_eq!(std::mem::offset_of!(hvm_start_info, rsdp_paddr), 32);
        assert_eq!(std::mem::offset_of!(hvm_start_info, memmap_paddr), 40);
    }
}
