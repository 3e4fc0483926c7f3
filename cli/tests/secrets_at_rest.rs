//! Secrets encrypted at rest (`--encryption-key-file`) and hidden by `get`,
//! against real `drover server` processes: the data dir (sled store, Raft
//! log and snapshots) is scanned for the plaintext, keys are rotated and
//! removed across restarts.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use base64::Engine;
use common::{Server, fails, ok};

const KEY1: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
const KEY2: &str = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=";
/// A value no other part of the server writes: found on disk only if it leaked.
const PASSWORD: &str = "correct-horse-battery-staple-4711";

fn key_file(dir: &Path, keys: &[(&str, &str)]) -> String {
    let mut text = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aesgcm:\n      keys:\n".to_string();
    for (name, secret) in keys {
        text += &format!("      - name: {name}\n        secret: {secret}\n");
    }
    common::write(dir, "keys.yaml", &text)
}

fn secret(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}}}\nstringData: {{password: {PASSWORD}}}\n"
    )
}

/// A single-member replicated server, so a Raft log and snapshots (one per
/// 10 entries) are on disk as well as the store.
fn member(data: &Path, peer_port: u16, key_file: Option<&str>) -> Server {
    let peer = format!("127.0.0.1:{peer_port}");
    let peers = format!("1={peer}");
    let mut flags = vec!["--id", "1", "--peer-listen", &peer, "--peers", &peers];
    flags.extend(["--snapshot-threshold", "10", "--no-controllers"]);
    if let Some(file) = key_file {
        flags.extend(["--encryption-key-file", file]);
    }
    Server::start_with(data, &flags)
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = vec![];
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path)
                && bytes.windows(needle.len()).any(|w| w == needle)
            {
                found.push(path);
            }
        }
    }
    found
}

fn plaintext_files(dir: &Path) -> Vec<PathBuf> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(PASSWORD);
    let mut found = files_containing(dir, PASSWORD.as_bytes());
    found.extend(files_containing(dir, b64.as_bytes()));
    found
}

/// The password `drover get secret NAME --show-secrets` prints.
fn password(server: &Server, name: &str) -> String {
    let out = ok(server.drover(&["get", "secret", name, "-o", "json", "--show-secrets"]));
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    let b64 = v["data"]["password"].as_str().expect("data.password");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("base64");
    String::from_utf8(bytes).expect("utf-8")
}

/// Enough writes after the Secret that the member takes a Raft snapshot.
fn fill_log(server: &Server) {
    for i in 0..12 {
        let cm =
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm{i}}}\ndata: {{a: b}}\n");
        ok(server.drover_stdin(&["apply", "-f", "-"], Some(&cm)));
    }
}

#[test]
fn without_a_key_file_the_plaintext_is_on_disk() {
    // The control for the scan below: it does find a Secret stored plainly.
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let server = member(&data, free_port(), None);
    ok(server.drover_stdin(&["apply", "-f", "-"], Some(&secret("db"))));
    fill_log(&server);
    assert!(!plaintext_files(&data).is_empty());
}

#[test]
fn secrets_are_encrypted_on_disk_across_restarts_and_key_rotation() {
    let root = tempfile::tempdir().expect("tempdir");
    let data = root.path().join("data");
    let port = free_port();
    let keys = key_file(root.path(), &[("key1", KEY1)]);
    let mut server = member(&data, port, Some(keys.as_str()));
    ok(server.drover_stdin(&["apply", "-f", "-"], Some(&secret("db"))));
    fill_log(&server);
    assert_eq!(password(&server, "db"), PASSWORD);
    server.kill9();
    let leaked = plaintext_files(&data);
    assert!(leaked.is_empty(), "plaintext found in {leaked:?}");
    assert!(!files_containing(&data, b"drover:enc:aesgcm:v1:key1:").is_empty());

    // Restarted with the same key: still readable.
    let mut server = member(&data, port, Some(keys.as_str()));
    assert_eq!(password(&server, "db"), PASSWORD);
    server.kill9();

    // Rotated: the new key first seals new writes, the old one still opens.
    key_file(root.path(), &[("key2", KEY2), ("key1", KEY1)]);
    let mut server = member(&data, port, Some(keys.as_str()));
    assert_eq!(password(&server, "db"), PASSWORD);
    ok(server.drover_stdin(&["apply", "-f", "-"], Some(&secret("db2"))));
    assert_eq!(password(&server, "db2"), PASSWORD);
    server.kill9();
    assert!(!files_containing(&data, b"drover:enc:aesgcm:v1:key2:").is_empty());
    assert!(plaintext_files(&data).is_empty());

    // The old key removed: what it sealed is refused with the key named.
    key_file(root.path(), &[("key2", KEY2)]);
    let mut server = member(&data, port, Some(keys.as_str()));
    assert_eq!(password(&server, "db2"), PASSWORD);
    let e = fails(server.drover(&["get", "secret", "db", "-o", "yaml"]));
    assert!(e.contains("key1") && e.contains("default/db"), "{e}");
    server.kill9();

    // No key file at all: sealed Secrets are refused, not shown as garbage.
    let server = member(&data, port, None);
    let e = fails(server.drover(&["get", "secret", "db2"]));
    assert!(e.contains("--encryption-key-file"), "{e}");
}

#[test]
fn a_bad_key_file_stops_the_server_naming_the_file_and_the_problem() {
    let root = tempfile::tempdir().expect("tempdir");
    let keys = key_file(root.path(), &[("key1", "c2hvcnQ=")]);
    let missing = root.path().join("nope.yaml").display().to_string();
    for (file, problem) in [(&keys, "5 bytes, expected 32"), (&missing, "cannot read")] {
        let o = std::process::Command::new(common::drover_bin())
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(root.path().join("data"))
            .args(["--encryption-key-file", file])
            .output()
            .expect("run drover server");
        let e = fails(o);
        assert!(e.contains(file.as_str()) && e.contains(problem), "{e}");
    }
}

#[test]
fn get_hides_secret_values_unless_asked_and_describe_shows_sizes() {
    let root = tempfile::tempdir().expect("tempdir");
    let keys = key_file(root.path(), &[("key1", KEY1)]);
    let server = Server::start_with(&root.path().join("data"), &["--encryption-key-file", &keys]);
    ok(server.drover_stdin(&["apply", "-f", "-"], Some(&secret("db"))));
    let b64 = base64::engine::general_purpose::STANDARD.encode(PASSWORD);
    for format in ["yaml", "json"] {
        let out = ok(server.drover(&["get", "secret", "db", "-o", format]));
        assert!(!out.contains(&b64) && !out.contains(PASSWORD), "{out}");
        assert!(
            out.contains("password") && out.contains("<redacted: 33 bytes>"),
            "{out}"
        );
        let all = ok(server.drover(&["get", "secrets", "-o", format]));
        assert!(!all.contains(&b64), "{all}");
        let shown = ok(server.drover(&["get", "secret", "db", "-o", format, "--show-secrets"]));
        assert!(shown.contains(&b64), "{shown}");
    }
    let described = ok(server.drover(&["describe", "secret", "db"]));
    assert!(described.contains("password:  33 bytes"), "{described}");
    assert!(!described.contains(&b64), "{described}");
}
