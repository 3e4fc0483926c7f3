//! Running one probe: `tcpSocket` and `httpGet` connect from inside the
//! pod's network namespace (a short-lived thread that `setns()`es into it,
//! so nothing else in the agent changes namespace) to `127.0.0.1:port`,
//! or to `host` when the probe names one; `exec` runs the command in the
//! container through the exec helper. Every probe is bounded by its timeout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use drover_proto::meta::IntOrString;
use drover_proto::types::pod::{Container, HttpGetAction, Probe};

use super::prober::Outcome;
use crate::agent::exec::ExecTarget;

/// A probe could not be run as written.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PortError {
    /// A named port the container does not declare.
    #[error("port {0:?} is not a named port of the container")]
    UnknownName(String),
    /// Outside 1..=65535.
    #[error("port {0} is out of range")]
    OutOfRange(i32),
}

/// Resolves a probe's port, by number or by the name of one of the
/// container's ports (pure).
pub fn resolve_port(port: &IntOrString, c: &Container) -> Result<u16, PortError> {
    let number = match port {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => match s.parse::<i32>() {
            Ok(n) => n,
            Err(_) => c
                .ports
                .iter()
                .find(|p| p.name.as_deref() == Some(s.as_str()))
                .map(|p| p.container_port)
                .ok_or_else(|| PortError::UnknownName(s.clone()))?,
        },
    };
    u16::try_from(number)
        .ok()
        .filter(|n| *n > 0)
        .ok_or(PortError::OutOfRange(number))
}

/// Where a container's probes run.
#[derive(Clone, Debug)]
pub struct ProbeTarget {
    /// The pod's network namespace (`/proc/PID/ns/net` of the container's
    /// init, or the sandbox's netns path); None: the agent's own.
    pub netns: Option<PathBuf>,
    /// The address to reach the pod at when the probe names no host
    /// (127.0.0.1 inside the pod's namespace).
    pub default_host: String,
    /// For exec probes.
    pub exec: Option<ExecTarget>,
}

fn timeout_of(p: &Probe) -> Duration {
    Duration::from_secs(u64::try_from(p.timeout_seconds.max(1)).unwrap_or(1))
}

/// Runs `probe` of container `c` against `target` (blocking: call from a
/// blocking context).
pub fn run_probe(probe: &Probe, c: &Container, target: &ProbeTarget) -> Outcome {
    let timeout = timeout_of(probe);
    if let Some(exec) = &probe.exec {
        let Some(t) = &target.exec else {
            return Outcome::Failure("the container is not running".into());
        };
        return match t.run_captured(&exec.command, timeout) {
            Ok(out) if out.exit_code == 0 => Outcome::Success,
            Ok(out) => Outcome::Failure(format!(
                "command {:?} exited with {}: {}",
                exec.command,
                out.exit_code,
                String::from_utf8_lossy(&out.output).trim()
            )),
            Err(e) => Outcome::Failure(e.to_string()),
        };
    }
    let (port, host, http) = if let Some(h) = &probe.http_get {
        (&h.port, h.host.clone(), Some(h.clone()))
    } else if let Some(t) = &probe.tcp_socket {
        (&t.port, t.host.clone(), None)
    } else {
        return Outcome::Failure("the probe has no action".into());
    };
    let port = match resolve_port(port, c) {
        Ok(p) => p,
        Err(e) => return Outcome::Failure(e.to_string()),
    };
    let host = host
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| target.default_host.clone());
    let netns = target.netns.clone();
    in_netns(netns, timeout, move || {
        let deadline = Instant::now() + timeout;
        match http {
            Some(h) => http_get(&host, port, &h, deadline),
            None => connect(&host, port, deadline).map(|_| ()),
        }
    })
}

/// Runs `f` on a fresh thread inside `netns`, giving up after `timeout`
/// (the thread ends on its own once its sockets time out).
fn in_netns(
    netns: Option<PathBuf>,
    timeout: Duration,
    f: impl FnOnce() -> Result<(), String> + Send + 'static,
) -> Outcome {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("probe".into())
        .spawn(move || {
            let result = enter(netns.as_deref()).and_then(|()| f());
            let _ = tx.send(result);
        });
    if let Err(e) = spawned {
        return Outcome::Failure(format!("starting the probe: {e}"));
    }
    // A little slack over the probe's own deadline for the thread to report.
    match rx.recv_timeout(timeout + Duration::from_millis(200)) {
        Ok(Ok(())) => Outcome::Success,
        Ok(Err(e)) => Outcome::Failure(e),
        Err(_) => Outcome::Failure(format!("timed out after {}s", timeout.as_secs())),
    }
}

/// Moves the calling thread into the network namespace at `path`.
fn enter(path: Option<&std::path::Path>) -> Result<(), String> {
    let Some(path) = path else {
        return Ok(());
    };
    let ns = std::fs::File::open(path)
        .map_err(|e| format!("opening network namespace {}: {e}", path.display()))?;
    nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("entering network namespace {}: {e}", path.display()))?;
    loopback_up()
}

/// Brings `lo` up in the current network namespace if it is down. A
/// pod's loopback is always up in Kubernetes (the CNI loopback plugin);
/// a container given a bare new namespace has it down, and a probe of
/// 127.0.0.1 would then fail with "network unreachable".
fn loopback_up() -> Result<(), String> {
    // SAFETY: plain socket/ioctl calls on a zeroed ifreq we own, naming "lo".
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if sock < 0 {
            return Err(format!(
                "socket for loopback: {}",
                std::io::Error::last_os_error()
            ));
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (dst, src) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
            *dst = *src as libc::c_char;
        }
        let mut result = Ok(());
        if libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut ifr) == 0 {
            let up = libc::IFF_UP as libc::c_short;
            if ifr.ifr_ifru.ifru_flags & up == 0 {
                ifr.ifr_ifru.ifru_flags |= up;
                if libc::ioctl(sock, libc::SIOCSIFFLAGS, &ifr) != 0 {
                    result = Err(format!(
                        "bringing loopback up: {}",
                        std::io::Error::last_os_error()
                    ));
                }
            }
        }
        libc::close(sock);
        result
    }
}

fn connect(host: &str, port: u16, deadline: Instant) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("resolving {host}: {e}"))?
        .collect();
    let mut last = format!("no address for {host}");
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("dial tcp {addr}: timed out"));
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(s) => return Ok(s),
            Err(e) => last = format!("dial tcp {addr}: {e}"),
        }
    }
    Err(last)
}

/// The status code of an HTTP/1.x response's status line (pure).
pub fn status_code(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split_whitespace();
    words.next().filter(|v| v.starts_with("HTTP/"))?;
    words.next()?.parse().ok()
}

fn http_get(host: &str, port: u16, h: &HttpGetAction, deadline: Instant) -> Result<(), String> {
    if h.scheme
        .as_deref()
        .is_some_and(|s| !s.eq_ignore_ascii_case("http"))
    {
        return Err(format!("scheme {:?} is not supported", h.scheme));
    }
    let mut conn = connect(host, port, deadline)?;
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    let _ = conn.set_read_timeout(Some(left));
    let _ = conn.set_write_timeout(Some(left));
    let path = if h.path.starts_with('/') {
        h.path.clone()
    } else {
        format!("/{}", h.path)
    };
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: drover-probe/1\r\nAccept: */*\r\nConnection: close\r\n"
    );
    for header in &h.http_headers {
        req.push_str(&format!("{}: {}\r\n", header.name, header.value));
    }
    req.push_str("\r\n");
    conn.write_all(req.as_bytes())
        .map_err(|e| format!("sending to {host}:{port}: {e}"))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 512];
    while !head.contains(&b'\n') && head.len() < 4096 {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Err(format!("reading from {host}:{port}: {e}")),
        }
    }
    match status_code(&head) {
        // Kubernetes: 200 <= code < 400 is success.
        Some(code) if (200..400).contains(&code) => Ok(()),
        Some(code) => Err(format!("HTTP probe failed with statuscode: {code}")),
        None => Err(format!("{host}:{port} did not answer HTTP")),
    }
}

#[cfg(test)]
mod tests {
    use drover_proto::types::pod::{ContainerPort, TcpSocketAction};

    use super::*;

    fn container() -> Container {
        Container {
            ports: vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..ContainerPort::default()
            }],
            ..Container::default()
        }
    }

    #[test]
    fn ports_resolve_by_number_or_name() {
        let c = container();
        assert_eq!(resolve_port(&IntOrString::Int(80), &c), Ok(80));
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c),
            Ok(8080)
        );
        assert_eq!(resolve_port(&IntOrString::String("81".into()), &c), Ok(81));
        assert_eq!(
            resolve_port(&IntOrString::String("grpc".into()), &c),
            Err(PortError::UnknownName("grpc".into()))
        );
        assert_eq!(
            resolve_port(&IntOrString::Int(70000), &c),
            Err(PortError::OutOfRange(70000))
        );
    }

    #[test]
    fn status_lines() {
        assert_eq!(status_code(b"HTTP/1.0 200 OK\r\n"), Some(200));
        assert_eq!(status_code(b"HTTP/1.1 404 Not Found\r\nX: y"), Some(404));
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_code(b""), None);
    }

    fn tcp_probe(port: u16) -> Probe {
        Probe {
            exec: None,
            http_get: None,
            tcp_socket: Some(TcpSocketAction {
                port: IntOrString::Int(i32::from(port)),
                host: None,
            }),
            initial_delay_seconds: 0,
            period_seconds: 1,
            timeout_seconds: 1,
            success_threshold: 1,
            failure_threshold: 1,
        }
    }

    fn local() -> ProbeTarget {
        ProbeTarget {
            netns: None,
            default_host: "127.0.0.1".into(),
            exec: None,
        }
    }

    #[test]
    fn tcp_and_http_against_loopback() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            for code in [200, 503] {
                let (mut s, _) = listener.accept().expect("accept");
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = write!(s, "HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n");
            }
        });
        let mut p = tcp_probe(port);
        p.tcp_socket = None;
        p.http_get = Some(HttpGetAction {
            path: "/healthz".into(),
            port: IntOrString::Int(i32::from(port)),
            host: None,
            scheme: None,
            http_headers: vec![],
        });
        let c = Container::default();
        assert_eq!(run_probe(&p, &c, &local()), Outcome::Success);
        assert!(matches!(run_probe(&p, &c, &local()), Outcome::Failure(m) if m.contains("503")));
        server.join().expect("server");
        // Nothing listens any more.
        assert!(matches!(
            run_probe(&tcp_probe(port), &c, &local()),
            Outcome::Failure(_)
        ));
    }
}
