//! ACPI tables: RSDP → XSDT → FADT (→ DSDT) and MADT. The DSDT describes COM1 and each
//! virtio-mmio device, so a stock kernel without `virtio_mmio.device=` support finds them.

use acpi_tables::Aml;
use acpi_tables::aml;
use acpi_tables::{rsdp::Rsdp, sdt::Sdt};

use super::layout::{IOAPIC_ADDR, LAPIC_ADDR, MMIO_DEVICE_SIZE, SERIAL_IRQ, SERIAL_PORT};

const OEM_ID: [u8; 6] = *b"DROVER";
const OEM_TABLE_ID: [u8; 8] = *b"DROVERVM";
const OEM_REVISION: u32 = 1;

/// FADT length for revision 6.5.
const FADT_LEN: u32 = 276;
/// FADT flags: hardware-reduced ACPI (no PM timer, no SCI, no legacy fixed hardware).
const FADT_HW_REDUCED_ACPI: u32 = 1 << 20;
/// IA-PC boot architecture flags: VGA absent, MSI absent, PCIe ASPM controls absent.
const IAPC_BOOT_ARCH: u16 = (1 << 2) | (1 << 3) | (1 << 4);

/// A virtio-mmio device as the guest must see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MmioDeviceInfo {
    /// Register window base.
    pub base: u64,
    /// IOAPIC line.
    pub irq: u32,
}

/// The tables, each with the guest address it must be written at.
pub struct AcpiTables {
    /// Where the RSDP lands (boot_params.acpi_rsdp_addr points here).
    pub rsdp_addr: u64,
    /// (guest address, bytes) for RSDP, XSDT, FADT, MADT and DSDT.
    pub blobs: Vec<(u64, Vec<u8>)>,
}

/// Lays the tables out from `base`, each aligned to 16 bytes.
pub fn build(base: u64, vcpus: u8, devices: &[MmioDeviceInfo]) -> AcpiTables {
    let align = |a: u64| (a + 15) & !15;
    let rsdp_addr = base;
    let dsdt = dsdt(devices);
    let dsdt_addr = align(rsdp_addr + Rsdp::len() as u64);
    let fadt_addr = align(dsdt_addr + dsdt.len() as u64);
    let fadt = fadt(dsdt_addr);
    let madt_addr = align(fadt_addr + fadt.len() as u64);
    let madt = madt(vcpus);
    let xsdt_addr = align(madt_addr + madt.len() as u64);
    let xsdt = xsdt(&[fadt_addr, madt_addr]);
    let mut rsdp = Vec::new();
    Rsdp::new(OEM_ID, xsdt_addr).to_aml_bytes(&mut rsdp);
    AcpiTables {
        rsdp_addr,
        blobs: vec![
            (rsdp_addr, rsdp),
            (dsdt_addr, dsdt.as_slice().to_vec()),
            (fadt_addr, fadt.as_slice().to_vec()),
            (madt_addr, madt.as_slice().to_vec()),
            (xsdt_addr, xsdt.as_slice().to_vec()),
        ],
    }
}

fn header(signature: [u8; 4], length: u32, revision: u8) -> Sdt {
    Sdt::new(
        signature,
        length,
        revision,
        OEM_ID,
        OEM_TABLE_ID,
        OEM_REVISION,
    )
}

fn xsdt(entries: &[u64]) -> Sdt {
    let mut table = header(*b"XSDT", 36, 1);
    for entry in entries {
        table.append(*entry);
    }
    table.update_checksum();
    table
}

fn fadt(dsdt_addr: u64) -> Sdt {
    let mut table = header(*b"FACP", FADT_LEN, 6);
    table.write_u16(109, IAPC_BOOT_ARCH);
    table.write_u32(112, FADT_HW_REDUCED_ACPI);
    // FADT minor version 5 (ACPI 6.5).
    table.write_u8(131, 5);
    table.write_u64(140, dsdt_addr);
    table.write_bytes(268, b"DROVERVM");
    table.update_checksum();
    table
}

fn madt(vcpus: u8) -> Sdt {
    let mut table = header(*b"APIC", 44, 6);
    table.write_u32(36, LAPIC_ADDR);
    // PCAT_COMPAT: the dual 8259 PICs exist (the in-kernel irqchip provides them).
    table.write_u32(40, 1);
    for id in 0..vcpus {
        // Processor Local APIC: type 0, length 8, ACPI uid, APIC id, flags (enabled).
        table.append_slice(&[0, 8, id, id, 1, 0, 0, 0]);
    }
    // I/O APIC: type 1, length 12, id 0, reserved, address, GSI base 0.
    let mut ioapic = vec![1, 12, 0, 0];
    ioapic.extend_from_slice(&IOAPIC_ADDR.to_le_bytes());
    ioapic.extend_from_slice(&0u32.to_le_bytes());
    table.append_slice(&ioapic);
    table.update_checksum();
    table
}

fn dsdt(devices: &[MmioDeviceInfo]) -> Sdt {
    let mut body: Vec<u8> = Vec::new();
    // COM1, so the kernel's 8250 PNP driver binds the port we emulate.
    let com1_io = aml::IO::new(SERIAL_PORT as u16, SERIAL_PORT as u16, 1, 8);
    let com1_irq = aml::Interrupt::new(true, true, false, false, SERIAL_IRQ);
    let com1_crs = aml::ResourceTemplate::new(vec![&com1_io, &com1_irq]);
    aml::Device::new(
        "_SB_.COM1".into(),
        vec![
            &aml::Name::new("_HID".into(), &aml::EISAName::new("PNP0501")),
            &aml::Name::new("_UID".into(), &aml::ZERO),
            &aml::Name::new("_CRS".into(), &com1_crs),
        ],
    )
    .to_aml_bytes(&mut body);
    for (index, dev) in devices.iter().enumerate() {
        let mem = aml::Memory32Fixed::new(true, dev.base as u32, MMIO_DEVICE_SIZE as u32);
        let irq = aml::Interrupt::new(true, true, false, false, dev.irq);
        let crs = aml::ResourceTemplate::new(vec![&mem, &irq]);
        let uid = index as u32;
        let path = format!("_SB_.V{index:03X}");
        aml::Device::new(
            path.as_str().into(),
            vec![
                &aml::Name::new("_HID".into(), &"LNRO0005"),
                &aml::Name::new("_UID".into(), &uid),
                &aml::Name::new("_CCA".into(), &aml::ONE),
                &aml::Name::new("_CRS".into(), &crs),
            ],
        )
        .to_aml_bytes(&mut body);
    }
    let mut table = header(*b"DSDT", 36, 2);
    table.append_slice(&body);
    table.update_checksum();
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checksum_ok(bytes: &[u8]) -> bool {
        bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)) == 0
    }
    fn u32_at(b: &[u8], off: usize) -> u32 {
        u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
    }
    fn u64_at(b: &[u8], off: usize) -> u64 {
        (u64::from(u32_at(b, off + 4)) << 32) | u64::from(u32_at(b, off))
    }
    fn find(t: &AcpiTables, addr: u64) -> &[u8] {
        &t.blobs
            .iter()
            .find(|(a, _)| *a == addr)
            .expect("table at address")
            .1
    }

    const DEVICES: [MmioDeviceInfo; 2] = [
        MmioDeviceInfo {
            base: 0xd000_1000,
            irq: 5,
        },
        MmioDeviceInfo {
            base: 0xd000_2000,
            irq: 6,
        },
    ];

    #[test]
    fn rsdp_chain_reaches_every_table_with_valid_checksums() {
        let t = build(0xe0000, 2, &DEVICES);
        let rsdp = find(&t, t.rsdp_addr);
        assert_eq!(&rsdp[0..8], b"RSD PTR ");
        assert_eq!(rsdp[15], 2, "revision");
        assert!(checksum_ok(&rsdp[0..20]) && checksum_ok(&rsdp[0..36]));
        let xsdt = find(&t, u64_at(rsdp, 24));
        assert_eq!(&xsdt[0..4], b"XSDT");
        assert_eq!(u32_at(xsdt, 4) as usize, xsdt.len());
        let fadt = find(&t, u64_at(xsdt, 36));
        let madt = find(&t, u64_at(xsdt, 44));
        assert_eq!(&fadt[0..4], b"FACP");
        assert_eq!(fadt.len(), 276);
        assert_eq!(u32_at(fadt, 112) & (1 << 20), 1 << 20, "hardware-reduced");
        let dsdt = find(&t, u64_at(fadt, 140));
        assert_eq!(&dsdt[0..4], b"DSDT");
        assert_eq!(&madt[0..4], b"APIC");
        for (_, blob) in &t.blobs[1..] {
            assert!(checksum_ok(blob));
            assert_eq!(u32_at(blob, 4) as usize, blob.len());
        }
        for (addr, _) in &t.blobs {
            assert_eq!(addr % 16, 0);
        }
    }

    #[test]
    fn madt_lists_each_vcpu_and_the_ioapic() {
        let t = build(0xe0000, 3, &[]);
        let xsdt = find(&t, u64_at(find(&t, t.rsdp_addr), 24));
        let madt = find(&t, u64_at(xsdt, 44));
        assert_eq!(u32_at(madt, 36), 0xfee0_0000);
        let entries = &madt[44..];
        for id in 0..3u8 {
            let e = &entries[usize::from(id) * 8..usize::from(id) * 8 + 8];
            assert_eq!((e[0], e[1], e[3], e[4]), (0, 8, id, 1));
        }
        let ioapic = &entries[24..36];
        assert_eq!((ioapic[0], ioapic[1]), (1, 12));
        assert_eq!(u32_at(ioapic, 4), 0xfec0_0000);
    }

    #[test]
    fn dsdt_describes_virtio_mmio_devices() {
        let t = build(0xe0000, 1, &DEVICES);
        let xsdt = find(&t, u64_at(find(&t, t.rsdp_addr), 24));
        let dsdt = find(&t, u64_at(find(&t, u64_at(xsdt, 36)), 140));
        let contains = |needle: &[u8]| dsdt.windows(needle.len()).any(|w| w == needle);
        assert!(contains(b"LNRO0005"));
        assert!(contains(b"V000") && contains(b"V001") && contains(b"COM1"));
        // Memory32Fixed descriptor (0x86) with base and length, then the IRQ descriptor.
        let mut mem = vec![0x86, 9, 0, 1];
        mem.extend_from_slice(&0xd000_2000u32.to_le_bytes());
        mem.extend_from_slice(&0x1000u32.to_le_bytes());
        assert!(contains(&mem));
        let irq = [0x89, 6, 0, 0x03, 1, 6, 0, 0, 0];
        assert!(contains(&irq));
    }
}
