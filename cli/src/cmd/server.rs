//! `drover server`: one control-plane member.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use drover_control_plane::auth::{Auth, Authorizer, TlsFiles, Tokens, rbac};
use std::sync::Arc;

use drover_control_plane::auth::join::NodeSigner;
use drover_control_plane::controllers::ControllerConfig;
use drover_control_plane::controllers::node_lifecycle::NodeLifecycleConfig;
use drover_control_plane::encryption::{KeyConfig, SecretEncryption};
use drover_control_plane::replicated::{self, RaftSettings};
use drover_control_plane::{Ready, Security, ServerConfig, serve};
use drover_proto::client::Credentials;
use tokio::sync::watch;

use super::rollout::parse_duration;
use crate::pki::Pem;
use crate::pki::node_signer::CaSigner;

#[derive(Args)]
pub struct ServerArgs {
    /// Where the state lives.
    #[arg(long, default_value = "/var/lib/drover/server")]
    data_dir: PathBuf,
    /// Address for the API (gRPC and HTTP on one port).
    #[arg(long, default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    /// Changes kept for watches to resume from.
    #[arg(long, default_value_t = 100_000)]
    history_limit: usize,
    /// Do not run the controllers (Deployments and ReplicaSets are then only stored).
    #[arg(long)]
    no_controllers: bool,
    /// Do not run the scheduler (pods then wait for a nodeName set by hand).
    #[arg(long)]
    no_scheduler: bool,
    /// Silence after which a node counts as unreachable: Ready becomes
    /// Unknown and it gets the `node.kubernetes.io/unreachable` taint.
    #[arg(long, default_value = "40s", value_parser = parse_duration)]
    node_monitor_grace_period: Duration,
    /// How long pods stay on an unreachable or not-ready node before they
    /// are evicted, unless their own tolerations say otherwise.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pod_eviction_timeout: Duration,
    /// Events last seen longer ago than this are deleted (Kubernetes'
    /// `--event-ttl`).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    event_ttl: Duration,
    /// How often every HorizontalPodAutoscaler is synced (Kubernetes'
    /// `--horizontal-pod-autoscaler-sync-period`, 15 s there).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    hpa_sync_period: Duration,
    /// This member's id in a replicated control plane (1, 2, 3...).
    #[arg(long)]
    id: Option<u64>,
    /// Address of this member's Raft transport.
    #[arg(long, value_name = "HOST:PORT")]
    peer_listen: Option<SocketAddr>,
    /// Every initial member's id and Raft address, this one's included:
    /// `1=10.0.0.1:7701,2=10.0.0.2:7701,3=10.0.0.3:7701`. Without it the
    /// server is a single member.
    #[arg(long, value_name = "ID=HOST:PORT,...")]
    peers: Option<String>,
    /// Start as a new, empty member of a running cluster: add it first with
    /// `drover cluster add-member ID=HOST:PORT`, and list the current
    /// members in `--peers`.
    #[arg(long)]
    join: bool,
    /// Raft entries applied between snapshots; the log is compacted behind
    /// each (keeping a tenth of this, at most 5,000, for slow followers).
    #[arg(long, default_value_t = 50_000, value_parser = clap::value_parser!(u64).range(10..))]
    snapshot_threshold: u64,
    /// The cluster CA (`drover cert init`): TLS on the API and the Raft
    /// transport, with client certificates it signed, bearer tokens and RBAC.
    #[arg(long, requires_all = ["cert", "key"], value_name = "FILE")]
    ca: Option<PathBuf>,
    /// This server's certificate (`drover cert issue --kind server`, or
    /// `--kind peer --name ID` for a replicated member).
    #[arg(long, requires_all = ["ca", "key"], value_name = "FILE")]
    cert: Option<PathBuf>,
    /// The key of --cert.
    #[arg(long, requires_all = ["ca", "cert"], value_name = "FILE")]
    key: Option<PathBuf>,
    /// The CA's private key: lets agents join with a token (`drover token
    /// create`) and get a node certificate signed here.
    #[arg(long, requires = "ca", value_name = "FILE")]
    ca_key: Option<PathBuf>,
    /// Bearer tokens, one `token,user,uid,"group1,group2"` a line (Kubernetes'
    /// static token file). Read again when it changes: delete a line to
    /// revoke a token.
    #[arg(long, requires = "ca", value_name = "FILE")]
    token_auth_file: Option<PathBuf>,
    /// Revoked certificates: a CRL signed by the CA (`drover cert revoke`
    /// writes `ca.crl`). Every TLS listener refuses the client certificates
    /// it lists; the file is read again when it changes.
    #[arg(long, requires = "ca", value_name = "FILE")]
    crl_file: Option<PathBuf>,
    /// ClusterRoleBindings and RoleBindings (rbac.authorization.k8s.io/v1
    /// YAML) giving the built-in roles cluster-admin, edit and view to users and groups.
    #[arg(long, requires = "ca", value_name = "FILE")]
    authorization_policy_file: Option<PathBuf>,
    /// Encrypt Secrets at rest with AES-GCM: an EncryptionConfiguration
    /// (apiserver.config.k8s.io/v1) whose `aesgcm` provider lists named
    /// 32-byte base64 keys; the first encrypts, all decrypt. Without it
    /// Secrets are stored as plaintext.
    #[arg(long, value_name = "FILE")]
    encryption_key_file: Option<PathBuf>,
    /// Serve the API and the Raft transport without TLS on addresses other
    /// hosts can reach. Without it, only loopback addresses are accepted:
    /// anyone who reaches an open API can run anything as root on every node.
    #[arg(long)]
    insecure: bool,
}

/// Refuses a non-loopback address without TLS unless `--insecure`: an
/// open API lets whoever reaches it run anything as root on every node.
pub fn check_exposure(flag: &str, addr: SocketAddr, tls: bool, insecure: bool) -> Result<()> {
    if addr.ip().is_loopback() || tls || insecure {
        return Ok(());
    }
    anyhow::bail!(
        "refusing to serve {flag} {addr} without TLS: anyone who reaches it could run anything as root on every node. Give --ca/--cert/--key (see `drover cert`), listen on 127.0.0.1, or pass --insecure on a network you trust"
    )
}

/// TLS, tokens and RBAC from `--ca/--cert/--key`, `--token-auth-file` and
/// `--authorization-policy-file`; `None` without `--ca`.
fn security(args: &ServerArgs) -> Result<Option<Security>> {
    let (Some(ca), Some(cert), Some(key)) = (&args.ca, &args.cert, &args.key) else {
        return Ok(None);
    };
    let tls = TlsFiles {
        ca: ca.clone(),
        cert: cert.clone(),
        key: key.clone(),
        crl: args.crl_file.clone(),
    }
    .load()?;
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let tokens = match &args.token_auth_file {
        Some(path) => Tokens::from_file(path)?,
        None => Tokens::default(),
    };
    let roles = rbac::builtin_roles();
    let bindings = match &args.authorization_policy_file {
        Some(path) => rbac::parse_policy(
            &read(path)?,
            &path.display().to_string(),
            roles.iter().map(|r| r.name.as_str()),
        )?,
        None => vec![],
    };
    let signer = match &args.ca_key {
        Some(path) => {
            let ca_pem = Pem {
                cert: read(ca)?,
                key: read(path)?,
            };
            let signer = CaSigner::new(ca_pem).with_context(|| {
                format!("--ca {} with --ca-key {}", ca.display(), path.display())
            })?;
            Some(Arc::new(signer) as Arc<dyn NodeSigner>)
        }
        None => None,
    };
    let revocation = tls.revocation().cloned();
    Ok(Some(Security {
        tls,
        auth: Auth {
            tokens,
            authorizer: Authorizer::new(bindings),
            revocation,
        },
        signer,
    }))
}

/// How the server's own controllers and scheduler reach its API: over
/// loopback (or the address it listens on), as itself when TLS is on.
pub fn local_target(addr: SocketAddr, security: Option<&Security>) -> (String, Credentials) {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    let at = SocketAddr::new(ip, addr.port());
    match security {
        None => (format!("http://{at}"), Credentials::default()),
        Some(s) => (
            format!("https://{at}"),
            Credentials {
                ca_pem: Some(s.tls.ca_pem.clone()),
                cert_pem: Some((s.tls.cert_pem.clone(), s.tls.key_pem.clone())),
                token: None,
            },
        ),
    }
}

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sled=warn,h2=warn,hyper=warn,tower=warn")
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// The member settings from `--id`, `--peer-listen`, `--peers`, `--join`;
/// `None` for a single server.
fn raft_settings(args: &ServerArgs) -> Result<Option<RaftSettings>> {
    if args.peers.is_none() && !args.join {
        if args.id.is_some() || args.peer_listen.is_some() {
            anyhow::bail!(
                "--id and --peer-listen only make sense with --peers (or --join): a server without them is a single member"
            );
        }
        return Ok(None);
    }
    let id = args
        .id
        .ok_or_else(|| anyhow::anyhow!("--peers/--join need --id N (this member's id)"))?;
    let peer_listen = args.peer_listen.ok_or_else(|| {
        anyhow::anyhow!("--peers/--join need --peer-listen HOST:PORT (this member's Raft address)")
    })?;
    let Some(peers) = &args.peers else {
        anyhow::bail!(
            "--join needs --peers with the current members' ids and peer addresses, so this member can answer the leader"
        );
    };
    let peers = replicated::parse_peers(peers).map_err(|e| anyhow::anyhow!("--peers: {e}"))?;
    Ok(Some(RaftSettings {
        id,
        peer_listen,
        peers,
        join: args.join,
        snapshot_threshold: args.snapshot_threshold,
    }))
}

pub async fn run(args: ServerArgs) -> Result<()> {
    init_logging();
    let security = security(&args)?;
    let tls = security.is_some();
    check_exposure("--listen", args.listen, tls, args.insecure)?;
    if args.hpa_sync_period.is_zero() {
        anyhow::bail!("--hpa-sync-period must be at least 1s");
    }
    if let Some(peer) = args.peer_listen {
        check_exposure("--peer-listen", peer, tls, args.insecure)?;
    }
    if tls {
        tracing::info!("TLS on: clients need a certificate from the cluster CA or a token");
    } else if args.listen.ip().is_loopback() {
        tracing::info!("no TLS: the API answers on loopback only");
    } else {
        tracing::warn!(addr = %args.listen, "--insecure: the API answers without TLS or authentication");
    }
    let scheme = if tls { "https" } else { "http" };
    let config = ServerConfig {
        security: security.clone(),
        raft: raft_settings(&args)?,
        data_dir: args.data_dir,
        listen: args.listen,
        history_limit: args.history_limit,
        encryption: SecretEncryption::new(
            args.encryption_key_file
                .as_deref()
                .map(KeyConfig::load)
                .transpose()?,
        ),
    };
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(serve(
        config,
        move |ready: Ready| {
            match ready.peer_addr {
                Some(peer) => eprintln!(
                    "drover server listening on {scheme}://{} (raft peers on {peer})",
                    ready.addr
                ),
                None => eprintln!("drover server listening on {scheme}://{}", ready.addr),
            }
            let _ = ready_tx.send(ready);
        },
        async move {
            shutdown_signal().await;
            let _ = stop_tx.send(true);
        },
    ));
    if let Ok(ready) = ready_rx.await {
        let controllers = (!args.no_controllers).then(|| ControllerConfig {
            node_lifecycle: NodeLifecycleConfig {
                grace: args.node_monitor_grace_period,
                default_toleration: args.pod_eviction_timeout,
            },
            event_ttl: args.event_ttl,
            hpa_sync_period: args.hpa_sync_period,
            metrics: std::sync::Arc::new(ready.metrics.clone()),
            ..ControllerConfig::default()
        });
        spawn_leader_work(
            local_target(ready.addr, security.as_ref()),
            stop_rx,
            ready.leader,
            controllers,
            !args.no_scheduler,
        );
    }
    server.await??;
    Ok(())
}

/// Runs the leader-only work (controllers, scheduler) against the API at
/// `addr` whenever `leader` is true, stopping it when leadership moves away,
/// until `stop` turns true. A single server is always the leader.
pub fn spawn_leader_work(
    (url, credentials): (String, Credentials),
    mut stop: watch::Receiver<bool>,
    mut leader: watch::Receiver<bool>,
    controllers: Option<ControllerConfig>,
    scheduler: bool,
) {
    tokio::spawn(async move {
        let client = match drover_proto::client::Client::connect_with(&url, &credentials).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "leader work cannot reach the API; controllers and scheduler are not running");
                return;
            }
        };
        loop {
            tokio::select! {
                r = leader.wait_for(|l| *l) => if r.is_err() { return },
                _ = stop.wait_for(|s| *s) => return,
            }
            tracing::info!("leading: controllers and scheduler start");
            let sched = scheduler.then(|| {
                tokio::spawn(drover_scheduler::run(
                    client.clone(),
                    drover_scheduler::SchedulerConfig::default(),
                    ended(leader.clone(), stop.clone()),
                ))
            });
            if let Some(config) = controllers.clone() {
                drover_control_plane::controllers::run_controllers(
                    client.clone(),
                    config,
                    ended(leader.clone(), stop.clone()),
                )
                .await;
            }
            if let Some(s) = sched {
                let _ = s.await;
            } else if controllers.is_none() {
                ended(leader.clone(), stop.clone()).await;
            }
            if *stop.borrow() {
                return;
            }
            tracing::info!("no longer leading: controllers and scheduler stopped");
        }
    });
}

/// Resolves when this server stops leading or stops altogether. A closed
/// leadership channel means leadership can no longer change (a single
/// server), not that it ended.
async fn ended(mut leader: watch::Receiver<bool>, mut stop: watch::Receiver<bool>) {
    let lost = async move {
        if leader.wait_for(|l| !*l).await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        _ = lost => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}
