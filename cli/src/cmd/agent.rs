//! `drover agent`: the node agent, for this machine or (with `--hollow`)
//! for a fleet of simulated nodes.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use drover_node_agent::agent::heartbeat;
use drover_node_agent::agent::hollow::{self, HollowConfig};
use drover_node_agent::agent::lifecycle::Backoff;
use drover_node_agent::agent::machine;
use drover_node_agent::agent::real::{self, AgentConfig};
use drover_node_agent::agent::serving_tls::ServingTls;
use drover_node_agent::image::PullOptions;
use drover_node_agent::runtime::vm::engine::EngineChoice;
use drover_proto::Quantity;
use drover_proto::client::Credentials;

#[derive(Args)]
pub struct AgentArgs {
    /// Simulate nodes that register, heartbeat and report pods Running
    /// without running anything (for scale tests).
    #[arg(long)]
    hollow: bool,
    /// How many hollow nodes.
    #[arg(long, default_value_t = 1, requires = "hollow")]
    count: usize,
    /// Hollow node names: this prefix followed by an index.
    #[arg(long, default_value = "hollow-", requires = "hollow")]
    name_prefix: String,
    /// CPU of each hollow node.
    #[arg(long, default_value = "4", requires = "hollow")]
    cpu: String,
    /// Memory of each hollow node.
    #[arg(long, default_value = "16Gi", requires = "hollow")]
    memory: String,
    /// Pods per hollow node.
    #[arg(long, default_value_t = 110, requires = "hollow")]
    pods: i64,
    /// API calls in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds between heartbeats.
    #[arg(long, default_value_t = heartbeat::DEFAULT_PERIOD.as_secs())]
    heartbeat_seconds: u64,
    /// This node's name (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// Where images, containers and logs live.
    #[arg(long, default_value = "/var/lib/drover/agent")]
    data_dir: PathBuf,
    /// Address the agent's port (logs, exec and metrics, for the API
    /// server; TLS with the node certificate on a cluster with TLS) listens on.
    #[arg(long, default_value = "0.0.0.0:10250")]
    logs_listen: std::net::SocketAddr,
    /// Registries (`host:port`) reached over plain HTTP.
    #[arg(long = "insecure-registry")]
    insecure_registries: Vec<String>,
    /// The bridge pods are plugged into.
    #[arg(long, default_value = drover_node_agent::network::DEFAULT_BRIDGE)]
    bridge: String,
    /// The pod CIDR to ask for (default: the control plane assigns one).
    #[arg(long)]
    pod_cidr: Option<String>,
    /// Give pods a loopback-only network namespace instead of an address.
    #[arg(long)]
    no_pod_network: bool,
    /// This node's address, reported as its InternalIP: other nodes route
    /// to its pods via it (default: the address this machine reaches the
    /// server from).
    #[arg(long)]
    node_ip: Option<std::net::Ipv4Addr>,
    /// The cluster's pod range, of which each node's pod CIDR is a part:
    /// traffic within it is routed between nodes, not masqueraded.
    #[arg(long, default_value = drover_node_agent::network::DEFAULT_CLUSTER_CIDR)]
    cluster_cidr: String,
    /// Stop every pod of this node (by --data-dir) and remove its pod
    /// network, service rules and routes, then exit: the node leaves for
    /// good. Stop the agent first, or it restarts what this stops.
    #[arg(long, conflicts_with = "hollow")]
    teardown: bool,
    /// How VM pods run: `auto` (kvm on hardware KVM, else qemu), `kvm` or
    /// `qemu`.
    #[arg(long, default_value = "auto")]
    vm_engine: EngineChoice,
    /// The guest kernel for VM pods (default: $DROVER_VM_KERNEL, then
    /// DATA_DIR/vm/kernel/vmlinuz, then /var/cache/drover/kernel/vmlinuz).
    #[arg(long)]
    vm_kernel: Option<PathBuf>,
    /// Scale from zero: how long (seconds) a connection to a service with
    /// no ready endpoint is held while the autoscaler starts a replica,
    /// then closed; 0 refuses such connections at once.
    #[arg(long, default_value_t = 30)]
    activator_timeout: u64,
    /// Join the cluster with a bootstrap token (`drover token create`):
    /// the first start gets a node certificate into DATA_DIR/pki, later
    /// starts reuse it. Needs --ca-cert-hash and an https:// --server.
    #[arg(long, conflicts_with = "hollow", requires = "ca_cert_hash")]
    join_token: Option<String>,
    /// The cluster CA's pin, `sha256:HEX` (`drover cert ca-hash`): the CA
    /// the server presents is trusted only if it matches.
    #[arg(long, requires = "join_token")]
    ca_cert_hash: Option<String>,
}

fn quantity(flag: &str, text: &str) -> Result<Quantity> {
    Quantity::parse(text).with_context(|| format!("--{flag} {text:?}"))
}

pub async fn run(server: &str, args: AgentArgs) -> Result<()> {
    super::server::init_logging();
    if args.teardown {
        let bridge = (!args.no_pod_network).then_some(args.bridge);
        let dir = args.data_dir;
        tokio::task::spawn_blocking(move || real::teardown(&dir, bridge.as_deref())).await?;
        return Ok(());
    }
    if !args.hollow {
        let node_name = args.node_name.clone().unwrap_or_else(machine::hostname);
        let credentials = credentials(server, &args, &node_name).await?;
        check_node_certificate(&credentials, &node_name)?;
        let client = drover_proto::client::Client::connect_with(server, &credentials).await?;
        return run_real(server, client, args, node_name, &credentials).await;
    }
    let client = super::connect(server).await?;
    let cfg = HollowConfig {
        count: args.count,
        name_prefix: args.name_prefix,
        cpu_millis: quantity("cpu", &args.cpu)?.millis(),
        memory_bytes: quantity("memory", &args.memory)?.units(),
        max_pods: args.pods,
        heartbeat: Duration::from_secs(args.heartbeat_seconds.max(1)),
        concurrency: args.concurrency,
    };
    let fleet = hollow::run(client, cfg, |n, took| {
        eprintln!(
            "drover agent: {n} hollow nodes registered in {} ms",
            took.as_millis()
        );
    });
    tokio::select! {
        r = fleet => r?,
        _ = super::server::shutdown_signal() => {}
    }
    Ok(())
}

/// TLS for the agent's own port on a cluster that runs TLS: served with
/// the node certificate, admitting only the control plane.
pub fn serving_tls(server: &str, credentials: &Credentials) -> Result<Option<ServingTls>> {
    if !server.starts_with("https://") {
        return Ok(None);
    }
    let (Some(ca), Some((cert, key))) = (&credentials.ca_pem, &credentials.cert_pem) else {
        bail!(
            "on a cluster with TLS the agent serves logs and exec with its node certificate: \
             give it one (`drover cert issue --kind agent`, then --client-certificate/--client-key \
             or the client config)"
        );
    };
    Ok(Some(ServingTls::new(ca, cert, key)?))
}

/// The node certificate saved by an earlier join, else a new join with
/// `--join-token`, else the client config's credentials.
async fn credentials(server: &str, args: &AgentArgs, node_name: &str) -> Result<Credentials> {
    if let Some(saved) = super::agent_join::saved_credentials(&args.data_dir)? {
        return Ok(saved);
    }
    if let (Some(token), Some(pin)) = (&args.join_token, &args.ca_cert_hash) {
        let joined = super::agent_join::join(server, token, pin, node_name, &args.data_dir).await?;
        eprintln!(
            "drover agent: joined as node {node_name}; certificate saved in {}/pki",
            args.data_dir.display()
        );
        return Ok(joined);
    }
    Ok(super::CREDENTIALS.get().cloned().unwrap_or_default())
}

/// A node certificate speaks for one node: running under another name
/// would only meet 403s from the server's node authorizer, so say why now.
/// Other identities (an admin's certificate, a token) are the server's to judge.
fn check_node_certificate(credentials: &Credentials, node_name: &str) -> Result<()> {
    let Some((cert, _)) = &credentials.cert_pem else {
        return Ok(());
    };
    let identity = drover_proto::identity::Identity::from_certificate_pem(cert)
        .map_err(|e| anyhow::anyhow!("the agent's client certificate: {e}"))?;
    match identity.node_name() {
        Some(certified) if certified != node_name => bail!(
            "the client certificate is node {certified:?}'s ({}), but this agent runs as \
             --node-name {node_name:?}: give the node's own certificate or its name",
            identity.user
        ),
        _ => Ok(()),
    }
}

async fn run_real(
    server: &str,
    client: drover_proto::client::Client,
    args: AgentArgs,
    node_name: String,
    credentials: &Credentials,
) -> Result<()> {
    let cfg = AgentConfig {
        node_name,
        data_dir: args.data_dir,
        pull: PullOptions {
            insecure_registries: args.insecure_registries,
            connect_timeout: Some(Duration::from_secs(10)),
        },
        shim_exe: std::env::current_exe().context("finding the drover binary for shims")?,
        shim_args: vec!["shim".into()],
        backoff: Backoff::default(),
        heartbeat: Duration::from_secs(args.heartbeat_seconds.max(1)),
        logs_listen: args.logs_listen,
        serving_tls: serving_tls(server, credentials)?,
        bridge: (!args.no_pod_network).then_some(args.bridge),
        pod_cidr: args.pod_cidr,
        node_ip: args.node_ip,
        cluster_cidr: Some(args.cluster_cidr),
        vm_engine: args.vm_engine,
        vm_kernel: args.vm_kernel,
        activator_timeout: (args.activator_timeout > 0)
            .then(|| Duration::from_secs(args.activator_timeout)),
    };
    let agent = real::run(client, cfg, |node| {
        eprintln!("drover agent: registered node {}", node.metadata.name);
    });
    tokio::select! {
        r = agent => r?,
        // Containers keep running under their shims; the next agent adopts them.
        _ = super::server::shutdown_signal() => {}
    }
    Ok(())
}
