//! Snapshot mid-run and restore on the real /dev/kvm: the guest counts in memory and on
//! serial; the restored VM continues the count where the snapshot froze it.

use crate::common;

use std::time::Duration;

use drover_vmm::{BlockConfig, SerialOutput, VmConfig, VmExit};

/// Prints "<letter>" for each tick a..z, with the counter kept in guest memory at
/// 0x400000 and a busy delay between ticks, then prints "done" and resets.
pub(crate) fn counter_guest() -> String {
    format!(
        r#"
.code64
.globl _start
_start:
    movq $0, 0x400000
tick:
    mov 0x400000, %rax
    cmp $26, %rax
    je finish
    add $'a', %al
    mov $0x3f8, %dx
    out %al, (%dx)
    incq 0x400000
    mov $20000, %rcx
1:  dec %rcx
    jnz 1b
    jmp tick
finish:
    lea done(%rip), %rsi
    call print
    call reset
done: .asciz "done"
{lib}
"#,
        lib = common::GUEST_LIB
    )
}

#[test]
fn snapshot_mid_run_then_restore_and_continue() {
    require_kvm!();
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap");
    let disk = dir.path().join("disk.raw");
    std::fs::write(&disk, vec![0u8; 4096]).unwrap();
    let kernel = common::assemble(dir.path(), "counter", &counter_guest());

    let first = common::Console::default();
    let mut config = VmConfig::new(kernel);
    config.mem_mib = 32;
    // The second vCPU sits waiting for INIT/SIPI; its mp_state must survive too.
    config.vcpus = 2;
    // A virtio device rides along so its transport state goes through the snapshot too.
    config.block.push(BlockConfig {
        path: disk,
        read_only: true,
    });
    config.serial = SerialOutput::Writer(first.writer());
    let vm = drover_vmm::build(&config).unwrap();
    assert!(
        first.wait_for("c", Duration::from_secs(20)),
        "guest never ticked: {:?}",
        first.text()
    );
    vm.snapshot(&snap, false).unwrap();
    let frozen = first.text();
    assert_eq!(vm.stop(), VmExit::Stopped);
    assert!(!frozen.contains("done"), "snapshot came too late: {frozen}");

    let second = common::Console::default();
    config.serial = SerialOutput::Writer(second.writer());
    let restored = drover_vmm::restore(&config, &snap).unwrap();
    assert_eq!(
        restored.wait_timeout(Duration::from_secs(30)),
        Some(VmExit::GuestReset),
        "{}",
        second.text()
    );
    drop(restored);
    let rest = second.text();
    // Together the two runs print the alphabet exactly once: the restored guest resumed
    // at the instruction and counter value the snapshot captured.
    assert_eq!(
        format!("{frozen}{rest}"),
        "abcdefghijklmnopqrstuvwxyzdone",
        "before: {frozen:?} after: {rest:?}"
    );
}

#[test]
fn snapshot_resume_keeps_running() {
    require_kvm!();
    let dir = tempfile::tempdir().unwrap();
    let console = common::Console::default();
    let mut config = VmConfig::new(common::assemble(dir.path(), "counter", &counter_guest()));
    config.mem_mib = 16;
    config.serial = SerialOutput::Writer(console.writer());
    let vm = drover_vmm::build(&config).unwrap();
    assert!(console.wait_for("b", Duration::from_secs(20)));
    vm.snapshot(&dir.path().join("snap"), true).unwrap();
    assert_eq!(
        vm.wait_timeout(Duration::from_secs(30)),
        Some(VmExit::GuestReset),
        "{}",
        console.text()
    );
    drop(vm);
    assert_eq!(console.text(), "abcdefghijklmnopqrstuvwxyzdone");
}

#[test]
fn corrupt_or_mismatched_snapshot_is_rejected() {
    require_kvm!();
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap");
    let mut config = VmConfig::new(common::assemble(dir.path(), "counter", &counter_guest()));
    config.mem_mib = 16;
    let console = common::Console::default();
    config.serial = SerialOutput::Writer(console.writer());
    let vm = drover_vmm::build(&config).unwrap();
    assert!(console.wait_for("a", Duration::from_secs(20)));
    vm.snapshot(&snap, false).unwrap();
    drop(vm);

    let mut bigger = config.clone();
    bigger.mem_mib = 32;
    let err = drover_vmm::restore(&bigger, &snap)
        .err()
        .expect("memory mismatch")
        .to_string();
    assert!(err.contains("does not match"), "{err}");

    let state = snap.join("state");
    let mut bytes = std::fs::read(&state).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    std::fs::write(&state, &bytes).unwrap();
    let err = drover_vmm::restore(&config, &snap)
        .err()
        .expect("corrupt state")
        .to_string();
    assert!(err.contains("corrupt"), "{err}");

    std::fs::write(&state, &bytes[..100]).unwrap();
    let err = drover_vmm::restore(&config, &snap)
        .err()
        .expect("truncated state")
        .to_string();
    assert!(err.contains("truncated"), "{err}");

    std::fs::remove_file(&state).unwrap();
    let err = drover_vmm::restore(&config, &snap)
        .err()
        .expect("missing state")
        .to_string();
    assert!(err.contains("snapshot file"), "{err}");
}

/// Interrupt-driven guest: the LAPIC timer fires periodically (vector 0x40), the guest
/// sleeps in HLT between ticks and prints a letter every few ticks. Restoring it needs
/// the LAPIC (armed timer), IDT/GDT registers and HALTED mp_state all carried over.
fn timer_guest() -> String {
    format!(
        r#"
.code64
.globl _start
_start:
    lea handler(%rip), %rax
    mov $0x280000 + 0x40 * 16, %edi
    movw %ax, (%rdi)
    movw $0x10, 2(%rdi)
    movw $0x8e00, 4(%rdi)
    shr $16, %rax
    movw %ax, 6(%rdi)
    shr $16, %rax
    movl %eax, 8(%rdi)
    movl $0, 12(%rdi)
    lidt idtr(%rip)
    mov $0xff, %al
    out %al, $0x21
    out %al, $0xa1
    mov $0xfee00000, %r14d
    movl $0x1ff, 0xf0(%r14)         /* LAPIC software enable */
    movl $0xb, 0x3e0(%r14)          /* divide by 1 */
    movl $0x20040, 0x320(%r14)      /* LVT timer: periodic, vector 0x40 */
    movl $200000, 0x380(%r14)       /* initial count */
    xor %r12d, %r12d                /* letters printed */
wait:
    sti
    hlt
    cli
    mov ticks(%rip), %eax
    cmp $5, %eax
    jb wait
    movl $0, ticks(%rip)
    mov %r12d, %eax
    add $'a', %al
    mov $0x3f8, %dx
    out %al, (%dx)
    inc %r12d
    cmp $26, %r12d
    jne wait
    movl $0, 0x320(%r14)            /* timer off */
    lea done(%rip), %rsi
    call print
    call reset

handler:
    incl ticks(%rip)
    movl $0, 0xb0(%r14)             /* EOI */
    iretq

.balign 8
idtr:
    .word 0x40 * 16 + 15
    .quad 0x280000
ticks: .long 0
done: .asciz "done"
{lib}
"#,
        lib = common::GUEST_LIB
    )
}

#[test]
fn interrupt_driven_guest_survives_snapshot_restore() {
    require_kvm!();
    let dir = tempfile::tempdir().unwrap();
    let snap = dir.path().join("snap");
    let first = common::Console::default();
    let mut config = VmConfig::new(common::assemble(dir.path(), "timer", &timer_guest()));
    config.mem_mib = 16;
    config.serial = SerialOutput::Writer(first.writer());
    let vm = drover_vmm::build(&config).unwrap();
    assert!(
        first.wait_for("c", Duration::from_secs(20)),
        "no timer ticks: {:?}",
        first.text()
    );
    vm.snapshot(&snap, false).unwrap();
    let frozen = first.text();
    drop(vm);
    assert!(!frozen.contains("done"), "snapshot came too late: {frozen}");

    let second = common::Console::default();
    config.serial = SerialOutput::Writer(second.writer());
    let restored = drover_vmm::restore(&config, &snap).unwrap();
    let exit = restored.wait_timeout(Duration::from_secs(30));
    drop(restored);
    let rest = second.text();
    assert_eq!(exit, Some(VmExit::GuestReset), "after restore: {rest:?}");
    assert_eq!(
        format!("{frozen}{rest}"),
        "abcdefghijklmnopqrstuvwxyzdone",
        "before: {frozen:?} after: {rest:?}"
    );
}
