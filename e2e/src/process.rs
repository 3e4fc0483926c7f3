//! A process running inside a lab host: `drover server`, `drover agent`…

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use crate::lab::Host;

/// A child process in a host's namespace; SIGKILLed on drop.
pub struct HostProcess {
    pub name: String,
    child: Child,
    /// stderr lines as they arrive (also echoed to the test's stderr).
    lines: Receiver<String>,
}

impl HostProcess {
    /// Starts `program args…` inside `host` (`ip netns exec`, which execs,
    /// so the pid is the program's own).
    pub fn spawn(name: &str, host: &Host, program: &Path, args: &[String]) -> HostProcess {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &host.netns]);
        Self::start(name, cmd, program, args)
    }

    /// As [`HostProcess::spawn`], but entering only the host's network
    /// namespace (`nsenter --net`): `ip netns exec` remounts /sys, which
    /// hides the cgroup hierarchy an agent running containers needs.
    pub fn spawn_net_only(name: &str, host: &Host, program: &Path, args: &[String]) -> HostProcess {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", host.netns))
            .arg("--");
        Self::start(name, cmd, program, args)
    }

    fn start(name: &str, mut cmd: Command, program: &Path, args: &[String]) -> HostProcess {
        let mut child = cmd
            .arg(program)
            .args(args)
            .env("RUST_LOG", "info,h2=warn,hyper=warn,tower=warn,sled=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {name}: {e}"));
        let (tx, lines) = channel();
        if let Some(stderr) = child.stderr.take() {
            let label = name.to_string();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("[{label}] {line}");
                    let _ = tx.send(line);
                }
            });
        }
        HostProcess {
            name: name.to_string(),
            child,
            lines,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Waits for a stderr line containing `marker` and returns it.
    pub fn wait_for_line(&self, marker: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(marker) => return line,
                Ok(_) => {}
                Err(_) => panic!("{}: no line with {marker:?} within {timeout:?}", self.name),
            }
        }
    }

    /// `kill -9`, as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGSTOP: the process is frozen but its sockets stay open.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// SIGCONT after [`HostProcess::pause`].
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid(), sig) };
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        self.resume();
        self.kill9();
    }
}
