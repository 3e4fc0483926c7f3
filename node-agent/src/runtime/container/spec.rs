//! The pure translation from what a pod asks for to an OCI runtime spec
//! (`config.json`), hardened by default as runc and Docker do.

use std::path::PathBuf;

use oci_spec::image::ImageConfiguration;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder,
    LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResourcesBuilder, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
    get_default_maskedpaths, get_default_mounts, get_default_readonly_paths,
};

use super::seccomp;

/// The container's network namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkMode {
    /// Join the namespace at this path (the pod's, made by the network layer).
    Join(PathBuf),
    /// A fresh namespace with only loopback.
    New,
    /// The host's network (hostNetwork: true).
    Host,
}

/// Resource limits, in the units the pod spec uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources {
    /// `limits.cpu` in millicores: becomes a CFS quota.
    pub cpu_limit_millis: Option<u64>,
    /// `requests.cpu` in millicores: becomes CPU shares (weight).
    pub cpu_request_millis: Option<u64>,
    /// `limits.memory` in bytes: the OOM killer acts past it.
    pub memory_limit_bytes: Option<u64>,
    /// Maximum number of processes (fork bombs stop here).
    pub pids_limit: Option<i64>,
}

/// The process to run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessSpec {
    /// argv; `args[0]` is looked up in `PATH` of `env`.
    pub args: Vec<String>,
    /// `KEY=value` pairs.
    pub env: Vec<String>,
    /// Working directory inside the container.
    pub cwd: String,
    /// User and group ids.
    pub uid: u32,
    /// Primary group.
    pub gid: u32,
    /// Supplementary groups.
    pub additional_gids: Vec<u32>,
}

/// Everything that decides a container's `config.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerSpec {
    /// Hostname inside the container (the pod name).
    pub hostname: String,
    /// The process.
    pub process: ProcessSpec,
    /// The root filesystem (the overlay mount point), absolute.
    pub rootfs: PathBuf,
    /// `securityContext.readOnlyRootFilesystem`.
    pub readonly_rootfs: bool,
    /// Network namespace.
    pub network: NetworkMode,
    /// Limits.
    pub resources: Resources,
    /// Cgroup path relative to the hierarchy root, e.g. `/drover/<pod>/<ctr>`.
    pub cgroups_path: PathBuf,
    /// Capabilities added to the default set.
    pub cap_add: Vec<Capability>,
    /// Capabilities removed from the default set (after adding).
    pub cap_drop: Vec<Capability>,
    /// `securityContext.privileged`: all capabilities, no seccomp, no masking.
    pub privileged: bool,
}

/// The spec could not be built (a builder rejected a value).
#[derive(Debug, thiserror::Error)]
#[error("invalid container spec: {0}")]
pub struct SpecError(String);

fn err(e: impl std::fmt::Display) -> SpecError {
    SpecError(e.to_string())
}

/// Docker's and containerd's default capability set.
pub fn default_capabilities() -> Vec<Capability> {
    use Capability::*;
    vec![
        Chown,
        DacOverride,
        Fsetid,
        Fowner,
        Mknod,
        NetRaw,
        Setgid,
        Setuid,
        Setfcap,
        Setpcap,
        NetBindService,
        SysChroot,
        Kill,
        AuditWrite,
    ]
}

/// The effective capability set after `add` then `drop`.
pub fn effective_capabilities(spec: &ContainerSpec) -> Vec<Capability> {
    let mut caps = if spec.privileged {
        all_capabilities()
    } else {
        default_capabilities()
    };
    for c in &spec.cap_add {
        if !caps.contains(c) {
            caps.push(*c);
        }
    }
    caps.retain(|c| !spec.cap_drop.contains(c));
    caps
}

fn all_capabilities() -> Vec<Capability> {
    use Capability::*;
    vec![
        AuditControl,
        AuditRead,
        AuditWrite,
        BlockSuspend,
        Bpf,
        CheckpointRestore,
        Chown,
        DacOverride,
        DacReadSearch,
        Fowner,
        Fsetid,
        IpcLock,
        IpcOwner,
        Kill,
        Lease,
        LinuxImmutable,
        MacAdmin,
        MacOverride,
        Mknod,
        NetAdmin,
        NetBindService,
        NetBroadcast,
        NetRaw,
        Perfmon,
        Setgid,
        Setfcap,
        Setpcap,
        Setuid,
        SysAdmin,
        SysBoot,
        SysChroot,
        SysModule,
        SysNice,
        SysPacct,
        SysPtrace,
        SysRawio,
        SysResource,
        SysTime,
        SysTtyConfig,
        Syslog,
        WakeAlarm,
    ]
}

/// The CFS period we quote quotas against (the kernel's default).
pub const CPU_PERIOD_US: u64 = 100_000;

/// Kubernetes' millicores → CFS quota: 500m is half of one period.
pub fn cpu_quota(millis: u64) -> i64 {
    // The kernel refuses quotas under 1 ms.
    let quota = (millis.saturating_mul(CPU_PERIOD_US) / 1000).max(1000);
    i64::try_from(quota).unwrap_or(i64::MAX)
}

/// Kubernetes' millicores → CPU shares (1 CPU = 1024, minimum 2).
pub fn cpu_shares(millis: u64) -> u64 {
    (millis.saturating_mul(1024) / 1000).max(2)
}

/// Builds the OCI runtime spec for a container.
pub fn runtime_spec(c: &ContainerSpec) -> Result<Spec, SpecError> {
    let caps = effective_capabilities(c);
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(
            caps.iter()
                .copied()
                .collect::<std::collections::HashSet<_>>(),
        )
        .effective(
            caps.iter()
                .copied()
                .collect::<std::collections::HashSet<_>>(),
        )
        .permitted(
            caps.iter()
                .copied()
                .collect::<std::collections::HashSet<_>>(),
        )
        .build()
        .map_err(err)?;
    let user = UserBuilder::default()
        .uid(c.process.uid)
        .gid(c.process.gid)
        .additional_gids(c.process.additional_gids.clone())
        .build()
        .map_err(err)?;
    let cwd = if c.process.cwd.is_empty() {
        "/".to_string()
    } else {
        c.process.cwd.clone()
    };
    let process = ProcessBuilder::default()
        .terminal(false)
        .user(user)
        .args(c.process.args.clone())
        .env(c.process.env.clone())
        .cwd(cwd)
        .capabilities(capabilities)
        .no_new_privileges(!c.privileged)
        .build()
        .map_err(err)?;

    let mut namespaces = Vec::new();
    for typ in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Cgroup,
    ] {
        namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(typ)
                .build()
                .map_err(err)?,
        );
    }
    match &c.network {
        NetworkMode::Host => {}
        NetworkMode::New => namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .build()
                .map_err(err)?,
        ),
        NetworkMode::Join(path) => namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(path.clone())
                .build()
                .map_err(err)?,
        ),
    }

    let mut resources = LinuxResourcesBuilder::default().devices(vec![
        // Deny every device; the runtime then allows the standard safe set.
        LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .map_err(err)?,
    ]);
    let r = &c.resources;
    if r.cpu_limit_millis.is_some() || r.cpu_request_millis.is_some() {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(m) = r.cpu_limit_millis {
            cpu = cpu.quota(cpu_quota(m)).period(CPU_PERIOD_US);
        }
        if let Some(m) = r.cpu_request_millis {
            cpu = cpu.shares(cpu_shares(m));
        }
        resources = resources.cpu(cpu.build().map_err(err)?);
    }
    if let Some(bytes) = r.memory_limit_bytes {
        let limit = i64::try_from(bytes).map_err(err)?;
        resources = resources.memory(
            LinuxMemoryBuilder::default()
                .limit(limit)
                .build()
                .map_err(err)?,
        );
    }
    if let Some(limit) = r.pids_limit {
        resources = resources.pids(
            LinuxPidsBuilder::default()
                .limit(limit)
                .build()
                .map_err(err)?,
        );
    }

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources.build().map_err(err)?)
        .cgroups_path(c.cgroups_path.clone());
    linux = if c.privileged {
        linux.masked_paths(Vec::new()).readonly_paths(Vec::new())
    } else {
        linux
            .masked_paths(masked_paths())
            .readonly_paths(get_default_readonly_paths())
            .seccomp(seccomp::default_profile().map_err(err)?)
    };

    SpecBuilder::default()
        .version("1.0.2")
        .hostname(c.hostname.clone())
        .root(
            RootBuilder::default()
                .path(c.rootfs.clone())
                .readonly(c.readonly_rootfs)
                .build()
                .map_err(err)?,
        )
        .mounts(get_default_mounts())
        .process(process)
        .linux(linux.build().map_err(err)?)
        .build()
        .map_err(err)
}

/// runc's masked paths (oci-spec's defaults plus powercap, which leaks
/// energy counters usable as a side channel).
fn masked_paths() -> Vec<String> {
    let mut paths = get_default_maskedpaths();
    paths.push("/sys/devices/virtual/powercap".to_string());
    paths
}

/// Kubernetes' rules for the process from the image config: `command`
/// replaces the entrypoint, `args` replaces the cmd; image env comes first
/// and pod env overrides it by name.
pub fn process_from_image(
    image: &ImageConfiguration,
    command: Option<&[String]>,
    args: Option<&[String]>,
    env: &[(String, String)],
) -> ProcessSpec {
    let config = image.config().as_ref();
    let entrypoint = config
        .and_then(|c| c.entrypoint().clone())
        .unwrap_or_default();
    let cmd = config.and_then(|c| c.cmd().clone()).unwrap_or_default();
    let argv = match (command, args) {
        (Some(command), Some(args)) => [command, args].concat(),
        (Some(command), None) => command.to_vec(),
        (None, Some(args)) => [entrypoint.as_slice(), args].concat(),
        (None, None) => [entrypoint, cmd].concat(),
    };
    let mut merged: Vec<String> = config.and_then(|c| c.env().clone()).unwrap_or_default();
    if !merged.iter().any(|e| e.starts_with("PATH=")) {
        merged.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    for (k, v) in env {
        let prefix = format!("{k}=");
        merged.retain(|e| !e.starts_with(&prefix));
        merged.push(format!("{k}={v}"));
    }
    let (uid, gid) = config
        .and_then(|c| c.user().as_deref())
        .map(numeric_user)
        .unwrap_or((0, 0));
    ProcessSpec {
        args: argv,
        env: merged,
        cwd: config
            .and_then(|c| c.working_dir().clone())
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into()),
        uid,
        gid,
        additional_gids: Vec::new(),
    }
}

/// `USER` of the form `uid[:gid]`. Names need the image's /etc/passwd:
/// resolve them with [`super::user::resolve_in_layers`] and set
/// `uid`/`gid` on the result; here they map to root.
fn numeric_user(user: &str) -> (u32, u32) {
    let (u, g) = user.split_once(':').unwrap_or((user, ""));
    let uid = u.parse().unwrap_or(0);
    let gid = g.parse().unwrap_or(uid);
    (uid, gid)
}

#[cfg(test)]
mod tests;
