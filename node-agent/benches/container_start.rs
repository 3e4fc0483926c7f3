//! Container create → start → exit of `/bin/true` from the busybox test
//! image: Drover's runtime against `crun run` and `runc run`, side by side in
//! one run, rounds interleaved so drift hits all alike. Needs root, Debian's
//! busybox-static, crun and runc; skips (saying why) otherwise.
//!
//! `cargo bench -p drover-node-agent --bench container_start [-- RUNS]`
//!
//! Every runtime gets the same bundle: the same config.json (Drover's
//! hardened spec: namespaces, cgroup limits, seccomp, masked paths) over the
//! same overlay rootfs. crun refuses cgroup v1 hybrid hosts while
//! /sys/fs/cgroup/unified is mounted, so each crun gets a private mount
//! namespace with it unmounted, set up between fork and exec (no extra
//! process, the cheapest way to give crun what it needs).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use drover_node_agent::image::{ImageStore, import};
use drover_node_agent::runtime::container::rootfs::{self, Overlay};
use drover_node_agent::runtime::container::{
    ContainerRuntime, ContainerSpec, LibcontainerRuntime, NetworkMode, ProcessSpec, Resources,
    runtime_spec,
};
use drover_node_agent::shim::{ShimConfig, ShimLauncher};

fn main() -> ExitCode {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(30);
    match run(runs) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("container_start: {e}");
            ExitCode::FAILURE
        }
    }
}

fn have(path: &str) -> bool {
    Path::new(path).exists()
}

fn run(runs: usize) -> Result<(), String> {
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: the container benchmark needs root");
        return Ok(());
    }
    for (bin, pkg) in [
        ("/bin/busybox", "busybox-static"),
        ("/usr/bin/crun", "crun"),
        ("/usr/sbin/runc", "runc"),
    ] {
        if !have(bin) {
            println!("skipped: {bin} missing (apt-get install {pkg})");
            return Ok(());
        }
    }
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bundle = prepare_bundle(work.path())?;
    let result = measure(work.path(), &bundle, runs);
    let _ = rootfs::unmount(&bundle.join("rootfs"));
    result
}

/// Imports the busybox image, mounts its overlay once and writes config.json.
fn prepare_bundle(work: &Path) -> Result<PathBuf, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/images/build-busybox.sh");
    let layout = work.join("layout");
    let status = Command::new("sh")
        .arg(&script)
        .arg(&layout)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("build-busybox.sh failed".into());
    }
    let store = ImageStore::open(&work.join("data")).map_err(|e| e.to_string())?;
    let image = import::import(&store, &layout, None)
        .map_err(|e| e.to_string())?
        .remove(0);
    let lowers = store.prepare_layers(&image).map_err(|e| e.to_string())?;
    let bundle = work.join("bundle");
    let overlay = Overlay {
        lowers,
        upper: work.join("upper"),
        work: work.join("work"),
        target: bundle.join("rootfs"),
    };
    rootfs::mount_overlay(&overlay).map_err(|e| e.to_string())?;
    let spec = ContainerSpec {
        hostname: "bench".into(),
        process: ProcessSpec {
            args: vec!["/bin/true".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            ..ProcessSpec::default()
        },
        rootfs: bundle.join("rootfs"),
        readonly_rootfs: false,
        network: NetworkMode::New,
        resources: Resources {
            memory_limit_bytes: Some(64 << 20),
            pids_limit: Some(64),
            ..Resources::default()
        },
        cgroups_path: "/drover-bench/c".into(),
        cap_add: vec![],
        cap_drop: vec![],
        privileged: false,
    };
    let oci = runtime_spec(&spec).map_err(|e| e.to_string())?;
    let json = serde_json::to_vec_pretty(&oci).map_err(|e| e.to_string())?;
    std::fs::write(bundle.join("config.json"), json).map_err(|e| e.to_string())?;
    Ok(bundle)
}

fn crun(bundle: &Path, id: &str) -> Result<(), String> {
    let mut cmd = Command::new("/usr/bin/crun");
    cmd.args(["run", "--bundle"]).arg(bundle).arg(id);
    // SAFETY: only unshare/mount/umount2 between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
            nix::mount::mount(
                None::<&str>,
                "/",
                None::<&str>,
                nix::mount::MsFlags::MS_PRIVATE | nix::mount::MsFlags::MS_REC,
                None::<&str>,
            )?;
            let _ = nix::mount::umount2("/sys/fs/cgroup/unified", nix::mount::MntFlags::MNT_DETACH);
            Ok(())
        });
    }
    exec(cmd)
}

fn runc(bundle: &Path, id: &str) -> Result<(), String> {
    let mut cmd = Command::new("/usr/sbin/runc");
    cmd.args(["run", "--bundle"]).arg(bundle).arg(id);
    exec(cmd)
}

fn exec(mut cmd: Command) -> Result<(), String> {
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// Drover's runtime as the agent uses it: a detached shim process runs the
/// container and reports its exit over the control socket.
fn drover_shim(
    launcher: &ShimLauncher,
    work: &Path,
    bundle: &Path,
    id: &str,
) -> Result<(), String> {
    let state_dir = work.join("shims").join(id);
    let config = ShimConfig {
        container_id: id.to_string(),
        bundle: bundle.to_path_buf(),
        runtime_root: work.join("rt"),
        overlay: None,
        log_path: state_dir.join("log"),
        log_max_bytes: 1 << 20,
        log_max_files: 1,
        cgroups_path: "/drover-bench/c".into(),
        default_grace_ms: 1000,
        vm: None,
    };
    let shim = launcher
        .launch(&state_dir, &config)
        .map_err(|e| e.to_string())?;
    let state = shim
        .wait(Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    if state.exit_code != Some(0) {
        return Err(format!("drover shim: {state:?}"));
    }
    let _ = std::fs::remove_dir_all(&state_dir);
    Ok(())
}

/// libcontainer in this process: create, start, wait, delete (the floor of
/// what any libcontainer-based runtime can do).
fn drover_inprocess(runtime: &LibcontainerRuntime, bundle: &Path, id: &str) -> Result<(), String> {
    let null = || {
        std::fs::File::options()
            .write(true)
            .open("/dev/null")
            .map_err(|e| e.to_string())
    };
    let stdio = drover_node_agent::runtime::container::Stdio {
        stdin: None,
        stdout: null()?.into(),
        stderr: null()?.into(),
    };
    let pid = runtime
        .create(id, bundle, stdio)
        .map_err(|e| e.to_string())?;
    runtime.start(id).map_err(|e| e.to_string())?;
    let status = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None)
        .map_err(|e| e.to_string())?;
    runtime.delete(id).map_err(|e| e.to_string())?;
    match status {
        nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
        other => Err(format!("in-process: {other:?}")),
    }
}

/// User + system CPU of this process and its reaped children.
fn cpu_time() -> Duration {
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    let mut total = Duration::ZERO;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: getrusage fills the struct we own.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        if unsafe { libc::getrusage(who, &mut usage) } == 0 {
            total += tv(usage.ru_utime) + tv(usage.ru_stime);
        }
    }
    total
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn measure(work: &Path, bundle: &Path, runs: usize) -> Result<(), String> {
    let launcher = ShimLauncher::new(env!("CARGO_BIN_EXE_drover-node-shim"), vec![])
        .with_start_timeout(Duration::from_secs(10))
        .with_prespawn();
    let runtime = LibcontainerRuntime::new(work.join("rt-in"));
    let names = [
        "drover (shim)",
        "drover (in-process)",
        "crun run",
        "runc run",
    ];
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    // CPU time (user + system) of this process and its reaped children: on
    // a busy machine wall time mostly measures the scheduler, CPU time the
    // work. The shim is detached (not our child), so it has none.
    let mut cpu: Vec<Vec<Duration>> = vec![Vec::new(); names.len()];
    let warmup = 3;
    for round in 0..runs + warmup {
        for (i, samples) in times.iter_mut().enumerate() {
            let id = format!("b{i}-{round}");
            let c = cpu_time();
            let t = Instant::now();
            match i {
                0 => drover_shim(&launcher, work, bundle, &id)?,
                1 => drover_inprocess(&runtime, bundle, &id)?,
                2 => crun(bundle, &id)?,
                _ => runc(bundle, &id)?,
            }
            if round >= warmup {
                samples.push(t.elapsed());
                cpu[i].push(cpu_time().saturating_sub(c));
            }
        }
    }
    for dir in
        drover_node_agent::runtime::container::cgroup::existing_dirs(Path::new("/drover-bench"))
    {
        let _ = std::fs::remove_dir(dir);
    }
    let medians: Vec<Duration> = times.iter_mut().map(|v| median(v)).collect();
    let cpu_medians: Vec<Duration> = cpu.iter_mut().map(|v| median(v)).collect();
    let (crun_median, crun_cpu) = (medians[2], cpu_medians[2]);
    println!("create -> start -> exit of /bin/true, busybox bundle, median of {runs} runs each");
    println!(
        "{:<22} {:>10} {:>8} {:>8} {:>8} {:>10} {:>8}",
        "runtime", "median ms", "min ms", "max ms", "vs crun", "cpu ms", "vs crun"
    );
    for (i, name) in names.iter().enumerate() {
        let min = times[i].iter().min().copied().unwrap_or_default();
        let max = times[i].iter().max().copied().unwrap_or_default();
        let (cpu_ms, cpu_ratio) = if i == 0 {
            ("n/a".to_string(), "n/a".to_string())
        } else {
            (
                format!("{:.2}", ms(cpu_medians[i])),
                format!("{:.2}x", ms(cpu_medians[i]) / ms(crun_cpu)),
            )
        };
        println!(
            "{name:<22} {:>10.2} {:>8.2} {:>8.2} {:>7.2}x {cpu_ms:>10} {cpu_ratio:>8}",
            ms(medians[i]),
            ms(min),
            ms(max),
            ms(medians[i]) / ms(crun_median),
        );
    }
    Ok(())
}
