//! The agent for this machine: registers its Node, heartbeats, watches
//! the pods bound to it and runs one worker per pod; after each full list
//! it stops and removes what belongs to pods that no longer exist.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use drover_proto::client::{Client, ClientError, ListOptions};
use drover_proto::types::Node;
use tokio::sync::mpsc;

use super::heartbeat;
use super::informer::{self, PodCache};
use super::layout::Layout;
use super::lifecycle::Backoff;
use super::machine::machine_facts;
use super::node::node_object;
use super::runner::Runner;
use super::worker::{self, Msg, Shared};
use crate::image::{ImageError, ImageStore, PullOptions};
use crate::runtime::vm::engine::{ENGINE_LABEL, EngineChoice};
use crate::shim::{ShimHandle, ShimLauncher};

/// How the agent runs.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The Node's name.
    pub node_name: String,
    /// Images, containers, logs.
    pub data_dir: PathBuf,
    /// Registries.
    pub pull: PullOptions,
    /// The binary shims run as, and the arguments selecting the shim.
    pub shim_exe: PathBuf,
    /// For `drover`: `["shim"]`.
    pub shim_args: Vec<OsString>,
    /// Restart delays.
    pub backoff: Backoff,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// Where to serve logs and exec (for the API server) and metrics.
    pub logs_listen: std::net::SocketAddr,
    /// TLS on that port, admitting the control plane only; `None` on a
    /// cluster without TLS.
    pub serving_tls: Option<super::serving_tls::ServingTls>,
    /// Pod networking: the bridge to use, and the pod CIDR to ask for (the
    /// control plane assigns one when None). `None` bridge: pods get a
    /// namespace with loopback only (no root, or a test that wants none).
    pub bridge: Option<String>,
    pub pod_cidr: Option<String>,
    /// The node's InternalIP (None: the address this machine reaches the
    /// control plane from). Other nodes route to this node's pods via it.
    pub node_ip: Option<std::net::Ipv4Addr>,
    /// The cluster's pod range (None: 10.88.0.0/16, the control plane's).
    pub cluster_cidr: Option<String>,
    /// `--vm-engine`: which engine runs VM pods.
    pub vm_engine: EngineChoice,
    /// `--vm-kernel`: the guest kernel (default: $DROVER_VM_KERNEL, then
    /// the `drover vm install-kernel` location).
    pub vm_kernel: Option<PathBuf>,
    /// `--activator-timeout`: how long a connection to a service with no
    /// ready endpoint is held for scale from zero (None: refused at once).
    pub activator_timeout: Option<Duration>,
}

/// The agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The data directory is unusable.
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The image store could not be opened.
    #[error(transparent)]
    Images(#[from] ImageError),
    /// The log endpoint could not listen.
    #[error("serving logs on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    /// The Node could not be registered.
    #[error("registering node: {0}")]
    Register(#[from] ClientError),
    #[error("node {0} has no spec.podCIDR (the pod network is full?): cannot give pods addresses")]
    NoPodCidr(String),
    #[error(transparent)]
    PodCidr(#[from] crate::network::cidr::CidrError),
    #[error("pod network: {0}")]
    Network(#[from] crate::network::NetworkError),
}

/// `host:port` of an API URL such as `http://10.0.0.1:7700/`.
pub fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split('/').next().unwrap_or(rest);
    if host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host.to_string()
    } else {
        format!("{host}:80")
    }
}

/// Runs the agent until the process ends; `on_ready` gets the registered Node.
pub async fn run(
    client: Client,
    cfg: AgentConfig,
    on_ready: impl FnOnce(&Node),
) -> Result<(), AgentError> {
    std::fs::create_dir_all(&cfg.data_dir).map_err(|source| AgentError::DataDir {
        path: cfg.data_dir.clone(),
        source,
    })?;
    let images = Arc::new(ImageStore::open(&cfg.data_dir)?);
    let launcher = ShimLauncher::new(&cfg.shim_exe, cfg.shim_args.clone()).with_prespawn();
    let logs = tokio::net::TcpListener::bind(cfg.logs_listen)
        .await
        .map_err(|source| AgentError::Listen {
            addr: cfg.logs_listen,
            source,
        })?;
    let mut facts = machine_facts(&cfg.node_name, &host_port(client.url()));
    facts.agent_port = logs.local_addr().ok().map(|a| a.port());
    if let Some(ip) = cfg.node_ip {
        super::cluster_network::set_internal_ip(&mut facts.addresses, ip);
    }
    let monitor = std::iter::once(cfg.shim_exe.display().to_string())
        .chain(
            cfg.shim_args
                .iter()
                .map(|a| a.to_string_lossy().into_owned()),
        )
        .collect();
    let vm = match crate::runtime::vm::host::detect(
        cfg.vm_engine,
        cfg.vm_kernel.as_deref(),
        &cfg.data_dir,
        monitor,
    ) {
        Ok((host, why)) => {
            tracing::info!("VM pods: {why}");
            facts.runtimes.push("vm".into());
            facts
                .labels
                .insert(ENGINE_LABEL.into(), host.engine.name().into());
            Some(Arc::new(host))
        }
        Err(why) => {
            tracing::info!("VM pods unavailable on this node: {why}");
            None
        }
    };
    let host_ip = facts
        .addresses
        .first()
        .map(|a| a.address.clone())
        .unwrap_or_default();
    let mut node = node_object(&facts, chrono::Utc::now());
    node.spec.pod_cidr = cfg.pod_cidr.clone();
    let vm_kernel = vm.as_ref().map(|v| v.kernel.vmlinuz.clone());
    if let (Some(status), Some(vm)) = (node.status.as_mut(), &vm) {
        status.vm_engine = Some(vm.engine.kind().to_string());
    }
    let registered = heartbeat::register(&client, &node).await?;
    let serving = crate::network::services::Serving::default();
    let mut activator = None;
    let network = match &cfg.bridge {
        None => None,
        Some(bridge) => {
            let cidr = registered
                .spec
                .pod_cidr
                .as_deref()
                .ok_or_else(|| AgentError::NoPodCidr(cfg.node_name.clone()))?;
            let cidr = crate::network::Cidr::parse(cidr)?;
            let cluster = crate::network::Cidr::parse_range(
                cfg.cluster_cidr
                    .as_deref()
                    .unwrap_or(crate::network::DEFAULT_CLUSTER_CIDR),
            )?;
            let net =
                crate::network::PodNetwork::start_in(&cfg.data_dir, bridge, cidr, cluster).await?;
            tracing::info!("pod network {cidr} on bridge {bridge}");
            let node_ip = host_ip.parse().unwrap_or(std::net::Ipv4Addr::LOCALHOST);
            activator = super::cluster_network::start(
                &client, &cfg, bridge, node_ip, cidr, cluster, &serving,
            );
            Some(Arc::new(net))
        }
    };
    on_ready(&registered);
    tokio::spawn(heartbeat::run(client.clone(), vec![node], cfg.heartbeat, 1));

    let layout = Layout::new(&cfg.data_dir);
    let shared = Arc::new(Shared {
        client: client.clone(),
        cache: PodCache::default(),
        runner: Arc::new(Runner {
            layout: layout.clone(),
            images,
            launcher: Arc::new(launcher),
            pull: cfg.pull.clone(),
            network,
            vm,
        }),
        backoff: cfg.backoff,
        host_ip,
        events: super::events::spawn(client.clone(), cfg.node_name.clone()),
        exec_exe: cfg.shim_exe.clone(),
        exec_args: cfg.shim_args.clone(),
        serving,
    });
    let service_table = cfg.bridge.as_deref().map(crate::network::services::table);
    let metrics = crate::metrics::Latest::default();
    tokio::spawn(crate::metrics::run(
        cfg.node_name.clone(),
        Arc::clone(&shared.cache),
        service_table.clone(),
        activator,
        metrics.clone(),
    ));
    tokio::spawn(super::logs_server::serve(
        logs,
        super::exec::serve::ExecContext {
            cache: Arc::clone(&shared.cache),
            layout: layout.clone(),
            exe: cfg.shim_exe.clone(),
            shim_args: cfg.shim_args.clone(),
            service_table,
            metrics,
            vm_kernel,
        },
        cfg.serving_tls.clone(),
    ));
    let (changed_tx, changed_rx) = mpsc::unbounded_channel::<String>();
    let (synced_tx, synced_rx) = mpsc::unbounded_channel::<()>();
    let opts = ListOptions {
        field_selector: format!("spec.nodeName={}", cfg.node_name),
        ..ListOptions::default()
    };
    tokio::spawn(informer::run(
        client,
        opts,
        Arc::clone(&shared.cache),
        |_| true,
        move |key| {
            let _ = changed_tx.send(key.to_string());
        },
        move || {
            let _ = synced_tx.send(());
        },
    ));
    dispatch(shared, layout, changed_rx, synced_rx).await;
    Ok(())
}

/// Routes pod changes to workers, starting one per pod and forgetting it
/// when it ends; collects orphans after each full list.
async fn dispatch(
    shared: Arc<Shared>,
    layout: Layout,
    mut changed: mpsc::UnboundedReceiver<String>,
    mut synced: mpsc::UnboundedReceiver<()>,
) {
    let (finished_tx, mut finished_rx) = mpsc::unbounded_channel::<String>();
    let mut workers: HashMap<String, (String, mpsc::UnboundedSender<Msg>)> = HashMap::new();
    // Pods whose worker deleted them: the watch may still show them briefly.
    let mut done_uids: HashSet<String> = HashSet::new();
    loop {
        let key = tokio::select! {
            Some(key) = changed.recv() => key,
            Some(key) = finished_rx.recv() => {
                if let Some((uid, _)) = workers.remove(&key) {
                    done_uids.insert(uid);
                }
                key
            }
            Some(()) = synced.recv() => {
                let mut known: HashSet<String> = workers.values().map(|(u, _)| u.clone()).collect();
                known.extend(
                    shared.cache.read().unwrap_or_else(|p| p.into_inner())
                        .values()
                        .filter_map(|p| p.metadata.uid.clone()),
                );
                let layout = layout.clone();
                let network = shared.runner.network.clone();
                tokio::spawn(async move {
                    let on_disk = known.clone();
                    let _ = tokio::task::spawn_blocking(move || collect_orphans(&layout, &on_disk)).await;
                    // Addresses and namespaces of pods that are gone.
                    let Some(net) = network else { return };
                    for uid in net.attached() {
                        if !known.contains(&uid)
                            && let Err(e) = net.detach(&uid).await
                        {
                            tracing::warn!("removing the network of orphaned pod {uid}: {e}");
                        }
                    }
                });
                continue;
            }
            else => return,
        };
        if let Some((_, tx)) = workers.get(&key)
            && tx.send(Msg::Changed).is_ok()
        {
            continue;
        }
        let Some(pod) = informer::cached(&shared.cache, &key) else {
            continue;
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if done_uids.contains(&uid) {
            continue;
        }
        let tx = worker::spawn(Arc::clone(&shared), pod, finished_tx.clone());
        workers.insert(key, (uid, tx));
    }
}

/// Stops and removes containers of pods the API no longer has (deleted
/// while the agent was down).
fn collect_orphans(layout: &Layout, known: &HashSet<String>) {
    let Ok(entries) = std::fs::read_dir(layout.pods_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let Some(uid) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if known.contains(&uid) {
            continue;
        }
        tracing::info!("removing orphaned pod {uid}");
        stop_all_shims(&entry.path());
        if let Err(e) = worker::remove_pod_files(layout, &uid, "", "") {
            tracing::warn!("removing orphaned pod {uid}: {e}");
        }
        remove_logs_of(layout.data_dir(), &uid);
    }
}

/// Stops every workload this node runs and removes its pod network, its
/// service rules and its routes to other nodes (the node leaves: `drover
/// dev` exiting, or a test ending). Blocking.
pub fn teardown(data_dir: &Path, bridge: Option<&str>) {
    let layout = Layout::new(data_dir);
    for entry in std::fs::read_dir(layout.pods_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        stop_all_shims(&entry.path());
        if let Some(uid) = entry.file_name().to_str() {
            let _ = worker::remove_pod_files(&layout, uid, "", "");
            remove_logs_of(data_dir, uid);
            // A VM pod's tap is persistent: it outlives its monitor.
            let tap = crate::network::PodNetwork::tap_name(uid);
            if std::path::Path::new("/sys/class/net").join(&tap).exists() {
                let _ = std::process::Command::new("ip")
                    .args(["link", "del", &tap])
                    .stderr(std::process::Stdio::null())
                    .status();
            }
        }
    }
    for ns in std::fs::read_dir(data_dir.join("network/netns"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = crate::network::netns::remove(&ns.path());
    }
    let _ = std::fs::remove_dir_all(data_dir.join("network/ipam"));
    if let Some(bridge) = bridge {
        crate::network::nat::remove(bridge);
        crate::network::services::remove(bridge);
        crate::network::services::localnet::restore(&data_dir.join("network"));
        let _ = std::process::Command::new("ip")
            .args(["route", "flush", "proto"])
            .arg(crate::network::routes::ROUTE_PROTOCOL.to_string())
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::process::Command::new("ip")
            .args(["link", "del", bridge])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn stop_all_shims(pod_dir: &Path) {
    let attempts = std::fs::read_dir(pod_dir)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|c| std::fs::read_dir(c.path()).into_iter().flatten().flatten());
    for attempt in attempts {
        if let Ok(handle) = ShimHandle::adopt(&attempt.path().join("shim"))
            && handle.is_alive()
        {
            let _ = handle.stop(Duration::ZERO);
            let _ = handle.wait(Duration::from_secs(30));
        }
    }
}

fn remove_logs_of(data_dir: &Path, uid: &str) {
    let suffix = format!("_{uid}");
    for e in std::fs::read_dir(data_dir.join("logs"))
        .into_iter()
        .flatten()
        .flatten()
    {
        if e.file_name().to_str().is_some_and(|n| n.ends_with(&suffix)) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_of_urls() {
        assert_eq!(host_port("http://127.0.0.1:7700"), "127.0.0.1:7700");
        assert_eq!(host_port("http://10.0.0.1:7700/x"), "10.0.0.1:7700");
        assert_eq!(host_port("http://example"), "example:80");
        assert_eq!(host_port("[::1]:7700"), "[::1]:7700");
    }
}
