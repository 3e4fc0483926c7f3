//! The shim's files: its config (written by the agent) and its state
//! (written by the shim, read by the agent, also after an agent restart).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::runtime::container::rootfs::Overlay;

/// File names inside a shim's state directory.
pub const CONFIG_FILE: &str = "shim.json";
/// The state file.
pub const STATE_FILE: &str = "state.json";
/// The control socket.
pub const CONTROL_SOCKET: &str = "control.sock";
/// The shim's own diagnostics (its stderr).
pub const SHIM_LOG: &str = "shim.log";

/// What the agent tells a shim to run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimConfig {
    /// The runtime's container id (unique on the node).
    pub container_id: String,
    /// The OCI bundle (holds `config.json`; its root is the overlay target).
    pub bundle: PathBuf,
    /// libcontainer's state root (keep short: a socket lives below it).
    pub runtime_root: PathBuf,
    /// The overlay to mount before create and unmount after exit.
    pub overlay: Option<Overlay>,
    /// The container's log file (CRI format, rotated by size).
    pub log_path: PathBuf,
    /// Rotate the log when it would grow past this many bytes.
    pub log_max_bytes: u64,
    /// How many log files to keep, the live one included.
    pub log_max_files: u32,
    /// The container's cgroup path, for reading OOM kills.
    pub cgroups_path: PathBuf,
    /// Grace period for a stop that gives none (SIGTERM to the shim), in ms.
    pub default_grace_ms: u64,
    /// A VM pod: the engine process to run instead of a container.
    #[serde(default)]
    pub vm: Option<VmProcess>,
}

/// The monitor process of a VM pod: its serial console is on its stdio.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmProcess {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// The monitor's cgroup limits (its cgroup is `cgroups_path`).
    #[serde(default)]
    pub limits: Option<crate::runtime::vm::cgroup::MonitorLimits>,
    /// Written to the console once the monitor starts (a restored guest's
    /// new address; the pipe holds it until the guest reads).
    #[serde(default)]
    pub console_input: Option<String>,
}

/// Lifecycle of the container as the shim sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    /// Being created.
    Creating,
    /// The container's process is running.
    Running,
    /// It exited (or never started: see `error`); the shim is gone or going.
    Exited,
}

/// What the shim reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimState {
    /// The shim's pid.
    pub shim_pid: i32,
    /// The container's init pid once created.
    pub container_pid: Option<i32>,
    /// Lifecycle.
    pub status: Status,
    /// Exit code (128 + signal when killed by a signal, as shells report).
    pub exit_code: Option<i32>,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// The kernel's OOM killer killed a process of the container.
    pub oom_killed: bool,
    /// Why the container could not be created or started.
    pub error: Option<String>,
    /// Milliseconds since the epoch when it started.
    pub started_at_ms: Option<u64>,
    /// Milliseconds since the epoch when it exited.
    pub finished_at_ms: Option<u64>,
}

impl ShimState {
    /// A fresh state for a shim that is starting its container.
    pub fn creating(shim_pid: i32) -> Self {
        ShimState {
            shim_pid,
            container_pid: None,
            status: Status::Creating,
            exit_code: None,
            signal: None,
            oom_killed: false,
            error: None,
            started_at_ms: None,
            finished_at_ms: None,
        }
    }

    /// Kubernetes' terminated reason: `OOMKilled`, `Completed`, `Error`,
    /// or `StartError` when it never ran.
    pub fn reason(&self) -> Option<&'static str> {
        if self.status != Status::Exited {
            return None;
        }
        Some(match (self.oom_killed, &self.error, self.exit_code) {
            (true, _, _) => "OOMKilled",
            (false, Some(_), _) => "StartError",
            (false, None, Some(0)) => "Completed",
            _ => "Error",
        })
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Writes JSON atomically (temp file + rename), so readers never see half.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let data = serde_json::to_vec(value).map_err(io::Error::other)?;
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, data)?;
    fs::rename(&tmp, path)
}

/// Reads a JSON file.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<T> {
    let data = fs::read(path)?;
    serde_json::from_slice(&data).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_follow_kubernetes() {
        let mut s = ShimState::creating(1);
        assert_eq!(s.reason(), None);
        s.status = Status::Exited;
        s.exit_code = Some(0);
        assert_eq!(s.reason(), Some("Completed"));
        s.exit_code = Some(137);
        assert_eq!(s.reason(), Some("Error"));
        s.oom_killed = true;
        assert_eq!(s.reason(), Some("OOMKilled"));
        s.oom_killed = false;
        s.error = Some("exec: not found".into());
        assert_eq!(s.reason(), Some("StartError"));
    }
}
