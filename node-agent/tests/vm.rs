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
use drover_node_agent::runtime::container::cgroup;
use drover_node_agent::runtime::vm::engine::{self, EngineChoice, HostFacts, TapNet};
use drover_node_agent::runtime::vm::kernel::GuestKernel;
use drover_node_agent::runtime::vm::prepare::{self, VmHost, VmRun};
use drover_node_agent::shim::{ShimLauncher, ShimState, Status};

/// The parent of the test VMs' cgroups (removed when the last VM goes).
const CGROUP_PARENT: &str = "/drover-vmtest";

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
        monitor: vec![],
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
        // Busy while another test's VM runs: then that one removes it.
        for dir in cgroup::existing_dirs(Path::new(CGROUP_PARENT)) {
            let _ = std::fs::remove_dir(dir);
        }
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
            id: id.clone(),
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
            cgroup: PathBuf::from(format!("{CGROUP_PARENT}/{id}")),
            restore: None,
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
    // The monitor runs in the run's cgroup, limited to guest RAM + overhead.
    let state = vm.shim.state().expect("state");
    let qemu = state.container_pid.expect("monitor pid");
    let cgroup = std::fs::read_to_string(format!("/proc/{qemu}/cgroup")).unwrap_or_default();
    let memory_line = cgroup
        .lines()
        .find(|l| l.contains(":memory:") || l.starts_with("0::"))
        .unwrap_or_default()
        .to_string();
    assert!(
        memory_line.contains(&format!("{CGROUP_PARENT}/vm")),
        "{cgroup}"
    );
    let rel = memory_line
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_string();
    let limit_file = if memory_line.starts_with("0::") {
        format!("/sys/fs/cgroup{rel}/memory.max")
    } else {
        format!("/sys/fs/cgroup/memory{rel}/memory.limit_in_bytes")
    };
    let limit: u64 = std::fs::read_to_string(&limit_file)
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0);
    assert_eq!(limit, (256 + 192) << 20, "{limit_file}");
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
    assert!(!Path::new(&limit_file).exists(), "cgroup {rel} left");

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

/// Why the kvm engine cannot be exercised here, if it cannot: it needs a
/// /dev/kvm that makes VMs and binutils for the test guest. (Booting Linux
/// needs hardware KVM; the guest here is a few instructions that speak
/// drover-init's console protocol, so the kvm_pvm of CI runs it too.)
fn kvm_unavailable() -> Option<String> {
    let kvm = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm");
    if let Err(e) = kvm {
        return Some(format!("/dev/kvm unusable: {e}"));
    }
    for tool in ["as", "ld"] {
        if Command::new(tool).arg("--version").output().is_err() {
            return Some(format!("`{tool}` (binutils) not installed"));
        }
    }
    None
}

/// A test guest printing `lines` on COM1, then resetting through the
/// i8042 (or spinning, with `spin`).
fn protocol_guest(dir: &Path, lines: &str, spin: bool) -> PathBuf {
    let end = if spin {
        "1: jmp 1b"
    } else {
        "mov $0xfe, %al\n    out %al, $0x64\n1:  hlt\n    jmp 1b"
    };
    let src = format!(
        ".code64\n.globl _start\n_start:\n    lea msg(%rip), %rsi\n    mov $0x3f8, %dx\n2:  lodsb\n    test %al, %al\n    jz 3f\n    out %al, (%dx)\n    jmp 2b\n3:  {end}\nmsg: .asciz \"{lines}\"\n"
    );
    std::fs::create_dir_all(dir).expect("guest dir");
    let (s, o, elf) = (dir.join("g.S"), dir.join("g.o"), dir.join("guest"));
    std::fs::write(&s, src).expect("write guest");
    let ok = Command::new("as")
        .arg("--64")
        .arg("-o")
        .arg(&o)
        .arg(&s)
        .status();
    assert!(ok.is_ok_and(|s| s.success()), "as failed");
    let ok = Command::new("ld")
        .args([
            "-static",
            "-nostdlib",
            "-z",
            "max-page-size=0x1000",
            "-Ttext=0x200000",
            "-e",
            "_start",
            "-o",
        ])
        .arg(&elf)
        .arg(&o)
        .status();
    assert!(ok.is_ok_and(|s| s.success()), "ld failed");
    elf
}

#[test]
fn kvm_engine_runs_its_monitor_under_the_shim() {
    let Some(mut env) = env() else { return };
    if let Some(why) = kvm_unavailable() {
        eprintln!("skipped kvm_engine_runs_its_monitor_under_the_shim: {why}");
        return;
    }
    let guests = tempfile::tempdir().expect("tempdir");
    env.host.engine = engine::Engine::Kvm;
    env.host.monitor = vec![env!("CARGO_BIN_EXE_drover-node-shim").to_string()];
    env.host.kernel = GuestKernel {
        vmlinuz: protocol_guest(
            &guests.path().join("exit3"),
            "drover-init: started\\r\\nhello from the kvm engine\\r\\ndrover-init: exit 3\\r\\n",
            false,
        ),
        modules: vec![],
    };
    let vm = env.boot(&["ignored"], None);
    let s = wait_exit(&vm);
    let log = log_text(&vm.log);
    assert_eq!(s.exit_code, Some(3), "{s:?}\n{log}");
    assert!(log.contains("stdout F hello from the kvm engine"), "{log}");

    // A stop reaches the monitor through the console line and ends the VM
    // long before the grace period.
    env.host.kernel.vmlinuz = protocol_guest(
        &guests.path().join("spin"),
        "drover-init: started\\r\\n",
        true,
    );
    let vm = env.boot(&["ignored"], None);
    let deadline = Instant::now() + BOOT;
    while !log_text(&vm.log).contains("drover-init: started") {
        assert!(
            Instant::now() < deadline,
            "no console output: {:?}",
            vm.shim.state()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let at = Instant::now();
    vm.shim.stop(Duration::from_secs(30)).expect("stop");
    let s = wait_exit(&vm);
    assert!(at.elapsed() < Duration::from_secs(20), "{:?}", at.elapsed());
    assert_eq!(s.exit_code, Some(143), "{s:?}\n{}", log_text(&vm.log));
    assert!(!alive(s.container_pid.expect("pid")));
}
