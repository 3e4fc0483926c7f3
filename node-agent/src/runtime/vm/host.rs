//! Deciding, once at agent start, whether this node can run VM pods and
//! how: the engine (from `--vm-engine` and the host), the guest kernel
//! (from `--vm-kernel` or the default install) and drover-init from this
//! build. Whatever is missing makes `vm` absent from the Node's runtimes,
//! with the reason in the agent's log.

use std::path::{Path, PathBuf};

use super::engine::{self, EngineChoice, HostFacts};
use super::kernel::GuestKernel;
use super::prepare::VmHost;

/// Where the guest kernel is looked for: the flag, `$DROVER_VM_KERNEL`,
/// the agent's data dir (`drover vm install-kernel --data-dir`), then the
/// machine-wide install.
pub fn kernel_path(flag: Option<&Path>, data_dir: &Path) -> PathBuf {
    if let Some(p) = flag {
        return p.to_path_buf();
    }
    if std::env::var_os(super::kernel::KERNEL_ENV).is_some() {
        return GuestKernel::default_path();
    }
    let local = super::kernel::data_dir_kernel(data_dir).join("vmlinuz");
    if local.exists() {
        return local;
    }
    GuestKernel::default_path()
}

/// Finds what VM pods need on this node; `Err` says why there is none.
/// `Ok` carries the host and a sentence for the log.
/// `monitor` is the binary and arguments reaching the shim entry point
/// (`drover shim`), which the kvm engine's monitor runs as.
pub fn detect(
    choice: EngineChoice,
    kernel: Option<&Path>,
    data_dir: &Path,
    monitor: Vec<String>,
) -> Result<(VmHost, String), String> {
    if let Some(why) = super::init_build_error() {
        return Err(format!("drover-init is not in this build: {why}"));
    }
    let facts = HostFacts::probe();
    let (engine, why) = engine::select(choice, &facts)?;
    let path = kernel_path(kernel, data_dir);
    let kernel = GuestKernel::locate(&path).map_err(|e| e.to_string())?;
    let host = VmHost {
        engine,
        qemu: facts.qemu.clone().unwrap_or_default(),
        cache_dir: data_dir.join("vm").join("initramfs"),
        tsc_khz: facts.tsc_khz,
        kernel,
        monitor,
    };
    let modules = host.kernel.modules.len();
    Ok((
        host,
        format!("{why}; guest kernel {} ({modules} modules)", path.display()),
    ))
}
