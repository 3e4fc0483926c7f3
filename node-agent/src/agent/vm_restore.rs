//! Starting a VM pod from a snapshot (`spec.vmSnapshot`): the snapshot is
//! checked against the pod's machine before QEMU sees it (a missing,
//! corrupt or mismatched one is a Waiting reason, not a dead VM), the
//! guest is told its new address on the console, and the VM is resumed
//! once QEMU has loaded it.

use std::path::Path;
use std::time::Duration;

use drover_init::config::NetConfig;
use drover_init::readdress::{Readdress, parse_mac};

use super::runner::{StartFailure, failure};
use crate::runtime::vm::engine::TapNet;
use crate::runtime::vm::prepare::{RestoreFrom, VmHost};
use crate::runtime::vm::snapshot::meta::{self, MachineShape};
use crate::runtime::vm::snapshot::resume;

/// How long QEMU may take to load a snapshot.
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// Checks snapshot `name` for a VM of this shape on `host` (blocking: it
/// hashes the state file) and returns what `prepare` needs.
pub fn plan(
    host: &VmHost,
    data_dir: &Path,
    name: &str,
    memory_mib: u64,
    vcpus: u32,
    net: Option<&TapNet>,
) -> Result<RestoreFrom, StartFailure> {
    let dir = meta::snapshot_dir(data_dir, name);
    let m = meta::load(&dir, name).map_err(|e| failure(e.reason(), &e))?;
    let kernel_bytes = std::fs::metadata(&host.kernel.vmlinuz)
        .map_err(|e| {
            let why = format!("the guest kernel {}: {e}", host.kernel.vmlinuz.display());
            failure("CreateContainerError", why)
        })?
        .len();
    let shape = MachineShape {
        engine: host.engine.name().to_string(),
        memory_mib,
        vcpus,
        kernel_bytes,
    };
    meta::check_shape(&m, &shape).map_err(|e| failure(e.reason(), &e))?;
    let console_line = match net {
        Some(n) => readdress_line(n)?,
        None => String::new(),
    };
    Ok(RestoreFrom { dir, console_line })
}

fn readdress_line(n: &TapNet) -> Result<String, StartFailure> {
    let mac = parse_mac(&n.mac).ok_or_else(|| {
        failure(
            "CreatePodSandboxError",
            format!("the pod network gave MAC {:?}", n.mac),
        )
    })?;
    let r = Readdress {
        net: NetConfig {
            ip: n.ip,
            prefix: n.prefix,
            gateway: Some(n.gateway),
        },
        mac,
    };
    Ok(r.line())
}

/// Resumes the restored VM in `run_dir` once loaded, in the background;
/// if QEMU cannot load it, it exits and the shim reports why.
pub fn resume_in_background(run_dir: std::path::PathBuf, pod: String) {
    std::thread::spawn(
        move || match resume::resume_when_loaded(&run_dir, LOAD_TIMEOUT) {
            Ok(()) => tracing::info!(%pod, "VM restored from its snapshot and resumed"),
            Err(e) => tracing::warn!(%pod, "resuming the restored VM: {e}"),
        },
    );
}
