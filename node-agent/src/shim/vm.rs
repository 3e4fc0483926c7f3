//! The shim's VM mode: instead of a container it runs the VM engine
//! process, its serial console (stdout) into the container log, and reads
//! drover-init's report (started, exit code, failure) from the console.
//! A soft stop writes drover-init's stop line to the console.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

use std::ffi::CString;

use drover_init::console::{self, ConsoleEvent};
use nix::unistd::Pid;

use super::logs::{self, MAX_LINE, RotatingLog, cri_line};
use super::state::{ShimConfig, VmProcess};
use crate::runtime::vm::cgroup;

/// What the guest said, and the way to talk to it.
#[derive(Debug, Default)]
pub struct Console {
    /// The monitor's stdin: the guest's serial input.
    pub input: Mutex<Option<ChildStdin>>,
    /// The last report drover-init printed.
    pub report: Mutex<Option<ConsoleEvent>>,
    /// Why drover-init could not run the workload, if it said so.
    pub failure: Mutex<Option<String>>,
    /// The monitor's last line on stderr (why QEMU refused to start).
    pub last_error: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Console {
    /// Asks drover-init to stop the workload; false if the console is gone.
    pub fn request_stop(&self) -> bool {
        let mut input = lock(&self.input);
        let Some(stdin) = input.as_mut() else {
            return false;
        };
        stdin
            .write_all(format!("{}\n", console::STOP).as_bytes())
            .and_then(|()| stdin.flush())
            .is_ok()
    }

    /// The exit code, signal and error to report for a monitor that ended
    /// with `monitor_code` (pure given the console's report).
    pub fn outcome(&self, monitor: (i32, Option<i32>)) -> (i32, Option<i32>, Option<String>) {
        if let Some(why) = lock(&self.failure).clone() {
            return (127, None, Some(why));
        }
        match lock(&self.report).clone() {
            Some(ConsoleEvent::Exit(code)) => (code, None, None),
            Some(ConsoleEvent::Failed(why)) => (127, None, Some(why)),
            // Killed (the grace period ran out) or died: the monitor's fate.
            Some(ConsoleEvent::Started) => (monitor.0, monitor.1, None),
            None => {
                let why = lock(&self.last_error).clone().unwrap_or_else(|| {
                    format!(
                        "the VM ended before drover-init started (monitor exit {})",
                        monitor.0
                    )
                });
                if monitor.1.is_some() {
                    (monitor.0, monitor.1, None)
                } else {
                    (monitor.0.max(1), None, Some(why))
                }
            }
        }
    }
}

/// Starts the monitor; returns its pid and the output pumps.
pub fn start(
    config: &ShimConfig,
    vm: &VmProcess,
    console: &Arc<Console>,
) -> Result<(Pid, Vec<thread::JoinHandle<()>>), String> {
    let log = RotatingLog::open(&config.log_path, config.log_max_bytes, config.log_max_files)
        .map_err(|e| format!("opening log {}: {e}", config.log_path.display()))?;
    let log = Arc::new(Mutex::new(log));
    let (program, args) = vm
        .argv
        .split_first()
        .ok_or("the VM monitor command is empty")?;
    // The monitor joins its cgroup between fork and exec, so not one of
    // its allocations escapes the limit.
    let mut procs = vec![];
    if let Some(limits) = vm
        .limits
        .filter(|_| !config.cgroups_path.as_os_str().is_empty())
    {
        let files = cgroup::create(&config.cgroups_path, limits)
            .map_err(|e| format!("creating the VM's cgroup: {e}"))?;
        for f in files {
            procs.push(
                CString::new(f.as_os_str().as_encoded_bytes())
                    .map_err(|_| format!("cgroup path {} has a NUL", f.display()))?,
            );
        }
    }
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(&config.bundle)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: prctl is async-signal-safe. A monitor must not outlive its
    // shim (nobody would stop it or remove its tap).
    // open/write/close are async-signal-safe; the paths were made before.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            for p in &procs {
                let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(fd);
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("starting {program}: {e}"))?;
    let mut stdin = child.stdin.take();
    if let (Some(input), Some(line)) = (stdin.as_mut(), &vm.console_input) {
        // A newline first: QEMU may take a byte into the UART before the
        // restored state replaces it, and drover-init skips empty lines.
        let _ = input.write_all(format!("\n{line}\n").as_bytes());
    }
    *lock(&console.input) = stdin;
    let mut pumps = vec![];
    if let Some(out) = child.stdout.take() {
        let (log, console) = (Arc::clone(&log), Arc::clone(console));
        pumps.push(thread::spawn(move || {
            pump_console(
                out,
                "stdout",
                &log,
                &mut |line| match console::parse_line(line) {
                    Some(ConsoleEvent::Failed(why)) => *lock(&console.failure) = Some(why),
                    Some(event) => *lock(&console.report) = Some(event),
                    None => {}
                },
            );
        }));
    }
    if let Some(err) = child.stderr.take() {
        let console = Arc::clone(console);
        pumps.push(thread::spawn(move || {
            pump_console(err, "stderr", &log, &mut |line| {
                if !line.trim().is_empty() {
                    *lock(&console.last_error) = Some(line.trim().to_string());
                }
            });
        }));
    }
    // The pid is reaped by the shim's reaper, never through `child`.
    Ok((Pid::from_raw(child.id() as i32), pumps))
}

/// Copies console lines (CR stripped) into the log and shows each to `seen`.
pub fn pump_console(
    from: impl Read,
    stream: &str,
    log: &Arc<Mutex<RotatingLog>>,
    seen: &mut dyn FnMut(&str),
) {
    let mut reader = BufReader::new(from);
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        // Cut at MAX_LINE: more of this line follows (a CRI partial record).
        let partial = line.len() >= MAX_LINE && line.last() != Some(&b'\n');
        while matches!(line.last(), Some(b'\n' | b'\r')) {
            line.pop();
        }
        seen(&String::from_utf8_lossy(&line));
        let record = cri_line(&logs::timestamp(), stream, partial, &line);
        let _ = lock(log).write_record(&record);
    }
}

/// Reads a file's CRI log back as plain lines (for tests and tools).
pub fn console_text(path: &std::path::Path) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut s);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_decides_the_exit() {
        let c = Console::default();
        assert_eq!(c.outcome((0, None)).0, 1, "no report: a failure");
        *lock(&c.last_error) = Some("could not open tap".into());
        assert_eq!(
            c.outcome((1, None)),
            (1, None, Some("could not open tap".into()))
        );
        assert_eq!(c.outcome((137, Some(9))), (137, Some(9), None));
        *lock(&c.report) = Some(ConsoleEvent::Started);
        assert_eq!(c.outcome((137, Some(9))), (137, Some(9), None));
        *lock(&c.report) = Some(ConsoleEvent::Exit(3));
        assert_eq!(c.outcome((0, None)), (3, None, None));
        *lock(&c.failure) = Some("no such file".into());
        assert_eq!(
            c.outcome((0, None)),
            (127, None, Some("no such file".into()))
        );
        assert!(!c.request_stop(), "no console yet");
    }

    #[test]
    fn console_lines_reach_the_log_without_carriage_returns() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("log");
        let log = Arc::new(Mutex::new(RotatingLog::open(&path, 1 << 20, 1).unwrap()));
        let mut seen = vec![];
        let input: &[u8] = b"[ 0.1] boot\r\ndrover-init: exit 3\r\ntail";
        pump_console(input, "stdout", &log, &mut |l| seen.push(l.to_string()));
        assert_eq!(seen, ["[ 0.1] boot", "drover-init: exit 3", "tail"]);
        let text = console_text(&path);
        assert!(text.contains(" stdout F drover-init: exit 3\n"), "{text}");
        assert!(text.contains(" stdout F tail\n"), "{text}");
        assert!(!text.contains('\r'));
    }
}
