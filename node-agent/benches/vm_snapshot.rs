//! Restoring a VM pod from a snapshot against booting it, on the qemu
//! engine (emulated/TCG where KVM cannot boot Linux), through the agent's
//! path (prepare, detached shim; for a restore the snapshot check, the
//! readdress line and `cont` over QMP). One httpd VM is booted and
//! snapshotted, then rounds interleave a boot and a restore, each on a
//! fresh tap; both measure launch → first HTTP answer at the pod IP.
//! Needs root, QEMU and the guest kernel; skips (saying why) otherwise.
//!
//! `cargo bench -p drover-node-agent --bench vm_snapshot [-- ROUNDS]`

mod vm_node;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use drover_node_agent::agent::vm_restore;
use drover_node_agent::runtime::container::bundle::{self, ContainerDir};
use drover_node_agent::runtime::vm::engine::{Engine, TapNet};
use drover_node_agent::runtime::vm::prepare::{self, RestoreFrom};
use drover_node_agent::runtime::vm::snapshot::{resume, take};
use drover_node_agent::shim::ShimHandle;
use vm_node::{BenchNode, MEMORY_MIB, forget_neighbour, wait_http};

fn main() -> ExitCode {
    let rounds: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    match run(rounds) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vm_snapshot: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(rounds: usize) -> Result<(), String> {
    let Some(node) = vm_node::setup("dvbsnap")? else {
        return Ok(());
    };
    if node.engine == Engine::Kvm {
        println!("skipped: snapshots run on the qemu engine only");
        node.shutdown();
        return Ok(());
    }
    let pid = std::process::id();
    let (mut boots, mut restores) = (vec![], vec![]);
    let mut uids = vec![];
    let result = (|| {
        let uid = format!("snap{pid}src");
        uids.push(uid.clone());
        let (shim, dir, _) = boot(&node, &uid)?;
        let taken = take::take(&take::TakeRequest {
            name: "bench",
            run_dir: dir.path(),
            data_dir: node.work.path(),
            memory_mib: MEMORY_MIB,
            vcpus: 1,
            kernel: &node.host.kernel.vmlinuz,
            source_pod: "bench/src".into(),
        })
        .map_err(|e| e.to_string())?;
        stop(shim, &dir);
        println!(
            "snapshot: {:.1} MiB, guest paused {} ms, {} ms in all",
            taken.size_bytes as f64 / f64::from(1 << 20),
            taken.paused_millis,
            taken.total_millis
        );
        for round in 0..rounds {
            let uid = format!("snap{pid}b{round}");
            uids.push(uid.clone());
            let (shim, dir, took) = boot(&node, &uid)?;
            stop(shim, &dir);
            boots.push(took);
            let uid = format!("snap{pid}r{round}");
            uids.push(uid.clone());
            let (shim, dir, took) = restore(&node, &uid)?;
            stop(shim, &dir);
            restores.push(took);
        }
        Ok::<(), String>(())
    })();
    for uid in &uids {
        node.detach(uid);
    }
    node.shutdown();
    result?;
    let (boot, restore) = (median(&mut boots), median(&mut restores));
    println!(
        "launch → first HTTP, n={rounds}: boot median {boot:?} (min {:?}), restore median {restore:?} (min {:?}), restore/boot {:.2}",
        boots.first().copied().unwrap_or_default(),
        restores.first().copied().unwrap_or_default(),
        restore.as_secs_f64() / boot.as_secs_f64().max(f64::MIN_POSITIVE)
    );
    Ok(())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Boots an httpd VM for `uid`; its shim, run directory and time to HTTP.
fn boot(node: &BenchNode, uid: &str) -> Result<(ShimHandle, ContainerDir, Duration), String> {
    launch(node, uid, |_| Ok(None))
}

/// Restores snapshot `bench` for `uid`, as the agent does.
fn restore(node: &BenchNode, uid: &str) -> Result<(ShimHandle, ContainerDir, Duration), String> {
    launch(node, uid, |tap| {
        vm_restore::plan(
            &node.host,
            node.work.path(),
            "bench",
            MEMORY_MIB,
            1,
            Some(tap),
        )
        .map(Some)
        .map_err(|f| format!("{}: {}", f.reason, f.message))
    })
}

fn launch(
    node: &BenchNode,
    uid: &str,
    restore_from: impl Fn(&TapNet) -> Result<Option<RestoreFrom>, String>,
) -> Result<(ShimHandle, ContainerDir, Duration), String> {
    let tap = node.attach(uid)?;
    let dir = ContainerDir::new(node.work.path().join("c").join(uid));
    let start = Instant::now();
    let restoring = restore_from(&tap)?;
    let resume = restoring.is_some();
    let run = node.vm_run(&dir, &tap, restoring);
    let config = prepare::prepare(&node.host, &run).map_err(|e| e.to_string())?;
    forget_neighbour(&tap);
    let shim = node
        .launcher
        .launch(&dir.shim_dir(), &config)
        .map_err(|e| e.to_string())?;
    if resume {
        resume::resume_when_loaded(dir.path(), vm_node::DEADLINE).map_err(|e| e.to_string())?;
    }
    let took = wait_http(SocketAddr::from((tap.ip, 8080)), start)?;
    Ok((shim, dir, took))
}

fn stop(shim: ShimHandle, dir: &ContainerDir) {
    let _ = shim.stop(Duration::from_secs(5));
    let _ = shim.wait(Duration::from_secs(30));
    let _ = bundle::remove(dir);
}
