//! Initial vCPU registers for each entry protocol (64-bit Linux, PVH), as pure values.

use kvm_bindings::{kvm_fpu, kvm_regs, kvm_sregs};

use super::gdt::{BOOT_CS, BOOT_DS, BOOT_TSS, CodeMode, boot_gdt, segment_from_entry};
use super::layout::{BOOT_STACK_POINTER, GDT_ADDR, IDT_ADDR, PML4_ADDR, ZERO_PAGE_ADDR};

/// CR0.PE: protected mode.
const CR0_PE: u64 = 1;
/// CR0.ET: extension type (always 1 on modern CPUs).
const CR0_ET: u64 = 1 << 4;
/// CR0.PG: paging.
const CR0_PG: u64 = 1 << 31;
/// CR4.PAE: required for long mode.
const CR4_PAE: u64 = 1 << 5;
/// EFER.LME / EFER.LMA: long mode enabled and active.
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
/// RFLAGS bit 1 is reserved and reads as one.
const RFLAGS_RESERVED: u64 = 0x2;

/// How the vCPU enters the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryProtocol {
    /// Long mode at `entry`, RSI = zero page (bzImage startup_64 or vmlinux ELF entry).
    Linux64 {
        /// Entry point.
        entry: u64,
    },
    /// 32-bit protected mode, paging off, at `entry`; EBX = start info.
    Pvh {
        /// PVH entry point from the ELF note.
        entry: u64,
        /// Address of `hvm_start_info`.
        start_info: u64,
    },
}

impl EntryProtocol {
    fn code_mode(self) -> CodeMode {
        match self {
            EntryProtocol::Linux64 { .. } => CodeMode::Long,
            EntryProtocol::Pvh { .. } => CodeMode::Protected32,
        }
    }

    /// The GDT to write at `GDT_ADDR`.
    pub fn gdt(self) -> [u64; 5] {
        boot_gdt(self.code_mode())
    }
}

/// General-purpose registers at the entry point.
pub fn boot_regs(protocol: EntryProtocol) -> kvm_regs {
    match protocol {
        EntryProtocol::Linux64 { entry } => kvm_regs {
            rflags: RFLAGS_RESERVED,
            rip: entry,
            rsp: BOOT_STACK_POINTER,
            rbp: BOOT_STACK_POINTER,
            rsi: ZERO_PAGE_ADDR,
            ..Default::default()
        },
        EntryProtocol::Pvh { entry, start_info } => kvm_regs {
            rflags: RFLAGS_RESERVED,
            rip: entry,
            rbx: start_info,
            ..Default::default()
        },
    }
}

/// Segment and control registers, starting from what KVM reported (`base`), so fields
/// we do not own (APIC base, interrupt bitmap) keep their reset values.
pub fn boot_sregs(protocol: EntryProtocol, base: &kvm_sregs) -> kvm_sregs {
    let mut sregs = *base;
    let gdt = protocol.gdt();
    let code = segment_from_entry(gdt[usize::from(BOOT_CS >> 3)], BOOT_CS);
    let data = segment_from_entry(gdt[usize::from(BOOT_DS >> 3)], BOOT_DS);
    let tss = segment_from_entry(gdt[usize::from(BOOT_TSS >> 3)], BOOT_TSS);
    sregs.gdt.base = GDT_ADDR;
    sregs.gdt.limit = (std::mem::size_of_val(&gdt) - 1) as u16;
    sregs.idt.base = IDT_ADDR;
    sregs.idt.limit = (std::mem::size_of::<u64>() - 1) as u16;
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = tss;
    match protocol {
        EntryProtocol::Linux64 { .. } => {
            sregs.cr0 = CR0_PE | CR0_ET | CR0_PG;
            sregs.cr3 = PML4_ADDR;
            sregs.cr4 = CR4_PAE;
            sregs.efer = EFER_LME | EFER_LMA;
        }
        EntryProtocol::Pvh { .. } => {
            sregs.cr0 = CR0_PE | CR0_ET;
            sregs.cr3 = 0;
            sregs.cr4 = 0;
            sregs.efer = 0;
        }
    }
    sregs
}

/// FPU state: x87 control word and MXCSR at their reset defaults.
pub fn boot_fpu() -> kvm_fpu {
    kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux64_enters_long_mode_with_zero_page_in_rsi() {
        let p = EntryProtocol::Linux64 { entry: 0x100_0200 };
        let regs = boot_regs(p);
        assert_eq!(
            (regs.rip, regs.rsi, regs.rsp, regs.rflags),
            (0x100_0200, 0x7000, 0x8ff0, 2)
        );
        let s = boot_sregs(p, &kvm_sregs::default());
        assert_eq!(s.cs.selector, 0x10);
        assert_eq!(s.ds.selector, 0x18);
        assert_eq!(s.cs.l, 1);
        assert_eq!(s.cr3, 0x9000);
        assert_ne!(s.cr0 & CR0_PG, 0);
        assert_ne!(s.cr4 & CR4_PAE, 0);
        assert_eq!(s.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
        assert_eq!(s.gdt.limit, 39);
    }

    #[test]
    fn pvh_enters_flat_protected_mode_with_start_info_in_ebx() {
        let p = EntryProtocol::Pvh {
            entry: 0x100_0000,
            start_info: 0x6000,
        };
        let regs = boot_regs(p);
        assert_eq!((regs.rip, regs.rbx), (0x100_0000, 0x6000));
        let base = kvm_sregs {
            apic_base: 0xfee0_0900,
            ..Default::default()
        };
        let s = boot_sregs(p, &base);
        assert_eq!((s.cr0 & CR0_PG, s.cr0 & CR0_PE, s.efer), (0, 1, 0));
        assert_eq!((s.cs.l, s.cs.db, s.cs.selector), (0, 1, 0x10));
        assert_eq!(s.apic_base, 0xfee0_0900, "fields we do not own are kept");
    }

    #[test]
    fn fpu_defaults() {
        let fpu = boot_fpu();
        assert_eq!((fpu.fcw, fpu.mxcsr), (0x37f, 0x1f80));
    }
}
