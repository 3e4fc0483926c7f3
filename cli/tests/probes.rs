//! Probes, agent Events, `drover exec` and `drover logs --previous` with
//! the real agent against the real server, as root: readiness gates a
//! pod's Ready condition, the example web service's httpGet/tcpSocket
//! probes pass, a failing exec liveness probe restarts the container
//! (Events Unhealthy and Killing), exec relays output, input, a terminal
//! and the exit code, and the previous run's log survives a restart.
//! Skips (saying why) when not root or without busybox-static.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::pod_net::PodNet;
use common::{
    AgentProcess, Reaper, Server, build_busybox, drover_bin, eventually, ok, stdout, write,
};
use drover_proto::client::{Client, ClientError, DeleteOptions, ListOptions};
use drover_proto::types::pod::PodStatus;
use drover_proto::types::{Deployment, Event, Pod};
use drover_proto::{Kind, Resource};

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A server, a real agent for node `n1` and the busybox image on it.
struct Cluster {
    _agent: AgentProcess,
    _net: PodNet,
    server: Server,
    rt: tokio::runtime::Runtime,
    client: Client,
    _reaper: Reaper,
    dir: tempfile::TempDir,
}

fn cluster() -> Option<Cluster> {
    if !is_root() {
        eprintln!("skipped: the real agent needs root");
        return None;
    }
    if !Path::new("/bin/busybox").exists() {
        eprintln!("skipped: /bin/busybox missing (apt-get install busybox-static)");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = build_busybox(dir.path());
    let data = dir.path().join("agent");
    let reaper = Reaper(data.clone());
    let data_arg = data.to_str().expect("utf-8 path");
    let server = Server::start(&dir.path().join("server"));
    ok(server.drover(&[
        "image",
        "import",
        layout.to_str().expect("utf-8"),
        "--data-dir",
        data_arg,
    ]));
    // A bridge and range of the test's own, removed when it ends.
    let net = PodNet::unique();
    let [b, bridge, c, cidr] = net.args();
    let agent = AgentProcess::start(
        &server.url,
        &[
            "--node-name",
            "n1",
            "--data-dir",
            data_arg,
            "--logs-listen",
            "127.0.0.1:0",
            b,
            bridge,
            c,
            cidr,
        ],
        "registered node n1",
        Duration::from_secs(30),
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let client = rt.block_on(Client::connect(&server.url)).expect("connect");
    Some(Cluster {
        _agent: agent,
        _net: net,
        server,
        rt,
        client,
        _reaper: reaper,
        dir,
    })
}

impl Cluster {
    fn apply(&self, name: &str, yaml: &str) {
        let file = write(self.dir.path(), name, yaml);
        ok(self.server.drover(&["apply", "-f", &file]));
    }

    fn create(&self, pod: &Pod) {
        self.rt
            .block_on(self.client.create(&pod.to_object()))
            .expect("create pod");
    }

    fn status(&self, name: &str) -> Option<PodStatus> {
        self.rt
            .block_on(self.client.get_as::<Pod>("default", name))
            .ok()
            .and_then(|p| p.status)
    }

    fn events(&self, pod: &str) -> Vec<Event> {
        let opts = ListOptions {
            namespace: Some("default".into()),
            ..ListOptions::default()
        };
        let (events, _) = self
            .rt
            .block_on(self.client.list_as::<Event>(&opts))
            .expect("list events");
        events
            .into_iter()
            .filter(|e| e.involved_object.name == pod)
            .collect()
    }

    /// Deletes the pods and waits until the agent has removed them.
    fn delete_all(&self, names: &[&str]) {
        for name in names {
            let opts = DeleteOptions::default();
            let _ = self
                .rt
                .block_on(self.client.delete(Kind::Pod, "default", name, &opts));
        }
        eventually(Duration::from_secs(60), || {
            names
                .iter()
                .all(|n| {
                    matches!(
                        self.rt.block_on(self.client.get_as::<Pod>("default", n)),
                        Err(ClientError::NotFound(_))
                    )
                })
                .then_some(())
        });
        let pods = self.dir.path().join("agent/pods");
        let left: Vec<_> = std::fs::read_dir(&pods)
            .into_iter()
            .flatten()
            .flatten()
            .collect();
        assert!(left.is_empty(), "pod directories left: {left:?}");
    }
}

fn ready_condition(s: &PodStatus) -> Option<&str> {
    s.conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.as_str())
}

/// The pod from the example Deployment's template (examples/web/web.yaml):
/// httpGet readiness on a named port, tcpSocket liveness.
fn example_web_pod() -> Pod {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/web/web.yaml");
    let text = std::fs::read_to_string(&path).expect("read web.yaml");
    let manifests = drover_proto::manifest::parse_manifests(&text, "web.yaml").expect("parse");
    let deployment = manifests
        .iter()
        .find_map(|m| Deployment::from_object(&m.object).ok())
        .expect("a Deployment in web.yaml");
    let mut pod = Pod::default();
    pod.metadata.name = "web".into();
    pod.metadata.namespace = Some("default".into());
    pod.metadata.labels = deployment.spec.template.metadata.labels.clone();
    pod.spec = deployment.spec.template.spec.clone();
    pod.spec.node_name = Some("n1".into());
    assert!(pod.spec.containers[0].readiness_probe.is_some());
    assert!(pod.spec.containers[0].liveness_probe.is_some());
    pod
}

const LATE: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: late}
spec:
  nodeName: n1
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: example/busybox:1
    command: ["sh", "-c", "sleep 4; exec busybox httpd -f -p 8080 -h /www"]
    ports: [{name: http, containerPort: 8080}]
    readinessProbe:
      httpGet: {path: /, port: http}
      periodSeconds: 1
"#;

const UNHEALTHY: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: sick}
spec:
  nodeName: n1
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: example/busybox:1
    command: ["sh", "-c", "touch /tmp/healthy; sleep 3; rm /tmp/healthy; sleep 600"]
    livenessProbe:
      exec: {command: ["cat", "/tmp/healthy"]}
      periodSeconds: 1
      failureThreshold: 2
"#;

#[test]
fn probes_drive_readiness_and_restarts() {
    let Some(c) = cluster() else { return };
    c.create(&example_web_pod());
    c.apply("late.yaml", LATE);
    c.apply("sick.yaml", UNHEALTHY);

    // Running but not Ready until httpd listens; then Ready.
    let s = eventually(Duration::from_secs(60), || {
        let s = c.status("late")?;
        let cs = s.container_statuses.first()?;
        let running = cs.state.as_ref()?.running.is_some();
        (running && !cs.ready).then_some(s)
    });
    assert_eq!(ready_condition(&s), Some("False"), "{s:?}");
    let s = eventually(Duration::from_secs(60), || {
        c.status("late")
            .filter(|s| ready_condition(s) == Some("True"))
    });
    assert!(s.container_statuses[0].ready);
    assert_eq!(s.container_statuses[0].restart_count, 0);
    let events = c.events("late");
    assert!(
        events
            .iter()
            .any(|e| e.reason == "Unhealthy" && e.message.starts_with("Readiness probe failed")),
        "{events:?}"
    );
    for reason in ["Pulled", "Created", "Started"] {
        assert!(
            events.iter().any(|e| e.reason == reason),
            "{reason}: {events:?}"
        );
    }

    // The example's probes pass: Ready, and not restarted past two
    // liveness periods.
    eventually(Duration::from_secs(60), || {
        c.status("web")
            .filter(|s| ready_condition(s) == Some("True"))
    });

    // The failing liveness probe kills and restarts the container.
    let s = eventually(Duration::from_secs(60), || {
        c.status("sick").filter(|s| {
            s.container_statuses
                .first()
                .is_some_and(|c| c.restart_count >= 1)
        })
    });
    let last = s.container_statuses[0]
        .last_state
        .as_ref()
        .and_then(|l| l.terminated.as_ref())
        .expect("last state");
    // sh as pid 1 ignores SIGTERM: killed after the 1 s grace period.
    assert_eq!(last.exit_code, 137, "{last:?}");
    let events = eventually(Duration::from_secs(30), || {
        let events = c.events("sick");
        let has = |reason: &str, text: &str| {
            events
                .iter()
                .any(|e| e.reason == reason && e.message.contains(text))
        };
        (has("Unhealthy", "Liveness probe failed") && has("Killing", "failed liveness probe"))
            .then_some(events)
    });
    let unhealthy = events
        .iter()
        .find(|e| e.reason == "Unhealthy")
        .expect("Unhealthy");
    assert_eq!(unhealthy.type_, "Warning");
    assert_eq!(
        unhealthy.involved_object.field_path.as_deref(),
        Some("spec.containers{c}")
    );

    let s = c.status("web").expect("web status");
    assert_eq!(s.container_statuses[0].restart_count, 0, "{s:?}");
    assert_eq!(ready_condition(&s), Some("True"));
    c.delete_all(&["web", "late", "sick"]);
}

const SLEEPER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: sleeper}
spec:
  nodeName: n1
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: example/busybox:1
    command: ["sleep", "600"]
"#;

const CRASHER: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  nodeName: n1
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: example/busybox:1
    command: ["sh", "-c", "echo run-$RANDOM-$RANDOM; sleep 1; exit 3"]
"#;

fn drover_exec(c: &Cluster, args: &[&str], input: Option<&str>) -> std::process::Output {
    let mut child = Command::new(drover_bin())
        .arg("exec")
        .args(args)
        .env("DROVER_SERVER", &c.server.url)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn drover exec");
    if let Some(text) = input {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(text.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("drover exec")
}

#[test]
fn exec_and_previous_logs() {
    let Some(c) = cluster() else { return };
    c.apply("sleeper.yaml", SLEEPER);
    c.apply("crasher.yaml", CRASHER);
    eventually(Duration::from_secs(60), || {
        c.status("sleeper")
            .filter(|s| ready_condition(s) == Some("True"))
    });

    // Output, stderr and the exit code come back; the command runs in
    // the container's pid namespace (its pid 1 is the container's sleep).
    let out = drover_exec(
        &c,
        &[
            "sleeper",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; cat /proc/1/cmdline | tr '\\0' ' '; exit 7",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(stdout(&out), "out\nsleep 600 ");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");

    // stdin with -i; a terminal with -t.
    let out = drover_exec(&c, &["-i", "sleeper", "--", "cat"], Some("hello\n"));
    assert_eq!(
        (out.status.code(), stdout(&out).as_str()),
        (Some(0), "hello\n")
    );
    let out = drover_exec(
        &c,
        &["-t", "sleeper", "--", "sh", "-c", "test -t 0 && echo tty"],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out).trim_end(), "tty");

    // Clear errors: an unknown container, a missing command binary.
    let out = drover_exec(&c, &["-c", "nope", "sleeper", "--", "true"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("container nope is not valid"));
    let out = drover_exec(&c, &["sleeper", "--", "/no/such/binary"], None);
    assert_ne!(out.status.code(), Some(0), "{out:?}");

    // logs --previous: none before a restart, the earlier run's after.
    let err = c.server.drover(&["logs", "--previous", "sleeper"]);
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("previous terminated container"));
    eventually(Duration::from_secs(60), || {
        c.status("crasher").filter(|s| {
            s.container_statuses
                .first()
                .is_some_and(|c| c.restart_count >= 1)
        })
    });
    let (previous, current) = eventually(Duration::from_secs(30), || {
        let previous = ok(c.server.drover(&["logs", "-p", "crasher"]));
        let current = ok(c.server.drover(&["logs", "crasher"]));
        (previous.starts_with("run-") && current.starts_with("run-")).then_some((previous, current))
    });
    assert_ne!(previous, current, "two runs print different random numbers");
    // The second crash waits 10 s: a BackOff Event.
    let events = eventually(Duration::from_secs(30), || {
        let events = c.events("crasher");
        events
            .iter()
            .any(|e| e.reason == "BackOff" && e.type_ == "Warning")
            .then_some(events)
    });
    let started = events
        .iter()
        .find(|e| e.reason == "Started")
        .expect("Started");
    assert!(
        started.count >= 2,
        "restarts aggregate into one Event: {events:?}"
    );
    c.delete_all(&["sleeper", "crasher"]);
}
