//! A Drover cluster on a lab: a server, two nodes running the real agent
//! and a host outside the cluster, with helpers to drive it through the
//! `drover` CLI and to reach what it serves.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::pki::{Api, LabPki};
use crate::registry::Registry;
use crate::{Host, HostProcess, Lab, drover_bin, run};

/// The agents of the test, torn down (pods, pod network, service rules,
/// routes) even when the test fails, before the lab goes.
pub struct Nodes {
    pub agents: Vec<HostProcess>,
    /// (host, data dir, bridge)
    pub nodes: Vec<(Host, PathBuf, String)>,
    /// Each agent's command line, to restart it as it was.
    args: Vec<Vec<String>>,
}

impl Nodes {
    /// Starts the agent of `host` (entering only its network namespace:
    /// containers need the machine's cgroup hierarchy) and waits for
    /// `ready_line` in its log.
    fn spawn(host: &Host, args: &[String], ready_line: &str) -> HostProcess {
        let agent = HostProcess::spawn_net_only(&host.name, host, &drover_bin(), args);
        agent.wait_for_line(ready_line, Duration::from_secs(30));
        agent
    }

    /// `kill -9` of agent `i` (its pods' shims live on), then the same
    /// agent again; returns once its log has a line with `ready_line`.
    pub fn restart(&mut self, i: usize, ready_line: &str) {
        self.agents[i].kill9();
        let host = &self.nodes[i].0;
        self.agents[i] = Nodes::spawn(host, &self.args[i], ready_line);
    }

    /// Stops the agents and tears their nodes down (idempotent).
    pub fn leave(&mut self) {
        self.agents.clear();
        for (host, dir, bridge) in self.nodes.drain(..) {
            let out = host.exec_net_only(
                &drover_bin().display().to_string(),
                &[
                    "agent",
                    "--teardown",
                    "--data-dir",
                    &dir.display().to_string(),
                    "--bridge",
                    &bridge,
                ],
            );
            if !out.status.success() {
                eprintln!(
                    "teardown of {}: {}",
                    host.name,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

/// Removes a directory when dropped (after a failure too).
pub struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.leave();
    }
}

pub fn skip_reason() -> Option<String> {
    for tool in ["curl", "nsenter"] {
        if run("sh", &["-c", &format!("command -v {tool}")])
            .status
            .code()
            != Some(0)
        {
            return Some(format!("`{tool}` is not installed"));
        }
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("/bin/busybox missing (apt-get install busybox-static)".into());
    }
    None
}

/// `drover ARGS` against `api`, as the lab's admin.
pub fn drover(api: &Api, args: &[&str]) -> Output {
    let reach = api.cli_args();
    let mut full: Vec<&str> = reach.iter().map(String::as_str).collect();
    full.extend_from_slice(args);
    run(&drover_bin().display().to_string(), &full)
}

pub fn get_json(api: &Api, args: &[&str]) -> Option<Value> {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-o", "json"]);
    let out = drover(api, &full);
    out.status.success().then_some(())?;
    serde_json::from_slice(&out.stdout).ok()
}

/// `curl -s URL` with a short timeout: the body, or None.
pub fn curl_in(host: &Host, url: &str) -> Option<String> {
    let out = host.exec("curl", &["-sf", "--max-time", "2", url]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `curl` inside the network namespace at `netns` (a pod's).
pub fn curl_in_pod(netns: &Path, url: &str) -> Option<String> {
    let ns = format!("--net={}", netns.display());
    let out = run("nsenter", &[&ns, "curl", "-sf", "--max-time", "2", url]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Which pod names answer `get` over `tries` requests.
pub fn answering(tries: usize, mut get: impl FnMut() -> Option<String>) -> Vec<String> {
    let mut seen: Vec<String> = (0..tries).filter_map(|_| get()).collect();
    seen.sort();
    seen.dedup();
    seen
}

pub struct WebPod {
    pub name: String,
    pub ip: String,
    pub node: String,
    pub uid: String,
    /// Deleted, waiting for its node to confirm (or to be forced).
    pub terminating: bool,
}

pub fn ready_pods(api: &Api) -> Option<Vec<WebPod>> {
    let list = get_json(api, &["pods", "-l", "app=web"])?;
    let items = list.get("items")?.as_array()?;
    let pods: Vec<WebPod> = items
        .iter()
        .filter(|p| {
            p.pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        })
        .filter_map(|p| {
            Some(WebPod {
                name: p.pointer("/metadata/name")?.as_str()?.to_string(),
                ip: p.pointer("/status/podIP")?.as_str()?.to_string(),
                node: p.pointer("/spec/nodeName")?.as_str()?.to_string(),
                uid: p.pointer("/metadata/uid")?.as_str()?.to_string(),
                terminating: p
                    .pointer("/metadata/deletionTimestamp")
                    .is_some_and(|t| !t.is_null()),
            })
        })
        .collect();
    Some(pods)
}

pub fn ready_endpoints(api: &Api) -> usize {
    get_json(api, &["endpoints", "web"])
        .and_then(|e| {
            let subsets = e.get("subsets")?.as_array()?.clone();
            Some(
                subsets
                    .iter()
                    .filter_map(|s| s.get("addresses")?.as_array().map(Vec::len))
                    .sum(),
            )
        })
        .unwrap_or(0)
}

/// A lab with a server (`srv`), two nodes (`n1`, `n2`) and a host outside
/// the cluster (`ext`), with `manifest` applied. Fields drop in order: the
/// nodes leave, then the server stops, then the lab and the files go.
pub struct Cluster {
    pub nodes: Nodes,
    pub server: HostProcess,
    /// The server's host and command line, to restart it as it was.
    srv: Host,
    server_args: Vec<String>,
    /// The lab's registry (`reg` host), when asked for.
    pub registry: Option<Registry>,
    /// The server's API, reached as the lab's admin over TLS.
    pub api: Api,
    /// The cluster's CA and certificates.
    pub pki: LabPki,
    pub n1: Host,
    pub n2: Host,
    pub outside: Host,
    pub tmp: PathBuf,
    pub lab: Lab,
    /// Removes `tmp` (last).
    pub files: TempDir,
}

impl Cluster {
    /// `name` keeps the files of tests running at once apart.
    pub fn start(name: &str, manifest: &str) -> Cluster {
        Cluster::start_with(name, manifest, &[])
    }

    /// [`Cluster::start`] with extra `drover server` flags.
    pub fn start_with(name: &str, manifest: &str, server_flags: &[&str]) -> Cluster {
        Cluster::start_opts(
            name,
            manifest,
            &ClusterOptions {
                server_flags,
                ..ClusterOptions::default()
            },
        )
    }

    /// [`Cluster::start`] as `options` say.
    pub fn start_opts(name: &str, manifest: &str, options: &ClusterOptions) -> Cluster {
        let tmp = std::env::temp_dir().join(format!("drover-e2e-{name}-{}", std::process::id()));
        let _tmp = TempDir(tmp.clone());
        let layout = tmp.join("layout");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/images/build-busybox.sh");
        let built = run(
            "sh",
            &[&script.display().to_string(), &layout.display().to_string()],
        );
        assert!(
            built.status.success(),
            "build-busybox.sh: {}",
            String::from_utf8_lossy(&built.stderr)
        );

        let lab = Lab::new();
        let srv = lab.add_host("srv");
        let n1 = lab.add_host("n1");
        let n2 = lab.add_host("n2");
        let outside = lab.add_host("ext");
        let registry = options
            .registry
            .then(|| Registry::start(&lab.add_host("reg"), &tmp.join("registry"), &layout));
        let manifest = match &registry {
            Some(r) => manifest.replace("REGISTRY", &r.addr),
            None => manifest.to_string(),
        };
        // TLS on, as users run it: the server's certificate names its
        // lab address, each agent holds one of its own node.
        let pki = LabPki::at(&tmp.join("pki"));
        pki.issue("server", "api", &[&srv.ip]);
        // A fixed port (the host's namespace is private), so that a
        // restarted server is where the agents left it.
        let server_args: Vec<String> = [
            "server".into(),
            "--data-dir".into(),
            tmp.join("server").display().to_string(),
            "--listen".into(),
            format!("{}:{}", srv.ip, crate::member::API_PORT),
        ]
        .into_iter()
        .chain(match options.plain {
            // Lab hosts are namespaces of this machine: nothing leaves it.
            true => vec!["--insecure".to_string()],
            false => pki.serving_flags("api"),
        })
        .chain(options.server_flags.iter().map(|f| f.to_string()))
        .collect();
        let (server, url) = start_server(&srv, &server_args);
        let api = match (options.plain, url.strip_prefix("https://")) {
            (false, Some(addr)) => pki.api(addr),
            (true, _) => Api::plain(url.strip_prefix("http://").unwrap_or(&url)),
            (false, None) => panic!("the server should serve HTTPS with --cert: {url}"),
        };

        let mut nodes = Nodes {
            agents: Vec::new(),
            nodes: Vec::new(),
            args: Vec::new(),
        };
        // A pod range of the test's own: this machine's root namespace may
        // masquerade 10.88.x (a local node), and with br_netfilter on it would
        // rewrite pod traffic crossing the lab bridge.
        let range = 200 + std::process::id() % 10;
        let cluster = format!("10.{range}.0.0/16");
        for (i, host) in [&n1, &n2].into_iter().enumerate() {
            let dir = tmp.join(&host.name);
            if registry.is_none() {
                import_image(&api, &layout, &dir);
            }
            let bridge = format!("dsv{}{}", std::process::id() % 100_000, host.name);
            nodes
                .nodes
                .push((host.clone(), dir.clone(), bridge.clone()));
            let mut args = [
                "agent",
                "--server",
                &url,
                "--node-name",
                &host.name,
                "--data-dir",
                &dir.display().to_string(),
                "--logs-listen",
                &format!("{}:0", host.ip),
                "--bridge",
                &bridge,
                "--node-ip",
                &host.ip,
                "--pod-cidr",
                &format!("10.{range}.{}.0/24", i + 1),
                "--cluster-cidr",
                &cluster,
                // Fault tests shorten the server's grace period to seconds.
                "--heartbeat-seconds",
                "1",
            ]
            .map(String::from)
            .to_vec();
            if let Some(r) = &registry {
                args.extend(["--insecure-registry".to_string(), r.addr.clone()]);
            }
            if !options.plain {
                args.extend(pki.agent_flags(&host.name));
            }
            args.extend(options.agent_flags.iter().map(|f| f.to_string()));
            let agent = Nodes::spawn(host, &args, "registered node");
            nodes.args.push(args);
            nodes.agents.push(agent);
        }

        let manifest_file = tmp.join("web.yaml");
        std::fs::write(&manifest_file, &manifest).expect("writing the manifest");
        let applied = drover(&api, &["apply", "-f", &manifest_file.display().to_string()]);
        assert!(
            applied.status.success(),
            "apply: {}",
            String::from_utf8_lossy(&applied.stderr)
        );
        Cluster {
            nodes,
            server,
            srv,
            server_args,
            registry,
            api,
            pki,
            n1,
            n2,
            outside,
            tmp,
            lab,
            files: _tmp,
        }
    }
}

impl Cluster {
    /// `kill -9` of the server (the whole control plane), then the same
    /// server on the same data dir; returns once it listens again.
    pub fn restart_server(&mut self) {
        self.server.kill9();
        let (server, _) = start_server(&self.srv, &self.server_args);
        self.server = server;
    }
}

/// Starts `drover ARGS` on `srv`; the process and the URL it serves.
fn start_server(srv: &Host, args: &[String]) -> (HostProcess, String) {
    let server = HostProcess::spawn("server", srv, &drover_bin(), args);
    let line = server.wait_for_line("drover server listening on ", Duration::from_secs(30));
    let url = line
        .split("listening on ")
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_string();
    (server, url)
}

/// How a lab cluster is made beyond its manifest.
#[derive(Default)]
pub struct ClusterOptions<'a> {
    /// Extra `drover server` flags.
    pub server_flags: &'a [&'a str],
    /// Extra `drover agent` flags (every node).
    pub agent_flags: &'a [&'a str],
    /// Without TLS (`--insecure`, no certificates). Only for a test with a
    /// known TLS-only failure, named where it is used.
    pub plain: bool,
    /// Serve the example image from a registry on a host of its own
    /// (`reg`) instead of importing it into each node: the manifest's
    /// `REGISTRY` stands for the registry's `IP:PORT`.
    pub registry: bool,
}

/// `drover image import` of the example layout into a node's store.
fn import_image(api: &Api, layout: &Path, node_dir: &Path) {
    let imported = drover(
        api,
        &[
            "image",
            "import",
            &layout.display().to_string(),
            "--data-dir",
            &node_dir.display().to_string(),
        ],
    );
    assert!(
        imported.status.success(),
        "image import: {}",
        String::from_utf8_lossy(&imported.stderr)
    );
}
