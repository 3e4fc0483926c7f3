//! The monitor keeps working under its seccomp allowlist: a child process builds a VM,
//! installs the filter on every thread, then runs the guest. A missing system call
//! kills the child with SIGSYS. Two modes: a snapshot mid-run (serial to a file), and
//! virtio-blk I/O with interrupts (plus an idle virtio-net I/O thread when root).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use drover_vmm::{BlockConfig, NetConfig, SerialOutput, VmConfig, VmExit};

use crate::common;

const CHILD_DIR: &str = "DROVER_VMM_SECCOMP_CHILD_DIR";
const CHILD_MODE: &str = "DROVER_VMM_SECCOMP_CHILD_MODE";

#[test]
fn monitor_runs_under_seccomp() {
    if let (Ok(dir), Ok(mode)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_MODE)) {
        child(PathBuf::from(dir), &mode);
        return;
    }
    require_kvm!();
    let dir = tempfile::tempdir().unwrap();
    common::assemble(dir.path(), "snapshot", &crate::snapshot::counter_guest());
    common::assemble(dir.path(), "io", &crate::virtio::blk_guest());
    let mut image = vec![0u8; 8 * 512];
    image[512..520].copy_from_slice(b"SECTOR1!");
    std::fs::write(dir.path().join("disk"), &image).unwrap();

    for (mode, expected) in [
        ("snapshot", "abcdefghijklmnopqrstuvwxyzdone"),
        ("io", "read ok\nwrite ok\nirq ok\n"),
    ] {
        run_child(dir.path(), mode);
        let console = std::fs::read_to_string(dir.path().join(format!("{mode}.log"))).unwrap();
        assert_eq!(console, expected, "mode {mode}");
    }
    assert!(dir.path().join("snap/memory").exists());
    assert_eq!(
        &std::fs::read(dir.path().join("disk")).unwrap()[1024..1032],
        b"GUESTWR!"
    );
}

fn run_child(dir: &Path, mode: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "seccomp::monitor_runs_under_seccomp",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .env(CHILD_MODE, mode)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{mode} child failed ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("1 passed"), "{stdout}");
}

/// Runs in the child: everything after `apply` happens under the filter. No temp-dir
/// cleanup here (the parent owns the directory).
fn child(dir: PathBuf, mode: &str) {
    let log = dir.join(format!("{mode}.log"));
    let mut config = VmConfig::new(dir.join(mode));
    config.mem_mib = 32;
    config.serial = SerialOutput::File(log.clone());
    config.block.push(BlockConfig {
        path: dir.join("disk"),
        read_only: false,
    });
    // SAFETY: geteuid has no preconditions.
    if mode == "io" && unsafe { libc::geteuid() } == 0 {
        let tap = format!("drvs{}", std::process::id() % 100_000);
        config.net.push(NetConfig {
            tap,
            mac: [2, 0, 0, 0, 0, 9],
        });
    }
    if mode == "io" {
        // The packaged form a per-VM monitor process uses.
        assert_eq!(
            drover_vmm::run_confined(config).unwrap(),
            VmExit::GuestReset
        );
        return;
    }
    let vm = drover_vmm::build(&config).unwrap();
    drover_vmm::seccomp::apply(&drover_vmm::seccomp::monitor_allowlist()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains('c')
    {
        assert!(Instant::now() < deadline, "guest never ticked");
        std::thread::sleep(Duration::from_millis(2));
    }
    vm.snapshot(&dir.join("snap"), true).unwrap();
    assert_eq!(vm.wait(), VmExit::GuestReset);
}
