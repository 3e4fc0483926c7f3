//! [`ContainerRuntime`] on youki's libcontainer, in-process (it forks: call
//! it from the shim, never from the async agent).

use std::path::{Path, PathBuf};

use libcontainer::container::Container;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::signal::Signal;

use super::{ContainerRuntime, RuntimeError, Stdio};

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
        if !self.root.join(id).exists() {
            return Ok(());
        }
        self.load(id)
            .map_err(fail)?
            .delete(true)
            .map_err(|e| fail(e.to_string()))
    }
}
