//! Starts the real `drover server` binary on an ephemeral port for tests.

#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod pod_net;
pub mod vm;

pub fn drover_bin() -> &'static str {
    env!("CARGO_BIN_EXE_drover")
}

/// Builds the example busybox image (`examples/images/build-busybox.sh`)
/// as an OCI layout in `dir/layout` and returns its path.
pub fn build_busybox(dir: &Path) -> PathBuf {
    let layout = dir.join("layout");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/images/build-busybox.sh");
    let built = Command::new("sh").arg(&script).arg(&layout).status();
    assert!(built.is_ok_and(|s| s.success()), "build-busybox.sh failed");
    layout
}

/// `curl -sf URL` with a 2 s limit: the body, or `None` on any failure.
pub fn curl(url: &str) -> Option<String> {
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "2", url])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A running server process; killed (SIGKILL) on drop.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub data_dir: PathBuf,
}

impl Server {
    /// Starts a server on 127.0.0.1:0 and waits for its "listening" line.
    pub fn start(data_dir: &Path) -> Server {
        Server::start_with(data_dir, &[])
    }

    /// [`Server::start`] with extra `drover server` flags.
    pub fn start_with(data_dir: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(drover_bin())
            .args(["server", "--data-dir"])
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn drover server");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("drover server listening on ") {
                    // A replicated member adds " (raft peers on ...)".
                    let url = rest.split_whitespace().next().unwrap_or(rest);
                    let _ = tx.send(Ok(url.to_string()));
                } else if line.starts_with("error") {
                    let _ = tx.send(Err(line));
                }
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(url)) => url,
            Ok(Err(e)) => panic!("server failed: {e}"),
            Err(_) => panic!("server did not start within 30s"),
        };
        Server {
            child,
            url,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// `kill -9`, as a crash would.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Runs a `drover` command against this server.
    pub fn drover(&self, args: &[&str]) -> Output {
        self.drover_stdin(args, None)
    }

    pub fn drover_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(drover_bin());
        cmd.args(args).env("DROVER_SERVER", &self.url);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn drover");
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            use std::io::Write;
            pipe.write_all(text.as_bytes()).expect("write stdin");
        }
        child.wait_with_output().expect("drover output")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "command failed: {}\nstdout: {}",
        stderr(&o),
        stdout(&o)
    );
    stdout(&o)
}

/// Asserts failure and returns stderr.
pub fn fails(o: Output) -> String {
    assert!(
        !o.status.success(),
        "command unexpectedly succeeded: {}",
        stdout(&o)
    );
    stderr(&o)
}

/// Runs `drover ARGS` with the client config at `config`.
pub fn drover_as(config: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write;
    let mut child = Command::new(drover_bin())
        .args(args)
        .env("DROVER_CONFIG", config)
        .env_remove("DROVER_SERVER")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn drover");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).expect("stdin");
    }
    child.wait_with_output().expect("drover output")
}

/// Polls `f` until it returns Some, or panics after `timeout`.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write manifest");
    p.display().to_string()
}

/// A running `drover agent` process; killed (SIGKILL) on drop.
pub struct AgentProcess {
    pub child: Child,
    /// Lines the agent printed to stderr, as they arrive.
    pub lines: std::sync::mpsc::Receiver<String>,
}

impl AgentProcess {
    /// Starts `drover agent ARGS` against `server` and waits up to
    /// `timeout` for a stderr line containing `ready_marker`.
    pub fn start(server: &str, args: &[&str], ready_marker: &str, timeout: Duration) -> Self {
        let mut child = Command::new(drover_bin())
            .arg("agent")
            .args(args)
            .env("DROVER_SERVER", server)
            .env("RUST_LOG", "info,h2=warn,hyper=warn,tower=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn drover agent");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("agent: {line}");
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(ready_marker) => break,
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    panic!("agent did not print {ready_marker:?} within {timeout:?}");
                }
            }
        }
        AgentProcess { child, lines: rx }
    }

    /// Stops the agent as SIGKILL would (its shims keep running).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Stops every shim under `data` (SIGTERM: they stop and clean up) if the
/// test fails half-way.
pub struct Reaper(pub PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        // Pod network namespaces are bind mounts: unmount what is left.
        for ns in std::fs::read_dir(self.0.join("network/netns"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = Command::new("umount").arg("-l").arg(ns.path()).status();
        }
        let pods = self.0.join("pods");
        for pod in std::fs::read_dir(&pods).into_iter().flatten().flatten() {
            for c in std::fs::read_dir(pod.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                for a in std::fs::read_dir(c.path()).into_iter().flatten().flatten() {
                    let state = std::fs::read_to_string(a.path().join("shim/state.json"));
                    let pid = state
                        .ok()
                        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                        .and_then(|v| v["shim_pid"].as_i64());
                    if let Some(pid) = pid {
                        let _ = Command::new("kill").arg(pid.to_string()).status();
                    }
                }
            }
        }
    }
}
