//! TLS, authentication and RBAC against real `drover server` processes on
//! loopback: certificates from `drover cert`, clients through client config
//! files, raw HTTP through curl.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{Server, drover_as, drover_bin, eventually, fails, ok, stderr};

/// A cluster CA and certificates made with `drover cert`.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn init(dir: PathBuf) -> Pki {
        ok(cert(&["init", "--dir"], &dir, &[]));
        Pki { dir }
    }

    /// `drover cert issue --kind KIND --name NAME EXTRA...`.
    fn issue(&self, kind: &str, name: &str, extra: &[&str]) {
        let mut args = vec!["--kind", kind, "--name", name];
        args.extend_from_slice(extra);
        ok(cert(&["issue", "--dir"], &self.dir, &args));
    }

    fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// `--ca/--cert/--key` of a server whose certificate is `stem`.
    fn server_flags(&self, stem: &str) -> Vec<String> {
        vec![
            "--ca".into(),
            self.file("ca.crt"),
            "--cert".into(),
            self.file(&format!("{stem}.crt")),
            "--key".into(),
            self.file(&format!("{stem}.key")),
        ]
    }

    /// A client config for `server` as the user whose files are `stem`
    /// (or with `token`, or with no credentials at all).
    fn client_config(&self, server: &str, stem: Option<&str>, token: Option<&str>) -> PathBuf {
        let mut user = String::new();
        if let Some(stem) = stem {
            user += &format!(
                "    client-certificate: {}\n    client-key: {}\n",
                self.file(&format!("{stem}.crt")),
                self.file(&format!("{stem}.key"))
            );
        }
        if let Some(token) = token {
            user += &format!("    token: {token}\n");
        }
        if user.is_empty() {
            user = "    {}\n".into();
        }
        let text = format!(
            "current-context: test\nclusters:\n- name: test\n  cluster:\n    server: {server}\n    certificate-authority: {}\nusers:\n- name: u\n  user:\n{user}contexts:\n- name: test\n  context: {{cluster: test, user: u}}\n",
            self.file("ca.crt")
        );
        let name = format!(
            "config-{}-{}",
            stem.unwrap_or("none"),
            token.unwrap_or("none")
        );
        let path = self.dir.join(name);
        std::fs::write(&path, text).expect("write client config");
        path
    }
}

fn cert(sub: &[&str], dir: &Path, rest: &[&str]) -> Output {
    Command::new(drover_bin())
        .arg("cert")
        .args(sub)
        .arg(dir)
        .args(rest)
        .output()
        .expect("drover cert")
}

/// `curl` status code and body for `method url`, trusting `ca`.
fn curl(ca: &str, method: &str, url: &str, extra: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert", ca, "-X", method])
        .args(["-w", "\n%{http_code}"])
        .args(extra)
        .arg(url)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.to_string(), body.to_string())
}

fn have_curl() -> bool {
    Command::new("curl").arg("--version").output().is_ok()
}

const POLICY: &str = "\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: viewers}
roleRef: {kind: ClusterRole, name: view}
subjects:
- {kind: User, name: alice}
- {kind: User, name: carol}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: devs, namespace: default}
roleRef: {kind: ClusterRole, name: edit}
subjects:
- {kind: Group, name: devs}
";

const CONFIG_MAP: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n";

/// A TLS server with users: admin (system:masters), alice (view), bob
/// (edit in default, group devs), carol (view, by token).
fn secured_server(root: &Path) -> (Pki, Server) {
    let pki = Pki::init(root.join("pki"));
    pki.issue("server", "api", &[]);
    pki.issue("user", "admin", &["--groups", "system:masters"]);
    pki.issue("user", "alice", &[]);
    pki.issue("user", "bob", &["--groups", "devs"]);
    std::fs::write(root.join("policy.yaml"), POLICY).expect("policy");
    std::fs::write(root.join("tokens.csv"), "carol-token,carol,3\n").expect("tokens");
    let mut flags = pki.server_flags("api");
    flags.extend([
        "--token-auth-file".into(),
        root.join("tokens.csv").display().to_string(),
        "--authorization-policy-file".into(),
        root.join("policy.yaml").display().to_string(),
    ]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = Server::start_with(&root.join("data"), &flags);
    assert!(server.url.starts_with("https://"), "{}", server.url);
    (pki, server)
}

#[test]
fn without_a_certificate_or_token_every_route_answers_401() {
    if !have_curl() {
        eprintln!(
            "skipped without_a_certificate_or_token_every_route_answers_401: curl is not installed"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (pki, server) = secured_server(dir.path());
    let ca = pki.file("ca.crt");
    for path in [
        "/api/v1/pods",
        "/api/v1/namespaces/default/configmaps",
        "/apis/apps/v1/deployments",
        "/metrics",
        "/version",
        "/cluster/status",
        "/ui/cluster",
        "/ui/live",
    ] {
        let (code, body) = curl(&ca, "GET", &format!("{}{path}", server.url), &[]);
        assert_eq!(code, "401", "{path}: {body}");
        assert!(!body.contains("default"), "{path} leaked data: {body}");
    }
    let (code, _) = curl(&ca, "GET", &format!("{}/healthz", server.url), &[]);
    assert_eq!(code, "200", "health checks stay open");
    // A wrong token is no token.
    let (code, _) = curl(
        &ca,
        "GET",
        &format!("{}/api/v1/pods", server.url),
        &["-H", "Authorization: Bearer nope"],
    );
    assert_eq!(code, "401");
    // gRPC: the CLI with the CA but no credentials.
    let anonymous = pki.client_config(&server.url, None, None);
    let e = fails(drover_as(&anonymous, &["get", "pods"], None));
    assert!(e.contains("unauthorized"), "{e}");
    // Plain HTTP to the TLS port gets no answer.
    let plain = server.url.replace("https://", "http://");
    let o = Command::new("curl")
        .args(["-sS", "--max-time", "5", &format!("{plain}/api/v1/pods")])
        .output()
        .expect("curl");
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("PodList"),
        "plain HTTP was served"
    );
}

#[test]
fn roles_decide_what_each_user_may_do() {
    if !have_curl() {
        eprintln!("skipped roles_decide_what_each_user_may_do: curl is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (pki, server) = secured_server(dir.path());
    let ca = pki.file("ca.crt");
    let admin = pki.client_config(&server.url, Some("admin"), None);
    let alice = pki.client_config(&server.url, Some("alice"), None);
    let bob = pki.client_config(&server.url, Some("bob"), None);
    let carol = pki.client_config(&server.url, None, Some("carol-token"));

    // The server's own controllers run as the server: a Deployment gets its ReplicaSet.
    let deploy = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec: {containers: [{name: web, image: busybox}]}\n";
    ok(drover_as(&admin, &["apply", "-f", "-"], Some(deploy)));
    eventually(Duration::from_secs(20), || {
        let o = drover_as(&admin, &["get", "replicasets"], None);
        stdout_has(&o, "web-")
    });

    // view: reads, but no writes and no secrets.
    ok(drover_as(&alice, &["get", "deployments"], None));
    let e = fails(drover_as(&alice, &["apply", "-f", "-"], Some(CONFIG_MAP)));
    assert!(
        e.contains(
            "user \"alice\" cannot create resource \"configmaps\" in the namespace \"default\""
        ),
        "{e}"
    );
    let e = fails(drover_as(&alice, &["get", "secrets"], None));
    assert!(e.contains("forbidden"), "{e}");
    let e = fails(drover_as(&alice, &["delete", "deployment", "web"], None));
    assert!(e.contains("cannot delete"), "{e}");

    // edit through a RoleBinding: only in its namespace.
    ok(drover_as(&bob, &["apply", "-f", "-"], Some(CONFIG_MAP)));
    let namespace = "apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n";
    ok(drover_as(&admin, &["apply", "-f", "-"], Some(namespace)));
    let e = fails(drover_as(
        &bob,
        &["apply", "-n", "other", "-f", "-"],
        Some(CONFIG_MAP),
    ));
    assert!(e.contains("in the namespace \"other\""), "{e}");
    let e = fails(drover_as(&bob, &["get", "pods", "-A"], None));
    assert!(e.contains("at the cluster scope"), "{e}");

    // A token over gRPC, then over HTTP: view reads, cannot write (403 naming the rule).
    let listed = ok(drover_as(&carol, &["get", "configmaps"], None));
    assert!(listed.contains("settings"), "{listed}");
    let url = format!("{}/api/v1/namespaces/default/configmaps", server.url);
    let auth = ["-H", "Authorization: Bearer carol-token"];
    let (code, body) = curl(&ca, "GET", &url, &auth);
    assert_eq!(code, "200", "{body}");
    assert!(body.contains("settings"), "{body}");
    let mut post = auth.to_vec();
    post.extend([
        "-H",
        "Content-Type: application/yaml",
        "--data-binary",
        CONFIG_MAP,
    ]);
    let (code, body) = curl(&ca, "POST", &url, &post);
    assert_eq!(code, "403", "{body}");
    assert!(body.contains("user \\\"carol\\\" cannot create"), "{body}");
    // Only an admin changes membership; the dashboard needs a cluster-wide view.
    let e = fails(drover_as(&alice, &["cluster", "status"], None));
    assert!(e.contains("forbidden"), "{e}");
    let (code, _) = curl(&ca, "GET", &format!("{}/ui/cluster", server.url), &auth);
    assert_eq!(code, "200");
    let bob_cert = [
        "--cert",
        &pki.file("bob.crt"),
        "--key",
        &pki.file("bob.key"),
    ];
    let (code, _) = curl(&ca, "GET", &format!("{}/ui/cluster", server.url), &bob_cert);
    assert_eq!(code, "403");

    // An agent writes its own Node and the status of its own pods only.
    pki.issue("agent", "n1", &[]);
    let n1 = pki.client_config(&server.url, Some("node-n1"), None);
    let node = |name: &str| format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\n");
    ok(drover_as(&n1, &["apply", "-f", "-"], Some(&node("n1"))));
    let e = fails(drover_as(&n1, &["apply", "-f", "-"], Some(&node("n2"))));
    assert!(
        e.contains("node \"n1\" may only modify its own Node object"),
        "{e}"
    );
    let fresh = CONFIG_MAP.replace("settings", "from-a-node");
    let e = fails(drover_as(&n1, &["apply", "-f", "-"], Some(&fresh)));
    assert!(e.contains("user \"node:n1\" cannot"), "{e}");
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: elsewhere}\nspec: {nodeName: n2, containers: [{name: c, image: busybox}]}\n";
    ok(drover_as(&admin, &["apply", "-f", "-"], Some(pod)));
    let pod_url = format!("{}/api/v1/namespaces/default/pods/elsewhere", server.url);
    let admin_cert = [
        "--cert",
        &pki.file("admin.crt"),
        "--key",
        &pki.file("admin.key"),
    ];
    let (_, stored) = curl(&ca, "GET", &pod_url, &admin_cert);
    let (cert, key) = (pki.file("node-n1.crt"), pki.file("node-n1.key"));
    let put = [
        "--cert",
        &cert,
        "--key",
        &key,
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        &stored,
    ];
    let (code, body) = curl(&ca, "PUT", &format!("{pod_url}/status"), &put);
    assert_eq!(code, "403", "{body}");
    assert!(body.contains("is bound to \\\"n2\\\""), "{body}");

    // Denials are counted.
    let (code, metrics) = curl(
        &ca,
        "GET",
        &format!("{}/metrics", server.url),
        &[
            "--cert",
            &pki.file("admin.crt"),
            "--key",
            &pki.file("admin.key"),
        ],
    );
    assert_eq!(code, "200");
    assert!(
        metrics.lines().any(
            |l| l.starts_with("drover_authorization_denials_total") && l.contains("configmaps")
        ),
        "{metrics}"
    );
}

fn stdout_has(o: &Output, needle: &str) -> Option<()> {
    String::from_utf8_lossy(&o.stdout)
        .contains(needle)
        .then_some(())
}

#[test]
fn an_agent_refuses_to_run_as_another_node_than_its_certificate_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pki, server) = secured_server(dir.path());
    pki.issue("agent", "n1", &[]);
    let data = dir.path().join("agent").display().to_string();
    let (ca, cert, key) = (
        pki.file("ca.crt"),
        pki.file("node-n1.crt"),
        pki.file("node-n1.key"),
    );
    let mut agent = Command::new(drover_bin())
        .args([
            "agent",
            "--server",
            &server.url,
            "--certificate-authority",
            &ca,
        ])
        .args(["--client-certificate", &cert, "--client-key", &key])
        .args(["--node-name", "n2", "--data-dir", &data, "--no-pod-network"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("drover agent");
    // Refused before it connects; a run that goes on is the failure.
    let exited = eventually(Duration::from_secs(20), || agent.try_wait().ok().flatten());
    let out = agent.wait_with_output().expect("agent output");
    assert!(
        !exited.success(),
        "the agent ran as n2 with n1's certificate"
    );
    let e = stderr(&out);
    assert!(
        e.contains("node \"n1\"") && e.contains("--node-name \"n2\""),
        "{e}"
    );
}

#[test]
fn expired_and_foreign_certificates_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pki, server) = secured_server(dir.path());
    // Valid for one day, which ended two days ago.
    pki.issue(
        "user",
        "late",
        &[
            "--groups",
            "system:masters",
            "--days",
            "1",
            "--backdate-days",
            "3",
        ],
    );
    let late = pki.client_config(&server.url, Some("late"), None);
    let e = fails(drover_as(&late, &["get", "pods"], None));
    assert!(e.contains("refuses the client certificate"), "{e}");
    // A certificate from another CA, claiming to be an admin.
    let other = Pki::init(dir.path().join("other"));
    other.issue("user", "mallory", &["--groups", "system:masters"]);
    std::fs::copy(other.dir.join("mallory.crt"), pki.dir.join("mallory.crt")).expect("copy");
    std::fs::copy(other.dir.join("mallory.key"), pki.dir.join("mallory.key")).expect("copy");
    let mallory = pki.client_config(&server.url, Some("mallory"), None);
    let e = fails(drover_as(&mallory, &["get", "pods"], None));
    assert!(e.contains("refuses the client certificate"), "{e}");
    // The admin, for contrast, gets in: by client config, or by flags.
    let admin = pki.client_config(&server.url, Some("admin"), None);
    ok(drover_as(&admin, &["get", "pods"], None));
    let (ca, cert, key) = (
        pki.file("ca.crt"),
        pki.file("admin.crt"),
        pki.file("admin.key"),
    );
    let flags = [
        "get",
        "pods",
        "--server",
        &server.url,
        "--certificate-authority",
        &ca,
        "--client-certificate",
        &cert,
        "--client-key",
        &key,
    ];
    let empty = dir.path().join("empty-config");
    std::fs::write(&empty, "").expect("empty config");
    ok(drover_as(&empty, &flags, None));
    // A client that does not trust the server's CA refuses it.
    let wrong_ca = other.client_config(&server.url, Some("mallory"), None);
    let e = fails(drover_as(&wrong_ca, &["get", "pods"], None));
    assert!(e.contains("cannot reach"), "{e}");
}

fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

/// Starts member `id` of a cluster whose peers are `peers`, with the
/// certificate `peer-ID` of `pki`.
fn member(root: &Path, pki: &Pki, id: u64, port: u16, peers: &str) -> Server {
    let id_s = id.to_string();
    let listen = format!("127.0.0.1:{port}");
    let mut flags = pki.server_flags(&format!("peer-{id}"));
    flags.extend(["--id", &id_s, "--peer-listen", &listen, "--peers", peers].map(String::from));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Server::start_with(&root.join(format!("m{id}")), &flags)
}

#[test]
fn raft_peers_must_hold_a_member_certificate_of_the_cluster_ca() {
    if !have_curl() {
        eprintln!(
            "skipped raft_peers_must_hold_a_member_certificate_of_the_cluster_ca: curl is not installed"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::init(dir.path().join("pki"));
    let rogue = Pki::init(dir.path().join("rogue"));
    for id in ["1", "2"] {
        pki.issue("peer", id, &[]);
    }
    rogue.issue("peer", "2", &[]);
    pki.issue("user", "admin", &["--groups", "system:masters"]);
    pki.issue("user", "alice", &[]);
    let ports = free_ports(2);
    let peers = format!("1=127.0.0.1:{},2=127.0.0.1:{}", ports[0], ports[1]);

    // Member 2 with another CA's certificate: no quorum, writes fail.
    let one = member(&dir.path().join("a"), &pki, 1, ports[0], &peers);
    let mut two = member(&dir.path().join("a"), &rogue, 2, ports[1], &peers);
    let admin = pki.client_config(&one.url, Some("admin"), None);
    let o = drover_as(&admin, &["apply", "-f", "-"], Some(CONFIG_MAP));
    assert!(
        !o.status.success(),
        "a write needs a quorum: {}",
        stderr(&o)
    );
    two.kill9();

    // The Raft port itself refuses a client without a certificate, and a
    // user (not a member) certificate of the right CA.
    let raft = format!(
        "https://127.0.0.1:{}/drover.raft.RaftTransport/Forward",
        ports[0]
    );
    // One gRPC frame: uncompressed, an empty ForwardRequest.
    let frame = dir.path().join("frame");
    std::fs::write(&frame, [0u8; 5]).expect("frame");
    let body = format!("@{}", frame.display());
    let grpc = [
        "--http2",
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        "-D",
        "-",
        "--data-binary",
        &body,
    ];
    let (code, _) = curl(&pki.file("ca.crt"), "POST", &raft, &grpc);
    assert_eq!(
        code, "000",
        "the handshake must fail without a client certificate"
    );
    let mut as_alice = grpc.to_vec();
    let (cert, key) = (pki.file("alice.crt"), pki.file("alice.key"));
    as_alice.extend(["--cert", &cert, "--key", &key]);
    let (_, headers) = curl(&pki.file("ca.crt"), "POST", &raft, &as_alice);
    assert!(
        headers.contains("grpc-status: 7"),
        "PERMISSION_DENIED expected: {headers}"
    );

    // The real member 2 joins and the cluster takes writes.
    let _two = member(&dir.path().join("b"), &pki, 2, ports[1], &peers);
    eventually(Duration::from_secs(30), || {
        drover_as(&admin, &["apply", "-f", "-"], Some(CONFIG_MAP))
            .status
            .success()
            .then_some(())
    });
    // A member whose certificate is another member's refuses to start.
    pki.issue("peer", "3", &[]);
    std::fs::copy(pki.dir.join("peer-3.crt"), pki.dir.join("peer-9.crt")).expect("copy");
    std::fs::copy(pki.dir.join("peer-3.key"), pki.dir.join("peer-9.key")).expect("copy");
    let mut flags = pki.server_flags("peer-9");
    let port = free_ports(1)[0].to_string();
    flags.extend(
        [
            "--id",
            "9",
            "--peer-listen",
            &format!("127.0.0.1:{port}"),
            "--peers",
            &format!("9=127.0.0.1:{port}"),
            "--data-dir",
        ]
        .map(String::from),
    );
    flags.push(dir.path().join("m9").display().to_string());
    let out = Command::new(drover_bin())
        .arg("server")
        .args(["--listen", "127.0.0.1:0"])
        .args(&flags)
        .output()
        .expect("drover server");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("its certificate is for \"peer:3\""),
        "{}",
        stderr(&out)
    );
}

#[test]
fn dev_serves_tls_and_writes_a_client_config_the_cli_uses() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("home/.drover/config");
    let mut child = Command::new(drover_bin())
        .args(["dev", "--no-agent", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("dev"))
        .env("DROVER_CONFIG", &config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn drover dev");
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().expect("stdout");
    let child = Stop(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut url, mut login) = (None, None);
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        if let Some(rest) = line.strip_prefix("Drover dev cluster: API at ") {
            url = rest.split_whitespace().next().map(str::to_string);
        }
        if let Some(rest) = line.strip_prefix("Dashboard: ") {
            login = rest.split_whitespace().next().map(str::to_string);
        }
        if line.starts_with("Try:") {
            break;
        }
    }
    let url = url.expect("dev printed its API address");
    let login = login.expect("dev printed the dashboard login");
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    // The CLI finds the server and credentials in the config alone.
    let listed = drover_as(&config, &["get", "namespaces"], None);
    assert!(listed.status.success(), "{}", stderr(&listed));
    // Without the config's credentials the same server refuses.
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").expect("empty config");
    let o = Command::new(drover_bin())
        .args(["get", "namespaces", "--server", &url])
        .env("DROVER_CONFIG", &empty)
        .output()
        .expect("drover");
    assert!(!o.status.success(), "served without credentials");
    // The dashboard: the login link sets a session cookie; without it, 401.
    if have_curl() {
        let ca = dir.path().join("dev/pki/ca.crt").display().to_string();
        let (code, _) = curl(&ca, "GET", &format!("{url}/ui/cluster"), &[]);
        assert_eq!(code, "401");
        let jar = dir.path().join("cookies").display().to_string();
        let (code, page) = curl(&ca, "GET", &login, &["-L", "-c", &jar, "-b", &jar]);
        assert_eq!(code, "200", "{page}");
        assert!(page.contains("Cluster"), "{page}");
        let (code, _) = curl(&ca, "GET", &format!("{url}/ui/login?token=wrong"), &[]);
        assert_eq!(code, "401");
    }
    drop(child);
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

const TALKER: &str = "\
apiVersion: v1
kind: Pod
metadata: {name: talker}
spec:
  nodeName: n1
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: example/busybox:1
    command: [\"sh\", \"-c\", \"echo hello-from-the-log; exec sleep 600\"]
";

/// `curl` of the agent's `/metrics/summary` as the holder of `stem`'s
/// certificate (none: no client certificate); the status code.
fn curl_agent(pki: &Pki, port: u16, stem: Option<&str>) -> String {
    let resolve = format!("n1:{port}:127.0.0.1");
    let mut extra = vec!["--resolve".to_string(), resolve];
    if let Some(stem) = stem {
        extra.extend([
            "--cert".into(),
            pki.file(&format!("{stem}.crt")),
            "--key".into(),
            pki.file(&format!("{stem}.key")),
        ]);
    }
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let url = format!("https://n1:{port}/metrics/summary");
    curl(&pki.file("ca.crt"), "GET", &url, &extra).0
}

#[test]
fn logs_and_exec_go_through_the_api_server_and_the_agent_port_admits_only_it() {
    let name = "logs_and_exec_go_through_the_api_server_and_the_agent_port_admits_only_it";
    let missing = [
        (!is_root(), "the real agent needs root"),
        (
            !Path::new("/bin/busybox").exists(),
            "/bin/busybox is missing (busybox-static)",
        ),
        (!have_curl(), "curl is not installed"),
    ];
    if let Some((_, why)) = missing.iter().find(|(m, _)| *m) {
        eprintln!("skipped {name}: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (pki, server) = secured_server(dir.path());
    pki.issue("agent", "n1", &[]);
    let layout = common::build_busybox(dir.path());
    let data = dir.path().join("agent");
    let _reaper = common::Reaper(data.clone());
    let data_arg = data.display().to_string();
    ok(Command::new(drover_bin())
        .args([
            "image",
            "import",
            &layout.display().to_string(),
            "--data-dir",
            &data_arg,
        ])
        .output()
        .expect("drover image import"));
    let net = common::pod_net::PodNet::unique();
    let (ca, cert, key) = (
        pki.file("ca.crt"),
        pki.file("node-n1.crt"),
        pki.file("node-n1.key"),
    );
    let mut agent_args = vec![
        "--certificate-authority",
        &ca,
        "--client-certificate",
        &cert,
        "--client-key",
        &key,
        "--node-name",
        "n1",
        "--data-dir",
        &data_arg,
        "--logs-listen",
        "127.0.0.1:0",
    ];
    agent_args.extend(net.args());
    let _agent = common::AgentProcess::start(
        &server.url,
        &agent_args,
        "registered node n1",
        Duration::from_secs(30),
    );
    let admin = pki.client_config(&server.url, Some("admin"), None);
    let alice = pki.client_config(&server.url, Some("alice"), None);
    let bob = pki.client_config(&server.url, Some("bob"), None);
    let manifest = dir.path().join("talker.yaml");
    std::fs::write(&manifest, TALKER).expect("manifest");
    ok(drover_as(
        &admin,
        &["apply", "-f", &manifest.display().to_string()],
        None,
    ));

    // bob (edit in default) may exec; the command runs once the container does.
    let exec = ["exec", "talker", "--", "sh", "-c", "echo inside; exit 3"];
    let out = eventually(Duration::from_secs(60), || {
        let o = drover_as(&bob, &exec, None);
        (o.status.code() == Some(3)).then_some(o)
    });
    assert_eq!(String::from_utf8_lossy(&out.stdout), "inside\n");
    let piped = drover_as(
        &bob,
        &["exec", "-i", "talker", "--", "cat"],
        Some("typed\n"),
    );
    assert_eq!(
        String::from_utf8_lossy(&piped.stdout),
        "typed\n",
        "{piped:?}"
    );
    // alice (view) may read the log but not exec.
    let denied = drover_as(&alice, &exec, None);
    assert_eq!(denied.status.code(), Some(1), "{denied:?}");
    assert!(
        stderr(&denied).contains(r#"user "alice" cannot create resource "pods/exec""#),
        "{}",
        stderr(&denied)
    );
    let log = drover_as(&alice, &["logs", "talker"], None);
    assert_eq!(
        String::from_utf8_lossy(&log.stdout),
        "hello-from-the-log\n",
        "{log:?}"
    );

    // The agent's port: TLS with the node's certificate (named n1), the
    // control plane's certificate only.
    let node = drover_as(&admin, &["get", "node", "n1", "-o", "json"], None);
    let node: drover_proto::types::Node =
        serde_json::from_slice(&node.stdout).expect("node as JSON");
    let addr = node.agent_address().expect("agent address");
    let port: u16 = addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .expect("port");
    // (503 until the agent's first metrics sample, a second after start.)
    eventually(Duration::from_secs(20), || {
        (curl_agent(&pki, port, Some("api")) == "200").then_some(())
    });
    assert_eq!(curl_agent(&pki, port, Some("admin")), "403");
    assert_eq!(curl_agent(&pki, port, Some("node-n1")), "403");
    assert_eq!(
        curl_agent(&pki, port, None),
        "000",
        "served without a certificate"
    );
    let plain = curl(&ca, "GET", &format!("http://{addr}/metrics/summary"), &[]).0;
    assert_ne!(plain, "200", "served in clear text");
    // The server's metrics scrape reaches the agent over the same TLS.
    let admin_cert = [
        "--cert",
        &pki.file("admin.crt"),
        "--key",
        &pki.file("admin.key"),
    ];
    let scraped = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("drover_metrics_scrape_nodes "))
            .map(str::to_string)
    };
    let mut last = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let (_, text) = curl(&ca, "GET", &format!("{}/metrics", server.url), &admin_cert);
        last = scraped(&text);
        if last.as_deref() == Some("drover_metrics_scrape_nodes 1") {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(last.as_deref(), Some("drover_metrics_scrape_nodes 1"));
    ok(drover_as(&admin, &["delete", "pod", "talker"], None));
    eventually(Duration::from_secs(60), || {
        let o = drover_as(&admin, &["get", "pod", "talker"], None);
        (!o.status.success()).then_some(())
    });
}

/// `curl`'s status code for GET `url` with the client certificate `stem`
/// of `pki` (`000`: the TLS handshake failed).
fn curl_as(pki: &Pki, stem: &str, url: &str, extra: &[&str]) -> String {
    let (cert, key) = (
        pki.file(&format!("{stem}.crt")),
        pki.file(&format!("{stem}.key")),
    );
    let mut args = vec!["--cert", &cert, "--key", &key];
    args.extend_from_slice(extra);
    curl(&pki.file("ca.crt"), "GET", url, &args).0
}

/// A server started with `--crl-file` of `pki` (an empty list at first)
/// and `--token-auth-file` `tokens.csv`.
fn server_with_crl(root: &Path, pki: &Pki, stem: &str, extra: &[&str]) -> Server {
    let out = ok(cert(&["revoke", "--dir"], &pki.dir, &[]));
    assert!(out.contains("lists 0 revoked"), "{out}");
    let mut flags = pki.server_flags(stem);
    flags.extend([
        "--crl-file".into(),
        pki.file("ca.crl"),
        "--token-auth-file".into(),
        root.join("tokens.csv").display().to_string(),
    ]);
    flags.extend(extra.iter().map(|s| s.to_string()));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Server::start_with(&root.join("data"), &flags)
}

#[test]
fn revoked_certificates_and_removed_tokens_are_refused_without_a_restart() {
    if !have_curl() {
        eprintln!("skipped: curl is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::init(dir.path().join("pki"));
    pki.issue("server", "api", &[]);
    pki.issue("user", "admin", &["--groups", "system:masters"]);
    pki.issue("user", "dave", &["--groups", "system:masters"]);
    pki.issue("agent", "n1", &[]);
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "carol-token,carol,3,system:masters\n").expect("tokens");
    let server = server_with_crl(dir.path(), &pki, "api", &[]);
    let dave = pki.client_config(&server.url, Some("dave"), None);
    let admin = pki.client_config(&server.url, Some("admin"), None);
    ok(drover_as(&dave, &["get", "pods"], None));
    let node_url = format!("{}/api/v1/nodes/n1", server.url);
    assert_ne!(curl_as(&pki, "node-n1", &node_url, &[]), "000");

    // Revoked by file, then the agent by serial: both refused within the
    // poll interval; the others still get in.
    let out = ok(cert(
        &["revoke", "--dir"],
        &pki.dir,
        &[&pki.file("dave.crt")],
    ));
    assert!(
        out.contains("revoked serial") && out.contains("lists 1 revoked"),
        "{out}"
    );
    let e = eventually(Duration::from_secs(20), || {
        let o = drover_as(&dave, &["get", "pods"], None);
        (!o.status.success()).then(|| stderr(&o))
    });
    // A connection made just before the new list was read is refused
    // per request (401); from then on the handshake fails.
    assert!(e.contains("revoked"), "{e}");
    // The CLI names the alert when the transport error carries it.
    let e = fails(drover_as(&dave, &["get", "pods"], None));
    assert!(
        e.contains("refuses the client certificate") && e.contains("revoked"),
        "{e}"
    );
    assert_eq!(curl_as(&pki, "dave", &node_url, &[]), "000");
    ok(drover_as(&admin, &["get", "pods"], None));
    let serial = {
        let pem = std::fs::read(pki.dir.join("node-n1.crt")).expect("agent cert");
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).expect("pem");
        pem.parse_x509().expect("x509").raw_serial_as_string()
    };
    ok(cert(&["revoke", "--dir"], &pki.dir, &["--serial", &serial]));
    eventually(Duration::from_secs(20), || {
        (curl_as(&pki, "node-n1", &node_url, &[]) == "000").then_some(())
    });
    ok(drover_as(&admin, &["get", "pods"], None));

    // A token whose line is removed is refused (401); one added works.
    let pods = format!("{}/api/v1/namespaces/default/pods", server.url);
    let with_token = |token: &str| {
        curl(
            &pki.file("ca.crt"),
            "GET",
            &pods,
            &["-H", &format!("Authorization: Bearer {token}")],
        )
        .0
    };
    assert_eq!(with_token("carol-token"), "200");
    std::fs::write(&tokens, "erin-token,erin,5,system:masters\n").expect("tokens");
    eventually(Duration::from_secs(20), || {
        (with_token("carol-token") == "401").then_some(())
    });
    assert_eq!(with_token("erin-token"), "200");
    // A broken file leaves the tokens as they were.
    std::fs::write(&tokens, "erin-token\n").expect("tokens");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(with_token("erin-token"), "200");
}

#[test]
fn a_revoked_peer_certificate_is_refused_by_the_raft_transport() {
    if !have_curl() {
        eprintln!("skipped: curl is not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::init(dir.path().join("pki"));
    for id in ["1", "2"] {
        pki.issue("peer", id, &[]);
    }
    std::fs::write(dir.path().join("tokens.csv"), "").expect("tokens");
    let port = free_ports(1)[0];
    let listen = format!("127.0.0.1:{port}");
    let peers = format!("1={listen}");
    let _one = server_with_crl(
        dir.path(),
        &pki,
        "peer-1",
        &["--id", "1", "--peer-listen", &listen, "--peers", &peers],
    );
    let raft = format!("https://{listen}/drover.raft.RaftTransport/Forward");
    let frame = dir.path().join("frame");
    std::fs::write(&frame, [0u8; 5]).expect("frame");
    let body = format!("@{}", frame.display());
    let grpc = [
        "--http2",
        "-X",
        "POST",
        "-H",
        "content-type: application/grpc",
        "-H",
        "te: trailers",
        "--data-binary",
        &body,
    ];
    // Member 2's certificate is accepted (the handshake succeeds) ...
    assert_ne!(curl_as(&pki, "peer-2", &raft, &grpc), "000");
    // ... until it is revoked.
    ok(cert(
        &["revoke", "--dir"],
        &pki.dir,
        &[&pki.file("peer-2.crt")],
    ));
    eventually(Duration::from_secs(20), || {
        (curl_as(&pki, "peer-2", &raft, &grpc) == "000").then_some(())
    });
    assert_ne!(curl_as(&pki, "peer-1", &raft, &grpc), "000");
}

#[test]
fn a_crl_file_that_cannot_be_used_is_refused_at_start_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::init(dir.path().join("pki"));
    pki.issue("server", "api", &[]);
    let other = Pki::init(dir.path().join("other"));
    ok(cert(&["revoke", "--dir"], &other.dir, &[]));
    let junk = dir.path().join("junk.crl");
    std::fs::write(&junk, "not a list").expect("junk");
    let cases = [
        (
            junk.display().to_string(),
            "is not a certificate revocation list",
        ),
        (other.file("ca.crl"), "is not signed by the cluster CA"),
        (pki.file("missing.crl"), "cannot read the CRL file"),
    ];
    for (crl, why) in cases {
        let out = Command::new(drover_bin())
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .args(pki.server_flags("api"))
            .args(["--crl-file", &crl])
            .output()
            .expect("drover server");
        assert!(!out.status.success());
        let e = stderr(&out);
        assert!(e.contains(&crl) && e.contains(why), "{e}");
    }
    // Revoking a certificate of another CA says so.
    other.issue("user", "mallory", &[]);
    let e = fails(cert(
        &["revoke", "--dir"],
        &pki.dir,
        &[&other.file("mallory.crt")],
    ));
    assert!(e.contains("was not issued by this CA"), "{e}");
}
