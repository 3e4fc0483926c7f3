//! Virtio-mmio on the real /dev/kvm: a test guest drives the block device through a
//! full virtqueue round trip (read a sector, write a sector) and reports over serial.

use crate::common;

use std::time::Duration;

use drover_vmm::{BlockConfig, SerialOutput, VmConfig, VmExit};

/// Guest driver: negotiate VERSION_1, set up queue 0 (8 entries), issue one request
/// of type %r12 for sector %r13 with a 512-byte data buffer at 0x304000, then check the
/// used ring and status byte. Layout: desc 0x300000, avail 0x301000, used 0x302000,
/// header 0x303000, status 0x305000.
pub(crate) fn blk_guest() -> String {
    format!(
        r#"
.code64
.globl _start
_start:
    mov $0xd0001000, %ebx
    cmpl $0x74726976, 0x000(%rbx)   /* "virt" */
    jne fail1
    cmpl $2, 0x004(%rbx)            /* version 2 */
    jne fail2
    cmpl $2, 0x008(%rbx)            /* block device */
    jne fail3
    movl $0, 0x070(%rbx)            /* reset */
    movl $3, 0x070(%rbx)            /* ACKNOWLEDGE | DRIVER */
    movl $1, 0x024(%rbx)            /* driver features word 1 */
    movl $1, 0x020(%rbx)            /* VIRTIO_F_VERSION_1 */
    movl $0, 0x024(%rbx)
    movl $0, 0x020(%rbx)
    movl $11, 0x070(%rbx)           /* | FEATURES_OK */
    testl $8, 0x070(%rbx)
    jz fail4
    movl $0, 0x030(%rbx)            /* queue 0 */
    cmpl $8, 0x034(%rbx)
    jb fail5
    movl $8, 0x038(%rbx)
    movl $0x300000, 0x080(%rbx)
    movl $0, 0x084(%rbx)
    movl $0x301000, 0x090(%rbx)
    movl $0, 0x094(%rbx)
    movl $0x302000, 0x0a0(%rbx)
    movl $0, 0x0a4(%rbx)
    movl $1, 0x044(%rbx)            /* ready */
    movl $15, 0x070(%rbx)           /* | DRIVER_OK */

    /* Request 1: read sector 1. */
    mov $0, %r12
    mov $1, %r13
    call request
    cmpw $1, 0x302002               /* used.idx */
    jne fail6
    cmpl $513, 0x302008             /* used.ring[0].len = 512 data + 1 status */
    jne fail7
    mov $0x2131524f54434553, %rax   /* "SECTOR1!" */
    cmp %rax, 0x304000
    jne fail8
    lea readok(%rip), %rsi
    call print

    /* Request 2: write "GUESTWR!" to sector 2. */
    mov $0x2152575453455547, %rax
    mov %rax, 0x304000
    mov $1, %r12
    mov $2, %r13
    call request
    cmpw $2, 0x302002
    jne fail9
    lea writeok(%rip), %rsi
    call print
    testl $1, 0x060(%rbx)           /* interrupt status: used ring */
    jz fail10
    movl $1, 0x064(%rbx)            /* ack */
    lea irqok(%rip), %rsi
    call print
    call reset

/* One 3-descriptor request: header (r12 type, r13 sector), data, status. */
request:
    movl %r12d, 0x303000
    movl $0, 0x303004
    mov %r13, 0x303008
    movb $0xff, 0x305000
    /* desc[0]: header, NEXT, next=1 */
    movq $0x303000, 0x300000
    movl $16, 0x300008
    movw $1, 0x30000c
    movw $1, 0x30000e
    /* desc[1]: data, NEXT | (WRITE for reads), next=2 */
    movq $0x304000, 0x300010
    movl $512, 0x300018
    mov $3, %eax
    cmp $0, %r12
    je 1f
    mov $1, %eax
1:  movw %ax, 0x30001c
    movw $2, 0x30001e
    /* desc[2]: status, WRITE */
    movq $0x305000, 0x300020
    movl $1, 0x300028
    movw $2, 0x30002c
    movw $0, 0x30002e
    /* avail.ring[idx % 8] = 0; avail.idx++ */
    movzwl 0x301002, %eax
    mov %eax, %ecx
    and $7, %ecx
    movw $0, 0x301004(,%rcx,2)
    inc %eax
    movw %ax, 0x301002
    movl $0, 0x050(%rbx)            /* notify queue 0 */
    cmpb $0, 0x305000               /* status OK */
    jne fail11
    ret

fail1:
    mov $97, %al
    jmp fail
fail2:
    mov $98, %al
    jmp fail
fail3:
    mov $99, %al
    jmp fail
fail4:
    mov $100, %al
    jmp fail
fail5:
    mov $101, %al
    jmp fail
fail6:
    mov $102, %al
    jmp fail
fail7:
    mov $103, %al
    jmp fail
fail8:
    mov $104, %al
    jmp fail
fail9:
    mov $105, %al
    jmp fail
fail10:
    mov $106, %al
    jmp fail
fail11:
    mov $107, %al
    jmp fail
fail:
    /* Report which check failed: "FAIL <letter>". */
    mov %al, failcode(%rip)
    lea failmsg(%rip), %rsi
    call print
    call reset
readok: .asciz "read ok\n"
writeok: .asciz "write ok\n"
irqok: .asciz "irq ok\n"
failmsg: .ascii "FAIL "
failcode: .asciz "?\n"
{lib}
"#,
        lib = common::GUEST_LIB
    )
}

#[test]
fn guest_reads_and_writes_a_disk_through_a_virtqueue() {
    require_kvm!();
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.raw");
    let mut image = vec![0u8; 8 * 512];
    image[512..520].copy_from_slice(b"SECTOR1!");
    std::fs::write(&disk, &image).unwrap();
    let console = common::Console::default();
    let mut config = VmConfig::new(common::assemble(dir.path(), "blk", &blk_guest()));
    config.serial = SerialOutput::Writer(console.writer());
    config.block.push(BlockConfig {
        path: disk.clone(),
        read_only: false,
    });
    let vm = drover_vmm::build(&config).unwrap();
    assert!(
        console.wait_for("read ok", Duration::from_secs(20)),
        "console: {}",
        console.text()
    );
    assert_eq!(
        vm.wait_timeout(Duration::from_secs(20)),
        Some(VmExit::GuestReset),
        "console: {}",
        console.text()
    );
    drop(vm);
    assert_eq!(console.text(), "read ok\nwrite ok\nirq ok\n");
    let after = std::fs::read(&disk).unwrap();
    assert_eq!(&after[1024..1032], b"GUESTWR!");
    assert_eq!(after.len(), image.len(), "the device never grows the disk");
}

#[test]
fn read_only_disk_refuses_guest_writes() {
    require_kvm!();
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.raw");
    let mut image = vec![0u8; 8 * 512];
    image[512..520].copy_from_slice(b"SECTOR1!");
    std::fs::write(&disk, &image).unwrap();
    let console = common::Console::default();
    let mut config = VmConfig::new(common::assemble(dir.path(), "blk", &blk_guest()));
    config.serial = SerialOutput::Writer(console.writer());
    config.block.push(BlockConfig {
        path: disk.clone(),
        read_only: true,
    });
    assert_eq!(drover_vmm::run(config).unwrap(), VmExit::GuestReset);
    // The read succeeds; the write's status byte is IOERR, which the guest reports.
    assert!(
        console.text().starts_with("read ok\nFAIL "),
        "{}",
        console.text()
    );
    assert_eq!(std::fs::read(&disk).unwrap(), image);
}

/// Same block read, but the guest learns of completion only through the interrupt:
/// irqfd → in-kernel IOAPIC pin 5 → LAPIC → IDT vector 0x30 → handler → EOI.
fn blk_irq_guest() -> String {
    format!(
        r#"
.code64
.globl _start
_start:
    /* Mask both 8259s so only the IOAPIC delivers. */
    mov $0xff, %al
    out %al, $0x21
    out %al, $0xa1
    /* IDT at 0x280000 with one gate, vector 0x30 -> handler. */
    lea handler(%rip), %rax
    mov $0x280000 + 0x30 * 16, %edi
    movw %ax, (%rdi)
    movw $0x10, 2(%rdi)             /* __BOOT_CS */
    movw $0x8e00, 4(%rdi)           /* present, interrupt gate */
    shr $16, %rax
    movw %ax, 6(%rdi)
    shr $16, %rax
    movl %eax, 8(%rdi)
    movl $0, 12(%rdi)
    lidt idtr(%rip)
    /* LAPIC on: spurious vector 0xff, software enable. */
    /* (Addresses above 2 GiB need a base register: 32-bit displacements sign-extend.) */
    mov $0xfee00000, %r14d
    movl $0x1ff, 0xf0(%r14)
    /* IOAPIC pin 5 -> vector 0x30, fixed, physical, edge, unmasked, APIC 0. */
    mov $0xfec00000, %r15d
    movl $0x1a, (%r15)
    movl $0x30, 0x10(%r15)
    movl $0x1b, (%r15)
    movl $0, 0x10(%r15)

    mov $0xd0001000, %ebx
    movl $0, 0x070(%rbx)
    movl $3, 0x070(%rbx)
    movl $1, 0x024(%rbx)
    movl $1, 0x020(%rbx)
    movl $0, 0x024(%rbx)
    movl $0, 0x020(%rbx)
    movl $11, 0x070(%rbx)
    movl $0, 0x030(%rbx)
    movl $8, 0x038(%rbx)
    movl $0x300000, 0x080(%rbx)
    movl $0x301000, 0x090(%rbx)
    movl $0x302000, 0x0a0(%rbx)
    movl $1, 0x044(%rbx)
    movl $15, 0x070(%rbx)
    /* read sector 1 into 0x304000 */
    movl $0, 0x303000
    movq $1, 0x303008
    movq $0x303000, 0x300000
    movl $16, 0x300008
    movw $1, 0x30000c
    movw $1, 0x30000e
    movq $0x304000, 0x300010
    movl $512, 0x300018
    movw $3, 0x30001c
    movw $2, 0x30001e
    movq $0x305000, 0x300020
    movl $1, 0x300028
    movw $2, 0x30002c
    movw $0, 0x301004
    movw $1, 0x301002
    movl $0, 0x050(%rbx)
1:  cmpl $0, irqs(%rip)
    jne 2f
    sti
    hlt
    cli
    jmp 1b
2:  mov $0x2131524f54434553, %rax   /* "SECTOR1!" */
    cmp %rax, 0x304000
    jne 3f
    lea ok(%rip), %rsi
    call print
    call reset
3:  lea bad(%rip), %rsi
    call print
    call reset

handler:
    push %rax
    movl 0x060(%rbx), %eax          /* virtio interrupt status (rbx = device) */
    movl %eax, 0x064(%rbx)          /* ack */
    incl irqs(%rip)
    movl $0, 0xb0(%r14)             /* LAPIC EOI */
    pop %rax
    iretq

.balign 8
idtr:
    .word 0x30 * 16 + 15
    .quad 0x280000
irqs: .long 0
ok: .asciz "irq delivered, data ok\n"
bad: .asciz "irq delivered, data bad\n"
{lib}
"#,
        lib = common::GUEST_LIB
    )
}

#[test]
fn completion_interrupt_reaches_the_guest_through_the_ioapic() {
    require_kvm!();
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk.raw");
    let mut image = vec![0u8; 8 * 512];
    image[512..520].copy_from_slice(b"SECTOR1!");
    std::fs::write(&disk, &image).unwrap();
    let console = common::Console::default();
    let mut config = VmConfig::new(common::assemble(dir.path(), "blkirq", &blk_irq_guest()));
    config.serial = SerialOutput::Writer(console.writer());
    config.block.push(BlockConfig {
        path: disk,
        read_only: true,
    });
    let vm = drover_vmm::build(&config).unwrap();
    let exit = vm.wait_timeout(Duration::from_secs(20));
    drop(vm);
    assert_eq!(
        exit,
        Some(VmExit::GuestReset),
        "console: {}",
        console.text()
    );
    assert_eq!(console.text(), "irq delivered, data ok\n");
}
