//! The boot GDT: flat segments at the selectors the Linux boot protocol names
//! (`__BOOT_CS` = 0x10, `__BOOT_DS` = 0x18) plus a TSS KVM insists on.

use kvm_bindings::kvm_segment;

/// Selector of the boot code segment.
pub const BOOT_CS: u16 = 0x10;
/// Selector of the boot data segment.
pub const BOOT_DS: u16 = 0x18;
/// Selector of the TSS.
pub const BOOT_TSS: u16 = 0x20;

/// Which mode the entry point runs in, which decides the code segment's L/D bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeMode {
    /// 64-bit long mode (Linux 64-bit boot protocol).
    Long,
    /// 32-bit protected mode, paging off (PVH).
    Protected32,
}

/// Packs a descriptor from flags (access byte in bits 0..8, flags nibble in 12..16),
/// base and limit, as the CPU reads it.
pub const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    ((base as u64 & 0xff00_0000) << (56 - 24))
        | ((flags as u64 & 0xf0ff) << 40)
        | ((limit as u64 & 0x000f_0000) << (48 - 16))
        | ((base as u64 & 0x00ff_ffff) << 16)
        | (limit as u64 & 0x0000_ffff)
}

/// The table: null, unused, code, data, TSS.
pub fn boot_gdt(mode: CodeMode) -> [u64; 5] {
    let code = match mode {
        CodeMode::Long => gdt_entry(0xa09b, 0, 0xfffff),
        CodeMode::Protected32 => gdt_entry(0xc09b, 0, 0xfffff),
    };
    [
        0,
        0,
        code,
        gdt_entry(0xc093, 0, 0xfffff),
        gdt_entry(0x808b, 0, 0xfffff),
    ]
}

/// The hidden part of a segment register as KVM wants it, decoded from a descriptor.
pub fn segment_from_entry(entry: u64, selector: u16) -> kvm_segment {
    let base = ((entry >> 16) & 0x00ff_ffff) | ((entry >> 32) & 0xff00_0000);
    let raw_limit = ((entry & 0xffff) | ((entry >> 32) & 0xf_0000)) as u32;
    let g = ((entry >> 55) & 1) as u8;
    // With 4 KiB granularity the limit counts pages; KVM wants it in bytes.
    let limit = if g == 1 {
        (raw_limit << 12) | 0xfff
    } else {
        raw_limit
    };
    kvm_segment {
        base,
        limit,
        selector,
        type_: ((entry >> 40) & 0xf) as u8,
        present: ((entry >> 47) & 1) as u8,
        dpl: ((entry >> 45) & 3) as u8,
        db: ((entry >> 54) & 1) as u8,
        s: ((entry >> 44) & 1) as u8,
        l: ((entry >> 53) & 1) as u8,
        g,
        avl: ((entry >> 52) & 1) as u8,
        unusable: if (entry >> 47) & 1 == 1 { 0 } else { 1 },
        padding: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_index_the_right_entries() {
        let gdt = boot_gdt(CodeMode::Long);
        let cs = segment_from_entry(gdt[usize::from(BOOT_CS >> 3)], BOOT_CS);
        assert_eq!((cs.l, cs.db, cs.type_, cs.s, cs.present), (1, 0, 0xb, 1, 1));
        let ds = segment_from_entry(gdt[usize::from(BOOT_DS >> 3)], BOOT_DS);
        assert_eq!((ds.l, ds.db, ds.type_, ds.limit), (0, 1, 0x3, 0xffff_ffff));
        let tss = segment_from_entry(gdt[usize::from(BOOT_TSS >> 3)], BOOT_TSS);
        assert_eq!((tss.s, tss.type_), (0, 0xb));
        assert_eq!(gdt[0], 0);
    }

    #[test]
    fn known_encodings() {
        // The classic flat 64-bit code and data descriptors.
        assert_eq!(gdt_entry(0xa09b, 0, 0xfffff), 0x00af_9b00_0000_ffff);
        assert_eq!(gdt_entry(0xc093, 0, 0xfffff), 0x00cf_9300_0000_ffff);
        assert_eq!(gdt_entry(0xc09b, 0, 0xfffff), 0x00cf_9b00_0000_ffff);
        let pvh_cs = segment_from_entry(boot_gdt(CodeMode::Protected32)[2], BOOT_CS);
        assert_eq!((pvh_cs.l, pvh_cs.db, pvh_cs.base), (0, 1, 0));
    }

    #[test]
    fn base_is_reassembled() {
        let seg = segment_from_entry(gdt_entry(0x0093, 0x1234_5678, 0xabcd), 8);
        assert_eq!((seg.base, seg.limit, seg.g), (0x1234_5678, 0xabcd, 0));
    }
}
