//! Laying out one run of a VM pod for its shim: the run's initramfs (the
//! image's cached base + the run's config) and the engine's command line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use drover_init::config::GuestConfig;

use super::cgroup::{MONITOR_OVERHEAD_MIB, MonitorLimits};
use super::engine::{self, Engine, TapNet, VmSpec};
use super::initramfs::{self, BaseInputs, InitramfsError};
use super::kernel::GuestKernel;
use crate::runtime::container::bundle::ContainerDir;
use crate::shim::ShimConfig;
use crate::shim::state::VmProcess;

/// The node's means to run VMs.
#[derive(Clone, Debug)]
pub struct VmHost {
    pub kernel: GuestKernel,
    pub engine: Engine,
    /// The QEMU binary (qemu engine).
    pub qemu: PathBuf,
    /// Where base initramfs archives are cached.
    pub cache_dir: PathBuf,
    /// The host's TSC frequency (for emulated guests).
    pub tsc_khz: Option<u64>,
    /// The kvm engine's monitor: the binary and the arguments selecting
    /// its shim entry point (`drover shim`), to which `vmm …` is added.
    pub monitor: Vec<String>,
}

/// One run of a VM pod.
#[derive(Clone, Debug)]
pub struct VmRun<'a> {
    /// Unique on the node, as a container id.
    pub id: String,
    pub dir: &'a ContainerDir,
    /// The image's manifest digest (the cache key of its base archive).
    pub image_manifest: String,
    /// The image's unpacked layers, topmost first.
    pub lowers: &'a [PathBuf],
    pub guest: GuestConfig,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub net: Option<TapNet>,
    pub log_path: PathBuf,
    pub log_max_bytes: u64,
    pub log_max_files: u32,
    pub default_grace: Duration,
    /// The monitor's cgroup (empty: none).
    pub cgroup: PathBuf,
    /// Start from a snapshot instead of booting (qemu engine).
    pub restore: Option<RestoreFrom>,
}

/// A snapshot to restore, checked against the run's machine shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreFrom {
    /// The snapshot's directory ([`super::snapshot::meta`]).
    pub dir: PathBuf,
    /// Written to the guest's console once the VM starts: its new address.
    pub console_line: String,
}

/// Preparing a VM run failed.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Initramfs(#[from] InitramfsError),
    /// The guest init is missing from this build.
    #[error("drover-init is unavailable: {0}")]
    NoInit(&'static str),
    /// The engine cannot run it.
    #[error("the {0} engine has no monitor binary configured")]
    Engine(&'static str),
    /// The kvm engine cannot restore snapshots yet.
    #[error("the {0} engine cannot start VMs from snapshots (use the qemu engine)")]
    NoRestore(&'static str),
    #[error(transparent)]
    Snapshot(#[from] super::snapshot::qmp::QmpError),
    #[error("creating {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The initramfs of a run inside its directory.
pub fn initrd_path(dir: &ContainerDir) -> PathBuf {
    initrd_path_in(dir.path())
}

/// The initramfs of the run in `run_dir`.
pub fn initrd_path_in(run_dir: &Path) -> PathBuf {
    run_dir.join("initrd.cpio")
}

/// Writes the run's files and returns its shim config.
pub fn prepare(host: &VmHost, run: &VmRun<'_>) -> Result<ShimConfig, PrepareError> {
    if let Some(why) = super::init_build_error() {
        return Err(PrepareError::NoInit(why));
    }
    if host.engine == Engine::Kvm && host.monitor.is_empty() {
        return Err(PrepareError::Engine(host.engine.name()));
    }
    if host.engine == Engine::Kvm && run.restore.is_some() {
        return Err(PrepareError::NoRestore(host.engine.name()));
    }
    let emulated = host.engine == Engine::Qemu { kvm: false };
    let dir = run.dir.path();
    std::fs::create_dir_all(dir).map_err(|source| PrepareError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let (initrd, incoming) = match &run.restore {
        // The snapshot's memory holds the guest's files already; QEMU
        // only needs the initramfs it booted from, unchanged.
        Some(r) => {
            let state = r.dir.join(super::snapshot::meta::STATE);
            let uri = super::snapshot::qmp::incoming_from_file(&state.display().to_string())?;
            (r.dir.join(super::snapshot::meta::INITRD), Some(uri))
        }
        None => {
            let inputs = BaseInputs {
                lowers: run.lowers,
                init: super::GUEST_INIT,
                modules: &host.kernel.modules,
            };
            let key = initramfs::base_key(&run.image_manifest, &inputs);
            let base = initramfs::ensure_base(&host.cache_dir, &key, &inputs)?;
            let initrd = initrd_path(run.dir);
            initramfs::assemble(&base, &run.guest, &initrd)?;
            (initrd, None)
        }
    };
    let spec = VmSpec {
        kernel: host.kernel.vmlinuz.clone(),
        initrd,
        memory_mib: run.memory_mib,
        vcpus: run.vcpus,
        net: run.net.clone(),
        tsc_khz: if emulated { host.tsc_khz } else { None },
        incoming,
    };
    let argv = match host.engine {
        Engine::Qemu { kvm } => engine::qemu_argv(&host.qemu, &spec, kvm),
        Engine::Kvm => engine::kvm_argv(&host.monitor, &spec),
    };
    Ok(ShimConfig {
        container_id: run.id.clone(),
        bundle: dir.to_path_buf(),
        runtime_root: PathBuf::new(),
        overlay: None,
        log_path: run.log_path.clone(),
        log_max_bytes: run.log_max_bytes,
        log_max_files: run.log_max_files,
        cgroups_path: run.cgroup.clone(),
        default_grace_ms: u64::try_from(run.default_grace.as_millis()).unwrap_or(u64::MAX),
        vm: Some(VmProcess {
            argv,
            limits: Some(MonitorLimits {
                memory_bytes: (run.memory_mib + MONITOR_OVERHEAD_MIB) << 20,
                cpu_millis: u64::from(run.vcpus) * 1000,
            }),
            console_input: run.restore.as_ref().map(|r| r.console_line.clone()),
        }),
    })
}

/// The base archives in the cache (for cleaning up after tests).
pub fn cached_bases(cache_dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(cache_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "cpio"))
        .collect()
}
