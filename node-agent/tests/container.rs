//! The container runtime for real, as root: busybox containers started by
//! detached shims from an overlay of the imported test image, with exit
//! codes, logs, memory/pids limits, graceful stop, re-adoption and cleanup
//! checked. Skips (saying why) when not root or without the test image.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use drover_node_agent::image::{ImageStore, import};
use drover_node_agent::runtime::container::bundle::{self, ContainerDir, ContainerRequest};
use drover_node_agent::runtime::container::{
    ContainerSpec, NetworkMode, ProcessSpec, Resources, cgroup, rootfs,
};
use drover_node_agent::shim::{ShimHandle, ShimLauncher, ShimState, Status};

struct Env {
    work: tempfile::TempDir,
    lowers: Vec<PathBuf>,
    launcher: ShimLauncher,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn env() -> Option<Env> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: container tests need root");
        return None;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let layout = common::build_busybox(work.path())?;
    let store = ImageStore::open(&work.path().join("data")).expect("store");
    let image = import::import(&store, &layout, None)
        .expect("import")
        .remove(0);
    let lowers = store.prepare_layers(&image).expect("layers");
    Some(Env {
        work,
        lowers,
        launcher: ShimLauncher::new(env!("CARGO_BIN_EXE_drover-node-shim"), vec![])
            .with_start_timeout(Duration::from_secs(30))
            .with_prespawn(),
    })
}

struct Running {
    done: bool,
    dir: ContainerDir,
    id: String,
    cgroups_path: PathBuf,
    runtime_root: PathBuf,
    log: PathBuf,
    shim: ShimHandle,
}

impl Env {
    fn run(&self, args: &[&str], resources: Resources) -> Running {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let id = format!("t{}-{n}", std::process::id());
        let dir = ContainerDir::new(self.work.path().join("c").join(&id));
        let cgroups_path = PathBuf::from(format!("/drover-test/{id}"));
        let runtime_root = self.work.path().join("rt");
        let log = dir.path().join("log").join("0.log");
        let spec = ContainerSpec {
            hostname: id.clone(),
            process: ProcessSpec {
                args: args.iter().map(|s| s.to_string()).collect(),
                env: vec!["PATH=/bin".into()],
                cwd: "/".into(),
                ..ProcessSpec::default()
            },
            rootfs: PathBuf::new(),
            readonly_rootfs: false,
            network: NetworkMode::New,
            resources,
            cgroups_path: cgroups_path.clone(),
            cap_add: vec![],
            cap_drop: vec![],
            privileged: false,
        };
        let req = ContainerRequest {
            id: id.clone(),
            spec,
            lowers: self.lowers.clone(),
            runtime_root: runtime_root.clone(),
            log_path: log.clone(),
            log_max_bytes: 1 << 20,
            log_max_files: 2,
            default_grace: Duration::from_secs(2),
        };
        let config = bundle::prepare(&dir, &req).expect("bundle");
        let shim = self
            .launcher
            .launch(&dir.shim_dir(), &config)
            .expect("launch shim");
        Running {
            done: false,
            dir,
            id,
            cgroups_path,
            runtime_root,
            log,
            shim,
        }
    }
}

impl Running {
    fn wait(&self) -> ShimState {
        self.shim.wait(Duration::from_secs(30)).expect("wait")
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Everything the container had is gone: processes, cgroups, mount,
    /// runtime state; then the container directory is removed.
    fn assert_cleaned_up(mut self, state: &ShimState) {
        self.done = true;
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.shim.is_alive() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!self.shim.is_alive(), "shim still running");
        if let Some(pid) = state.container_pid {
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "container process left"
            );
        }
        assert_eq!(
            cgroup::existing_dirs(&self.cgroups_path),
            Vec::<PathBuf>::new(),
            "cgroups left"
        );
        assert!(
            !rootfs::is_mounted(&self.dir.rootfs()),
            "rootfs still mounted"
        );
        assert!(
            !self.runtime_root.join(&self.id).exists(),
            "runtime state left"
        );
        bundle::remove(&self.dir).expect("remove");
        assert!(!self.dir.path().exists());
        remove_parent_cgroups(&self.cgroups_path);
    }
}

/// Removes the `/drover-test` parents libcontainer creates (busy while
/// another test's container still lives below: that test removes them).
fn remove_parent_cgroups(path: &Path) {
    if let Some(parent) = path.parent() {
        for dir in cgroup::existing_dirs(parent) {
            let _ = fs::remove_dir(dir);
        }
    }
}

impl Drop for Running {
    /// A failed assertion must not leave a container running.
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let _ = self.shim.stop(Duration::ZERO);
        let _ = self.shim.wait(Duration::from_secs(10));
        let _ = bundle::remove(&self.dir);
        remove_parent_cgroups(&self.cgroups_path);
    }
}

#[test]
fn true_and_echo_report_exit_codes_and_logs() {
    let Some(env) = env() else { return };
    let c = env.run(&["busybox", "true"], Resources::default());
    let s = c.wait();
    assert_eq!(
        (s.status, s.exit_code, s.reason()),
        (Status::Exited, Some(0), Some("Completed"))
    );
    c.assert_cleaned_up(&s);

    let c = env.run(
        &["sh", "-c", "echo hello; echo oops >&2; exit 3"],
        Resources::default(),
    );
    let s = c.wait();
    assert_eq!((s.exit_code, s.reason()), (Some(3), Some("Error")));
    let log = c.log();
    assert!(log.contains(" stdout F hello\n"), "{log}");
    assert!(log.contains(" stderr F oops\n"), "{log}");
    c.assert_cleaned_up(&s);
}

#[test]
fn memory_limit_is_enforced_and_reported_as_oom_killed() {
    let Some(env) = env() else { return };
    let limits = Resources {
        memory_limit_bytes: Some(32 << 20),
        ..Resources::default()
    };
    // dd allocates its 128 MiB block and fills it: far past the limit.
    let c = env.run(
        &["dd", "if=/dev/zero", "of=/dev/null", "bs=128M", "count=1"],
        limits,
    );
    let s = c.wait();
    assert!(s.oom_killed, "{s:?} log: {}", c.log());
    assert_eq!(
        (s.signal, s.exit_code, s.reason()),
        (Some(9), Some(137), Some("OOMKilled"))
    );
    c.assert_cleaned_up(&s);
}

#[test]
fn cpu_limit_is_enforced() {
    let Some(env) = env() else { return };
    let limits = Resources {
        cpu_limit_millis: Some(200),
        ..Resources::default()
    };
    let c = env.run(&["sh", "-c", "while :; do :; done"], limits);
    let usage = || cgroup::cpu_usage_ns(&c.cgroups_path).expect("cpu usage readable");
    // Measure over a window of wall time: a busy loop limited to 200m may
    // use about a fifth of it (CFS enforces per 100 ms period).
    let (u0, t0) = (usage(), Instant::now());
    std::thread::sleep(Duration::from_millis(1000));
    let (u1, wall) = (usage(), t0.elapsed());
    let share = (u1 - u0) as f64 / wall.as_nanos() as f64;
    assert!(
        share > 0.05 && share < 0.3,
        "used {share:.2} of a CPU under a 0.2 limit"
    );
    c.shim.stop(Duration::ZERO).expect("stop");
    let s = c.wait();
    c.assert_cleaned_up(&s);
}

#[test]
fn pids_limit_stops_forks() {
    let Some(env) = env() else { return };
    let limits = Resources {
        pids_limit: Some(4),
        ..Resources::default()
    };
    let script = "i=0; while [ $i -lt 10 ]; do sleep 1 & i=$((i+1)); done; wait";
    let c = env.run(&["sh", "-c", script], limits);
    let s = c.wait();
    let log = c.log();
    assert!(log.contains("can't fork"), "{s:?} {log}");
    c.assert_cleaned_up(&s);
}

#[test]
fn stop_sends_sigterm_then_sigkill_after_grace() {
    let Some(env) = env() else { return };
    // Handles SIGTERM: exits with its own code well within the grace period.
    let c = env.run(
        &[
            "sh",
            "-c",
            "trap 'echo bye; exit 3' TERM; echo up; while true; do sleep 0.05; done",
        ],
        Resources::default(),
    );
    // The trap must be installed before the signal arrives.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.log().contains("stdout F up") {
        assert!(Instant::now() < deadline, "container never said up");
        std::thread::sleep(Duration::from_millis(5));
    }
    let t = Instant::now();
    c.shim.stop(Duration::from_secs(10)).expect("stop");
    let s = c.wait();
    assert_eq!(s.exit_code, Some(3), "{s:?}");
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(c.log().contains("stdout F bye"));
    c.assert_cleaned_up(&s);

    // Ignores SIGTERM (pid-namespace init without a handler): SIGKILL after grace.
    let c = env.run(&["sleep", "1000"], Resources::default());
    let t = Instant::now();
    c.shim.stop(Duration::from_millis(300)).expect("stop");
    let s = c.wait();
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!((s.signal, s.exit_code), (Some(9), Some(137)), "{s:?}");
    c.assert_cleaned_up(&s);
}

#[test]
fn shim_is_detached_and_can_be_adopted() {
    let Some(env) = env() else { return };
    let c = env.run(&["sleep", "1000"], Resources::default());
    let status = fs::read_to_string(format!("/proc/{}/status", c.shim.shim_pid())).expect("status");
    let ppid: i32 = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("ppid");
    assert_ne!(
        ppid,
        std::process::id() as i32,
        "shim must not be our child"
    );
    let before = c.shim.state().expect("state");
    assert_eq!(before.status, Status::Running);

    // An agent restarting finds the same shim and container.
    let adopted = ShimHandle::adopt(&c.dir.shim_dir()).expect("adopt");
    assert_eq!(adopted.shim_pid(), c.shim.shim_pid());
    assert_eq!(
        adopted.state().expect("state").container_pid,
        before.container_pid
    );
    adopted.stop(Duration::from_millis(100)).expect("stop");
    let s = adopted.wait(Duration::from_secs(30)).expect("wait");
    assert_eq!(s.signal, Some(9));
    c.assert_cleaned_up(&s);
}

#[test]
fn external_kill_is_recorded_and_cleaned_up() {
    let Some(env) = env() else { return };
    let c = env.run(&["sleep", "1000"], Resources::default());
    let pid = c.shim.state().expect("state").container_pid.expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let s = c.wait();
    assert_eq!((s.signal, s.oom_killed), (Some(9), false));
    c.assert_cleaned_up(&s);
}

#[test]
fn missing_executable_is_a_start_error() {
    let Some(env) = env() else { return };
    let c = env.run(&["/no/such/program"], Resources::default());
    let s = c.wait();
    assert_eq!(s.status, Status::Exited);
    assert_ne!(s.exit_code, Some(0), "{s:?}");
    assert!(
        matches!(s.reason(), Some("StartError") | Some("Error")),
        "{s:?}"
    );
    c.assert_cleaned_up(&s);
}
