//! Local APIC LVT setup: LINT0 delivers the PIC's ExtINT, LINT1 delivers NMIs, as the
//! MP spec's virtual-wire mode expects before the kernel takes over.

use std::os::raw::c_char;

/// LVT LINT0 register offset.
pub const APIC_LVT0: usize = 0x350;
/// LVT LINT1 register offset.
pub const APIC_LVT1: usize = 0x360;
/// Delivery mode ExtINT.
pub const MODE_EXTINT: u32 = 0x7;
/// Delivery mode NMI.
pub const MODE_NMI: u32 = 0x4;

fn get_reg(regs: &[c_char], offset: usize) -> u32 {
    let b = |i: usize| regs[offset + i] as u8;
    u32::from_le_bytes([b(0), b(1), b(2), b(3)])
}

fn set_reg(regs: &mut [c_char], offset: usize, value: u32) {
    for (i, byte) in value.to_le_bytes().iter().enumerate() {
        regs[offset + i] = *byte as c_char;
    }
}

fn with_delivery_mode(reg: u32, mode: u32) -> u32 {
    (reg & !0x700) | (mode << 8)
}

/// Rewrites LINT0/LINT1 delivery modes in a `kvm_lapic_state.regs` page.
pub fn set_lint_modes(regs: &mut [c_char; 1024]) {
    let lvt0 = with_delivery_mode(get_reg(regs, APIC_LVT0), MODE_EXTINT);
    set_reg(regs, APIC_LVT0, lvt0);
    let lvt1 = with_delivery_mode(get_reg(regs, APIC_LVT1), MODE_NMI);
    set_reg(regs, APIC_LVT1, lvt1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_extint_and_nmi_keeping_other_bits() {
        let mut regs = [0 as c_char; 1024];
        set_reg(&mut regs, APIC_LVT0, 0x0001_0000 | 0x500);
        set_lint_modes(&mut regs);
        assert_eq!(get_reg(&regs, APIC_LVT0), 0x0001_0700);
        assert_eq!(get_reg(&regs, APIC_LVT1), 0x400);
    }
}
