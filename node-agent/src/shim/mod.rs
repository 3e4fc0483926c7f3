//! The per-container shim: a small supervisor process, started detached
//! by the agent, that owns one container for its whole life (create, start,
//! logs, reaping, OOM detection, stop, cleanup), so the agent can restart
//! without touching running workloads and re-adopt them from state files.

pub mod client;
pub mod control;
pub mod exec;
pub mod logs;
pub mod state;
pub mod supervisor;
pub mod vm;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

pub use client::{ShimClientError, ShimHandle, ShimLauncher};
pub use state::{ShimConfig, ShimState, Status};

/// Parsed shim command line.
#[derive(Debug, PartialEq, Eq)]
struct ShimArgs {
    /// Given, or read from stdin in standby mode.
    state_dir: Option<PathBuf>,
    standby: bool,
    ready_fd: Option<i32>,
    daemonize: bool,
}

fn parse_args(args: &[OsString]) -> Result<ShimArgs, String> {
    let mut state_dir = None;
    let mut ready_fd = None;
    let mut daemonize = false;
    let mut standby = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.to_str() {
            Some("--state-dir") => state_dir = it.next().map(PathBuf::from),
            Some("--ready-fd") => {
                let v = it
                    .next()
                    .and_then(|v| v.to_str())
                    .and_then(|v| v.parse().ok());
                ready_fd = Some(v.ok_or("--ready-fd needs a number")?);
            }
            Some("--daemonize") => daemonize = true,
            Some("--standby") => standby = true,
            _ => return Err(format!("unknown shim argument {arg:?}")),
        }
    }
    if state_dir.is_none() && !standby {
        return Err("--state-dir DIR or --standby is required".into());
    }
    Ok(ShimArgs {
        state_dir,
        standby,
        ready_fd,
        daemonize,
    })
}

/// The launcher turned transparent huge pages off for the shim itself
/// ([`client::THP_OPTION`]); containers, exec'd commands and VM monitors
/// must get the host's policy, not ours.
fn give_children_the_hosts_thp_policy() {
    // SAFETY: called first thing in the shim's main, before any thread
    // exists (nothing can read the environment concurrently).
    unsafe { std::env::remove_var(client::THP_OPTION) };
    // SAFETY: prctl with integer arguments only; failure leaves THP off,
    // which costs performance, not correctness.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 0, 0, 0, 0) };
}

/// The shim's entry point; `drover` calls it for its hidden `shim`
/// subcommand with the arguments after it:
/// `(--state-dir DIR | --standby) [--ready-fd N] [--daemonize]`.
/// `exec …` runs the exec helper instead ([`exec::exec_main`]); `vmm …`
/// the kvm engine's VM monitor ([`crate::runtime::vm::monitor`]).
pub fn shim_main(args: Vec<OsString>) -> ExitCode {
    give_children_the_hosts_thp_policy();
    if args.first().is_some_and(|a| a == "exec") {
        return exec::exec_main(&args[1..]);
    }
    if args.first().is_some_and(|a| a == "vmm") {
        return crate::runtime::vm::monitor::monitor_main(&args[1..]);
    }
    let args = match parse_args(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("drover-shim: {e}");
            return ExitCode::from(2);
        }
    };
    if args.daemonize {
        // Fork so the launcher can reap our parent at once, and start a new
        // session so the agent's terminal or process group never reaches us.
        // SAFETY: no threads exist yet; the parent only calls _exit.
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Parent { .. }) => {
                // SAFETY: _exit skips destructors that must not run twice.
                unsafe { libc::_exit(0) }
            }
            Ok(nix::unistd::ForkResult::Child) => {
                let _ = nix::unistd::setsid();
            }
            Err(e) => {
                eprintln!("drover-shim: fork: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let ready = args.ready_fd.and_then(supervisor::inherited_fd);
    let state_dir = match args.state_dir {
        Some(dir) => dir,
        // A spare: wait for the launcher to name our container. EOF means
        // the launcher went away without needing us.
        None => match supervisor::await_assignment() {
            Some(dir) => dir,
            None => return ExitCode::SUCCESS,
        },
    };
    match supervisor::run(&state_dir, ready) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("drover-shim: {e}");
            ExitCode::from(1)
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
            parse_args(&a(&["--state-dir", "/s", "--ready-fd", "3", "--daemonize"])),
            Ok(ShimArgs {
                state_dir: Some("/s".into()),
                standby: false,
                ready_fd: Some(3),
                daemonize: true
            })
        );
        assert!(parse_args(&a(&[])).is_err());
        assert!(parse_args(&a(&["--standby"])).is_ok_and(|p| p.standby && p.state_dir.is_none()));
        assert!(parse_args(&a(&["--state-dir", "/s", "--ready-fd", "x"])).is_err());
        assert!(parse_args(&a(&["--bogus"])).is_err());
    }
}
