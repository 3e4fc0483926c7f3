//! Helpers shared by the integration tests: the busybox test image and a
//! real registry on an ephemeral loopback port.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Builds the busybox OCI layout into `dir`; `None` (with the reason
/// printed) when busybox-static is not installed.
pub fn build_busybox(dir: &Path) -> Option<PathBuf> {
    if !Path::new("/bin/busybox").exists() {
        eprintln!("skipped: /bin/busybox missing (apt-get install busybox-static)");
        return None;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/images/build-busybox.sh");
    let out = dir.join("layout");
    let status = Command::new("sh")
        .arg(&script)
        .arg(&out)
        .arg("--tar")
        .arg(dir.join("layout.tar"))
        .stdout(Stdio::null())
        .status()
        .expect("run build-busybox.sh");
    assert!(status.success(), "build-busybox.sh failed");
    Some(out)
}

/// A free loopback port (bound and released; the registry takes it next).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Debian's docker-registry, killed on drop.
pub struct Registry {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry with its own config (loopback only, no auth,
    /// storage in a temp dir); `None` if the binary is missing.
    pub fn start() -> Option<Registry> {
        let bin = Path::new("/usr/bin/docker-registry");
        if !bin.exists() {
            eprintln!(
                "skipped: /usr/bin/docker-registry missing (apt-get install docker-registry)"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let config = format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write config");
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn docker-registry");
        let registry = Registry {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&registry.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "registry did not listen within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(registry)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
