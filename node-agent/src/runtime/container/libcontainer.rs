//! [`ContainerRuntime`] on youki's libcontainer, in-process (it forks: call
//! it from the shim, never from the async agent).

use std::path::{Path, PathBuf};

use libcontainer::config::YoukiConfig;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::signal::Signal;

use super::{ContainerRuntime, RuntimeError, Stdio, cgroup};

/// libcontainer with its state under `root` (one directory per container).
#[derive(Clone, Debug)]
pub struct LibcontainerRuntime {
    root: PathBuf,
}

impl LibcontainerRuntime {
    /// A runtime keeping state under `root` (created on demand). Keep the
    /// path short: a unix socket lives below it (108-byte limit).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LibcontainerRuntime { root: root.into() }
    }

    fn load(&self, id: &str) -> Result<Container, String> {
        Container::load(self.root.join(id)).map_err(|e| e.to_string())
    }
}

impl ContainerRuntime for LibcontainerRuntime {
    fn create(&self, id: &str, bundle: &Path, stdio: Stdio) -> Result<i32, RuntimeError> {
        let fail = |reason: String| RuntimeError::Create {
            id: id.to_string(),
            reason,
        };
        std::fs::create_dir_all(&self.root).map_err(|e| fail(e.to_string()))?;
        let mut builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
            .with_root_path(self.root.clone())
            .map_err(|e| fail(e.to_string()))?
            .with_stdout(stdio.stdout)
            .with_stderr(stdio.stderr);
        if let Some(stdin) = stdio.stdin {
            builder = builder.with_stdin(stdin);
        }
        let container = builder
            .validate_id()
            .map_err(|e| fail(e.to_string()))?
            .as_init(bundle)
            .with_systemd(false)
            .with_detach(true)
            .build()
            .map_err(|e| fail(e.to_string()))?;
        container
            .pid()
            .map(|p| p.as_raw())
            .ok_or_else(|| fail("the runtime reported no init pid".into()))
    }

    fn start(&self, id: &str) -> Result<(), RuntimeError> {
        let fail = |reason: String| RuntimeError::Start {
            id: id.to_string(),
            reason,
        };
        self.load(id)
            .map_err(fail)?
            .start()
            .map_err(|e| fail(e.to_string()))
    }

    fn kill(&self, id: &str, signal: Signal, all: bool) -> Result<(), RuntimeError> {
        let fail = |reason: String| RuntimeError::Kill {
            id: id.to_string(),
            reason,
        };
        self.load(id)
            .map_err(fail)?
            .kill(signal, all)
            .map_err(|e| fail(e.to_string()))
    }

    fn delete(&self, id: &str) -> Result<(), RuntimeError> {
        let fail = |reason: String| RuntimeError::Delete {
            id: id.to_string(),
            reason,
        };
        let dir = self.root.join(id);
        if !dir.exists() {
            return Ok(());
        }
        let mut container = self.load(id).map_err(fail)?;
        if fast_delete(&mut container, &dir) {
            return Ok(());
        }
        container.delete(true).map_err(|e| fail(e.to_string()))
    }
}

/// Deletes a container whose processes are all gone without libcontainer's
/// general path, which re-parses /proc/self/mountinfo once per cgroup v1
/// controller to find hierarchies that a directory listing finds at once
/// (about half of delete's time on a v1 host). Only when nothing else is
/// owed: the init is dead and there are no poststop hooks to run. Returns
/// false to ask for the general path.
fn fast_delete(container: &mut Container, dir: &Path) -> bool {
    if container.refresh_status().is_err() || container.status() != ContainerStatus::Stopped {
        return false;
    }
    let Ok(config) = YoukiConfig::load(dir) else {
        return false;
    };
    if config
        .hooks
        .as_ref()
        .is_some_and(|h| h.poststop().is_some())
    {
        return false;
    }
    for cgroup in cgroup::existing_dirs(&config.cgroup_path) {
        if !remove_cgroup_dir(&cgroup) {
            return false;
        }
    }
    std::fs::remove_dir_all(dir).is_ok()
}

/// rmdir of a cgroup; the kernel may still be releasing the last exited
/// task for a moment (EBUSY).
fn remove_cgroup_dir(path: &Path) -> bool {
    for _ in 0..100 {
        match std::fs::remove_dir(path) {
            Ok(()) => return true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return true,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            Err(_) => return false,
        }
    }
    false
}
