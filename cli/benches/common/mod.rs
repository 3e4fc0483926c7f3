//! Helpers shared by the benchmarks that drive real `drover` processes.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// An environment variable as a number, or `default`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Starts `drover ARGS`; returns it and what follows `marker` on the first
/// stderr line holding it (e.g. the address after "listening on ").
pub fn spawn(args: &[&str], marker: &str) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start drover");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    let marker = marker.to_string();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent && let Some(pos) = line.find(&marker) {
                let _ = tx.send(line[pos + marker.len()..].trim().to_string());
                sent = true;
            }
        }
    });
    let found = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("drover did not start");
    (child, found)
}
