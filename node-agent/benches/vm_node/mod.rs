//! What the VM benchmarks share: a node of their own (the busybox image
//! imported, the qemu or kvm engine, a bridge with a pod network, a shim
//! launcher), the run of an httpd VM, and waiting for its first answer.
#![allow(dead_code)] // each benchmark uses a different part

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use drover_init::config::GuestConfig;
use drover_node_agent::image::{ImageStore, import};
use drover_node_agent::network::{Cidr, PodNetwork};
use drover_node_agent::runtime::container::bundle::ContainerDir;
use drover_node_agent::runtime::vm::engine::{self, Engine, EngineChoice, HostFacts, TapNet};
use drover_node_agent::runtime::vm::kernel::GuestKernel;
use drover_node_agent::runtime::vm::prepare::{RestoreFrom, VmHost, VmRun};
use drover_node_agent::shim::ShimLauncher;

pub const MEMORY_MIB: u64 = 256;
pub const DEADLINE: Duration = Duration::from_secs(120);

/// A benchmark's node; [`BenchNode::shutdown`] removes its network.
pub struct BenchNode {
    pub work: tempfile::TempDir,
    pub engine: Engine,
    pub manifest: String,
    pub lowers: Vec<PathBuf>,
    pub host: VmHost,
    pub rt: tokio::runtime::Runtime,
    pub net: PodNetwork,
    pub launcher: ShimLauncher,
}

/// Sets up a node, or says why the benchmark cannot run here (`Ok(None)`).
pub fn setup(bridge_prefix: &str) -> Result<Option<BenchNode>, String> {
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: the VM benchmark needs root (taps, bridges)");
        return Ok(None);
    }
    let facts = HostFacts::probe();
    let (engine, why) = match engine::select(EngineChoice::Auto, &facts) {
        Ok(e) => e,
        Err(e) => {
            println!("skipped: {e}");
            return Ok(None);
        }
    };
    let kernel = match GuestKernel::locate(&GuestKernel::default_path()) {
        Ok(k) => k,
        Err(e) => {
            println!("skipped: {e}");
            return Ok(None);
        }
    };
    println!("engine: {why}");
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let layout = work.path().join("layout");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/images/build-busybox.sh");
    let ok = Command::new("sh")
        .arg(&script)
        .arg(&layout)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        println!("skipped: build-busybox.sh failed (apt-get install busybox-static)");
        return Ok(None);
    }
    let store = ImageStore::open(&work.path().join("data")).map_err(|e| e.to_string())?;
    let image = import::import(&store, &layout, None)
        .map_err(|e| e.to_string())?
        .remove(0);
    let lowers = store.prepare_layers(&image).map_err(|e| e.to_string())?;
    let host = VmHost {
        kernel,
        engine,
        qemu: facts.qemu.clone().unwrap_or_default(),
        cache_dir: work.path().join("initramfs"),
        tsc_khz: facts.tsc_khz,
        monitor: vec![],
    };
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let pid = std::process::id();
    let bridge = format!("{bridge_prefix}{}", pid % 100_000);
    let cidr = Cidr::parse(&format!("10.{}.77.0/24", 150 + pid % 50)).map_err(|e| e.to_string())?;
    let net = rt
        .block_on(PodNetwork::start(&work.path().join("net"), &bridge, cidr))
        .map_err(|e| e.to_string())?;
    let launcher = ShimLauncher::new(env!("CARGO_BIN_EXE_drover-node-shim"), vec![])
        .with_start_timeout(Duration::from_secs(30));
    Ok(Some(BenchNode {
        work,
        engine,
        manifest: image.manifest.to_string(),
        lowers,
        host,
        rt,
        net,
        launcher,
    }))
}

impl BenchNode {
    /// A tap with an address for pod `uid`.
    pub fn attach(&self, uid: &str) -> Result<TapNet, String> {
        let att = self
            .rt
            .block_on(self.net.attach_tap(uid))
            .map_err(|e| e.to_string())?;
        Ok(TapNet {
            tap: att.tap,
            mac: att.mac,
            ip: att.ip,
            prefix: att.prefix,
            gateway: att.gateway,
        })
    }

    pub fn detach(&self, uid: &str) {
        let _ = self.rt.block_on(self.net.detach(uid));
    }

    /// Removes the network and the benchmark's cgroups.
    pub fn shutdown(self) {
        let _ = self.rt.block_on(self.net.shutdown());
        for dir in
            drover_node_agent::runtime::container::cgroup::existing_dirs(Path::new("/drover-bench"))
        {
            let _ = std::fs::remove_dir(dir);
        }
    }

    /// The run of an httpd VM in `dir` on `tap` (from `restore` if given).
    pub fn vm_run<'a>(
        &'a self,
        dir: &'a ContainerDir,
        tap: &TapNet,
        restore: Option<RestoreFrom>,
    ) -> VmRun<'a> {
        let id = dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        VmRun {
            id: id.clone(),
            dir,
            image_manifest: self.manifest.clone(),
            lowers: &self.lowers,
            guest: httpd_guest(),
            memory_mib: MEMORY_MIB,
            vcpus: 1,
            net: Some(tap.clone()),
            log_path: dir.path().join("console.log"),
            log_max_bytes: 1 << 20,
            log_max_files: 1,
            default_grace: Duration::from_secs(5),
            cgroup: PathBuf::from(format!("/drover-bench/{id}")),
            restore,
        }
    }
}

fn httpd_guest() -> GuestConfig {
    GuestConfig {
        hostname: "bench".into(),
        args: ["httpd", "-f", "-p", "8080", "-h", "/www"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        env: vec![("PATH".into(), "/bin".into())],
        ..GuestConfig::default()
    }
}

/// Time from `start` to the first HTTP answer at `addr`.
pub fn wait_http(addr: SocketAddr, start: Instant) -> Result<Duration, String> {
    while start.elapsed() < DEADLINE {
        if let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 64];
            if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_ok()
                && s.read(&mut buf).is_ok_and(|n| n > 0)
            {
                return Ok(start.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(format!("no HTTP answer from {addr} in {DEADLINE:?}"))
}

/// Every launch starts with no ARP entry for the guest (a stale one from
/// the previous round would save a variant an ARP round trip).
pub fn forget_neighbour(tap: &TapNet) {
    let _ = Command::new("ip")
        .args(["neigh", "flush", "to", &tap.ip.to_string()])
        .stderr(Stdio::null())
        .status();
}
