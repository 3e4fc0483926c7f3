//! Monitor benchmarks on the real /dev/kvm with a tiny assembled guest: create → first
//! serial byte, full create/run/destroy cycles per second, and monitor memory outside
//! guest RAM from /proc/self/smaps. Run: `cargo bench -p drover-vmm --bench vm_lifecycle`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_vmm::{SerialOutput, VmConfig, VmExit};
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

/// Prints one byte, then asks the i8042 for a reset (or spins, for the memory probe).
fn guest(spin: bool) -> String {
    let tail = if spin {
        "1:  jmp 1b"
    } else {
        "    mov $0xfe, %al\n    out %al, $0x64\n1:  hlt\n    jmp 1b"
    };
    format!(
        ".code64\n.globl _start\n_start:\n    mov $0x3f8, %dx\n    mov $'!', %al\n    out %al, (%dx)\n{tail}\n"
    )
}

fn assemble(dir: &Path, name: &str, source: &str) -> Result<PathBuf, String> {
    let src = dir.join(format!("{name}.S"));
    let obj = dir.join(format!("{name}.o"));
    let elf = dir.join(name);
    std::fs::write(&src, source).map_err(|e| e.to_string())?;
    let ok = |c: &mut Command| c.status().map(|s| s.success()).unwrap_or(false);
    if !ok(Command::new("as").args(["--64", "-o"]).arg(&obj).arg(&src)) {
        return Err("`as` failed or is missing".into());
    }
    let link = [
        "-static",
        "-nostdlib",
        "-Ttext=0x200000",
        "-e",
        "_start",
        "-o",
    ];
    if !ok(Command::new("ld").args(link).arg(&elf).arg(&obj)) {
        return Err("`ld` failed or is missing".into());
    }
    Ok(elf)
}

/// Records when the first byte arrives.
struct FirstByte(Arc<Mutex<Option<Instant>>>);

impl Write for FirstByte {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut t) = self.0.lock() {
            t.get_or_insert_with(Instant::now);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// `gap` lets the kernel finish tearing down the previous VM (irqchip/PIT teardown
/// continues after close and slows the next create when runs are back to back).
fn first_serial_byte(kernel: &Path, runs: usize, gap: Duration) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        std::thread::sleep(gap);
        let first = Arc::new(Mutex::new(None));
        let mut config = VmConfig::new(kernel.to_path_buf());
        config.serial = SerialOutput::Writer(Arc::new(Mutex::new(FirstByte(first.clone()))));
        let start = Instant::now();
        let vm = match drover_vmm::build(&config) {
            Ok(vm) => vm,
            Err(e) => panic!("build failed: {e}"),
        };
        assert_eq!(vm.wait(), VmExit::GuestReset);
        let at = first
            .lock()
            .ok()
            .and_then(|t| *t)
            .expect("guest wrote a byte");
        samples.push(at - start);
    }
    samples.sort();
    samples
}

fn cycles_per_second(kernel: &Path, window: Duration) -> (usize, Duration) {
    let config = VmConfig::new(kernel.to_path_buf());
    let start = Instant::now();
    let mut cycles = 0;
    while start.elapsed() < window {
        let exit = drover_vmm::run(config.clone()).expect("cycle");
        assert_eq!(exit, VmExit::GuestReset);
        cycles += 1;
    }
    (cycles, start.elapsed())
}

/// Kernel-side floor measured in the same run: bare KVM VM create+destroy, and with the
/// in-kernel irqchip and PIT that every drover VM has (their teardown dominates a cycle
/// on kvm_pvm hosts).
fn kvm_floor(with_irqchip: bool, runs: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..runs {
        let kvm = kvm_ioctls::Kvm::new().expect("kvm");
        let vm = kvm.create_vm().expect("vm");
        if with_irqchip {
            vm.set_tss_address(0xfffb_d000).expect("tss");
            vm.create_irq_chip().expect("irqchip");
            let pit = kvm_bindings::kvm_pit_config {
                flags: kvm_bindings::KVM_PIT_SPEAKER_DUMMY,
                ..Default::default()
            };
            vm.create_pit2(pit).expect("pit");
        }
    }
    start.elapsed() / runs
}

/// (Rss, Pss) in KiB of mappings outside `[lo, hi)` ranges (guest RAM), from smaps.
fn smaps_outside(guest: &[(u64, u64)]) -> (u64, u64) {
    let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap_or_default();
    let (mut rss, mut pss, mut inside) = (0, 0, false);
    for line in smaps.lines() {
        let mut parts = line.split_whitespace();
        let Some(first) = parts.next() else { continue };
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16))
        {
            inside = guest.iter().any(|&(lo, hi)| a >= lo && b <= hi);
            continue;
        }
        let kib = parts
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        match first {
            "Rss:" if !inside => rss += kib,
            "Pss:" if !inside => pss += kib,
            _ => {}
        }
    }
    (rss, pss)
}

fn main() {
    if let Err(e) = kvm_ioctls::Kvm::new().and_then(|kvm| kvm.create_vm()) {
        eprintln!("SKIPPED vm_lifecycle: /dev/kvm unusable: {e}");
        return;
    }
    let dir = std::env::temp_dir().join(format!("drover-vmm-bench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let (once, spin) = match (
        assemble(&dir, "once", &guest(false)),
        assemble(&dir, "spin", &guest(true)),
    ) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("SKIPPED vm_lifecycle: {e}");
            return;
        }
    };

    // Warm up page cache and the kernel's KVM paths.
    let _ = first_serial_byte(&once, 5, Duration::ZERO);
    for (label, gap) in [
        ("back to back", Duration::ZERO),
        ("50 ms apart", Duration::from_millis(50)),
    ] {
        let samples = first_serial_byte(&once, 100, gap);
        println!(
            "create -> first serial byte ({label}): p50 {:?}  p90 {:?}  min {:?}  (n={})",
            percentile(&samples, 0.5),
            percentile(&samples, 0.9),
            samples[0],
            samples.len()
        );
    }

    let (cycles, took) = cycles_per_second(&once, Duration::from_secs(3));
    let per = took / cycles.max(1) as u32;
    println!(
        "create/run/destroy: {cycles} cycles in {took:.2?} = {:.0}/s ({per:?} per cycle, 1 vCPU, 128 MiB)",
        cycles as f64 / took.as_secs_f64()
    );

    println!(
        "kernel floor, same run: bare VM create+destroy {:?}; with irqchip+PIT {:?}",
        kvm_floor(false, 50),
        kvm_floor(true, 50)
    );

    let mut config = VmConfig::new(spin);
    config.mem_mib = 128;
    let vm = drover_vmm::build(&config).expect("spin VM");
    std::thread::sleep(Duration::from_millis(200));
    let guest: Vec<(u64, u64)> = vm
        .memory()
        .iter()
        .map(|r| {
            (
                r.as_ptr() as u64,
                r.as_ptr() as u64 + GuestMemoryRegion::len(r),
            )
        })
        .collect();
    let (rss, pss) = smaps_outside(&guest);
    println!(
        "monitor memory outside guest RAM (whole bench process, VM running): Rss {rss} KiB, Pss {pss} KiB"
    );

    let snap = dir.join("snap");
    let t = Instant::now();
    vm.snapshot(&snap, false).expect("snapshot");
    let snapshot_took = t.elapsed();
    let _ = vm.stop();
    let file_kib = std::fs::metadata(snap.join("memory"))
        .map(|m| std::os::unix::fs::MetadataExt::blocks(&m) / 2)
        .unwrap_or(0);
    let t = Instant::now();
    let restored = drover_vmm::restore(&config, &snap).expect("restore");
    let restore_took = t.elapsed();
    let _ = restored.stop();
    println!(
        "snapshot (pause + save, 128 MiB guest): {snapshot_took:?}, memory file {file_kib} KiB on disk (sparse); restore to running: {restore_took:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
