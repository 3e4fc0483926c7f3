//! Agents joining with a bootstrap token, against a real `drover server`
//! with `--ca-key` and real `drover agent` processes: a token works once,
//! expired, deleted, unknown and malformed tokens and a wrong CA pin are
//! refused, and the joined node may write only its own Node.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{AgentProcess, Server, drover_as, drover_bin, fails, ok};

struct Cluster {
    pki: PathBuf,
    server: Server,
    admin: PathBuf,
}

fn cert(args: &[&str]) -> String {
    ok(Command::new(drover_bin())
        .arg("cert")
        .args(args)
        .output()
        .expect("drover cert"))
}

/// A client config for `server` as the certificate pair `cert`/`key`.
fn client_config(dir: &Path, server: &str, ca: &Path, cert: &Path, key: &Path) -> PathBuf {
    let text = format!(
        "current-context: t\nclusters:\n- name: t\n  cluster: {{server: \"{server}\", certificate-authority: {}}}\nusers:\n- name: u\n  user: {{client-certificate: {}, client-key: {}}}\ncontexts:\n- name: t\n  context: {{cluster: t, user: u}}\n",
        ca.display(),
        cert.display(),
        key.display()
    );
    let path = dir.join(format!(
        "config-{}",
        cert.file_stem().and_then(|s| s.to_str()).unwrap_or("x")
    ));
    std::fs::write(&path, text).expect("client config");
    path
}

/// A TLS server that signs joining nodes; users admin (system:masters) and alice (no role).
fn cluster(root: &Path) -> Cluster {
    let pki = root.join("pki");
    let dir = pki.display().to_string();
    cert(&["init", "--dir", &dir]);
    cert(&["issue", "--dir", &dir, "--kind", "server", "--name", "api"]);
    let admin = [
        "--kind",
        "user",
        "--name",
        "admin",
        "--groups",
        "system:masters",
    ];
    cert(&[&["issue", "--dir", &dir][..], &admin[..]].concat());
    cert(&["issue", "--dir", &dir, "--kind", "user", "--name", "alice"]);
    let f = |name: &str| pki.join(name).display().to_string();
    let flags = [
        "--ca",
        &f("ca.crt"),
        "--cert",
        &f("api.crt"),
        "--key",
        &f("api.key"),
        "--ca-key",
        &f("ca.key"),
    ];
    let server = Server::start_with(&root.join("data"), &flags);
    let admin = client_config(
        root,
        &server.url,
        &pki.join("ca.crt"),
        &pki.join("admin.crt"),
        &pki.join("admin.key"),
    );
    Cluster { pki, server, admin }
}

impl Cluster {
    fn token(&self, extra: &[&str]) -> String {
        let args = [&["token", "create"][..], extra].concat();
        ok(drover_as(&self.admin, &args, None)).trim().to_string()
    }

    fn pin(&self) -> String {
        cert(&["ca-hash", "--dir", &self.pki.display().to_string()])
            .trim()
            .to_string()
    }

    /// `drover agent --join-token` that is expected to be refused before it runs.
    fn refused_join(&self, token: &str, pin: &str, data: &Path) -> String {
        let o = Command::new(drover_bin())
            .args(["agent", "--server", &self.server.url, "--node-name", "nx"])
            .args(["--join-token", token, "--ca-cert-hash", pin, "--data-dir"])
            .arg(data)
            .output()
            .expect("drover agent");
        let e = fails(o);
        assert!(
            !data.join("pki/node.crt").exists(),
            "a refused join saved a certificate"
        );
        e
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn agent_args<'a>(node: &'a str, data: &'a str) -> Vec<&'a str> {
    vec![
        "--node-name",
        node,
        "--data-dir",
        data,
        "--logs-listen",
        "127.0.0.1:0",
        "--no-pod-network",
    ]
}

#[test]
fn a_join_token_works_once_and_its_node_writes_only_its_own_node() {
    let root = tempfile::tempdir().expect("tempdir");
    let c = cluster(root.path());
    let token = c.token(&["--ttl", "1h", "--description", "rack 4"]);
    let (id, secret) = token.split_once('.').expect("ID.SECRET");
    let shape = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    assert!(shape(id, 6) && shape(secret, 16), "{token}");
    let listed = ok(drover_as(&c.admin, &["token", "list"], None));
    assert!(
        listed.contains(id) && listed.contains("<unused>") && listed.contains("rack 4"),
        "{listed}"
    );
    assert!(!listed.contains(secret), "{listed}");
    let alice = client_config(
        root.path(),
        &c.server.url,
        &c.pki.join("ca.crt"),
        &c.pki.join("alice.crt"),
        &c.pki.join("alice.key"),
    );
    let e = fails(drover_as(&alice, &["token", "create"], None));
    assert!(e.contains("forbidden"), "{e}");

    let data = root.path().join("n2");
    let data_s = data.display().to_string();
    let _reaper = common::Reaper(data.clone());
    let pin = c.pin();
    let mut args = agent_args("n2", &data_s);
    args.extend(["--join-token", &token, "--ca-cert-hash", &pin]);
    let mut agent = AgentProcess::start(
        &c.server.url,
        &args,
        "joined as node n2",
        Duration::from_secs(30),
    );
    use std::os::unix::fs::PermissionsExt;
    let key_mode = std::fs::metadata(data.join("pki/node.key"))
        .expect("node.key")
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);

    // The certificate is node:n2's: its own Node yes, another's no.
    let n2 = client_config(
        root.path(),
        &c.server.url,
        &data.join("pki/ca.crt"),
        &data.join("pki/node.crt"),
        &data.join("pki/node.key"),
    );
    let node = |name: &str| format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\n");
    ok(drover_as(&n2, &["apply", "-f", "-"], Some(&node("n2"))));
    let e = fails(drover_as(&n2, &["apply", "-f", "-"], Some(&node("n3"))));
    assert!(e.contains("may only modify its own Node"), "{e}");

    // Once.
    let e = c.refused_join(&token, &pin, &root.path().join("n3"));
    assert!(e.contains("already used by node \"n2\""), "{e}");
    let listed = ok(drover_as(&c.admin, &["token", "list"], None));
    assert!(
        listed.contains("n2") && !listed.contains("<unused>"),
        "{listed}"
    );

    // Restarted, the agent uses what it saved: no token needed.
    agent.kill9();
    if !is_root() {
        eprintln!("skipped the restarted agent's registration: the real agent needs root");
        return;
    }
    let _agent = AgentProcess::start(
        &c.server.url,
        &agent_args("n2", &data_s),
        "registered node n2",
        Duration::from_secs(30),
    );
}

#[test]
fn expired_deleted_unknown_and_wrong_tokens_and_a_wrong_ca_pin_are_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let c = cluster(root.path());
    let pin = c.pin();
    let data = root.path().join("agent");

    let short = c.token(&["--ttl", "1s"]);
    std::thread::sleep(Duration::from_millis(2100));
    let e = c.refused_join(&short, &pin, &data);
    assert!(e.contains("expired"), "{e}");

    let revoked = c.token(&[]);
    let id = revoked.split('.').next().expect("id");
    ok(drover_as(&c.admin, &["token", "delete", id], None));
    let e = c.refused_join(&revoked, &pin, &data);
    assert!(e.contains("unknown token") && e.contains(id), "{e}");

    let good = c.token(&[]);
    let (id, _) = good.split_once('.').expect("ID.SECRET");
    let e = c.refused_join(&format!("{id}.0000000000000000"), &pin, &data);
    assert!(e.contains("does not match"), "{e}");
    let e = c.refused_join("not-a-token", &pin, &data);
    assert!(e.contains("malformed token"), "{e}");

    let wrong_pin = format!("sha256:{}", "0".repeat(64));
    let e = c.refused_join(&good, &wrong_pin, &data);
    assert!(e.contains("refusing to trust"), "{e}");
    // The token is still good after all that.
    let listed = ok(drover_as(&c.admin, &["token", "list"], None));
    assert!(listed.contains("<unused>"), "{listed}");
}
