//! x86_64 boot structures: pure functions from a VM's shape to the bytes and register
//! values the boot protocols want. No KVM calls here; the builder applies them.

pub mod acpi;
pub mod boot_params;
pub mod cpuid;
pub mod e820;
pub mod gdt;
pub mod lapic;
pub mod layout;
pub mod msr;
pub mod paging;
pub mod regs;
