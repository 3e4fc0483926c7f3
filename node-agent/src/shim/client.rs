//! The agent's side of a shim: launch one (detached, so it outlives the
//! agent), adopt one after an agent restart, ask it to stop, wait for it.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::unistd::pipe2;

use super::control::{Request, format_request};
use super::state::{self, ShimConfig, ShimState, Status};

/// Talking to a shim failed.
#[derive(Debug, thiserror::Error)]
pub enum ShimClientError {
    /// The shim binary could not be started.
    #[error("launching shim {exe}: {source}")]
    Spawn { exe: PathBuf, source: io::Error },
    /// The shim did not report within the deadline.
    #[error("shim in {0} did not answer in time")]
    Timeout(PathBuf),
    /// Its files could not be read or written.
    #[error("shim state in {path}: {source}")]
    State { path: PathBuf, source: io::Error },
    /// Its control socket failed.
    #[error("shim control socket in {path}: {source}")]
    Control { path: PathBuf, source: io::Error },
}

/// How to start shims: a binary and the arguments selecting its shim entry
/// point (for `drover`: the hidden `shim` subcommand).
///
/// Starting a shim means fork + exec of the binary, dynamic loading and a
/// daemonizing fork: milliseconds that need not be on a container's start
/// path. With `prespawn`, one spare shim is always waiting, already
/// detached, for the state directory of the next container.
#[derive(Debug)]
pub struct ShimLauncher {
    exe: PathBuf,
    args: Vec<OsString>,
    start_timeout: Duration,
    prespawn: bool,
    spare: Arc<Mutex<Option<Spare>>>,
}

/// A detached shim waiting for its assignment on a pipe.
#[derive(Debug)]
struct Spare {
    assign: File,
    ready: OwnedFd,
}

impl ShimLauncher {
    /// Launches `exe ARGS… --standby …` shims; no spare kept.
    pub fn new(exe: impl Into<PathBuf>, args: Vec<OsString>) -> Self {
        ShimLauncher {
            exe: exe.into(),
            args,
            start_timeout: Duration::from_secs(60),
            prespawn: false,
            spare: Arc::new(Mutex::new(None)),
        }
    }

    /// Keeps a spare shim ready (and starts the first one now).
    pub fn with_prespawn(mut self) -> Self {
        self.prespawn = true;
        if let Ok(spare) = spawn_spare(&self.exe, &self.args) {
            *lock(&self.spare) = Some(spare);
        }
        self
    }

    /// How long create + start may take before [`ShimLauncher::launch`] gives up.
    pub fn with_start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// Writes the config into `state_dir`, hands it to a detached shim and
    /// returns once the container runs or has failed to start (then its
    /// state says why: `status: Exited` with `error`).
    pub fn launch(
        &self,
        state_dir: &Path,
        config: &ShimConfig,
    ) -> Result<ShimHandle, ShimClientError> {
        let st = |source| ShimClientError::State {
            path: state_dir.to_path_buf(),
            source,
        };
        fs::create_dir_all(state_dir).map_err(st)?;
        for stale in [state::STATE_FILE, state::CONTROL_SOCKET] {
            let _ = fs::remove_file(state_dir.join(stale));
        }
        state::write_json(&state_dir.join(state::CONFIG_FILE), config).map_err(st)?;
        let mut assignment = state_dir.as_os_str().as_bytes().to_vec();
        assignment.push(b'\n');

        // A spare may have died (killed, or the machine was busy); one fresh try.
        let taken = lock(&self.spare).take();
        let spare = match taken {
            Some(spare) if (&spare.assign).write_all(&assignment).is_ok() => spare,
            _ => {
                let mut spare = spawn_spare(&self.exe, &self.args).map_err(|source| {
                    ShimClientError::Spawn {
                        exe: self.exe.clone(),
                        source,
                    }
                })?;
                spare.assign.write_all(&assignment).map_err(st)?;
                spare
            }
        };
        drop(spare.assign);
        let millis = u16::try_from(self.start_timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(spare.ready.as_fd(), PollFlags::POLLIN)];
        let ready = poll(&mut fds, PollTimeout::from(millis)).map_err(|e| st(e.into()))?;
        if ready == 0 {
            return Err(ShimClientError::Timeout(state_dir.to_path_buf()));
        }
        // One byte: running. EOF: it failed, and its state says why.
        let _ = File::from(spare.ready).read(&mut [0u8; 1]);
        // Refill only now, so the next spare's exec does not compete for CPU
        // with this container's creation.
        if self.prespawn {
            let (slot, exe, args) = (Arc::clone(&self.spare), self.exe.clone(), self.args.clone());
            std::thread::spawn(move || {
                if let Ok(next) = spawn_spare(&exe, &args) {
                    lock(&slot).get_or_insert(next);
                }
            });
        }

        ShimHandle::adopt(state_dir)
    }
}

/// A running (or finished) shim, known by its state directory.
#[derive(Clone, Debug)]
pub struct ShimHandle {
    state_dir: PathBuf,
    shim_pid: i32,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Starts a detached shim in standby: it reads its state directory from
/// stdin and reports readiness on fd 3.
/// mimalloc's option that stops it from madvising huge pages (it then also
/// sets `PR_SET_THP_DISABLE`, which children would inherit).
pub(crate) const THP_OPTION: &str = "MIMALLOC_ALLOW_THP";

fn spawn_spare(exe: &Path, args: &[OsString]) -> io::Result<Spare> {
    let (assign_r, assign_w) = pipe2(OFlag::O_CLOEXEC)?;
    let (ready_r, ready_w) = pipe2(OFlag::O_CLOEXEC)?;
    let raw_w = ready_w.as_raw_fd();
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .args(["--standby", "--ready-fd", "3", "--daemonize"])
        // The binary's allocator (mimalloc) asks for transparent huge pages,
        // so a fresh shim zeroes 2 MiB pages it barely uses: a fifth of the
        // CPU of a 100-pod burst. The shim undoes this for what it starts
        // (`shim_main`).
        .env(THP_OPTION, "0")
        .stdin(Stdio::from(assign_r))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: only dup2/fcntl, both async-signal-safe, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if raw_w == 3 {
                // dup2 onto itself keeps close-on-exec; clear it instead.
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(raw_w, 3) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    drop(cmd);
    drop(ready_w);
    // The first process forks the real shim and exits at once.
    child.wait()?;
    Ok(Spare {
        assign: File::from(assign_w),
        ready: ready_r,
    })
}

impl ShimHandle {
    /// Re-attaches to the shim whose state is in `state_dir` (after an agent restart).
    pub fn adopt(state_dir: &Path) -> Result<Self, ShimClientError> {
        let s: ShimState =
            state::read_json(&state_dir.join(state::STATE_FILE)).map_err(|source| {
                ShimClientError::State {
                    path: state_dir.to_path_buf(),
                    source,
                }
            })?;
        Ok(ShimHandle {
            state_dir: state_dir.to_path_buf(),
            shim_pid: s.shim_pid,
        })
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The shim's pid.
    pub fn shim_pid(&self) -> i32 {
        self.shim_pid
    }

    /// The last state the shim wrote.
    pub fn state(&self) -> Result<ShimState, ShimClientError> {
        state::read_json(&self.state_dir.join(state::STATE_FILE)).map_err(|source| {
            ShimClientError::State {
                path: self.state_dir.clone(),
                source,
            }
        })
    }

    /// Whether the shim process still exists.
    pub fn is_alive(&self) -> bool {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.shim_pid), None).is_ok()
    }

    fn request(&self, r: &Request, timeout: Option<Duration>) -> Result<String, io::Error> {
        let mut conn = UnixStream::connect(self.state_dir.join(state::CONTROL_SOCKET))?;
        conn.set_read_timeout(timeout)?;
        conn.write_all(format_request(r).as_bytes())?;
        let mut line = String::new();
        BufReader::new(conn).read_line(&mut line)?;
        if line.is_empty() {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        Ok(line)
    }

    /// Asks the shim to stop the container: SIGTERM, SIGKILL after `grace`.
    /// Returns at once; [`ShimHandle::wait`] for the end.
    pub fn stop(&self, grace: Duration) -> Result<(), ShimClientError> {
        match self.request(&Request::Stop(grace), Some(Duration::from_secs(5))) {
            Ok(_) => Ok(()),
            // No socket: the shim has finished (or is finishing) already.
            Err(_)
                if self.state().is_ok_and(|s| s.status == Status::Exited) || !self.is_alive() =>
            {
                Ok(())
            }
            Err(source) => Err(ShimClientError::Control {
                path: self.state_dir.clone(),
                source,
            }),
        }
    }

    /// Waits until the container has exited and its cleanup is done.
    pub fn wait(&self, timeout: Duration) -> Result<ShimState, ShimClientError> {
        let deadline = Instant::now() + timeout;
        if let Ok(line) = self.request(&Request::Wait, Some(timeout))
            && let Ok(s) = serde_json::from_str::<ShimState>(&line)
        {
            return Ok(s);
        }
        // The shim is gone or going: its state file has the final word.
        loop {
            let s = self.state()?;
            if s.status == Status::Exited {
                return Ok(s);
            }
            if !self.is_alive() || Instant::now() >= deadline {
                return Err(ShimClientError::Timeout(self.state_dir.clone()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
