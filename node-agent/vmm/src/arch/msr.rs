//! Model-specific registers: the values a vCPU boots with and the set a snapshot saves.

/// IA32_TSC.
pub const MSR_IA32_TSC: u32 = 0x10;
/// IA32_SYSENTER_CS.
pub const MSR_IA32_SYSENTER_CS: u32 = 0x174;
/// IA32_SYSENTER_ESP.
pub const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
/// IA32_SYSENTER_EIP.
pub const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
/// IA32_MISC_ENABLE.
pub const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
/// IA32_MTRR_DEF_TYPE.
pub const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
/// IA32_PAT.
pub const MSR_IA32_PAT: u32 = 0x277;
/// IA32_TSC_DEADLINE.
pub const MSR_IA32_TSC_DEADLINE: u32 = 0x6e0;
/// STAR (syscall segment selectors).
pub const MSR_STAR: u32 = 0xc000_0081;
/// LSTAR (64-bit syscall entry).
pub const MSR_LSTAR: u32 = 0xc000_0082;
/// CSTAR (compat syscall entry).
pub const MSR_CSTAR: u32 = 0xc000_0083;
/// SFMASK (syscall flag mask).
pub const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
/// KERNEL_GS_BASE (swapgs).
pub const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
/// TSC_AUX (rdtscp).
pub const MSR_TSC_AUX: u32 = 0xc000_0103;
/// KVM paravirtual clock, wall clock, async page faults, steal time, PV EOI.
pub const MSR_KVM_SYSTEM_TIME_NEW: u32 = 0x4b56_4d01;
/// KVM wall clock.
pub const MSR_KVM_WALL_CLOCK_NEW: u32 = 0x4b56_4d00;
/// KVM async page faults.
pub const MSR_KVM_ASYNC_PF_EN: u32 = 0x4b56_4d02;
/// KVM steal time.
pub const MSR_KVM_STEAL_TIME: u32 = 0x4b56_4d03;
/// KVM paravirtual EOI.
pub const MSR_KVM_PV_EOI_EN: u32 = 0x4b56_4d04;

/// IA32_MISC_ENABLE bit 0: fast string operations (the kernel expects it on).
const MISC_ENABLE_FAST_STRING: u64 = 1;
/// MTRRdefType: MTRRs enabled, default type write-back.
const MTRR_ENABLE_WB: u64 = (1 << 11) | 6;

/// MSR values at the first instruction: syscall state cleared, TSC at zero,
/// fast strings on, memory write-back cacheable.
pub fn boot_msrs() -> Vec<(u32, u64)> {
    vec![
        (MSR_IA32_SYSENTER_CS, 0),
        (MSR_IA32_SYSENTER_ESP, 0),
        (MSR_IA32_SYSENTER_EIP, 0),
        (MSR_STAR, 0),
        (MSR_CSTAR, 0),
        (MSR_KERNEL_GS_BASE, 0),
        (MSR_SYSCALL_MASK, 0),
        (MSR_LSTAR, 0),
        (MSR_IA32_TSC, 0),
        (MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
        (MSR_MTRR_DEF_TYPE, MTRR_ENABLE_WB),
    ]
}

/// MSRs a snapshot carries, when the host KVM lists them as saveable.
pub fn snapshot_msrs() -> Vec<u32> {
    vec![
        MSR_IA32_TSC,
        MSR_IA32_SYSENTER_CS,
        MSR_IA32_SYSENTER_ESP,
        MSR_IA32_SYSENTER_EIP,
        MSR_IA32_MISC_ENABLE,
        MSR_MTRR_DEF_TYPE,
        MSR_IA32_PAT,
        MSR_IA32_TSC_DEADLINE,
        MSR_STAR,
        MSR_LSTAR,
        MSR_CSTAR,
        MSR_SYSCALL_MASK,
        MSR_KERNEL_GS_BASE,
        MSR_TSC_AUX,
        MSR_KVM_SYSTEM_TIME_NEW,
        MSR_KVM_WALL_CLOCK_NEW,
        MSR_KVM_ASYNC_PF_EN,
        MSR_KVM_STEAL_TIME,
        MSR_KVM_PV_EOI_EN,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_values_match_what_the_kernel_expects() {
        let msrs = boot_msrs();
        let get = |i| msrs.iter().find(|(idx, _)| *idx == i).map(|(_, v)| *v);
        assert_eq!(get(MSR_IA32_MISC_ENABLE), Some(1));
        assert_eq!(get(MSR_MTRR_DEF_TYPE), Some(0x806));
        assert_eq!(get(MSR_LSTAR), Some(0));
        assert_eq!(get(MSR_IA32_TSC), Some(0));
    }

    #[test]
    fn snapshot_set_covers_boot_set_and_has_no_duplicates() {
        let saved = snapshot_msrs();
        for (idx, _) in boot_msrs() {
            assert!(saved.contains(&idx), "{idx:#x}");
        }
        let mut dedup = saved.clone();
        dedup.sort_unstable();
        dedup.dedup();
        assert_eq!(dedup.len(), saved.len());
    }
}
