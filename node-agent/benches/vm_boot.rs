//! VM pod boot on this machine's engine (QEMU microvm; emulated/TCG where
//! KVM cannot boot Linux): the agent's path (initramfs from the busybox
//! image + drover-init, tap on a bridge, detached shim) against plain QEMU
//! with the same kernel, initramfs and command line, side by side, rounds
//! interleaved. Measures launch → `drover-init: started` on the console,
//! launch → first HTTP answer from busybox httpd at the VM's pod IP, and
//! QEMU's memory outside guest RAM (/proc/PID/smaps). Needs root, QEMU and
//! the guest kernel; skips (saying why) otherwise.
//!
//! `cargo bench -p drover-node-agent --bench vm_boot [-- ROUNDS]`

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use drover_init::config::GuestConfig;
use drover_node_agent::image::{ImageStore, import};
use drover_node_agent::network::{Cidr, PodNetwork};
use drover_node_agent::runtime::container::bundle::{self, ContainerDir};
use drover_node_agent::runtime::vm::engine::{self, EngineChoice, HostFacts, TapNet};
use drover_node_agent::runtime::vm::kernel::GuestKernel;
use drover_node_agent::runtime::vm::prepare::{self, VmHost, VmRun};
use drover_node_agent::shim::{ShimLauncher, Status};

const MEMORY_MIB: u64 = 256;
const DEADLINE: Duration = Duration::from_secs(120);

fn main() -> ExitCode {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    match run(rounds) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vm_boot: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Sample {
    /// Initramfs for the run (first round: the image's base too).
    prepare: Duration,
    init: Duration,
    http: Duration,
    rss_kib: u64,
    pss_kib: u64,
}

fn run(rounds: usize) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: the VM benchmark needs root (taps, bridges)");
        return Ok(());
    }
    let facts = HostFacts::probe();
    let (engine, why) = match engine::select(EngineChoice::Auto, &facts) {
        Ok(e) => e,
        Err(e) => {
            println!("skipped: {e}");
            return Ok(());
        }
    };
    let kernel = match GuestKernel::locate(&GuestKernel::default_path()) {
        Ok(k) => k,
        Err(e) => {
            println!("skipped: {e}");
            return Ok(());
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
        return Ok(());
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
    let bridge = format!("dvbench{}", pid % 100_000);
    let cidr = Cidr::parse(&format!("10.{}.77.0/24", 150 + pid % 50)).map_err(|e| e.to_string())?;
    let net = rt
        .block_on(PodNetwork::start(&work.path().join("net"), &bridge, cidr))
        .map_err(|e| e.to_string())?;
    let launcher = ShimLauncher::new(env!("CARGO_BIN_EXE_drover-node-shim"), vec![])
        .with_start_timeout(Duration::from_secs(30));
    let mut agent_path = vec![];
    let mut plain = vec![];
    let mut result = Ok(());
    for round in 0..rounds {
        let uid = format!("bench{pid}r{round}");
        let r = rt
            .block_on(net.attach_tap(&uid))
            .map_err(|e| e.to_string())
            .and_then(|att| {
                let tap = TapNet {
                    tap: att.tap,
                    mac: att.mac,
                    ip: att.ip,
                    prefix: att.prefix,
                    gateway: att.gateway,
                };
                let dir = ContainerDir::new(work.path().join("c").join(&uid));
                let a = via_shim(
                    &host,
                    &launcher,
                    &dir,
                    &image.manifest.to_string(),
                    &lowers,
                    &tap,
                );
                let _ = bundle::remove(&dir);
                let b = plain_qemu(&host, &dir, &image.manifest.to_string(), &lowers, &tap);
                let _ = bundle::remove(&dir);
                agent_path.push(a?);
                plain.push(b?);
                Ok(())
            });
        let _ = rt.block_on(net.detach(&uid));
        if let Err(e) = r {
            result = Err(e);
            break;
        }
    }
    let _ = rt.block_on(net.shutdown());
    for dir in
        drover_node_agent::runtime::container::cgroup::existing_dirs(Path::new("/drover-bench"))
    {
        let _ = std::fs::remove_dir(dir);
    }
    result?;
    report("agent path (shim)", &mut agent_path);
    report("plain qemu", &mut plain);
    Ok(())
}

fn report(name: &str, samples: &mut [Sample]) {
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    };
    let mut init: Vec<_> = samples.iter().map(|s| s.init).collect();
    let mut http: Vec<_> = samples.iter().map(|s| s.http).collect();
    let mut prep: Vec<_> = samples.iter().map(|s| s.prepare).collect();
    let rss = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    let pss = samples.iter().map(|s| s.pss_kib).max().unwrap_or(0);
    println!(
        "{name:18} n={} prepare median {:?} (max {:?}), launch→drover-init median {:?} (min {:?}), launch→first HTTP median {:?} (min {:?}), QEMU outside guest RAM Rss {} KiB Pss {} KiB (max)",
        samples.len(),
        median(&mut prep),
        prep.last().copied().unwrap_or_default(),
        median(&mut init),
        init.first().copied().unwrap_or_default(),
        median(&mut http),
        http.first().copied().unwrap_or_default(),
        rss,
        pss
    );
}

fn guest(uid: &str) -> GuestConfig {
    GuestConfig {
        hostname: uid.into(),
        args: ["httpd", "-f", "-p", "8080", "-h", "/www"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        env: vec![("PATH".into(), "/bin".into())],
        ..GuestConfig::default()
    }
}

fn vm_run<'a>(
    dir: &'a ContainerDir,
    manifest: &str,
    lowers: &'a [std::path::PathBuf],
    tap: &TapNet,
) -> VmRun<'a> {
    VmRun {
        id: dir
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        dir,
        image_manifest: manifest.to_string(),
        lowers,
        guest: guest("bench"),
        memory_mib: MEMORY_MIB,
        vcpus: 1,
        net: Some(tap.clone()),
        log_path: dir.path().join("console.log"),
        log_max_bytes: 1 << 20,
        log_max_files: 1,
        default_grace: Duration::from_secs(5),
        cgroup: std::path::PathBuf::from(format!(
            "/drover-bench/{}",
            dir.path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        )),
    }
}

fn wait_http(addr: SocketAddr, start: Instant) -> Result<Duration, String> {
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

/// (Rss, Pss) KiB of QEMU's mappings other than guest RAM (the anonymous
/// mapping of exactly the guest's memory size).
fn smaps_outside_guest(pid: u32) -> (u64, u64) {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let (mut rss, mut pss, mut guest) = (0, 0, false);
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if let Some((lo, hi)) = first.split_once('-')
            && let (Ok(lo), Ok(hi)) = (u64::from_str_radix(lo, 16), u64::from_str_radix(hi, 16))
        {
            guest = hi - lo >= MEMORY_MIB << 20;
            continue;
        }
        let kib = words
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        match first {
            "Rss:" if !guest => rss += kib,
            "Pss:" if !guest => pss += kib,
            _ => {}
        }
    }
    (rss, pss)
}

fn via_shim(
    host: &VmHost,
    launcher: &ShimLauncher,
    dir: &ContainerDir,
    manifest: &str,
    lowers: &[std::path::PathBuf],
    tap: &TapNet,
) -> Result<Sample, String> {
    let run = vm_run(dir, manifest, lowers, tap);
    // The cached base initramfs is built on the first round, as on a node.
    let began = Instant::now();
    let config = prepare::prepare(host, &run).map_err(|e| e.to_string())?;
    let prepare = began.elapsed();
    forget_neighbour(tap);
    let start = Instant::now();
    let shim = launcher
        .launch(&dir.shim_dir(), &config)
        .map_err(|e| e.to_string())?;
    let log = run.log_path.clone();
    let init = loop {
        if std::fs::read_to_string(&log).is_ok_and(|t| t.contains("drover-init: started")) {
            break start.elapsed();
        }
        if start.elapsed() > DEADLINE {
            let _ = shim.stop(Duration::ZERO);
            return Err("drover-init did not start".into());
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let http = wait_http(SocketAddr::from((tap.ip, 8080)), start);
    let qemu = shim.state().ok().and_then(|s| s.container_pid).unwrap_or(0);
    let (rss_kib, pss_kib) = smaps_outside_guest(qemu as u32);
    let _ = shim.stop(Duration::from_secs(5));
    let end = shim
        .wait(Duration::from_secs(30))
        .map_err(|e| e.to_string())?;
    if end.status != Status::Exited {
        return Err("the VM did not stop".into());
    }
    Ok(Sample {
        prepare,
        init,
        http: http?,
        rss_kib,
        pss_kib,
    })
}

/// Both variants start with no ARP entry for the guest (a stale one from
/// the previous round would save the second variant an ARP round trip).
fn forget_neighbour(tap: &TapNet) {
    let _ = Command::new("ip")
        .args(["neigh", "flush", "to", &tap.ip.to_string()])
        .stderr(Stdio::null())
        .status();
}

fn plain_qemu(
    host: &VmHost,
    dir: &ContainerDir,
    manifest: &str,
    lowers: &[std::path::PathBuf],
    tap: &TapNet,
) -> Result<Sample, String> {
    let run = vm_run(dir, manifest, lowers, tap);
    let config = prepare::prepare(host, &run).map_err(|e| e.to_string())?;
    let argv = config.vm.map(|v| v.argv).unwrap_or_default();
    let (program, args) = argv.split_first().ok_or("no engine command")?;
    forget_neighbour(tap);
    let start = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.contains("drover-init: started") {
                let _ = tx.send(Instant::now());
            }
        }
    });
    let result = (|| {
        let at = rx
            .recv_timeout(DEADLINE)
            .map_err(|_| "drover-init did not start")?;
        let init = at - start;
        let http = wait_http(SocketAddr::from((tap.ip, 8080)), start)?;
        let (rss_kib, pss_kib) = smaps_outside_guest(child.id());
        Ok(Sample {
            prepare: Duration::ZERO,
            init,
            http,
            rss_kib,
            pss_kib,
        })
    })();
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    result
}
