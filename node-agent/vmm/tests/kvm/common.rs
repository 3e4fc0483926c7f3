//! Shared helpers for the /dev/kvm tests: capability checks that skip loudly, and test
//! guests assembled at test time with binutils.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_vmm::config::SharedWriter;

/// Why KVM tests cannot run here, if they cannot.
pub fn kvm_unavailable() -> Option<String> {
    let kvm = match kvm_ioctls::Kvm::new() {
        Ok(kvm) => kvm,
        Err(e) => return Some(format!("/dev/kvm unusable: {e}")),
    };
    // Opening is not enough (a bind-mounted /dev/null opens fine): make a VM.
    if let Err(e) = kvm.create_vm() {
        return Some(format!("/dev/kvm cannot create VMs: {e}"));
    }
    for tool in ["as", "ld"] {
        if Command::new(tool).arg("--version").output().is_err() {
            return Some(format!("`{tool}` (binutils) not installed"));
        }
    }
    None
}

/// Returns early from a test, printing why, when KVM or binutils are missing.
macro_rules! require_kvm {
    () => {
        if let Some(reason) = crate::common::kvm_unavailable() {
            fn here() {}
            let name = std::any::type_name_of_val(&here);
            eprintln!(
                "SKIPPED {}: {reason}",
                name.strip_suffix("::here").unwrap_or(name)
            );
            return;
        }
    };
}

/// Assembles `source` (AT&T syntax) into a static ELF64 test guest linked at 2 MiB.
pub fn assemble(dir: &Path, name: &str, source: &str) -> PathBuf {
    let src = dir.join(format!("{name}.S"));
    let obj = dir.join(format!("{name}.o"));
    let elf = dir.join(name);
    std::fs::write(&src, source).expect("write guest source");
    let status = Command::new("as")
        .args(["--64", "-o"])
        .arg(&obj)
        .arg(&src)
        .status()
        .expect("run as");
    assert!(status.success(), "assembling {name} failed");
    let status = Command::new("ld")
        .args([
            "-static",
            "-nostdlib",
            "-z",
            "max-page-size=0x1000",
            "-Ttext=0x200000",
            "-e",
            "_start",
            "-o",
        ])
        .arg(&elf)
        .arg(&obj)
        .status()
        .expect("run ld");
    assert!(status.success(), "linking {name} failed");
    elf
}

/// Assembles `source` into a flat binary linked to run at `base`.
pub fn assemble_flat(dir: &Path, name: &str, source: &str, base: u64) -> Vec<u8> {
    let src = dir.join(format!("{name}.S"));
    let obj = dir.join(format!("{name}.o"));
    let bin = dir.join(format!("{name}.bin"));
    std::fs::write(&src, source).expect("write guest source");
    let out = Command::new("as")
        .args(["--64", "-o"])
        .arg(&obj)
        .arg(&src)
        .output()
        .expect("run as");
    assert!(
        out.status.success(),
        "assembling {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = Command::new("ld")
        .args([
            "-static",
            "-nostdlib",
            &format!("-Ttext={base:#x}"),
            "-e",
            "_start",
            "--oformat",
            "binary",
            "-o",
        ])
        .arg(&bin)
        .arg(&obj)
        .status()
        .expect("run ld");
    assert!(status.success(), "linking {name} failed");
    std::fs::read(&bin).expect("read flat binary")
}

/// An in-memory serial console the test can read while the VM runs.
#[derive(Clone, Default)]
pub struct Console(Arc<Mutex<Vec<u8>>>);

struct ConsoleWriter(Arc<Mutex<Vec<u8>>>);

impl Write for ConsoleWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("console lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Console {
    /// A writer for `SerialOutput::Writer`.
    pub fn writer(&self) -> SharedWriter {
        Arc::new(Mutex::new(ConsoleWriter(self.0.clone())))
    }

    /// Output so far, lossily decoded.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("console lock")).into_owned()
    }

    /// Polls until the output contains `needle` or `timeout` passes.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }
}

/// Guest prologue: `print` writes the NUL-terminated string at %rsi to COM1, and
/// `reset` asks the i8042 for a CPU reset, then halts.
pub const GUEST_LIB: &str = r#"
print:
    mov $0x3f8, %dx
1:  lodsb
    test %al, %al
    jz 2f
    out %al, (%dx)
    jmp 1b
2:  ret
reset:
    mov $0xfe, %al
    out %al, $0x64
3:  hlt
    jmp 3b
"#;
