//! VM pods at the engine level, for real, as root: the busybox test image
//! booted by the node's engine (QEMU microvm here; TCG where KVM cannot
//! boot Linux) with drover-init from this build, under a detached shim.
//! Exit codes and the console log, HTTP from the host to the VM's pod IP
//! over a tap on a bridge of the test's own, a clean stop, and nothing
//! left behind. Skips (saying why) without root, QEMU, the guest kernel
//! (`drover vm install-kernel`, or $DROVER_VM_KERNEL) or /dev/net/tun.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use drover_init::config::GuestConfig;
use drover_node_agent::image::{ImageStore, import};
use drover_node_agent::network::{Cidr, PodNetwork};
use drover_node_agent::runtime::container::bundle::{self, ContainerDir};
use drover_node_agent::runtime::vm::engine::{self, EngineChoice, HostFacts, TapNet};
use drover_node_agent::runtime::vm::kernel::GuestKernel;
use drover_node_agent::runtime::vm::prepare::{self, VmHost, VmRun};
use drover_node_agent::shim::{ShimLauncher, ShimState, Status};

/// A TCG boot takes seconds; on a loaded 2-core machine, more.
const BOOT: Duration = Duration::from_secs(90);

struct Env {
    work: tempfile::TempDir,
    host: VmHost,
    lowers: Vec<PathBuf>,
    manifest: String,
    launcher: ShimLauncher,
}

fn env() -> Option<Env> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: VM tests need root (taps, bridges)");
        return None;
    }
    let facts = HostFacts::probe();
    let (engine, why) = match engine::select(EngineChoice::Auto, &facts) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("skipped: no VM engine: {e}");
            return None;
        }
    };
    eprintln!("engine: {why}");
    let kernel = match GuestKernel::locate(&GuestKernel::default_path()) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("skipped: {e}");
            return None;
        }
    };
    let work = tempfile::tempdir().expect("tempdir");
    let layout = common::build_busybox(work.path())?;
    let store = ImageStore::open(&work.path().join("data")).expect("store");
    let image = import::import(&store, &layout, None)
        .expect("import")
        .remove(0);
    let lowers = store.prepare_layers(&image).expect("layers");
    let host = VmHost {
        kernel,
        engine,
        qemu: facts.qemu.clone().unwrap_or_default(),
        cache_dir: work.path().join("initramfs"),
        tsc_khz: facts.tsc_khz,
    };
    Some(Env {
        manifest: image.manifest.to_string(),
        host,
        lowers,
        launcher: ShimLauncher::new(env!("CARGO_BIN_EXE_drover-node-shim"), vec![])
            .with_start_timeout(Duration::from_secs(30)),
        work,
    })
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A VM run; its monitor is killed on drop if the test failed midway.
struct Vm {
    dir: ContainerDir,
    log: PathBuf,
    shim: drover_node_agent::shim::ShimHandle,
}

impl Drop for Vm {
    fn drop(&mut self) {
        if let Ok(s) = self.shim.state()
            && s.status != Status::Exited
            && let Some(pid) = s.container_pid
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = self.shim.wait(Duration::from_secs(10));
        }
        let _ = bundle::remove(&self.dir);
    }
}

impl Env {
    fn boot(&self, args: &[&str], net: Option<TapNet>) -> Vm {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let id = format!("vm{}-{n}", std::process::id());
        let dir = ContainerDir::new(self.work.path().join("c").join(&id));
        let log = self.work.path().join("logs").join(format!("{id}.log"));
        let guest = GuestConfig {
            hostname: id.clone(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: vec![("PATH".into(), "/bin".into())],
            ..GuestConfig::default()
        };
        let run = VmRun {
            id,
            dir: &dir,
            image_manifest: self.manifest.clone(),
            lowers: &self.lowers,
            guest,
            memory_mib: 256,
            vcpus: 1,
            net,
            log_path: log.clone(),
            log_max_bytes: 1 << 20,
            log_max_files: 1,
            default_grace: Duration::from_secs(10),
        };
        let config = prepare::prepare(&self.host, &run).expect("prepare");
        let shim = self
            .launcher
            .launch(&dir.shim_dir(), &config)
            .expect("launch shim");
        Vm { dir, log, shim }
    }
}

fn wait_exit(vm: &Vm) -> ShimState {
    let s = vm.shim.wait(BOOT).unwrap_or_else(|e| {
        panic!(
            "the VM did not end in {BOOT:?}: {e}\nlog:\n{}\nshim log:\n{}\nconfig: {}",
            log_text(&vm.log),
            log_text(&vm.dir.shim_dir().join("shim.log")),
            log_text(&vm.dir.shim_dir().join("shim.json")),
        )
    });
    assert_eq!(s.status, Status::Exited);
    s
}

fn log_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn exit_code_and_console_reach_the_host() {
    let Some(env) = env() else { return };
    let vm = env.boot(&["sh", "-c", "echo hello from $(hostname); exit 3"], None);
    let s = wait_exit(&vm);
    let log = log_text(&vm.log);
    assert_eq!(s.exit_code, Some(3), "state {s:?}\nlog:\n{log}");
    assert_eq!(s.reason(), Some("Error"));
    assert!(log.contains("stdout F hello from vm"), "{log}");
    assert!(log.contains("drover-init: exit 3"), "{log}");
    let pid = s.container_pid.expect("monitor pid");
    assert!(!alive(pid), "the monitor is gone");

    // A command that does not exist: a start error with the reason.
    let vm = env.boot(&["/no/such/program"], None);
    let s = wait_exit(&vm);
    assert_eq!(s.reason(), Some("StartError"), "{s:?}");
    assert!(
        s.error
            .as_deref()
            .unwrap_or("")
            .contains("/no/such/program"),
        "{s:?}"
    );
}

/// The test's own bridge and CIDR; removed on drop even if the test fails.
struct TestNet {
    net: Option<PodNetwork>,
    bridge: String,
    uid: String,
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &PodNetwork::tap_name(&self.uid)])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("nft")
            .args(["delete", "table", "ip", &format!("drover_{}", self.bridge)])
            .stderr(Stdio::null())
            .status();
        drop(self.net.take());
    }
}

fn http_get(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body)
}

#[test]
fn httpd_in_a_vm_answers_on_its_pod_ip_and_stops_cleanly() {
    let Some(env) = env() else { return };
    if !Path::new("/dev/net/tun").exists() {
        eprintln!("skipped: /dev/net/tun missing");
        return;
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let pid = std::process::id();
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let mut tn = TestNet {
        net: None,
        bridge: format!("dvb{}x{n}", pid % 100_000),
        uid: format!("vmtest{pid}{n}"),
    };
    let cidr = Cidr::parse(&format!("10.{}.{}.0/24", 150 + pid % 50, n % 250)).expect("cidr");
    let net = rt
        .block_on(PodNetwork::start(
            &env.work.path().join("net"),
            &tn.bridge,
            cidr,
        ))
        .expect("pod network");
    let att = rt.block_on(net.attach_tap(&tn.uid)).expect("tap");
    tn.net = Some(net);
    let tap = TapNet {
        tap: att.tap.clone(),
        mac: att.mac.clone(),
        ip: att.ip,
        prefix: att.prefix,
        gateway: att.gateway,
    };
    let started = Instant::now();
    let vm = env.boot(&["httpd", "-f", "-p", "8080", "-h", "/www"], Some(tap));
    let addr = SocketAddr::from((att.ip, 8080));
    let deadline = started + BOOT;
    let body = loop {
        if let Some(b) = http_get(addr) {
            break b;
        }
        let s = vm.shim.state().expect("state");
        assert_ne!(
            s.status,
            Status::Exited,
            "VM ended: {s:?}\n{}",
            log_text(&vm.log)
        );
        assert!(
            Instant::now() < deadline,
            "no HTTP answer from {addr} in {BOOT:?}\n{}",
            log_text(&vm.log)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("first HTTP answer {:?} after launch", started.elapsed());
    assert!(body.contains("Hello from Drover"), "{body}");
    assert_ne!(att.ip, Ipv4Addr::UNSPECIFIED);

    // A stop goes to drover-init on the console: httpd gets SIGTERM and
    // the VM reports it, well before the grace period would SIGKILL it.
    let stop_at = Instant::now();
    vm.shim.stop(Duration::from_secs(30)).expect("stop");
    let s = wait_exit(&vm);
    assert!(
        stop_at.elapsed() < Duration::from_secs(25),
        "{:?}",
        stop_at.elapsed()
    );
    assert_eq!(s.exit_code, Some(128 + 15), "{s:?}\n{}", log_text(&vm.log));
    assert!(!alive(s.container_pid.expect("pid")));

    let net = tn.net.as_ref().expect("net");
    rt.block_on(net.detach(&tn.uid)).expect("detach");
    let taps = Command::new("ip")
        .args(["-o", "link", "show", &att.tap])
        .output()
        .expect("ip");
    assert!(!taps.status.success(), "tap {} still exists", att.tap);
    assert_eq!(net.ip_of(&tn.uid), None);
    rt.block_on(net.shutdown()).expect("shutdown");
    drop(vm);
    assert!(
        !env.work
            .path()
            .join("c")
            .read_dir()
            .is_ok_and(|mut d| d.next().is_some())
    );
}
