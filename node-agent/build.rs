//! Compiles `drover-init` (node-agent/init) as a static executable and
//! leaves it in OUT_DIR for `include_bytes!`: the agent then carries the
//! guest's PID 1 inside itself, from a plain `cargo build`. Init has no
//! crate dependencies, so two `rustc` calls do it. If static linking is
//! impossible here (no libc.a), an empty file is left and the agent
//! reports the VM runtime unavailable, with the reason.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let src = Path::new("init/src");
    for f in [
        "lib.rs",
        "main.rs",
        "sys.rs",
        "config.rs",
        "console.rs",
        "readdress.rs",
    ] {
        println!("cargo:rerun-if-changed=init/src/{f}");
    }
    let target = out.join("drover-init");
    let result = build(&rustc, src, &out, &target);
    if let Err(e) = result {
        println!("cargo:warning=drover-init not built ({e}): VM pods will be unavailable");
        let _ = std::fs::write(&target, b"");
        let _ = std::fs::write(out.join("drover-init.error"), e);
    } else {
        let _ = std::fs::write(out.join("drover-init.error"), b"");
    }
}

fn build(rustc: &std::ffi::OsStr, src: &Path, out: &Path, target: &Path) -> Result<(), String> {
    let common = [
        "--edition",
        "2024",
        "-C",
        "opt-level=s",
        "-C",
        "target-feature=+crt-static",
        "--cap-lints",
        "warn",
    ];
    let lib = out.join("libdrover_init.rlib");
    run(Command::new(rustc)
        .args(common)
        .args(["--crate-type", "rlib", "--crate-name", "drover_init"])
        .arg(src.join("lib.rs"))
        .arg("-o")
        .arg(&lib))?;
    let mut extern_arg = std::ffi::OsString::from("drover_init=");
    extern_arg.push(&lib);
    run(Command::new(rustc)
        .args(common)
        .args(["--crate-type", "bin", "--crate-name", "drover_init_bin"])
        .args(["-C", "panic=abort", "-C", "strip=symbols"])
        .arg("--extern")
        .arg(extern_arg)
        .arg(src.join("main.rs"))
        .arg("-o")
        .arg(target))
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("running rustc: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .take(5)
            .collect::<Vec<_>>()
            .join(" | "))
    }
}
