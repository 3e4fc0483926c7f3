//! `drover dev`: a one-process local cluster. The control plane, the
//! controllers and scheduler, and (as root) a real node agent whose image
//! store already holds the example image, so the example web service runs
//! without any registry.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use drover_control_plane::controllers::ControllerConfig;
use drover_control_plane::{ServerConfig, serve};
use drover_node_agent::agent::lifecycle::Backoff;
use drover_node_agent::agent::real::{self, AgentConfig};
use drover_node_agent::image::{ImageStore, PullOptions, import};
use drover_node_agent::runtime::vm::engine::EngineChoice;
use drover_proto::client::{Client, Credentials, ListOptions};
use drover_proto::types::Pod;
use drover_proto::{Kind, Resource};

use super::apply::{ApplyArgs, Mode};

mod tls;

/// The example image's builder, embedded so `drover dev` works anywhere.
const BUILD_BUSYBOX: &str = include_str!("../../../../examples/images/build-busybox.sh");

#[derive(Args)]
pub struct DevArgs {
    /// Where the local cluster keeps its state.
    #[arg(long, default_value = ".drover/dev")]
    data_dir: PathBuf,
    #[arg(long, default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    /// Manifests to apply once the cluster is up (file or directory, repeatable).
    #[arg(long = "apply")]
    apply: Vec<String>,
    /// Apply, print the state, then stop (for scripts).
    #[arg(long)]
    exit_after_apply: bool,
    /// Do not run the controllers.
    #[arg(long)]
    no_controllers: bool,
    /// Do not run a node agent in this process.
    #[arg(long)]
    no_agent: bool,
    /// The local node's pod bridge.
    #[arg(long, default_value = drover_node_agent::network::DEFAULT_BRIDGE)]
    bridge: String,
    /// The local node's pod CIDR (default: assigned by the control plane).
    #[arg(long)]
    pod_cidr: Option<String>,
    /// Seconds to wait for the applied pods to be Ready before printing
    /// where they answer.
    #[arg(long, default_value_t = 120)]
    wait_seconds: u64,
}

/// Runs the dev cluster; `client_config` is `--config`/`DROVER_CONFIG`.
pub async fn run(args: DevArgs, client_config: Option<PathBuf>) -> Result<()> {
    super::server::init_logging();
    super::server::check_exposure("--listen", args.listen, false, false)?;
    let pki = tls::DevPki::ensure(&args.data_dir, args.listen)?;
    let security = pki.security()?;
    let _ = super::CREDENTIALS.set(pki.admin()?);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    // Fires on Ctrl-C/SIGTERM, or after applying with --exit-after-apply.
    let (quit_tx, mut quit_rx) = tokio::sync::watch::channel(false);
    let (ctl_stop_tx, ctl_stop_rx) = tokio::sync::watch::channel(false);
    let config = ServerConfig {
        data_dir: args.data_dir.join("server"),
        listen: args.listen,
        history_limit: 100_000,
        raft: None,
        security: Some(security.clone()),
        encryption: pki.encryption()?,
    };
    let mut server_quit = quit_rx.clone();
    let server = tokio::spawn(serve(
        config,
        move |ready: drover_control_plane::Ready| {
            let _ = ready_tx.send((ready.addr, ready.leader, ready.metrics));
        },
        async move {
            let _ = server_quit.wait_for(|q| *q).await;
            let _ = ctl_stop_tx.send(true);
        },
    ));
    let signal_quit = quit_tx.clone();
    tokio::spawn(async move {
        super::server::shutdown_signal().await;
        let _ = signal_quit.send(true);
    });
    let (addr, leader, metrics) = match ready_rx.await {
        Ok(a) => a,
        Err(_) => {
            return match server.await {
                Ok(Err(e)) => Err(e.into()),
                _ => Err(anyhow::anyhow!("the control plane stopped while starting")),
            };
        }
    };
    let controllers = (!args.no_controllers).then(|| ControllerConfig {
        metrics: std::sync::Arc::new(metrics),
        ..ControllerConfig::default()
    });
    let local = super::server::local_target(addr, Some(&security));
    super::server::spawn_leader_work(local, ctl_stop_rx, leader, controllers, true);
    let url = format!("https://{addr}");
    println!(
        "Drover dev cluster: API at {url} (data in {})",
        args.data_dir.display()
    );
    match tls::client_config_path(client_config.as_deref()) {
        Some(path) => {
            pki.write_client_config(&path, &url)?;
            println!(
                "Client config (context drover-dev, user admin) written to {}",
                path.display()
            );
        }
        None => println!("HOME is not set: no client config written"),
    }
    println!(
        "Dashboard: {} (the certificate is the dev CA's: {})",
        pki.dashboard_login(&url)?,
        args.data_dir.join("pki/ca.crt").display()
    );
    let agent = match local_node_refusal(&args) {
        Some(why) => {
            println!("No local node: {why}.");
            println!(
                "Pods are placed once nodes join: `drover agent --hollow --count 3 --server {url}` (simulated) \
                 or, as root, `drover agent --node-name $(hostname) --data-dir /var/lib/drover/agent --server {url}`"
            );
            None
        }
        None => Some(start_local_node(&url, &args, pki.node()?).await?),
    };
    if !args.apply.is_empty() {
        let apply = ApplyArgs::from_files(args.apply.clone());
        super::apply::run(&url, apply, Mode::Apply)
            .await
            .context("applying the manifests")?;
        if agent.is_some() {
            report_where_pods_answer(&url, Duration::from_secs(args.wait_seconds)).await?;
        }
        let get = super::get::GetArgs::all_kinds();
        super::get::run(&url, get).await?;
    }
    if args.exit_after_apply {
        let _ = quit_tx.send(true);
    } else {
        println!("Try: drover get all   |   drover logs POD   |   Ctrl-C to stop");
    }
    let _ = quit_rx.wait_for(|q| *q).await;
    if let Some(runtime) = agent {
        runtime.shutdown_background();
        println!("Stopping the local node's pods…");
        let (dir, bridge) = (args.data_dir.join("agent"), args.bridge.clone());
        tokio::task::spawn_blocking(move || real::teardown(&dir, Some(&bridge))).await?;
    }
    // Long-lived watch streams may hold the server's graceful shutdown:
    // give it a moment, then leave (background tasks must not keep us up).
    if let Ok(joined) = tokio::time::timeout(Duration::from_secs(3), server).await {
        joined.context("the control plane task failed")??;
    }
    std::process::exit(0)
}

/// Why this process cannot run a real node here, if it cannot.
fn local_node_refusal(args: &DevArgs) -> Option<String> {
    if args.no_agent {
        return Some("--no-agent was given".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some(
            "running containers needs root (namespaces, cgroups, the pod bridge); \
             run `sudo drover dev` or join a node"
                .into(),
        );
    }
    None
}

/// Builds and imports the example image, then runs the agent as a task.
async fn start_local_node(
    url: &str,
    args: &DevArgs,
    credentials: Credentials,
) -> Result<tokio::runtime::Runtime> {
    let data_dir = args.data_dir.join("agent");
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let dir = data_dir.clone();
    tokio::task::spawn_blocking(move || import_example_image(&dir))
        .await
        .context("importing the example image")??;
    let cfg = AgentConfig {
        node_name: tls::NODE_NAME.into(),
        data_dir,
        pull: PullOptions {
            insecure_registries: vec![],
            connect_timeout: Some(Duration::from_secs(10)),
        },
        shim_exe: std::env::current_exe().context("finding the drover binary for shims")?,
        shim_args: vec!["shim".into()],
        backoff: Backoff::default(),
        heartbeat: Duration::from_secs(10),
        logs_listen: "127.0.0.1:0".parse()?,
        serving_tls: crate::cmd::agent::serving_tls(url, &credentials)?,
        bridge: Some(args.bridge.clone()),
        pod_cidr: args.pod_cidr.clone(),
        node_ip: None,
        cluster_cidr: None,
        activator_timeout: Some(drover_node_agent::network::services::activator::DEFAULT_TIMEOUT),
        vm_engine: EngineChoice::Auto,
        vm_kernel: None,
    };
    // The agent gets a runtime of its own, so stopping the node stops every
    // task it spawned (workers would otherwise restart what teardown stops).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("drover-dev-node")
        .enable_all()
        .build()
        .context("starting the local node's runtime")?;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let url = url.to_string();
    runtime.spawn(async move {
        let client = match Client::connect_with(&url, &credentials).await {
            Ok(c) => c,
            Err(e) => return eprintln!("error: the local node cannot reach {url}: {e}"),
        };
        let agent = real::run(client, cfg, move |node| {
            let _ = ready_tx.send(node.metadata.name.clone());
        });
        if let Err(e) = agent.await {
            eprintln!("error: the local node agent stopped: {e}");
        }
    });
    let node = tokio::time::timeout(Duration::from_secs(60), ready_rx)
        .await
        .context("the local node did not register within 60 s")?
        .context("the local node agent failed to start (see the error above)")?;
    println!(
        "Local node {node:?} joined (containers, pod network on {}).",
        args.bridge
    );
    Ok(runtime)
}

/// Builds the busybox example image and imports it as `example/busybox:1`.
fn import_example_image(agent_dir: &Path) -> Result<()> {
    let store = ImageStore::open(agent_dir)?;
    if store.contains("example/busybox:1") {
        return Ok(());
    }
    let work = agent_dir.join("tmp-example-image");
    let _ = std::fs::remove_dir_all(&work);
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(BUILD_BUSYBOX)
        .arg("build-busybox.sh")
        .arg(&work)
        .output()
        .context("running the example image builder (sh)")?;
    if !out.status.success() {
        anyhow::bail!(
            "building the example image failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let images = import::import(&store, &work, None)?;
    let _ = std::fs::remove_dir_all(&work);
    for i in images {
        println!("Imported image {} into the local node.", i.name);
    }
    Ok(())
}

/// Waits (bounded) for the pods to be Ready and prints where they answer.
/// Prints where each Service answers: its cluster IP, and its node ports on
/// this machine.
async fn report_services(client: &Client) -> Result<()> {
    let (services, _) = client
        .list_as::<drover_proto::types::Service>(&ListOptions::default())
        .await?;
    for svc in services {
        let Some(ip) = svc.spec.cluster_ip.as_deref().filter(|ip| *ip != "None") else {
            continue;
        };
        for port in &svc.spec.ports {
            let mut line = format!("service {}: http://{ip}:{}/", svc.name(), port.port);
            if let Some(np) = port.node_port {
                line.push_str(&format!(" and http://127.0.0.1:{np}/"));
            }
            println!("{line}");
        }
    }
    Ok(())
}

async fn report_where_pods_answer(url: &str, wait: Duration) -> Result<()> {
    let client = super::connect(url).await?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let (items, _) = client.list(Kind::Pod, &ListOptions::default()).await?;
        let pods: Vec<Pod> = items
            .iter()
            .filter_map(|o| Pod::from_object(o).ok())
            .collect();
        let ready: Vec<&Pod> = pods.iter().filter(|p| p.is_ready()).collect();
        if !pods.is_empty() && ready.len() == pods.len() {
            for p in ready {
                let ip = p.status.as_ref().and_then(|s| s.pod_ip.clone());
                let port = p
                    .spec
                    .containers
                    .iter()
                    .flat_map(|c| &c.ports)
                    .map(|port| port.container_port)
                    .next();
                if let (Some(ip), Some(port)) = (ip, port) {
                    println!("{} answers at http://{ip}:{port}/", p.name());
                }
            }
            report_services(&client).await?;
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            println!(
                "{} of {} pods Ready after {}s; see `drover get pods` and `drover describe pod NAME`.",
                ready.len(),
                pods.len(),
                wait.as_secs()
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
