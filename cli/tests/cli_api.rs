//! The CLI and the API server end to end, through the real binaries.

mod common;

use common::*;

const DEPLOY: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web, tier: front}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: httpd, image: "example/busybox:1", resources: {requests: {cpu: 100m, memory: 32Mi}}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, labels: {tier: back}}
data: {color: blue}
"#;

#[test]
fn apply_get_describe_delete_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let f = write(dir.path(), "web.yaml", DEPLOY);

    let out = ok(server.drover(&["apply", "-f", &f]));
    assert_eq!(out, "deployment/web created\nconfigmap/settings created\n");
    let out = ok(server.drover(&["apply", "-f", &f]));
    assert_eq!(
        out,
        "deployment/web unchanged\nconfigmap/settings unchanged\n"
    );
    let changed = write(
        dir.path(),
        "web2.yaml",
        &DEPLOY.replace("replicas: 2", "replicas: 4"),
    );
    let out = ok(server.drover(&["apply", "-f", &changed]));
    assert_eq!(
        out,
        "deployment/web configured\nconfigmap/settings unchanged\n"
    );

    let table = ok(server.drover(&["get", "deploy"]));
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("READY"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("web") && lines[1].contains("0/4"),
        "{table}"
    );

    let json: serde_json::Value =
        serde_json::from_str(&ok(server.drover(&["get", "deployments", "-o", "json"]))).unwrap();
    assert_eq!(json["kind"], "List");
    assert_eq!(json["items"][0]["spec"]["replicas"], 4);
    assert_eq!(json["items"][0]["metadata"]["generation"], 2);

    let yaml = ok(server.drover(&["get", "deploy", "web", "-o", "yaml"]));
    assert!(
        yaml.contains("kind: Deployment") && yaml.contains("replicas: 4"),
        "{yaml}"
    );
    assert_eq!(
        ok(server.drover(&["get", "cm", "-l", "tier=back", "-o", "name"])),
        "configmap/settings\n"
    );
    assert_eq!(
        ok(server.drover(&["get", "cm", "-l", "tier!=back", "-o", "name"])),
        ""
    );

    let desc = ok(server.drover(&["describe", "deploy", "web"]));
    assert!(
        desc.contains("Name:") && desc.contains("web") && desc.contains("Events:"),
        "{desc}"
    );

    assert_eq!(
        ok(server.drover(&["delete", "-f", &f])),
        "deployment/web deleted\nconfigmap/settings deleted\n"
    );
    let err = fails(server.drover(&["get", "deploy", "web"]));
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn create_refuses_existing_and_stdin_works() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n";
    assert_eq!(
        ok(server.drover_stdin(&["create", "-f", "-"], Some(cm))),
        "configmap/c created\n"
    );
    let err = fails(server.drover_stdin(&["create", "-f", "-"], Some(cm)));
    assert!(
        err.contains("configmap/c") && err.contains("already exists"),
        "{err}"
    );
}

#[test]
fn bad_input_gets_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let bad = write(
        dir.path(),
        "bad.yaml",
        &DEPLOY.replace("replicas: 2", "replicas: -1"),
    );
    let err = fails(server.drover(&["apply", "-f", &bad]));
    assert!(
        err.contains("error: deployment/web: spec.replicas: must be >= 0"),
        "{err}"
    );
    // Nothing from the file was applied: validation happens before any write.
    assert_eq!(ok(server.drover(&["get", "cm", "-o", "name"])), "");

    let broken = write(dir.path(), "broken.yaml", "kind: [unclosed");
    let err = fails(server.drover(&["apply", "-f", &broken]));
    assert!(
        err.contains("broken.yaml") && err.contains("invalid YAML"),
        "{err}"
    );

    let wrong_type = write(
        dir.path(),
        "t.yaml",
        &DEPLOY.replace("replicas: 2", "replicas: lots"),
    );
    let err = fails(server.drover(&["apply", "-f", &wrong_type]));
    assert!(err.contains("spec.replicas: invalid type"), "{err}");

    let err = fails(server.drover(&["apply", "-f", "/nonexistent/file.yaml"]));
    assert!(err.contains("/nonexistent/file.yaml"), "{err}");
    let err = fails(server.drover(&["get", "widgets"]));
    assert!(err.contains("widgets"), "{err}");
    let err = fails(server.drover(&["get", "po", "-l", "a in (b"]));
    assert!(err.contains("label selector"), "{err}");

    let unknown = write(
        dir.path(),
        "u.yaml",
        &DEPLOY.replace("replicas: 2", "replicas: 2\n  frobnicate: 1"),
    );
    let out = server.drover(&["apply", "-f", &unknown]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("unknown field \"spec.frobnicate\" ignored"),
        "{}",
        stderr(&out)
    );

    // Server down: says where it tried.
    let o = std::process::Command::new(drover_bin())
        .args(["get", "pods", "--server", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    let err = fails(o);
    assert!(
        err.contains("cannot reach the Drover API at http://127.0.0.1:1"),
        "{err}"
    );
}

#[test]
fn state_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = Server::start(&data);
    let f = write(dir.path(), "web.yaml", DEPLOY);
    ok(server.drover(&["apply", "-f", &f]));
    for i in 0..20 {
        let cm = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c{i}}}\ndata: {{i: \"{i}\"}}\n"
        );
        ok(server.drover_stdin(&["create", "-f", "-"], Some(&cm)));
    }
    server.kill9();
    let server = Server::start(&data);
    let names = ok(server.drover(&["get", "cm", "-o", "name"]));
    assert_eq!(names.lines().count(), 21, "{names}");
    assert_eq!(
        ok(server.drover(&["apply", "-f", &f])),
        "deployment/web unchanged\nconfigmap/settings unchanged\n"
    );
}

#[test]
fn get_watch_streams_changes() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let mut watcher = std::process::Command::new(drover_bin())
        .args(["get", "cm", "-w", "-o", "name", "--server", &server.url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = watcher.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The watch starts from the list's revision, so nothing created after
    // the list is missed, however soon it comes.
    let mut seen = Vec::new();
    for i in 0..3 {
        let cm = format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: w{i}}}\n");
        ok(server.drover_stdin(&["create", "-f", "-"], Some(&cm)));
    }
    while seen.len() < 3 {
        match rx.recv_timeout(std::time::Duration::from_secs(10)) {
            Ok(l) => seen.push(l),
            Err(_) => break,
        }
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert_eq!(seen, vec!["configmap/w0", "configmap/w1", "configmap/w2"]);
}

/// apply is a three-way merge: a field the file leaves out and someone else
/// set (here `replicas`, set by `drover scale` as an autoscaler would)
/// survives a re-apply, while a field dropped from the file is removed.
#[test]
fn apply_merges_three_ways() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"));
    let without_replicas = DEPLOY.replace("  replicas: 2\n", "");
    let f = write(dir.path(), "web.yaml", &without_replicas);
    ok(server.drover(&["apply", "-f", &f]));
    ok(server.drover(&["scale", "deploy/web", "--replicas", "5"]));
    let out = ok(server.drover(&["apply", "-f", &f]));
    assert_eq!(
        out,
        "deployment/web unchanged\nconfigmap/settings unchanged\n"
    );
    let yaml = ok(server.drover(&["get", "deploy/web", "-o", "json"]));
    let v: serde_json::Value = serde_json::from_str(&yaml).unwrap();
    assert_eq!(v["spec"]["replicas"], 5, "scaled replicas kept: {yaml}");

    let dropped = write(
        dir.path(),
        "web2.yaml",
        &without_replicas.replace("labels: {app: web, tier: front}", "labels: {app: web}"),
    );
    let out = ok(server.drover(&["apply", "-f", &dropped]));
    assert!(out.starts_with("deployment/web configured"), "{out}");
    let v: serde_json::Value =
        serde_json::from_str(&ok(server.drover(&["get", "deploy/web", "-o", "json"]))).unwrap();
    assert!(
        v["metadata"]["labels"].get("tier").is_none(),
        "label dropped from the file is removed: {v}"
    );
    assert_eq!(v["spec"]["replicas"], 5);
}
