//! Starting one run of a container: ensure the image (per pull policy),
//! unpack its layers, build the runtime spec from the pod, lay out the
//! bundle and hand it to a detached shim. Failures carry the Kubernetes
//! reason the pod status shows.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use drover_proto::Resource;
use drover_proto::types::Pod;
use drover_proto::types::pod::{Container, PullPolicy as PodPullPolicy, Runtime};
use oci_spec::runtime::Capability;

use super::events::{EventSink, EventType, reason as event};
use super::layout::{self, Layout};
use crate::image::{Image, ImageStore, PullOptions, PullPolicy};
use crate::network::PodNetwork;
use crate::runtime::container::bundle::{self, ContainerRequest};
use crate::runtime::container::spec::process_from_image;
use crate::runtime::container::{ContainerSpec, NetworkMode, Resources, user};
use crate::runtime::vm::prepare::VmHost;
use crate::shim::{ShimHandle, ShimLauncher};

/// Log files kept per container run, the live one included.
pub const LOG_MAX_FILES: u32 = 2;

/// What starting needs, shared by every pod worker.
#[derive(Debug)]
pub struct Runner {
    /// Paths.
    pub layout: Layout,
    /// The node's images.
    pub images: Arc<ImageStore>,
    /// Starts shims.
    pub launcher: Arc<ShimLauncher>,
    /// Registries.
    pub pull: PullOptions,
    /// The node's pod network (None: loopback-only namespaces).
    pub network: Option<Arc<PodNetwork>>,
    /// How this node runs VM pods (None: it offers no `vm` runtime).
    pub vm: Option<Arc<VmHost>>,
}

/// Why a start failed before anything ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartFailure {
    /// `ErrImagePull`, `CreateContainerConfigError`, `CreateContainerError`...
    pub reason: String,
    /// What to fix.
    pub message: String,
    /// The image could not be had.
    pub pull: bool,
}

pub(super) fn failure(reason: &str, message: impl ToString) -> StartFailure {
    StartFailure {
        reason: reason.to_string(),
        message: message.to_string(),
        pull: false,
    }
}

fn pull_policy(c: &Container) -> PullPolicy {
    match c.image_pull_policy {
        Some(PodPullPolicy::Always) => PullPolicy::Always,
        Some(PodPullPolicy::IfNotPresent) => PullPolicy::IfNotPresent,
        Some(PodPullPolicy::Never) => PullPolicy::Never,
        None => PullPolicy::default_for(&c.image),
    }
}

fn capabilities(names: &[String]) -> Result<Vec<Capability>, StartFailure> {
    names
        .iter()
        .map(|n| {
            let full = if n.starts_with("CAP_") {
                n.clone()
            } else {
                format!("CAP_{n}")
            };
            serde_json::from_value(serde_json::Value::String(full.to_uppercase())).map_err(|_| {
                failure(
                    "CreateContainerConfigError",
                    format!("unknown capability {n:?}"),
                )
            })
        })
        .collect()
}

/// The runtime spec for container `c` of `pod` from `image` (layers
/// `lowers`, topmost first; read only for a named USER).
pub fn container_spec(
    pod: &Pod,
    c: &Container,
    image: &Image,
    lowers: &[PathBuf],
    cgroups_path: PathBuf,
    network: NetworkMode,
) -> Result<ContainerSpec, StartFailure> {
    let env: Vec<(String, String)> = c
        .env
        .iter()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
    let command = (!c.command.is_empty()).then_some(c.command.as_slice());
    let args = (!c.args.is_empty()).then_some(c.args.as_slice());
    let mut process = process_from_image(&image.config, command, args, &env);
    if process.args.is_empty() {
        return Err(failure(
            "CreateContainerConfigError",
            "no command: the image has no entrypoint or cmd and the container gives none",
        ));
    }
    if let Some(dir) = c.working_dir.clone().filter(|d| !d.is_empty()) {
        process.cwd = dir;
    }
    let image_user = image
        .config
        .config()
        .as_ref()
        .and_then(|cfg| cfg.user().clone())
        .filter(|u| !u.is_empty() && u.parse::<u32>().is_err() && !u.contains(':'));
    if let Some(name) = image_user {
        let (uid, gid) = user::resolve_in_layers(lowers, &name)
            .map_err(|e| failure("CreateContainerConfigError", e))?;
        (process.uid, process.gid) = (uid, gid);
    }
    let sc = c.security_context.clone().unwrap_or_default();
    if let Some(uid) = sc.run_as_user {
        process.uid = u32::try_from(uid)
            .map_err(|_| failure("CreateContainerConfigError", "runAsUser out of range"))?;
    }
    if let Some(gid) = sc.run_as_group {
        process.gid = u32::try_from(gid)
            .map_err(|_| failure("CreateContainerConfigError", "runAsGroup out of range"))?;
    }
    if sc.run_as_non_root == Some(true) && process.uid == 0 {
        return Err(failure(
            "CreateContainerConfigError",
            "container has runAsNonRoot and image will run as root",
        ));
    }
    let caps = sc.capabilities.clone().unwrap_or_default();
    let limit = |r: &str| c.resources.limits.get(r);
    let resources = Resources {
        cpu_limit_millis: limit("cpu").and_then(|q| u64::try_from(q.millis()).ok()),
        cpu_request_millis: c
            .resources
            .request("cpu")
            .and_then(|q| u64::try_from(q.millis()).ok()),
        memory_limit_bytes: limit("memory").and_then(|q| u64::try_from(q.units()).ok()),
        pids_limit: None,
    };
    Ok(ContainerSpec {
        hostname: pod
            .spec
            .hostname
            .clone()
            .unwrap_or_else(|| pod.name().to_string()),
        process,
        rootfs: PathBuf::new(),
        readonly_rootfs: sc.read_only_root_filesystem == Some(true),
        network,
        resources,
        cgroups_path,
        cap_add: capabilities(&caps.add)?,
        cap_drop: capabilities(&caps.drop)?,
        privileged: sc.privileged == Some(true),
    })
}

impl Runner {
    /// Starts run `attempt` of container `index` of `pod`.
    pub async fn start(
        self: &Arc<Self>,
        pod: &Pod,
        index: usize,
        attempt: i32,
        events: &EventSink,
    ) -> Result<ShimHandle, StartFailure> {
        let c = pod
            .spec
            .containers
            .get(index)
            .cloned()
            .ok_or_else(|| failure("CreateContainerError", "no such container"))?;
        if !self.images.contains(&c.image)
            && let Err(e) = self.images.reload_index()
        {
            tracing::warn!("re-reading the image index: {e}");
        }
        let policy = pull_policy(&c);
        let present = self.images.contains(&c.image);
        let pulls = policy == PullPolicy::Always || (!present && policy != PullPolicy::Never);
        let say = |type_, reason: &str, message: String| {
            events.container(pod, &c.name, type_, reason, message);
        };
        if pulls {
            say(
                EventType::Normal,
                event::PULLING,
                format!("Pulling image {:?}", c.image),
            );
        }
        let began = std::time::Instant::now();
        let image = self
            .images
            .ensure_image(&c.image, policy, &self.pull, &mut |_| {})
            .await
            .map_err(|e| {
                if pulls {
                    say(
                        EventType::Warning,
                        event::FAILED,
                        format!("Failed to pull image {:?}: {e}", c.image),
                    );
                }
                StartFailure {
                    reason: e.reason().to_string(),
                    message: e.to_string(),
                    pull: true,
                }
            })?;
        let pulled = if pulls {
            format!(
                "Successfully pulled image {:?} in {:.3}s",
                c.image,
                began.elapsed().as_secs_f64()
            )
        } else {
            format!("Container image {:?} already present on machine", c.image)
        };
        say(EventType::Normal, event::PULLED, pulled);
        if pod.spec.runtime == Runtime::Vm {
            return super::vm_runner::start(self, pod, &c, image, attempt).await;
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        // The pod's sandbox: every container joins the same namespace.
        let network = match &self.network {
            Some(net) => NetworkMode::Join(
                net.attach(&uid)
                    .await
                    .map_err(|e| failure("CreatePodSandboxError", e))?
                    .netns,
            ),
            None => NetworkMode::New,
        };
        let (ns, name) = (pod.namespace().to_string(), pod.name().to_string());
        let pod = pod.clone();
        let this = Arc::clone(self);
        let blocking = move || {
            let lowers = this
                .images
                .prepare_layers(&image)
                .map_err(|e| failure(e.reason(), e))?;
            let cgroup = layout::container_cgroup(&uid, &c.name, attempt);
            let spec = container_spec(&pod, &c, &image, &lowers, cgroup, network)?;
            let dir = this.layout.container_dir(&uid, &c.name, attempt);
            let req = ContainerRequest {
                id: layout::container_id(&uid, &c.name, attempt),
                spec,
                lowers,
                runtime_root: this.layout.runtime_root(),
                log_path: this.layout.log_path(&ns, &name, &uid, &c.name, attempt),
                log_max_bytes: 10 << 20,
                log_max_files: LOG_MAX_FILES,
                default_grace: Duration::from_secs(30),
            };
            let config =
                bundle::prepare(&dir, &req).map_err(|e| failure("CreateContainerError", e))?;
            if let Some(net) = &this.network {
                // Cluster DNS: the node's server, in the writable layer.
                let etc = dir.upper().join("etc");
                let conf = crate::network::dns::resolv_conf(net.cidr.gateway(), &ns);
                std::fs::create_dir_all(&etc)
                    .and_then(|()| std::fs::write(etc.join("resolv.conf"), conf))
                    .map_err(|e| failure("CreateContainerError", format!("resolv.conf: {e}")))?;
            }
            this.launcher
                .launch(&dir.shim_dir(), &config)
                .map_err(|e| failure("CreateContainerError", e))
        };
        tokio::task::spawn_blocking(blocking)
            .await
            .map_err(|e| failure("CreateContainerError", e))?
    }
}
