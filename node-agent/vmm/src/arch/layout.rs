//! Guest physical memory layout for x86_64 microVMs: where the monitor puts boot structures.

/// GDT, loaded by the monitor before the first instruction (boot protocol wants flat segments).
pub const GDT_ADDR: u64 = 0x500;
/// IDT (empty: the guest installs its own before enabling interrupts).
pub const IDT_ADDR: u64 = 0x520;
/// Linux zero page (`struct boot_params`).
pub const ZERO_PAGE_ADDR: u64 = 0x7000;
/// PVH `hvm_start_info` (shares the zero-page slot: a VM boots with one protocol only).
pub const PVH_INFO_ADDR: u64 = 0x6000;
/// PVH memory map table, right after the start info.
pub const PVH_MEMMAP_ADDR: u64 = 0x6040;
/// Initial stack pointer (grows down, below the page tables).
pub const BOOT_STACK_POINTER: u64 = 0x8ff0;
/// PML4 of the boot identity map.
pub const PML4_ADDR: u64 = 0x9000;
/// PDPT of the boot identity map.
pub const PDPT_ADDR: u64 = 0xa000;
/// First of the four page directories (2 MiB pages) mapping 0..4 GiB.
pub const PD_ADDR: u64 = 0xb000;
/// Number of page directories: 4 × 1 GiB covers RAM below the MMIO gap and the MMIO gap itself.
pub const PD_COUNT: u64 = 4;
/// Kernel command line.
pub const CMDLINE_ADDR: u64 = 0x20000;
/// Longest command line we accept (the kernel's own COMMAND_LINE_SIZE on x86 is 2048).
pub const CMDLINE_MAX_SIZE: usize = 2048;
/// Start of the extended BIOS data area: usable RAM below 1 MiB ends here.
pub const EBDA_START: u64 = 0x9fc00;
/// ACPI tables (RSDP first) live in the BIOS area the kernel also scans for an RSDP.
pub const ACPI_ADDR: u64 = 0xe0000;
/// End of the BIOS area (start of high memory, where bzImage kernels load).
pub const HIMEM_START: u64 = 0x10_0000;
/// Start of the 32-bit MMIO gap; guest RAM above this moves above 4 GiB.
pub const MMIO_GAP_START: u64 = 0xd000_0000;
/// End of the 32-bit MMIO gap.
pub const MMIO_GAP_END: u64 = 0x1_0000_0000;
/// Boot-timer device page (first page of the gap, as Firecracker does).
pub const BOOT_TIMER_ADDR: u64 = MMIO_GAP_START;
/// First virtio-mmio device; devices follow every `MMIO_DEVICE_SIZE` bytes.
pub const VIRTIO_MMIO_BASE: u64 = MMIO_GAP_START + 0x1000;
/// Size of one virtio-mmio device window.
pub const MMIO_DEVICE_SIZE: u64 = 0x1000;
/// IOAPIC registers (fixed by the in-kernel irqchip).
pub const IOAPIC_ADDR: u32 = 0xfec0_0000;
/// Local APIC registers.
pub const LAPIC_ADDR: u32 = 0xfee0_0000;
/// TSS the kernel's VMX code needs three pages for (KVM_SET_TSS_ADDR), inside the gap.
pub const KVM_TSS_ADDR: u64 = 0xfffb_d000;
/// COM1 I/O ports and its legacy IRQ.
pub const SERIAL_PORT: u64 = 0x3f8;
/// COM1 legacy IRQ line.
pub const SERIAL_IRQ: u32 = 4;
/// i8042 controller ports 0x60..0x64.
pub const I8042_PORT: u64 = 0x60;
/// First IRQ line for virtio-mmio devices (legacy lines 5..=23 on the IOAPIC).
pub const VIRTIO_IRQ_BASE: u32 = 5;
/// Last usable IOAPIC line.
pub const IRQ_MAX: u32 = 23;
