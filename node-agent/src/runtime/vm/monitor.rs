//! The `kvm` engine's per-VM monitor process: `drover shim vmm FLAGS…`
//! boots one VM with drover-vmm (confined by its seccomp filter), copies
//! the serial console to stdout for the shim, and ends when the guest
//! resets. A stop line on stdin (the shim's soft stop) stops the VM: the
//! monitor cannot type into the guest's console yet, so the stop is
//! immediate, reported as SIGTERM would be (143).

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use drover_init::console;
use drover_vmm::{KernelConfig, NetConfig, SerialOutput, VmConfig, VmExit};

/// The monitor's command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MonitorArgs {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
    pub memory_mib: u64,
    pub vcpus: u8,
    /// Tap and MAC (`aa:bb:cc:dd:ee:ff`).
    pub net: Option<(String, [u8; 6])>,
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect::<Option<_>>()?;
    parts.try_into().ok()
}

impl MonitorArgs {
    /// The flags for these args (pure; the inverse of [`MonitorArgs::parse`]).
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec![
            "--kernel".to_string(),
            self.kernel.display().to_string(),
            "--cmdline".into(),
            self.cmdline.clone(),
            "--memory-mib".into(),
            self.memory_mib.to_string(),
            "--vcpus".into(),
            self.vcpus.to_string(),
        ];
        if let Some(initrd) = &self.initrd {
            a.extend(["--initrd".into(), initrd.display().to_string()]);
        }
        if let Some((tap, mac)) = &self.net {
            let mac: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
            a.extend(["--tap".into(), tap.clone(), "--mac".into(), mac.join(":")]);
        }
        a
    }

    /// Parses the flags; errors name the flag.
    pub fn parse(args: &[OsString]) -> Result<MonitorArgs, String> {
        let mut m = MonitorArgs::default();
        let (mut tap, mut mac) = (None, None);
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let flag = flag.to_string_lossy().into_owned();
            let value = it
                .next()
                .map(|v| v.to_string_lossy().into_owned())
                .ok_or_else(|| format!("{flag} needs a value"))?;
            let number = |v: &str| {
                v.parse::<u64>()
                    .map_err(|_| format!("{flag} {v:?}: not a number"))
            };
            match flag.as_str() {
                "--kernel" => m.kernel = value.into(),
                "--initrd" => m.initrd = Some(value.into()),
                "--cmdline" => m.cmdline = value,
                "--memory-mib" => m.memory_mib = number(&value)?,
                "--vcpus" => {
                    m.vcpus = u8::try_from(number(&value)?)
                        .map_err(|_| format!("--vcpus {value}: too many"))?;
                }
                "--tap" => tap = Some(value),
                "--mac" => {
                    mac = Some(
                        parse_mac(&value)
                            .ok_or_else(|| format!("--mac {value:?}: want aa:bb:cc:dd:ee:ff"))?,
                    );
                }
                other => return Err(format!("unknown monitor flag {other:?}")),
            }
        }
        m.net = match (tap, mac) {
            (Some(t), Some(m)) => Some((t, m)),
            (None, None) => None,
            _ => return Err("--tap and --mac go together".into()),
        };
        if m.kernel.as_os_str().is_empty() {
            return Err("--kernel is required".into());
        }
        Ok(m)
    }

    /// The drover-vmm config (validated by the builder).
    pub fn config(&self) -> VmConfig {
        let mut c = VmConfig::new(self.kernel.clone());
        c.kernel = KernelConfig {
            path: self.kernel.clone(),
            initrd: self.initrd.clone(),
            cmdline: self.cmdline.clone(),
        };
        c.mem_mib = self.memory_mib;
        c.vcpus = self.vcpus;
        c.net = self
            .net
            .iter()
            .map(|(tap, mac)| NetConfig {
                tap: tap.clone(),
                mac: *mac,
            })
            .collect();
        c
    }
}

/// Runs the monitor; the exit code is 0 when the guest reset itself.
pub fn monitor_main(args: &[OsString]) -> ExitCode {
    let parsed = match MonitorArgs::parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("drover vmm: {e}");
            return ExitCode::from(2);
        }
    };
    let mut config = parsed.config();
    let out: Arc<Mutex<dyn Write + Send>> = Arc::new(Mutex::new(std::io::stdout()));
    config.serial = SerialOutput::Writer(out);
    let vm = match drover_vmm::build(&config) {
        Ok(vm) => vm,
        Err(e) => {
            eprintln!("drover vmm: {e}");
            return ExitCode::from(1);
        }
    };
    let stop = vm.stop_handle();
    let stopped = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&stopped);
    let (running_tx, running_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = running_tx.send(());
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if line.trim_end() == console::STOP {
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
                stop.stop();
                return;
            }
        }
    });
    // A thread registers itself (rseq) once it runs, which the filter
    // forbids: install it only after the reader thread is up.
    let _ = running_rx.recv();
    if let Err(e) = drover_vmm::seccomp::apply(&drover_vmm::seccomp::monitor_allowlist()) {
        eprintln!("drover vmm: seccomp: {e}");
        return ExitCode::from(1);
    }
    match vm.wait() {
        VmExit::GuestReset | VmExit::GuestShutdown => ExitCode::SUCCESS,
        VmExit::Stopped if stopped.load(std::sync::atomic::Ordering::SeqCst) => ExitCode::from(143),
        VmExit::Stopped => ExitCode::from(1),
        VmExit::VcpuFailed { vcpu, reason } => {
            eprintln!("drover vmm: vCPU {vcpu} failed: {reason}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_round_trip_and_errors_name_the_flag() {
        let m = MonitorArgs {
            kernel: "/k".into(),
            initrd: Some("/i".into()),
            cmdline: "quiet drover.ip=10.0.0.2/24".into(),
            memory_mib: 256,
            vcpus: 2,
            net: Some(("tapx".into(), [2, 0xd0, 10, 0, 0, 2])),
        };
        let args: Vec<OsString> = m.to_args().into_iter().map(OsString::from).collect();
        assert_eq!(MonitorArgs::parse(&args), Ok(m.clone()));
        let c = m.config();
        assert_eq!((c.mem_mib, c.vcpus, c.net.len()), (256, 2, 1));
        let bad = |v: &[&str]| {
            MonitorArgs::parse(&v.iter().map(OsString::from).collect::<Vec<_>>()).unwrap_err()
        };
        assert!(bad(&["--vcpus", "x", "--kernel", "/k"]).contains("--vcpus"));
        assert!(bad(&["--vcpus", "300", "--kernel", "/k"]).contains("--vcpus"));
        assert!(bad(&["--kernel"]).contains("needs a value"));
        assert!(bad(&["--kernel", "/k", "--tap", "t"]).contains("together"));
        assert!(bad(&["--kernel", "/k", "--tap", "t", "--mac", "zz"]).contains("--mac"));
        assert!(bad(&["--memory-mib", "1"]).contains("--kernel"));
        assert!(bad(&["--bogus", "1"]).contains("--bogus"));
    }
}
