//! The exec helper (`drover shim exec --root DIR --id ID [--tty] -- CMD…`):
//! a short-lived process that runs a command inside a running container
//! through libcontainer's tenant builder (which joins the container's
//! namespaces and cgroup and applies its capabilities, seccomp profile,
//! user and environment), with the helper's own stdin/stdout/stderr, and
//! exits with the command's exit code (128 + signal when killed). SIGTERM
//! or SIGINT to the helper kills the command. It forks: the agent runs it
//! as a child process, never in its async runtime.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, kill, sigaction};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

/// Parsed helper command line.
#[derive(Debug, PartialEq, Eq)]
pub struct ExecArgs {
    /// libcontainer's state root.
    pub root: PathBuf,
    /// The container.
    pub id: String,
    /// stdin is a terminal: make it the controlling one.
    pub tty: bool,
    /// The command and its arguments.
    pub command: Vec<String>,
}

/// Parses `--root DIR --id ID [--tty] -- CMD…` (pure).
pub fn parse_args(args: &[OsString]) -> Result<ExecArgs, String> {
    let (mut root, mut id, mut tty) = (None, None, false);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("--root") => root = it.next().map(PathBuf::from),
            Some("--id") => id = it.next().and_then(|s| s.to_str()).map(str::to_string),
            Some("--tty") => tty = true,
            Some("--") => break,
            _ => return Err(format!("unknown exec argument {arg:?}")),
        }
    }
    let command = it
        .map(|a| a.to_str().map(str::to_string))
        .collect::<Option<Vec<_>>>()
        .ok_or("the command must be UTF-8")?;
    if command.is_empty() {
        return Err("no command given after --".into());
    }
    Ok(ExecArgs {
        root: root.ok_or("--root DIR is required")?,
        id: id.ok_or("--id ID is required")?,
        tty,
        command,
    })
}

static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(_: libc::c_int) {
    let pid = CHILD.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

fn on_termination_kill_child() {
    let action = SigAction::new(
        SigHandler::Handler(forward),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only reads an atomic and calls kill.
        let _ = unsafe { sigaction(sig, &action) };
    }
}

/// The helper's entry point (arguments after `exec`).
pub fn exec_main(args: &[OsString]) -> ExitCode {
    let args = match parse_args(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("drover exec: {e}");
            return ExitCode::from(126);
        }
    };
    if args.tty {
        // A session of our own with the terminal on stdin as its
        // controlling terminal, so the shell gets job control and ^C.
        let _ = nix::unistd::setsid();
        // SAFETY: TIOCSCTTY on our own stdin.
        unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
    }
    on_termination_kill_child();
    let built = ContainerBuilder::new(args.id.clone(), SyscallType::default())
        .with_root_path(args.root.clone())
        .map(|b| {
            b.as_tenant()
                .with_container_args(args.command.clone())
                .with_detach(false)
                .build()
        });
    let pid = match built {
        Ok(Ok(pid)) => pid,
        Ok(Err(e)) | Err(e) => {
            eprintln!("drover exec: in container {}: {e}", args.id);
            return ExitCode::from(126);
        }
    };
    CHILD.store(pid.as_raw(), Ordering::SeqCst);
    ExitCode::from(wait_code(pid))
}

fn wait_code(pid: Pid) -> u8 {
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return u8::try_from(code & 0xff).unwrap_or(1),
            Ok(WaitStatus::Signaled(_, sig, _)) => {
                return u8::try_from(128 + (sig as i32 & 0x7f)).unwrap_or(137);
            }
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("drover exec: waiting for the command: {e}");
                let _ = kill(pid, Signal::SIGKILL);
                return 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_its_command_line() {
        let a = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            parse_args(&a(&[
                "--root", "/r", "--id", "c1", "--", "sh", "-c", "--tty"
            ])),
            Ok(ExecArgs {
                root: "/r".into(),
                id: "c1".into(),
                tty: false,
                command: vec!["sh".into(), "-c".into(), "--tty".into()],
            })
        );
        assert!(
            parse_args(&a(&["--root", "/r", "--id", "c1", "--tty", "--", "sh"]))
                .is_ok_and(|p| p.tty)
        );
        assert!(parse_args(&a(&["--root", "/r", "--id", "c1", "--"])).is_err());
        assert!(parse_args(&a(&["--id", "c1", "--", "sh"])).is_err());
        assert!(parse_args(&a(&["--bogus"])).is_err());
    }
}
