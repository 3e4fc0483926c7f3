//! Guest RAM regions and the e820 map the kernel reads to learn them.

use super::layout::{ACPI_ADDR, EBDA_START, HIMEM_START, MMIO_GAP_END, MMIO_GAP_START};

/// e820 type of usable RAM.
pub const E820_RAM: u32 = 1;
/// e820 type of reserved memory (BIOS area, ACPI tables we never let the kernel reuse).
pub const E820_RESERVED: u32 = 2;

/// One e820 entry as the boot protocol lays it out (20 bytes, packed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E820Entry {
    /// Guest physical start.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// `E820_RAM` or `E820_RESERVED`.
    pub kind: u32,
}

/// The host mappings backing guest RAM: below the MMIO gap, and the remainder above 4 GiB.
pub fn ram_regions(mem_size: u64) -> Vec<(u64, u64)> {
    if mem_size <= MMIO_GAP_START {
        vec![(0, mem_size)]
    } else {
        vec![
            (0, MMIO_GAP_START),
            (MMIO_GAP_END, mem_size - MMIO_GAP_START),
        ]
    }
}

/// The e820 map for `mem_size` bytes of RAM: low RAM up to the EBDA, the BIOS area
/// (holding our ACPI tables) reserved, then high RAM around the MMIO gap.
pub fn memory_map(mem_size: u64) -> Vec<E820Entry> {
    let mut map = vec![
        E820Entry {
            addr: 0,
            size: EBDA_START,
            kind: E820_RAM,
        },
        E820Entry {
            addr: ACPI_ADDR,
            size: HIMEM_START - ACPI_ADDR,
            kind: E820_RESERVED,
        },
    ];
    for (start, size) in ram_regions(mem_size) {
        let start = start.max(HIMEM_START);
        let end = if start >= MMIO_GAP_END {
            start + size
        } else {
            size.min(MMIO_GAP_START)
        };
        if end > start {
            map.push(E820Entry {
                addr: start,
                size: end - start,
                kind: E820_RAM,
            });
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn small_vm_has_low_ram_bios_hole_and_high_ram() {
        let map = memory_map(128 * MIB);
        assert_eq!(map.len(), 3);
        assert_eq!(
            map[0],
            E820Entry {
                addr: 0,
                size: 0x9fc00,
                kind: E820_RAM
            }
        );
        assert_eq!(map[1].kind, E820_RESERVED);
        assert_eq!(
            map[2],
            E820Entry {
                addr: 0x10_0000,
                size: 127 * MIB,
                kind: E820_RAM
            }
        );
    }

    #[test]
    fn large_vm_splits_around_mmio_gap() {
        let mem = 4096 * MIB;
        assert_eq!(
            ram_regions(mem),
            vec![(0, MMIO_GAP_START), (MMIO_GAP_END, mem - MMIO_GAP_START)]
        );
        let map = memory_map(mem);
        let ram: u64 = map
            .iter()
            .filter(|e| e.kind == E820_RAM)
            .map(|e| e.size)
            .sum();
        // Everything but the BIOS area [EBDA_START, 1 MiB) is usable.
        assert_eq!(ram, mem - (HIMEM_START - EBDA_START));
        let last = map[map.len() - 1];
        assert_eq!(last.addr, MMIO_GAP_END);
        assert!(
            map.iter()
                .all(|e| e.addr + e.size <= MMIO_GAP_START || e.addr >= MMIO_GAP_END)
        );
    }
}
