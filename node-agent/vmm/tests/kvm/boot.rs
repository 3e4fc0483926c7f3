//! Boots hand-made test guests on the real /dev/kvm: serial output, boot timer, i8042
//! reset, PVH entry, config and kernel errors.

use crate::common;

use std::time::Duration;

use drover_vmm::{SerialOutput, VmConfig, VmExit};

const TIMEOUT: Duration = Duration::from_secs(20);

fn hello_guest() -> String {
    format!(
        r#"
.code64
.globl _start
_start:
    /* RSI points at the zero page: check boot_flag and the "HdrS" magic. */
    cmpw $0xaa55, 0x1fe(%rsi)
    jne bad
    cmpl $0x53726448, 0x202(%rsi)
    jne bad
    lea msg(%rip), %rsi
    call print
    /* Boot timer: the magic byte at the first MMIO page. */
    mov $0xd0000000, %eax
    movb $123, (%rax)
    call reset
bad:
    lea badmsg(%rip), %rsi
    call print
    call reset
msg: .asciz "hello from the guest\n"
badmsg: .asciz "bad zero page\n"
{lib}
"#,
        lib = common::GUEST_LIB
    )
}

#[test]
fn serial_boot_timer_and_i8042_reset() {
    require_kvm!();
    let dir = tempfile::tempdir().unwrap();
    let kernel = common::assemble(dir.path(), "hello", &hello_guest());
    let log = dir.path().join("console.log");
    let mut config = VmConfig::new(kernel);
    config.serial = SerialOutput::File(log.clone());
    let vm = drover_vmm::build(&config).unwrap();
    let exit = vm.wait_timeout(TIMEOUT);
    let boot_time = vm.boot_time();
    assert_eq!(exit, Some(VmExit::GuestReset));
    assert_eq!(vm.wait(), VmExit::GuestReset);
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "hello from the guest\n"
    );
    let boot_time = boot_time.expect("boot timer recorded");
    assert!(boot_time < TIMEOUT);
    eprintln!("test guest boot time (create -> boot-timer write): {boot_time:?}");
}

#[test]
fn pvh_entry_runs_in_protected_mode_with_start_info() {
    require_kvm!();
    let dir = tempfile::tempdir().unwrap();
    // A 32-bit entry advertised by a XEN_ELFNOTE_PHYS32_ENTRY (18) note, as vmlinux does.
    let src = r#"
.section .note.Xen, "a", @note
    .long 4, 4, 18
    .asciz "Xen"
    .long pvh_entry
.text
.code32
.globl _start
_start:
pvh_entry:
    /* EBX = hvm_start_info: check its magic, and that paging is off. */
    cmpl $0x336ec578, (%ebx)
    jne 9f
    mov %cr0, %eax
    test $0x80000000, %eax
    jnz 9f
    mov $'P', %al
    jmp 8f
9:  mov $'X', %al
8:  mov $0x3f8, %dx
    out %al, (%dx)
    mov $0xfe, %al
    out %al, $0x64
7:  hlt
    jmp 7b
"#;
    let kernel = common::assemble(dir.path(), "pvh", src);
    let console = common::Console::default();
    let mut config = VmConfig::new(kernel);
    config.serial = SerialOutput::Writer(console.writer());
    let vm = drover_vmm::build(&config).unwrap();
    assert_eq!(vm.wait_timeout(TIMEOUT), Some(VmExit::GuestReset));
    drop(vm);
    assert_eq!(console.text(), "P");
}

#[test]
fn stop_ends_a_guest_that_never_exits() {
    require_kvm!();
    let dir = tempfile::tempdir().unwrap();
    let src = ".code64\n.globl _start\n_start:\n    mov $0x3f8, %dx\n    mov $'s', %al\n    out %al, (%dx)\n1:  jmp 1b\n";
    let kernel = common::assemble(dir.path(), "spin", src);
    let console = common::Console::default();
    let mut config = VmConfig::new(kernel);
    config.serial = SerialOutput::Writer(console.writer());
    let vm = drover_vmm::build(&config).unwrap();
    assert!(console.wait_for("s", TIMEOUT));
    assert_eq!(vm.wait_timeout(Duration::from_millis(50)), None);
    assert_eq!(vm.stop(), VmExit::Stopped);
}

#[test]
fn multiple_vcpus_boot() {
    require_kvm!();
    let dir = tempfile::tempdir().unwrap();
    let kernel = common::assemble(dir.path(), "hello", &hello_guest());
    let console = common::Console::default();
    let mut config = VmConfig::new(kernel);
    config.vcpus = 2;
    config.mem_mib = 64;
    config.serial = SerialOutput::Writer(console.writer());
    assert_eq!(drover_vmm::run(config).unwrap(), VmExit::GuestReset);
    assert_eq!(console.text(), "hello from the guest\n");
}

#[test]
fn bad_input_gives_clear_errors() {
    require_kvm!();
    let dir = tempfile::tempdir().unwrap();
    let missing = VmConfig::new(dir.path().join("no-such-kernel"));
    let err = drover_vmm::build(&missing)
        .err()
        .expect("missing kernel")
        .to_string();
    assert!(err.contains("no-such-kernel"), "{err}");

    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, vec![0x5a; 4096]).unwrap();
    let err = drover_vmm::build(&VmConfig::new(garbage))
        .err()
        .expect("garbage kernel")
        .to_string();
    assert!(err.contains("cannot load kernel"), "{err}");

    let mut tiny = VmConfig::new(common::assemble(dir.path(), "hello", &hello_guest()));
    tiny.mem_mib = 4;
    let err = drover_vmm::build(&tiny)
        .err()
        .expect("too little memory")
        .to_string();
    assert!(err.contains("mem_mib"), "{err}");

    let mut big_initrd = VmConfig::new(common::assemble(dir.path(), "hello2", &hello_guest()));
    big_initrd.mem_mib = 16;
    let initrd = dir.path().join("initrd");
    std::fs::write(&initrd, vec![0u8; 32 << 20]).unwrap();
    big_initrd.kernel.initrd = Some(initrd);
    let err = drover_vmm::build(&big_initrd)
        .err()
        .expect("initrd too big")
        .to_string();
    assert!(err.contains("initramfs"), "{err}");
}

#[test]
fn initramfs_is_described_in_the_zero_page() {
    require_kvm!();
    let dir = tempfile::tempdir().unwrap();
    // Reads ramdisk_image/size from the zero page, checks the first bytes of the image.
    let src = format!(
        r#"
.code64
.globl _start
_start:
    mov 0x218(%rsi), %eax
    mov 0x21c(%rsi), %ecx
    cmp $11, %ecx
    jne 8f
    cmpl $0x54494e49, (%rax) /* "INIT" */
    jne 9f
    lea ok(%rip), %rsi
    call print
    call reset
8:  lea badsize(%rip), %rsi
    call print
    call reset
9:  lea bad(%rip), %rsi
    call print
    call reset
badsize: .asciz "initrd size bad"
ok: .asciz "initrd ok"
bad: .asciz "initrd bad"
{lib}
"#,
        lib = common::GUEST_LIB
    );
    let initrd = dir.path().join("initrd");
    std::fs::write(&initrd, b"INITRD-DATA").unwrap();
    let console = common::Console::default();
    let mut config = VmConfig::new(common::assemble(dir.path(), "initrd_guest", &src));
    config.kernel.initrd = Some(initrd);
    config.serial = SerialOutput::Writer(console.writer());
    assert_eq!(drover_vmm::run(config).unwrap(), VmExit::GuestReset);
    assert_eq!(console.text(), "initrd ok");
}

/// Wraps 64-bit code in a minimal bzImage: one setup sector after the boot sector, a
/// boot-protocol 2.15 header, and the protected-mode part with `startup_64` at 0x200.
fn bzimage(startup_64: &[u8]) -> Vec<u8> {
    let mut image = vec![0u8; 1024];
    image[0x1f1] = 1; // setup_sects
    image[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes());
    image[0x202..0x206].copy_from_slice(b"HdrS");
    image[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    image[0x211] = 0x01; // loadflags: LOADED_HIGH
    image[0x214..0x218].copy_from_slice(&0x10_0000u32.to_le_bytes()); // code32_start
    image[0x22c..0x230].copy_from_slice(&0x37ff_ffffu32.to_le_bytes()); // initrd_addr_max
    image[0x230..0x234].copy_from_slice(&0x20_0000u32.to_le_bytes()); // kernel_alignment
    let mut protected = vec![0u8; 0x200];
    protected.extend_from_slice(startup_64);
    image.extend_from_slice(&protected);
    image
}

#[test]
fn bzimage_boots_through_the_64bit_boot_protocol() {
    require_kvm!();
    let dir = tempfile::tempdir().unwrap();
    let src = format!(
        r#"
.code64
.globl _start
_start:
    cmpw $0x020f, 0x206(%rsi)       /* the kernel's own header version is kept */
    jne 9f
    cmpb $0xff, 0x210(%rsi)         /* type_of_loader */
    jne 9f
    cmpl $0x100000, 0x214(%rsi)     /* code32_start */
    jne 9f
    cmpl $0x20000, 0x228(%rsi)      /* cmd_line_ptr */
    jne 9f
    mov $0x3d656c6f736e6f63, %rax   /* "console=" */
    cmp %rax, 0x20000
    jne 9f
    lea ok(%rip), %rsi
    call print
    call reset
9:  lea bad(%rip), %rsi
    call print
    call reset
ok: .asciz "bzImage ok"
bad: .asciz "bzImage bad"
{lib}
"#,
        lib = common::GUEST_LIB
    );
    let code = common::assemble_flat(dir.path(), "startup64", &src, 0x10_0200);
    let kernel = dir.path().join("bzImage");
    std::fs::write(&kernel, bzimage(&code)).unwrap();
    let console = common::Console::default();
    let mut config = VmConfig::new(kernel);
    config.serial = SerialOutput::Writer(console.writer());
    assert_eq!(drover_vmm::run(config).unwrap(), VmExit::GuestReset);
    assert_eq!(console.text(), "bzImage ok");
}

#[test]
fn stop_handle_ends_wait_from_another_thread() {
    require_kvm!();
    let dir = tempfile::tempdir().unwrap();
    let src = ".code64\n.globl _start\n_start:\n1:  jmp 1b\n";
    let vm = drover_vmm::build(&VmConfig::new(common::assemble(dir.path(), "spin2", src))).unwrap();
    let handle = vm.stop_handle();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        handle.stop();
    });
    assert_eq!(vm.wait(), VmExit::Stopped);
    stopper.join().unwrap();
}

#[test]
fn pvh_start_info_carries_the_initramfs_module() {
    require_kvm!();
    let dir = tempfile::tempdir().unwrap();
    let src = r#"
.section .note.Xen, "a", @note
    .long 4, 4, 18
    .asciz "Xen"
    .long _start
.text
.code32
.globl _start
_start:
    cmpl $1, 12(%ebx)               /* nr_modules */
    jne 9f
    mov 16(%ebx), %esi              /* modlist_paddr (low half) */
    cmpl $11, 8(%esi)               /* module size */
    jne 9f
    mov (%esi), %esi                /* module paddr */
    cmpl $0x54494e49, (%esi)        /* "INIT" */
    jne 9f
    cmpl $0, 48(%ebx)               /* memmap_entries > 0 */
    je 9f
    mov $'M', %al
    jmp 8f
9:  mov $'X', %al
8:  mov $0x3f8, %dx
    out %al, (%dx)
    mov $0xfe, %al
    out %al, $0x64
7:  hlt
    jmp 7b
"#;
    let initrd = dir.path().join("initrd.img");
    std::fs::write(&initrd, b"INITRD-DATA").unwrap();
    let console = common::Console::default();
    let mut config = VmConfig::new(common::assemble(dir.path(), "pvh_mod", src));
    config.kernel.initrd = Some(initrd);
    config.serial = SerialOutput::Writer(console.writer());
    assert_eq!(drover_vmm::run(config).unwrap(), VmExit::GuestReset);
    assert_eq!(console.text(), "M");
}

#[test]
fn serial_transmit_interrupt_reaches_the_guest() {
    require_kvm!();
    // Linux drives /dev/ttyS0 writes from userspace by THR-empty interrupts on IRQ 4:
    // check that path (UART IER → irqfd → IOAPIC pin 4 → vector 0x31).
    let src = format!(
        r#"
.code64
.globl _start
_start:
    mov $0xff, %al
    out %al, $0x21
    out %al, $0xa1
    lea handler(%rip), %rax
    mov $0x280000 + 0x31 * 16, %edi
    movw %ax, (%rdi)
    movw $0x10, 2(%rdi)
    movw $0x8e00, 4(%rdi)
    shr $16, %rax
    movw %ax, 6(%rdi)
    shr $16, %rax
    movl %eax, 8(%rdi)
    movl $0, 12(%rdi)
    lidt idtr(%rip)
    mov $0xfee00000, %r14d
    movl $0x1ff, 0xf0(%r14)
    mov $0xfec00000, %r15d
    movl $0x18, (%r15)              /* redirection entry for pin 4 */
    movl $0x31, 0x10(%r15)
    movl $0x19, (%r15)
    movl $0, 0x10(%r15)
    mov $0x3f9, %dx                 /* IER: THR empty interrupt */
    mov $0x02, %al
    out %al, (%dx)
    mov $0x3f8, %dx
    mov $'>', %al
    out %al, (%dx)
1:  cmpl $0, irqs(%rip)
    jne 2f
    sti
    hlt
    cli
    jmp 1b
2:  lea ok(%rip), %rsi
    call print
    call reset
handler:
    push %rax
    push %rdx
    mov $0x3fa, %dx                 /* reading IIR acknowledges THR empty */
    in (%dx), %al
    incl irqs(%rip)
    movl $0, 0xb0(%r14)
    pop %rdx
    pop %rax
    iretq
.balign 8
idtr:
    .word 0x31 * 16 + 15
    .quad 0x280000
irqs: .long 0
ok: .asciz "serial irq ok"
{lib}
"#,
        lib = common::GUEST_LIB
    );
    let dir = tempfile::tempdir().unwrap();
    let console = common::Console::default();
    let mut config = VmConfig::new(common::assemble(dir.path(), "serial_irq", &src));
    config.serial = SerialOutput::Writer(console.writer());
    let vm = drover_vmm::build(&config).unwrap();
    let exit = vm.wait_timeout(TIMEOUT);
    drop(vm);
    assert_eq!(
        exit,
        Some(VmExit::GuestReset),
        "console: {}",
        console.text()
    );
    assert_eq!(console.text(), ">serial irq ok");
}
