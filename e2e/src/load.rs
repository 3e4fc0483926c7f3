//! A bounded HTTP load generator for the lab: client threads inside a
//! host's (or a pod's) network namespace, each sending `GET /` over a new
//! connection (HTTP/1.0: one request per connection, so the agents'
//! nftables connection counters count requests), paced to a total rate or
//! as fast as answers come, until stopped.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a load run saw.
#[derive(Debug, Default)]
pub struct Report {
    pub ok: usize,
    pub failed: usize,
    pub took: Duration,
    /// Latencies of the requests served, sorted.
    pub latencies: Vec<Duration>,
    /// The first failure, for the test's message.
    pub first_error: Option<String>,
}

impl Report {
    /// The `q` quantile in milliseconds.
    pub fn percentile(&self, q: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() - 1) as f64 * q).round() as usize;
        self.latencies[i.min(self.latencies.len() - 1)].as_secs_f64() * 1000.0
    }

    /// Requests served per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.took.as_secs_f64().max(1e-9)
    }
}

type Outcome = Option<(Vec<Duration>, usize, Option<String>)>;

/// A running load.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Outcome>>,
    started: Instant,
}

impl Load {
    /// `clients` threads in the namespace at `netns` (a path such as
    /// `/run/netns/NAME`) requesting `target`; `rate` requests per second
    /// in total, or as fast as they are answered when `None`.
    pub fn start(netns: &str, target: SocketAddr, clients: usize, rate: Option<f64>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = clients.max(1);
        let gap = rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(clients as f64 / r));
        let threads = (0..clients)
            .map(|_| {
                let (stop, netns) = (stop.clone(), netns.to_string());
                std::thread::spawn(move || client(&netns, target, gap, &stop))
            })
            .collect();
        Load {
            stop,
            threads,
            started: Instant::now(),
        }
    }

    /// Stops the clients and sums up; None when a client could not enter
    /// the namespace.
    pub fn stop(self) -> Option<Report> {
        self.stop.store(true, Ordering::Relaxed);
        let mut report = Report::default();
        for t in self.threads {
            let (served, failed, error) = t.join().ok()??;
            report.failed += failed;
            report.latencies.extend(served);
            report.first_error = report.first_error.or(error);
        }
        report.took = self.started.elapsed();
        report.ok = report.latencies.len();
        report.latencies.sort();
        Some(report)
    }
}

/// Unpaced load for `duration` (the service path benchmark's rounds).
pub fn run_for(
    netns: &str,
    target: SocketAddr,
    duration: Duration,
    clients: usize,
) -> Option<Report> {
    let load = Load::start(netns, target, clients, None);
    std::thread::sleep(duration);
    load.stop()
}

fn client(netns: &str, target: SocketAddr, gap: Option<Duration>, stop: &AtomicBool) -> Outcome {
    let ns = std::fs::File::open(netns).ok()?;
    // SAFETY: setns(2) on a namespace file we opened, for this thread only.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return None;
    }
    let (mut served, mut failed, mut first_error) = (Vec::new(), 0, None);
    let mut next = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if let Some(gap) = gap {
            // Pacing: the next request's slot, not a wait for a condition.
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
            next = next.max(now) + gap;
        }
        let t = Instant::now();
        match request(target) {
            Ok(()) => served.push(t.elapsed()),
            Err(e) => {
                first_error.get_or_insert_with(|| format!("{target}: {e}"));
                failed += 1;
            }
        }
    }
    Some((served, failed, first_error))
}

/// One `GET /` over a new connection; Err says which step failed.
pub fn request(target: SocketAddr) -> Result<(), String> {
    request_within(target, Duration::from_secs(2))
}

/// One `GET /` from inside the namespace at `netns`, answered within
/// `timeout` (each step); how long it took, or why it failed.
pub fn request_in(netns: &str, target: SocketAddr, timeout: Duration) -> Result<Duration, String> {
    let netns = netns.to_string();
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&netns).map_err(|e| format!("{netns}: {e}"))?;
        // SAFETY: setns(2) on a namespace file we opened, for this thread only.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(format!(
                "setns {netns}: {}",
                std::io::Error::last_os_error()
            ));
        }
        let t = Instant::now();
        request_within(target, timeout).map(|()| t.elapsed())
    })
    .join()
    .unwrap_or_else(|_| Err("the client thread panicked".into()))
}

fn request_within(target: SocketAddr, timeout: Duration) -> Result<(), String> {
    let mut s =
        TcpStream::connect_timeout(&target, timeout).map_err(|e| format!("connect: {e}"))?;
    let _ = s.set_read_timeout(Some(timeout));
    s.write_all(b"GET / HTTP/1.0\r\nHost: web\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut body = Vec::with_capacity(512);
    s.read_to_end(&mut body).map_err(|e| format!("read: {e}"))?;
    if body.starts_with(b"HTTP/1.") && body.get(9..12) == Some(b"200") {
        Ok(())
    } else {
        Err(format!(
            "answer: {:?}",
            String::from_utf8_lossy(&body[..body.len().min(40)])
        ))
    }
}
