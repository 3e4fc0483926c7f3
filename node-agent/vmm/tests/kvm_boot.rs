//! Boots hand-made test guests on the real /dev/kvm: serial output, boot timer, i8042
//! reset, PVH entry, config and kernel errors.

mod common;

use std::time::Duration;

use drover_vmm::{SerialOutput, VmConfig, VmExit};

const TIMEOUT: Duration = Duration::from_secs(20);

fn hello_guest() -> String {
    format!(
        r#"
.code64
.globl _start
_start:
    lea msg(%rip), %rsi
    call print
    /* Boot timer: the magic byte at the first MMIO page. */
    mov $0xd0000000, %eax
    movb $123, (%rax)
    call reset
msg: .asciz "hello from the guest\n"
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
