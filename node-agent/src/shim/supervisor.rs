//! The shim process itself: creates and starts the container through the
//! runtime, pumps its output into the log, reaps it, records how it ended,
//! obeys stop requests, and cleans up cgroups and mounts after it.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{Pid, pipe2};

use super::control::{self, Request};
use super::logs::{self, RotatingLog};
use super::state::{self, ShimConfig, ShimState, Status};
use super::vm::{self, Console};
use crate::runtime::container::{ContainerRuntime, LibcontainerRuntime, Stdio, cgroup, rootfs};

/// Why the shim could not do its job (written to its own log).
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    /// Its config could not be read.
    #[error("reading shim config {path}: {source}")]
    Config {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Setting itself up failed.
    #[error("shim setup: {0}")]
    Setup(String),
}

struct Shared {
    state_dir: PathBuf,
    /// A VM pod's console (soft stops go there instead of SIGTERM).
    console: Option<Arc<Console>>,
    state: Mutex<ShimState>,
    changed: Condvar,
    waiters: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, ShimState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut ShimState)) {
        let mut s = self.lock();
        f(&mut s);
        // The agent reads this file after a restart: losing it would orphan
        // the container, so failures are worth a line in the shim log.
        if let Err(e) = state::write_json(&self.state_dir.join(state::STATE_FILE), &*s) {
            eprintln!("drover-shim: writing state: {e}");
        }
        self.changed.notify_all();
    }

    fn wait_exited(&self, timeout: Option<Duration>) -> ShimState {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut s = self.lock();
        while s.status != Status::Exited {
            match deadline {
                None => s = self.changed.wait(s).unwrap_or_else(|p| p.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    s = self
                        .changed
                        .wait_timeout(s, left)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
        s.clone()
    }
}

/// The write end of the self-pipe SIGTERM handlers write to.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_sigterm(_: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; the buffer is a valid byte.
        unsafe {
            libc::write(fd, [1u8].as_ptr().cast(), 1);
        }
    }
}

/// Runs the shim for the container configured in `state_dir`.
/// `ready` is written one byte once the container runs (or closed on failure).
pub fn run(state_dir: &Path, ready: Option<OwnedFd>) -> Result<i32, ShimError> {
    let config_path = state_dir.join(state::CONFIG_FILE);
    let config: ShimConfig =
        state::read_json(&config_path).map_err(|source| ShimError::Config {
            path: config_path.clone(),
            source,
        })?;
    // Orphans of the container reparent to us, so we reap everything.
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    let console = config.vm.as_ref().map(|_| Arc::new(Console::default()));
    let shared = Arc::new(Shared {
        state_dir: state_dir.to_path_buf(),
        console: console.clone(),
        state: Mutex::new(ShimState::creating(std::process::id() as i32)),
        changed: Condvar::new(),
        waiters: AtomicUsize::new(0),
    });
    shared.update(|_| {});

    let runtime = LibcontainerRuntime::new(&config.runtime_root);
    let started = match (&config.vm, &console) {
        (Some(process), Some(console)) => vm::start(&config, process, console),
        _ => start_container(&config, &runtime),
    };
    let (pid, pumps) = match started {
        Ok(v) => v,
        Err(reason) => {
            cleanup(&config, &runtime);
            shared.update(|s| {
                s.status = Status::Exited;
                s.error = Some(reason);
                s.finished_at_ms = Some(state::now_ms());
            });
            drop(ready);
            return Ok(1);
        }
    };
    shared.update(|s| {
        s.status = Status::Running;
        s.container_pid = Some(pid.as_raw());
        s.started_at_ms = Some(state::now_ms());
    });
    let listener = serve_control(&shared, pid);
    watch_sigterm(&shared, pid, Duration::from_millis(config.default_grace_ms));
    // Only now: the launcher may send a stop as soon as it hears back.
    if let Some(fd) = ready {
        let _ = File::from(fd).write_all(b"1");
    }

    let (mut exit_code, mut signal) = reap(pid);
    let oom_killed = cgroup::oom_kill_count(&config.cgroups_path).unwrap_or(0) > 0;
    cleanup(&config, &runtime);
    for p in pumps {
        let _ = p.join();
    }
    let mut error = None;
    if let Some(console) = &console {
        (exit_code, signal, error) = console.outcome((exit_code, signal));
    }
    shared.update(|s| {
        s.status = Status::Exited;
        s.exit_code = Some(exit_code);
        s.signal = signal;
        s.error = error;
        s.oom_killed = oom_killed;
        s.finished_at_ms = Some(state::now_ms());
    });
    // Let blocked `wait` callers get their answer before we go.
    let deadline = Instant::now() + Duration::from_secs(1);
    while shared.waiters.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
    drop(listener);
    let _ = fs::remove_file(state_dir.join(state::CONTROL_SOCKET));
    Ok(0)
}

type Pumps = Vec<thread::JoinHandle<()>>;

fn start_container(
    config: &ShimConfig,
    runtime: &LibcontainerRuntime,
) -> Result<(Pid, Pumps), String> {
    if let Some(overlay) = &config.overlay {
        rootfs::mount_overlay(overlay).map_err(|e| e.to_string())?;
    }
    let log = RotatingLog::open(&config.log_path, config.log_max_bytes, config.log_max_files)
        .map_err(|e| format!("opening log {}: {e}", config.log_path.display()))?;
    let log = Arc::new(Mutex::new(log));
    let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
    let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| e.to_string())?;
    let stdin = File::open("/dev/null").map_err(|e| e.to_string())?;
    let stdio = Stdio {
        stdin: Some(stdin.into()),
        stdout: out_w,
        stderr: err_w,
    };
    // The write ends move into the runtime and are closed when create
    // returns, so the pumps see EOF once the container's processes are gone.
    let pid = runtime
        .create(&config.container_id, &config.bundle, stdio)
        .map_err(|e| e.to_string())?;
    let pumps = vec![
        spawn_pump(out_r, "stdout", &log),
        spawn_pump(err_r, "stderr", &log),
    ];
    if let Err(e) = runtime.start(&config.container_id) {
        let _ = signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        let _ = reap(Pid::from_raw(pid));
        return Err(e.to_string());
    }
    Ok((Pid::from_raw(pid), pumps))
}

fn spawn_pump(
    fd: OwnedFd,
    stream: &'static str,
    log: &Arc<Mutex<RotatingLog>>,
) -> thread::JoinHandle<()> {
    let log = Arc::clone(log);
    thread::spawn(move || logs::pump(File::from(fd), stream, &log))
}

/// Reaps children until the container's init exits; returns its exit code
/// (128 + signal for a signal death) and the signal.
fn reap(pid: Pid) -> (i32, Option<i32>) {
    loop {
        match waitpid(None::<Pid>, None) {
            Ok(WaitStatus::Exited(p, code)) if p == pid => return (code, None),
            Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => {
                return (128 + sig as i32, Some(sig as i32));
            }
            Ok(_) | Err(Errno::EINTR) => continue,
            Err(_) => return (255, None),
        }
    }
}

fn cleanup(config: &ShimConfig, runtime: &LibcontainerRuntime) {
    if config.vm.is_some() {
        // A monitor leaves its cgroup (empty now) and its run dir.
        if !config.cgroups_path.as_os_str().is_empty() {
            crate::runtime::vm::cgroup::remove(&config.cgroups_path);
        }
        return;
    }
    if let Err(e) = runtime.delete(&config.container_id) {
        eprintln!("drover-shim: {e}");
    }
    if let Some(overlay) = &config.overlay
        && let Err(e) = rootfs::unmount(&overlay.target)
    {
        eprintln!("drover-shim: {e}");
    }
}

/// SIGTERM, then SIGKILL if the container outlives the grace period. The
/// init of a pid namespace ignores SIGTERM unless it handles it, so the
/// SIGKILL is what ends many containers, as with Docker.
fn stop(shared: &Arc<Shared>, pid: Pid, grace: Duration) {
    let shared = Arc::clone(shared);
    thread::spawn(move || {
        if shared.lock().status == Status::Exited {
            return;
        }
        // A VM's init hears the stop on its console and SIGTERMs the
        // workload; a container's init gets SIGTERM.
        if !shared.console.as_ref().is_some_and(|c| c.request_stop()) {
            let _ = signal::kill(pid, Signal::SIGTERM);
        }
        if shared.wait_exited(Some(grace)).status != Status::Exited {
            let _ = signal::kill(pid, Signal::SIGKILL);
        }
    });
}

fn watch_sigterm(shared: &Arc<Shared>, pid: Pid, grace: Duration) {
    let Ok((r, w)) = pipe2(OFlag::O_CLOEXEC) else {
        return;
    };
    SIGNAL_PIPE.store(w.as_raw_fd(), Ordering::Relaxed);
    std::mem::forget(w); // lives as long as the process, for the handler
    let action = SigAction::new(
        SigHandler::Handler(on_sigterm),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    // SAFETY: the handler only calls write(2), which is async-signal-safe.
    if unsafe { signal::sigaction(Signal::SIGTERM, &action) }.is_err() {
        return;
    }
    let shared = Arc::clone(shared);
    thread::spawn(move || {
        let mut byte = [0u8; 1];
        let mut file = File::from(r);
        while std::io::Read::read(&mut file, &mut byte).is_ok_and(|n| n > 0) {
            stop(&shared, pid, grace);
        }
    });
}

/// Serves the control socket from a thread; the returned listener keeps
/// the socket open until the shim drops it on its way out.
fn serve_control(shared: &Arc<Shared>, pid: Pid) -> Option<UnixListener> {
    let path = shared.state_dir.join(state::CONTROL_SOCKET);
    let _ = fs::remove_file(&path);
    let listener = match UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("drover-shim: control socket {}: {e}", path.display());
            return None;
        }
    };
    let Ok(accepting) = listener.try_clone() else {
        return Some(listener);
    };
    let shared = Arc::clone(shared);
    thread::spawn(move || {
        for conn in accepting.incoming().flatten() {
            let shared = Arc::clone(&shared);
            shared.waiters.fetch_add(1, Ordering::SeqCst);
            thread::spawn(move || {
                handle(&shared, pid, conn);
                shared.waiters.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    Some(listener)
}

fn handle(shared: &Arc<Shared>, pid: Pid, conn: UnixStream) {
    let mut line = String::new();
    let Ok(read_half) = conn.try_clone() else {
        return;
    };
    if BufReader::new(read_half).read_line(&mut line).is_err() {
        return;
    }
    let answer = match control::parse_request(&line) {
        Some(Request::State) => serde_json::to_string(&*shared.lock()),
        Some(Request::Wait) => serde_json::to_string(&shared.wait_exited(None)),
        Some(Request::Stop(grace)) => {
            stop(shared, pid, grace);
            Ok("\"ok\"".to_string())
        }
        None => Ok("\"bad request\"".to_string()),
    };
    if let Ok(mut text) = answer {
        text.push('\n');
        let mut conn = conn;
        let _ = conn.write_all(text.as_bytes());
    }
}

/// Standby: reads the state directory from stdin, then points stdin at
/// /dev/null and stderr at the shim log in that directory.
pub fn await_assignment() -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let mut line = Vec::new();
    let mut stdin = std::io::stdin().lock();
    stdin.read_until(b'\n', &mut line).ok()?;
    drop(stdin);
    if line.pop() != Some(b'\n') || line.is_empty() {
        return None;
    }
    let dir = PathBuf::from(std::ffi::OsString::from_vec(line));
    if let Ok(null) = File::open("/dev/null") {
        let _ = nix::unistd::dup2(null.as_raw_fd(), 0);
    }
    if let Ok(log) = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(state::SHIM_LOG))
    {
        let _ = nix::unistd::dup2(log.as_raw_fd(), 2);
    }
    Some(dir)
}

/// Adopts an inherited fd number (the ready pipe) as an owned fd.
pub fn inherited_fd(raw: i32) -> Option<OwnedFd> {
    // Only take fds that are actually open, so a wrong number cannot close
    // something else later.
    // SAFETY: fcntl(F_GETFD) only inspects the descriptor.
    let open = unsafe { libc::fcntl(raw, libc::F_GETFD) } >= 0;
    // SAFETY: the fd is open and was handed to us to own by our parent.
    open.then(|| unsafe { OwnedFd::from_raw_fd(raw) })
}
