//! CPUID normalisation: what each vCPU sees, derived from what KVM supports on this host.

use kvm_bindings::kvm_cpuid_entry2;

/// Host CPU vendors whose quirks we handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// GenuineIntel.
    Intel,
    /// AuthenticAMD (also HygonGenuine, which follows AMD).
    Amd,
    /// Anything else: only the vendor-neutral fixes apply.
    Other,
}

/// Leaf 1 ECX: running under a hypervisor.
const ECX_HYPERVISOR: u32 = 1 << 31;
/// Leaf 1 ECX: TSC deadline timer (works with the in-kernel LAPIC).
const ECX_TSC_DEADLINE: u32 = 1 << 24;
/// Leaf 1 EDX: hyper-threading (we present one thread per core).
const EDX_HTT: u32 = 1 << 28;
/// Leaf 7.0 EDX: IA32_ARCH_CAPABILITIES, which KVM cannot back on AMD hosts.
const EDX_ARCH_CAPABILITIES: u32 = 1 << 29;
/// Leaf 6 ECX: energy performance bias, an MSR we do not emulate.
const ECX_EPB: u32 = 1 << 3;

/// Reads the vendor from leaf 0 (EBX, EDX, ECX spell it).
pub fn vendor(entries: &[kvm_cpuid_entry2]) -> Vendor {
    let Some(leaf0) = entries.iter().find(|e| e.function == 0) else {
        return Vendor::Other;
    };
    let mut id = [0u8; 12];
    id[0..4].copy_from_slice(&leaf0.ebx.to_le_bytes());
    id[4..8].copy_from_slice(&leaf0.edx.to_le_bytes());
    id[8..12].copy_from_slice(&leaf0.ecx.to_le_bytes());
    match &id {
        b"GenuineIntel" => Vendor::Intel,
        b"AuthenticAMD" | b"HygonGenuine" => Vendor::Amd,
        _ => Vendor::Other,
    }
}

/// Rewrites the supported-CPUID list for vCPU `cpu_id` of `cpu_count`: APIC ids,
/// topology, the hypervisor bit, and features the host cannot virtualise hidden.
pub fn normalize(entries: &mut [kvm_cpuid_entry2], cpu_id: u8, cpu_count: u8, vendor: Vendor) {
    for entry in entries.iter_mut() {
        match entry.function {
            0x1 => {
                // EBX[31:24] initial APIC id, EBX[23:16] logical processors per package,
                // EBX[15:8] CLFLUSH line size in quadwords.
                entry.ebx = (u32::from(cpu_id) << 24) | (u32::from(cpu_count) << 16) | (8 << 8);
                entry.ecx |= ECX_HYPERVISOR | ECX_TSC_DEADLINE;
                if cpu_count > 1 {
                    entry.edx |= EDX_HTT;
                } else {
                    entry.edx &= !EDX_HTT;
                }
            }
            0x6 => entry.ecx &= !ECX_EPB,
            0x7 if entry.index == 0 && vendor == Vendor::Amd => {
                entry.edx &= !EDX_ARCH_CAPABILITIES;
            }
            0xb => {
                // Extended topology: one thread per core, all cores in one package.
                entry.edx = u32::from(cpu_id);
                match entry.index {
                    0 => {
                        entry.eax = 0;
                        entry.ebx = 1;
                        entry.ecx = 1 << 8;
                    }
                    1 => {
                        entry.eax = bits_for(cpu_count);
                        entry.ebx = u32::from(cpu_count);
                        entry.ecx = (2 << 8) | 1;
                    }
                    _ => {
                        entry.eax = 0;
                        entry.ebx = 0;
                        entry.ecx = entry.index;
                    }
                }
            }
            _ => {}
        }
    }
}

/// Width of the APIC-id field that numbers `count` cores.
fn bits_for(count: u8) -> u32 {
    let count = u32::from(count.max(1));
    u32::BITS - (count - 1).leading_zeros()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(function: u32, index: u32, regs: [u32; 4]) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            eax: regs[0],
            ebx: regs[1],
            ecx: regs[2],
            edx: regs[3],
            ..Default::default()
        }
    }

    fn leaf0(name: &[u8; 12]) -> kvm_cpuid_entry2 {
        let word = |i: usize| u32::from_le_bytes([name[i], name[i + 1], name[i + 2], name[i + 3]]);
        entry(0, 0, [0xd, word(0), word(8), word(4)])
    }

    #[test]
    fn detects_vendor() {
        assert_eq!(vendor(&[leaf0(b"AuthenticAMD")]), Vendor::Amd);
        assert_eq!(vendor(&[leaf0(b"GenuineIntel")]), Vendor::Intel);
        assert_eq!(vendor(&[]), Vendor::Other);
    }

    #[test]
    fn sets_apic_id_topology_and_hypervisor_bit() {
        let mut e = vec![
            entry(1, 0, [0, 0xffff_ffff, 0, EDX_HTT]),
            entry(0xb, 1, [0; 4]),
        ];
        normalize(&mut e, 3, 4, Vendor::Intel);
        assert_eq!(e[0].ebx >> 24, 3);
        assert_eq!((e[0].ebx >> 16) & 0xff, 4);
        assert_ne!(e[0].ecx & ECX_HYPERVISOR, 0);
        assert_ne!(e[0].edx & EDX_HTT, 0);
        assert_eq!((e[1].eax, e[1].ebx, e[1].edx), (2, 4, 3));
    }

    #[test]
    fn hides_arch_capabilities_on_amd_only() {
        let leaf7 = entry(7, 0, [0, 0, 0, EDX_ARCH_CAPABILITIES]);
        let mut amd = vec![leaf7];
        normalize(&mut amd, 0, 1, Vendor::Amd);
        assert_eq!(amd[0].edx & EDX_ARCH_CAPABILITIES, 0);
        let mut intel = vec![leaf7];
        normalize(&mut intel, 0, 1, Vendor::Intel);
        assert_ne!(intel[0].edx & EDX_ARCH_CAPABILITIES, 0);
    }

    #[test]
    fn single_cpu_clears_htt_and_epb() {
        let mut e = vec![
            entry(1, 0, [0, 0, 0, EDX_HTT]),
            entry(6, 0, [0, 0, ECX_EPB, 0]),
        ];
        normalize(&mut e, 0, 1, Vendor::Other);
        assert_eq!(e[0].edx & EDX_HTT, 0);
        assert_eq!(e[1].ecx & ECX_EPB, 0);
        assert_eq!(bits_for(1), 0);
        assert_eq!(bits_for(2), 1);
        assert_eq!(bits_for(5), 3);
    }
}
