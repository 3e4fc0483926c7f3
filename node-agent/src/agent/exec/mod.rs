//! Running a command in a container from the agent: the exec helper
//! (`drover shim exec`, [`crate::shim::exec`]) is started as a child
//! process, since joining a container forks and must not happen inside
//! the async agent. Used by exec probes and by `drover exec`.

pub mod serve;
pub mod wire;

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Running a command in a container failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The helper could not be started.
    #[error("starting the exec helper {exe}: {source}")]
    Spawn {
        exe: PathBuf,
        source: std::io::Error,
    },
    /// The command ran past its deadline (it was killed).
    #[error("command timed out after {0:?}")]
    Timeout(Duration),
    /// Waiting for it failed.
    #[error("waiting for the exec helper: {0}")]
    Wait(std::io::Error),
}

/// How to reach one running container.
#[derive(Clone, Debug)]
pub struct ExecTarget {
    /// The binary the helper runs as (`drover`).
    pub exe: PathBuf,
    /// The arguments selecting the shim (`["shim"]`).
    pub shim_args: Vec<OsString>,
    /// libcontainer's state root.
    pub runtime_root: PathBuf,
    /// The container's runtime id.
    pub container_id: String,
}

/// What a captured command printed and how it ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code (128 + signal when killed).
    pub exit_code: i32,
    /// stdout and stderr, interleaved, at most 10 KiB.
    pub output: Vec<u8>,
}

const MAX_OUTPUT: usize = 10 << 10;

impl ExecTarget {
    /// The helper's command line for `command`.
    pub fn command(&self, command: &[String], tty: bool) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.args(&self.shim_args)
            .arg("exec")
            .arg("--root")
            .arg(&self.runtime_root)
            .arg("--id")
            .arg(&self.container_id);
        if tty {
            cmd.arg("--tty");
        }
        cmd.arg("--").args(command);
        cmd
    }

    /// Runs `command` to its end (blocking), killing it after `timeout`.
    pub fn run_captured(
        &self,
        command: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, ExecError> {
        let (reader, writer) = std::io::pipe().map_err(|source| ExecError::Spawn {
            exe: self.exe.clone(),
            source,
        })?;
        let writer2 = writer.try_clone().map_err(|source| ExecError::Spawn {
            exe: self.exe.clone(),
            source,
        })?;
        let mut child = self
            .command(command, false)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(writer2)
            .spawn()
            .map_err(|source| ExecError::Spawn {
                exe: self.exe.clone(),
                source,
            })?;
        let pump = std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = reader.take(MAX_OUTPUT as u64).read_to_end(&mut out);
            out
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait().map_err(ExecError::Wait)? {
                Some(status) => break status,
                None if Instant::now() >= deadline => {
                    // SIGTERM: the helper kills the command, then exits.
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0)),
                        nix::sys::signal::Signal::SIGTERM,
                    );
                    let _ = child.wait();
                    return Err(ExecError::Timeout(timeout));
                }
                None => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        // The command's own children may hold the pipe: do not wait for them.
        let output = if pump.is_finished() {
            pump.join().unwrap_or_default()
        } else {
            let wait_until = Instant::now() + Duration::from_millis(100);
            while !pump.is_finished() && Instant::now() < wait_until {
                std::thread::sleep(Duration::from_millis(5));
            }
            if pump.is_finished() {
                pump.join().unwrap_or_default()
            } else {
                Vec::new()
            }
        };
        Ok(ExecOutput {
            exit_code: exit_code(status),
            output,
        })
    }
}

/// A child's exit code, shell style.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}
