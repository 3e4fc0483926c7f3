//! The real agent against the real server binary, as root: a busybox pod
//! runs, logs, survives an agent restart untouched (same pid), and on
//! deletion leaves no shim, process, cgroup, mount or directory behind.
//! Skips (saying why) when not root or without busybox-static.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::pod_net::PodNet;
use common::{AgentProcess, Reaper, Server, eventually, ok};
use drover_proto::client::{Client, ClientError, DeleteOptions};
use drover_proto::types::Pod;
use drover_proto::types::pod::{Container, PodPhase, RestartPolicy};
use drover_proto::{Kind, Resource};

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Builds the busybox test image with the repository's script.
fn busybox_layout(dir: &Path) -> Option<PathBuf> {
    if !Path::new("/bin/busybox").exists() {
        eprintln!("skipped: /bin/busybox missing (apt-get install busybox-static)");
        return None;
    }
    Some(common::build_busybox(dir))
}

/// What the shim recorded for the pod's first run of container `c`.
fn shim_state(data: &Path, uid: &str, attempt: u32) -> Option<serde_json::Value> {
    let path = data.join(format!("pods/{uid}/c/{attempt}/shim/state.json"));
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// `THP_enabled` of `/proc/PID/status` (whether prctl left huge pages on).
fn thp_enabled(pid: i32) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("THP_enabled:"))?;
    Some(line.split_whitespace().nth(1)?.to_string())
}

fn alive(pid: i64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn busybox_pod(name: &str, policy: RestartPolicy, image: &str, script: &str) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = name.into();
    pod.metadata.namespace = Some("default".into());
    pod.spec.node_name = Some("n1".into());
    pod.spec.restart_policy = policy;
    pod.spec.termination_grace_period_seconds = 1;
    pod.spec.containers = vec![Container {
        name: "c".into(),
        image: image.into(),
        command: vec!["sh".into(), "-c".into(), script.into()],
        ..Container::default()
    }];
    pod
}

#[test]
fn crashes_restart_with_back_off_and_failures_are_reported() {
    if !is_root() {
        eprintln!("skipped: the real agent needs root");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(layout) = busybox_layout(dir.path()) else {
        return;
    };
    let data = dir.path().join("agent");
    let _reaper = Reaper(data.clone());
    let data_arg = data.to_str().expect("utf-8 path");
    let server = Server::start(&dir.path().join("server"));
    let net = PodNet::unique();
    let [b, bridge, c, cidr] = net.args();
    let _agent = AgentProcess::start(
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
    // Imported next to the running agent, which must pick it up.
    ok(server.drover(&[
        "image",
        "import",
        layout.to_str().expect("utf-8"),
        "--data-dir",
        data_arg,
    ]));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let client = rt.block_on(Client::connect(&server.url)).expect("connect");
    let busybox = "example/busybox:1";
    for pod in [
        busybox_pod("crash", RestartPolicy::Always, busybox, "exit 3"),
        busybox_pod("fails", RestartPolicy::Never, busybox, "exit 2"),
        busybox_pod("done", RestartPolicy::OnFailure, busybox, "true"),
        // Nothing listens on port 9: the pull fails at once.
        busybox_pod(
            "nopull",
            RestartPolicy::Always,
            "127.0.0.1:9/none:1",
            "true",
        ),
    ] {
        rt.block_on(client.create(&pod.to_object()))
            .expect("create");
    }
    let status_of = |name: &str| {
        rt.block_on(client.get_as::<Pod>("default", name))
            .ok()
            .and_then(|p| p.status)
    };

    // Restarted once at once, then waiting in CrashLoopBackOff (10 s).
    let s = eventually(Duration::from_secs(60), || {
        let s = status_of("crash")?;
        let c = s.container_statuses.first()?;
        let waiting = c.state.as_ref()?.waiting.as_ref()?;
        (c.restart_count >= 1 && waiting.reason.as_deref() == Some("CrashLoopBackOff")).then_some(s)
    });
    let last = s.container_statuses[0]
        .last_state
        .as_ref()
        .and_then(|l| l.terminated.as_ref())
        .expect("last state");
    assert_eq!((last.exit_code, last.reason.as_deref()), (3, Some("Error")));
    assert_eq!(s.phase, PodPhase::Running);

    let s = eventually(Duration::from_secs(60), || {
        status_of("fails").filter(|s| s.phase == PodPhase::Failed)
    });
    let t = s.container_statuses[0]
        .state
        .as_ref()
        .and_then(|st| st.terminated.as_ref())
        .expect("terminated");
    assert_eq!((t.exit_code, t.reason.as_deref()), (2, Some("Error")));
    assert_eq!(s.container_statuses[0].restart_count, 0);

    eventually(Duration::from_secs(60), || {
        status_of("done").filter(|s| s.phase == PodPhase::Succeeded)
    });

    let s = eventually(Duration::from_secs(60), || {
        let s = status_of("nopull")?;
        let w = s
            .container_statuses
            .first()?
            .state
            .as_ref()?
            .waiting
            .clone()?;
        matches!(
            w.reason.as_deref(),
            Some("ErrImagePull" | "ImagePullBackOff")
        )
        .then_some(s)
    });
    assert_eq!(s.phase, PodPhase::Pending);

    // Every pod goes on deletion, whatever state it is in.
    for name in ["crash", "fails", "done", "nopull"] {
        rt.block_on(client.delete(Kind::Pod, "default", name, &DeleteOptions::default()))
            .expect("delete");
    }
    for name in ["crash", "fails", "done", "nopull"] {
        eventually(Duration::from_secs(30), || {
            matches!(
                rt.block_on(client.get(Kind::Pod, "default", name)),
                Err(ClientError::NotFound(_))
            )
            .then_some(())
        });
    }
    let left: Vec<_> = std::fs::read_dir(data.join("pods"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "pod directories left: {left:?}");
}

#[test]
fn busybox_pod_runs_survives_agent_restart_and_is_cleaned_up() {
    if !is_root() {
        eprintln!("skipped: the real agent needs root");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let Some(layout) = busybox_layout(dir.path()) else {
        return;
    };
    let data = dir.path().join("agent");
    let _reaper = Reaper(data.clone());
    let data_arg = data.to_str().expect("utf-8 path");
    let server = Server::start(&dir.path().join("server"));
    ok(server.drover(&[
        "image",
        "import",
        layout.to_str().expect("utf-8"),
        "--data-dir",
        data_arg,
    ]));
    let net = PodNet::unique();
    let [b, bridge, c, cidr] = net.args();
    let agent_args = [
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
    ];
    let mut agent = AgentProcess::start(
        &server.url,
        &agent_args,
        "registered node n1",
        Duration::from_secs(30),
    );

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let client = rt.block_on(Client::connect(&server.url)).expect("connect");
    let mut pod = Pod::default();
    pod.metadata.name = "p1".into();
    pod.metadata.namespace = Some("default".into());
    pod.spec.node_name = Some("n1".into());
    pod.spec.termination_grace_period_seconds = 1;
    pod.spec.containers = vec![Container {
        name: "c".into(),
        image: "example/busybox:1".into(),
        command: vec!["sh".into(), "-c".into(), "echo hello; sleep 1000".into()],
        ..Container::default()
    }];
    rt.block_on(client.create(&pod.to_object()))
        .expect("create");
    let running = eventually(Duration::from_secs(60), || {
        let p: Pod = rt.block_on(client.get_as("default", "p1")).ok()?;
        (p.status.as_ref()?.phase == PodPhase::Running && p.is_ready()).then_some(p)
    });
    let uid = running.metadata.uid.clone().expect("uid");
    let log = data.join(format!("logs/default_p1_{uid}/c/0.log"));
    eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|t| t.contains("stdout F hello"))
    });
    let logs = ok(server.drover(&["logs", "p1"]));
    assert_eq!(logs, "hello\n");
    let state = shim_state(&data, &uid, 0).expect("shim state");
    let pid = state["container_pid"].as_i64().expect("container pid");
    let shim_pid = state["shim_pid"].as_i64().expect("shim pid");
    assert!(alive(pid));
    // The shim runs with huge pages off (its allocator's option); what it
    // starts gets the host's policy, as this test process has it.
    assert_eq!(
        thp_enabled(pid as i32),
        thp_enabled(std::process::id() as i32)
    );
    assert_eq!(
        thp_enabled(shim_pid as i32),
        thp_enabled(std::process::id() as i32)
    );

    // Restart the agent: the container is adopted, not restarted.
    agent.kill9();
    drop(agent);
    let agent = AgentProcess::start(
        &server.url,
        &agent_args,
        "adopted container c",
        Duration::from_secs(30),
    );
    let after = shim_state(&data, &uid, 0).expect("shim state");
    assert_eq!(after["container_pid"].as_i64(), Some(pid));
    assert!(alive(pid), "container killed by the agent restart");
    assert!(
        shim_state(&data, &uid, 1).is_none(),
        "container was restarted"
    );
    let p: Pod = rt.block_on(client.get_as("default", "p1")).expect("get");
    assert_eq!(
        p.status
            .as_ref()
            .map(|s| s.container_statuses[0].restart_count),
        Some(0)
    );

    // A follower sees the log so far, and ends when the pod goes.
    let mut follower = Command::new(common::drover_bin())
        .args(["logs", "-f", "p1"])
        .env("DROVER_SERVER", &server.url)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn drover logs -f");
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(follower.stdout.take().expect("stdout")),
        &mut first,
    )
    .expect("read follower");
    assert_eq!(first, "hello\n");

    // Delete: SIGTERM (ignored by sh as pid 1), SIGKILL after 1 s, cleanup.
    rt.block_on(client.delete(Kind::Pod, "default", "p1", &DeleteOptions::default()))
        .expect("delete");
    eventually(Duration::from_secs(30), || {
        matches!(
            rt.block_on(client.get(Kind::Pod, "default", "p1")),
            Err(ClientError::NotFound(_))
        )
        .then_some(())
    });
    assert!(!alive(pid), "container process left");
    let followed = eventually(Duration::from_secs(10), || {
        follower.try_wait().ok().flatten()
    });
    assert!(followed.success(), "drover logs -f: {followed:?}");
    eventually(Duration::from_secs(5), || (!alive(shim_pid)).then_some(()));
    assert!(!data.join("pods").join(&uid).exists(), "pod directory left");
    assert!(!log.exists(), "pod logs left");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    assert!(!mounts.contains(data_arg), "mounts left: {mounts}");
    for root in std::fs::read_dir("/sys/fs/cgroup")
        .expect("cgroupfs")
        .flatten()
    {
        let leftover = root.path().join("drover").join(&uid);
        assert!(!leftover.exists(), "cgroup left: {}", leftover.display());
    }
    let direct = Path::new("/sys/fs/cgroup/drover").join(&uid);
    assert!(!direct.exists(), "cgroup left: {}", direct.display());
    drop(agent);
}
