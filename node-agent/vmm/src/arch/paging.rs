//! Identity page tables for the 64-bit entry: 0..4 GiB mapped with 2 MiB pages.

use super::layout::{PD_ADDR, PD_COUNT, PDPT_ADDR, PML4_ADDR};

/// Present + writable.
const PRESENT_RW: u64 = 0x3;
/// Present + writable + page size (2 MiB leaf in a page directory).
const PRESENT_RW_HUGE: u64 = 0x83;

/// A page-table page to write into guest memory: its guest address and 512 entries.
pub struct TablePage {
    /// Guest physical address of the page.
    pub addr: u64,
    /// The 512 eight-byte entries.
    pub entries: Vec<u64>,
}

/// Builds the PML4, the PDPT and `PD_COUNT` page directories. Mapping the MMIO gap too
/// lets a guest touch virtio-mmio registers before it installs its own tables.
pub fn identity_map() -> Vec<TablePage> {
    let mut pml4 = vec![0u64; 512];
    pml4[0] = PDPT_ADDR | PRESENT_RW;
    let mut pdpt = vec![0u64; 512];
    let mut pages = Vec::new();
    for dir in 0..PD_COUNT {
        let pd_addr = PD_ADDR + dir * 0x1000;
        pdpt[dir as usize] = pd_addr | PRESENT_RW;
        let entries = (0..512u64)
            .map(|i| ((dir << 30) + (i << 21)) | PRESENT_RW_HUGE)
            .collect();
        pages.push(TablePage {
            addr: pd_addr,
            entries,
        });
    }
    pages.insert(
        0,
        TablePage {
            addr: PDPT_ADDR,
            entries: pdpt,
        },
    );
    pages.insert(
        0,
        TablePage {
            addr: PML4_ADDR,
            entries: pml4,
        },
    );
    pages
}

/// Serialises one table page in the little-endian layout the MMU reads.
pub fn page_bytes(page: &TablePage) -> Vec<u8> {
    page.entries.iter().flat_map(|e| e.to_le_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Walks the tables like the MMU would for a 2 MiB mapping.
    fn translate(pages: &[TablePage], va: u64) -> Option<u64> {
        let find = |addr: u64| pages.iter().find(|p| p.addr == addr);
        let pml4e = find(PML4_ADDR)?.entries[((va >> 39) & 0x1ff) as usize];
        if pml4e & 1 == 0 {
            return None;
        }
        let pdpte = find(pml4e & !0xfff)?.entries[((va >> 30) & 0x1ff) as usize];
        if pdpte & 1 == 0 {
            return None;
        }
        let pde = find(pdpte & !0xfff)?.entries[((va >> 21) & 0x1ff) as usize];
        assert_eq!(pde & 0x80, 0x80, "leaf must be a 2 MiB page");
        Some((pde & !0x1f_ffff & !(1 << 63) & !0xfff) + (va & 0x1f_ffff))
    }

    #[test]
    fn maps_low_memory_and_mmio_gap_one_to_one() {
        let pages = identity_map();
        assert_eq!(pages.len(), 2 + PD_COUNT as usize);
        for va in [
            0u64,
            0x7000,
            0x10_0000,
            0x3fff_ffff,
            0xd000_0123,
            0xfee0_0000,
            0xffff_ffff,
        ] {
            assert_eq!(translate(&pages, va), Some(va), "va {va:#x}");
        }
        assert_eq!(translate(&pages, 0x1_0000_0000), None);
    }

    #[test]
    fn serialises_little_endian() {
        let pages = identity_map();
        let bytes = page_bytes(&pages[0]);
        assert_eq!(bytes.len(), 4096);
        assert_eq!(&bytes[0..8], &(PDPT_ADDR | 3).to_le_bytes());
    }
}
