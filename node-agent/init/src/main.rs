//! `drover-init`: PID 1 of a VM pod. Mounts the kernel file systems,
//! loads the virtio modules, configures eth0 from the kernel command line,
//! runs the workload from `/drover/config` with its output on the console,
//! forwards a stop request from the host as SIGTERM (and a readdress
//! line, after a restore, to eth0), prints the exit code
//! and reboots (the monitor exits on reboot).
//!
//! Built by the node agent's build script with plain `rustc` and
//! `+crt-static`, hence std only: the few calls std lacks are declared
//! below against glibc.

mod sys;

use std::io::{BufRead, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use drover_init::config::{self, GuestConfig, NetConfig};
use drover_init::console;
use drover_init::readdress::{self, Readdress};

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn main() {
    if std::process::id() != 1 {
        eprintln!("drover-init: runs as PID 1 of a Drover VM pod");
        std::process::exit(2);
    }
    say(console::STARTED);
    let code = match run() {
        Ok(code) => code,
        Err(e) => {
            say(&console::failed_line(&e));
            127
        }
    };
    say(&console::exit_line(code));
    sys::sync();
    sys::reboot();
    // Only reached if the kernel refused: PID 1 must not return.
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn run() -> Result<i32, String> {
    sys::mount_kernel_filesystems()?;
    load_modules()?;
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    sys::interface_up("lo", None)?;
    if let Some(net) = NetConfig::from_cmdline(&cmdline)? {
        wait_for_link("eth0", Duration::from_secs(5))?;
        sys::interface_up("eth0", Some((net.ip, net.netmask())))?;
        if let Some(gw) = net.gateway {
            sys::default_route(gw)?;
        }
    }
    let text = std::fs::read_to_string(config::CONFIG_PATH)
        .map_err(|e| format!("reading {}: {e}", config::CONFIG_PATH))?;
    let cfg = GuestConfig::parse(&text).map_err(|e| e.to_string())?;
    if !cfg.hostname.is_empty() {
        sys::set_hostname(&cfg.hostname)?;
    }
    if let Some(resolv) = cfg.resolv_conf() {
        let _ = std::fs::create_dir_all("/etc");
        std::fs::write("/etc/resolv.conf", resolv)
            .map_err(|e| format!("writing /etc/resolv.conf: {e}"))?;
    }
    let Some((program, args)) = cfg.args.split_first() else {
        return Err("no command to run".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(cfg.env.iter().map(|(k, v)| (k, v)))
        .current_dir(if cfg.cwd.is_empty() { "/" } else { &cfg.cwd })
        .stdin(Stdio::null())
        .uid(cfg.uid)
        .gid(cfg.gid);
    let child = cmd
        .spawn()
        .map_err(|e| format!("starting {program:?}: {e}"))?;
    let pid = child.id() as i32;
    // Lines from the host arrive on our stdin (the console): not echoed.
    sys::console_no_echo();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            match line {
                Ok(l) if l.trim_end() == console::STOP => sys::terminate(pid),
                Ok(l) => {
                    if let Some(r) = Readdress::parse(&l) {
                        match r.and_then(readdress) {
                            Ok(()) => say(readdress::DONE),
                            Err(e) => say(&format!("drover-init: readdress failed: {e}")),
                        }
                    }
                }
                Err(_) => break,
            }
        }
    });
    // As PID 1 we reap every orphan; the workload's status is the answer.
    Ok(sys::reap_until(pid))
}

/// Moves eth0 to the address of a restored pod: MAC, address, route.
fn readdress(r: Readdress) -> Result<(), String> {
    sys::set_mac("eth0", r.mac)?;
    sys::interface_up("eth0", Some((r.net.ip, r.net.netmask())))?;
    match r.net.gateway {
        Some(gw) => sys::ensure_default_route(gw),
        None => Ok(()),
    }
}

fn load_modules() -> Result<(), String> {
    let Ok(order) = std::fs::read_to_string(config::MODULES_ORDER) else {
        return Ok(()); // a kernel with the drivers built in
    };
    for name in order.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let path = format!("{}/{name}", config::MODULES_DIR);
        sys::load_module(&path)?;
    }
    Ok(())
}

fn wait_for_link(name: &str, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let path = format!("/sys/class/net/{name}");
    while !std::path::Path::new(&path).exists() {
        if Instant::now() > deadline {
            return Err(format!("{name} did not appear (is virtio_net loaded?)"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}
