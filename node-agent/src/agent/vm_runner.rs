//! Starting one run of a VM pod: the guest's config and size from the pod
//! and image, a tap and address from the pod network, the run's
//! initramfs and engine command line, then the same detached shim as a
//! container. Failures carry the reason the pod status shows.

use std::sync::Arc;
use std::time::Duration;

use drover_proto::Resource;
use drover_proto::types::Pod;
use drover_proto::types::pod::Container;

use super::layout;
use super::runner::{LOG_MAX_FILES, Runner, StartFailure, failure};
use crate::image::Image;
use crate::runtime::vm::engine::TapNet;
use crate::runtime::vm::guest;
use crate::runtime::vm::prepare::{self, VmRun};
use crate::shim::ShimHandle;

/// Starts run `attempt` of VM pod `pod` (its one container `c`).
pub async fn start(
    runner: &Arc<Runner>,
    pod: &Pod,
    c: &Container,
    image: Image,
    attempt: i32,
) -> Result<ShimHandle, StartFailure> {
    let Some(host) = runner.vm.clone() else {
        return Err(failure(
            "CreateContainerError",
            "this node cannot run VM pods (see the agent log: engine or guest kernel missing)",
        ));
    };
    if pod.spec.containers.len() != 1 {
        return Err(failure(
            "CreateContainerConfigError",
            "a VM pod runs exactly one container",
        ));
    }
    let config = guest::guest_config(pod, c, &image.config)
        .map_err(|e| failure("CreateContainerConfigError", e))?;
    let (memory_mib, vcpus) =
        guest::guest_size(c).map_err(|e| failure("CreateContainerConfigError", e))?;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let net = match &runner.network {
        Some(net) => {
            let a = net
                .attach_tap(&uid)
                .await
                .map_err(|e| failure("CreatePodSandboxError", e))?;
            Some(TapNet {
                tap: a.tap,
                mac: a.mac,
                ip: a.ip,
                prefix: a.prefix,
                gateway: a.gateway,
            })
        }
        None => None,
    };
    let (ns, name) = (pod.namespace().to_string(), pod.name().to_string());
    let snapshot = pod.spec.vm_snapshot.clone();
    let this = Arc::clone(runner);
    let c = c.clone();
    let blocking = move || {
        let lowers = this
            .images
            .prepare_layers(&image)
            .map_err(|e| failure(e.reason(), e))?;
        let restore = match &snapshot {
            Some(name) => Some(super::vm_restore::plan(
                &host,
                this.layout.data_dir(),
                name,
                memory_mib,
                vcpus,
                net.as_ref(),
            )?),
            None => None,
        };
        let dir = this.layout.container_dir(&uid, &c.name, attempt);
        let run = VmRun {
            id: layout::container_id(&uid, &c.name, attempt),
            dir: &dir,
            image_manifest: image.manifest.to_string(),
            lowers: &lowers,
            guest: config,
            memory_mib,
            vcpus,
            net,
            log_path: this.layout.log_path(&ns, &name, &uid, &c.name, attempt),
            log_max_bytes: 10 << 20,
            log_max_files: LOG_MAX_FILES,
            default_grace: Duration::from_secs(30),
            cgroup: layout::container_cgroup(&uid, &c.name, attempt),
            restore,
        };
        let shim_config =
            prepare::prepare(&host, &run).map_err(|e| failure("CreateContainerError", e))?;
        let shim = this
            .launcher
            .launch(&dir.shim_dir(), &shim_config)
            .map_err(|e| failure("CreateContainerError", e))?;
        if run.restore.is_some() {
            super::vm_restore::resume_in_background(
                dir.path().to_path_buf(),
                format!("{ns}/{name}"),
            );
        }
        Ok(shim)
    };
    tokio::task::spawn_blocking(blocking)
        .await
        .map_err(|e| failure("CreateContainerError", e))?
}
