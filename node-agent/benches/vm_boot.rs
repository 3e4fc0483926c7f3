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

mod vm_node;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use drover_node_agent::runtime::container::bundle::{self, ContainerDir};
use drover_node_agent::runtime::vm::engine::TapNet;
use drover_node_agent::runtime::vm::prepare;
use drover_node_agent::shim::Status;
use vm_node::{BenchNode, DEADLINE, MEMORY_MIB, forget_neighbour, wait_http};

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
    let Some(node) = vm_node::setup("dvbench")? else {
        return Ok(());
    };
    let pid = std::process::id();
    let mut agent_path = vec![];
    let mut plain = vec![];
    let mut result = Ok(());
    for round in 0..rounds {
        let uid = format!("bench{pid}r{round}");
        let r = node.attach(&uid).and_then(|tap| {
            let dir = ContainerDir::new(node.work.path().join("c").join(&uid));
            let a = via_shim(&node, &dir, &tap);
            let _ = bundle::remove(&dir);
            let b = plain_qemu(&node, &dir, &tap);
            let _ = bundle::remove(&dir);
            agent_path.push(a?);
            plain.push(b?);
            Ok(())
        });
        node.detach(&uid);
        if let Err(e) = r {
            result = Err(e);
            break;
        }
    }
    node.shutdown();
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

fn via_shim(node: &BenchNode, dir: &ContainerDir, tap: &TapNet) -> Result<Sample, String> {
    let run = node.vm_run(dir, tap, None);
    // The cached base initramfs is built on the first round, as on a node.
    let began = Instant::now();
    let config = prepare::prepare(&node.host, &run).map_err(|e| e.to_string())?;
    let prepare = began.elapsed();
    forget_neighbour(tap);
    let start = Instant::now();
    let shim = node
        .launcher
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

fn plain_qemu(node: &BenchNode, dir: &ContainerDir, tap: &TapNet) -> Result<Sample, String> {
    let run = node.vm_run(dir, tap, None);
    let config = prepare::prepare(&node.host, &run).map_err(|e| e.to_string())?;
    let argv = config.vm.map(|v| v.argv).unwrap_or_default();
    let (program, args) = argv.split_first().ok_or("no engine command")?;
    forget_neighbour(tap);
    let start = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        // Where the shim would run it: its QMP socket goes there.
        .current_dir(dir.path())
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
