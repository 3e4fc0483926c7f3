//! A blocking QMP client on a VM's socket in its run directory.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::qmp::{self, QmpError, Reply};

/// Talking to QEMU failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("the VM's QMP socket {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Qmp(#[from] QmpError),
    #[error("QMP closed the connection")]
    Closed,
    #[error("{0} did not finish within {1:?}")]
    Timeout(&'static str, Duration),
}

/// A negotiated QMP connection.
pub struct QmpClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    path: String,
}

impl QmpClient {
    /// Connects to `dir/qmp.sock` (through `/proc/self/fd`: a run
    /// directory can be longer than a socket path may be) and negotiates.
    pub fn connect(dir: &Path) -> Result<QmpClient, ClientError> {
        let path = dir.join(qmp::SOCKET).display().to_string();
        let io = |source| ClientError::Io {
            path: path.clone(),
            source,
        };
        let dir_fd = std::fs::File::open(dir).map_err(io)?;
        use std::os::fd::AsRawFd;
        let short = format!("/proc/self/fd/{}/{}", dir_fd.as_raw_fd(), qmp::SOCKET);
        let stream = UnixStream::connect(&short).map_err(io)?;
        drop(dir_fd);
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        let mut c = QmpClient {
            reader: BufReader::new(stream),
            writer,
            path,
        };
        match c.next_reply()? {
            Reply::Greeting => {}
            other => {
                return Err(
                    QmpError::NotJson(format!("expected a greeting, got {other:?}")).into(),
                );
            }
        }
        c.execute("qmp_capabilities", None)?;
        Ok(c)
    }

    fn next_reply(&mut self) -> Result<Reply, ClientError> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|source| ClientError::Io {
                path: self.path.clone(),
                source,
            })?;
        if n == 0 {
            return Err(ClientError::Closed);
        }
        Ok(qmp::parse_reply(&line)?)
    }

    /// Runs a command; its `return`, events before it skipped.
    pub fn execute(&mut self, name: &str, args: Option<Value>) -> Result<Value, ClientError> {
        self.send(&qmp::command(name, args), name)
    }

    /// Sends a prepared command line; its `return`.
    pub fn send(&mut self, line: &str, name: &str) -> Result<Value, ClientError> {
        self.writer
            .write_all(line.as_bytes())
            .map_err(|source| ClientError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.await_return(name)
    }

    fn await_return(&mut self, name: &str) -> Result<Value, ClientError> {
        loop {
            match self.next_reply()? {
                Reply::Return(v) => return Ok(v),
                Reply::Error { class, desc } => {
                    return Err(QmpError::Command {
                        command: name.to_string(),
                        class,
                        desc,
                    }
                    .into());
                }
                Reply::Event(_) | Reply::Greeting => {}
            }
        }
    }

    /// Hands QEMU an open file as `name` (`getfd`, the descriptor passed
    /// along with the command), for a `fd:NAME` migration: QEMU writes it
    /// itself, so "completed" means the whole state is in the file.
    pub fn send_fd(&mut self, name: &str, file: &std::fs::File) -> Result<(), ClientError> {
        use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
        use std::os::fd::AsRawFd;
        let line = qmp::command("getfd", Some(serde_json::json!({ "fdname": name })));
        let fds = [file.as_raw_fd()];
        let sent = sendmsg::<()>(
            self.writer.as_raw_fd(),
            &[std::io::IoSlice::new(line.as_bytes())],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        );
        match sent {
            Ok(n) if n == line.len() => {}
            Ok(_) => return Err(ClientError::Closed),
            Err(e) => {
                return Err(ClientError::Io {
                    path: self.path.clone(),
                    source: e.into(),
                });
            }
        }
        self.await_return("getfd").map(drop)
    }

    /// Polls `query-migrate` until the migration ends.
    pub fn wait_migration(&mut self, timeout: Duration) -> Result<(), ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            match qmp::migration_status(&self.execute("query-migrate", None)?) {
                qmp::MigrationStatus::Completed => return Ok(()),
                qmp::MigrationStatus::Failed(why) => {
                    return Err(QmpError::Command {
                        command: "migrate".into(),
                        class: "MigrationFailed".into(),
                        desc: why,
                    }
                    .into());
                }
                qmp::MigrationStatus::Active if Instant::now() > deadline => {
                    return Err(ClientError::Timeout("the migration", timeout));
                }
                qmp::MigrationStatus::Active => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// The VM's run state (`running`, `paused`, `inmigrate`…).
    pub fn run_state(&mut self) -> Result<String, ClientError> {
        let ret = self.execute("query-status", None)?;
        Ok(qmp::run_state(&ret).unwrap_or("unknown").to_string())
    }
}
