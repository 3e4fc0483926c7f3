//! Which program runs a node's VMs, chosen once per node from what the
//! host offers, and the command line of the `qemu` engine (a pure
//! function of the VM's spec).
//!
//! `kvm` is Drover's own monitor (drover-vmm); it needs hardware KVM to
//! boot Linux. On `kvm_pvm` (nested, paravirtual KVM, as on our CI
//! machines) an unmodified kernel cannot boot, so `auto` picks `qemu`
//! there (TCG), as KubeVirt's emulation mode does, and `kvm` on hardware
//! KVM.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use drover_init::config::NetConfig;

/// What the operator asked for (`--vm-engine`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineChoice {
    Auto,
    Kvm,
    Qemu,
}

impl std::str::FromStr for EngineChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(EngineChoice::Auto),
            "kvm" => Ok(EngineChoice::Kvm),
            "qemu" => Ok(EngineChoice::Qemu),
            other => Err(format!(
                "unknown VM engine {other:?}: use auto, kvm or qemu"
            )),
        }
    }
}

/// The engine a node runs its VMs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// QEMU's microvm machine; `kvm` says whether it accelerates with KVM.
    Qemu { kvm: bool },
    /// Drover's own monitor on hardware KVM.
    Kvm,
}

impl Engine {
    /// The engine's kind, `qemu` or `kvm` (`Node.status.vmEngine`).
    pub fn kind(self) -> &'static str {
        match self {
            Engine::Qemu { .. } => "qemu",
            Engine::Kvm => "kvm",
        }
    }

    /// The engine with its acceleration (label `drover.io/vm-engine`).
    pub fn name(self) -> &'static str {
        match self {
            Engine::Qemu { kvm: true } => "qemu-kvm",
            Engine::Qemu { kvm: false } => "qemu-tcg",
            Engine::Kvm => "kvm",
        }
    }
}

/// The label carrying the engine on the Node.
pub const ENGINE_LABEL: &str = "drover.io/vm-engine";

/// What the host offers, as probed by [`HostFacts::probe`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// /dev/kvm can be opened.
    pub kvm_device: bool,
    /// The KVM module is kvm_pvm (cannot boot stock Linux).
    pub kvm_pvm: bool,
    /// The CPU advertises vmx or svm.
    pub hardware_virt: bool,
    /// The QEMU binary, if installed.
    pub qemu: Option<PathBuf>,
    /// The host's TSC frequency in kHz (what an emulated guest's TSC runs at).
    pub tsc_khz: Option<u64>,
}

/// The QEMU binary's name.
pub const QEMU: &str = "qemu-system-x86_64";

impl HostFacts {
    /// Looks at this machine.
    pub fn probe() -> HostFacts {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let flags = cpuinfo
            .lines()
            .find(|l| l.starts_with("flags"))
            .unwrap_or("");
        HostFacts {
            kvm_device: std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/kvm")
                .is_ok(),
            kvm_pvm: Path::new("/sys/module/kvm_pvm").exists(),
            hardware_virt: flags
                .split_ascii_whitespace()
                .any(|f| f == "vmx" || f == "svm"),
            qemu: find_in_path(QEMU),
            tsc_khz: tsc_khz(&cpuinfo),
        }
    }

    fn hardware_kvm(&self) -> bool {
        self.kvm_device && !self.kvm_pvm && self.hardware_virt
    }
}

/// The TSC frequency: sysfs where the kernel exports it, else the
/// `cpu MHz` of /proc/cpuinfo (pure over the cpuinfo text otherwise).
fn tsc_khz(cpuinfo: &str) -> Option<u64> {
    if let Ok(k) = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/tsc_freq_khz")
        && let Ok(k) = k.trim().parse()
    {
        return Some(k);
    }
    cpu_mhz_khz(cpuinfo)
}

fn cpu_mhz_khz(cpuinfo: &str) -> Option<u64> {
    let line = cpuinfo.lines().find(|l| l.starts_with("cpu MHz"))?;
    let mhz: f64 = line.split(':').nth(1)?.trim().parse().ok()?;
    (mhz > 0.0).then_some((mhz * 1000.0) as u64)
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Picks the engine (pure); the string explains the choice for the log.
pub fn select(choice: EngineChoice, host: &HostFacts) -> Result<(Engine, String), String> {
    let hw = host.hardware_kvm();
    let why_not_hw = if !host.kvm_device {
        "/dev/kvm is not usable"
    } else if host.kvm_pvm {
        "/dev/kvm is kvm_pvm, which cannot boot an unmodified Linux kernel"
    } else {
        "the CPU shows no vmx/svm"
    };
    match choice {
        EngineChoice::Kvm | EngineChoice::Auto if hw => {
            Ok((Engine::Kvm, "kvm engine (drover-vmm): hardware KVM".into()))
        }
        EngineChoice::Kvm => Err(format!("--vm-engine kvm: {why_not_hw}")),
        EngineChoice::Qemu | EngineChoice::Auto => {
            if host.qemu.is_none() {
                return Err(format!(
                    "{QEMU} is not installed (apt-get install qemu-system-x86)"
                ));
            }
            let why = if hw {
                "qemu engine with KVM acceleration (--vm-engine qemu)".to_string()
            } else {
                format!("qemu engine, emulated (TCG): {why_not_hw}")
            };
            Ok((Engine::Qemu { kvm: hw }, why))
        }
    }
}

/// The guest's network interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TapNet {
    /// The tap device on the node bridge.
    pub tap: String,
    pub mac: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

/// One VM to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmSpec {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub net: Option<TapNet>,
    /// Emulated guests only: the TSC frequency to tell the kernel. Its own
    /// calibration against the emulated PIT hangs when the host is busy.
    pub tsc_khz: Option<u64>,
    /// qemu engine: load this migration URI instead of booting
    /// (a snapshot; the kernel and initrd must be the snapshot's).
    pub incoming: Option<String>,
}

/// Debian's kernels tick at 250 Hz (loops per jiffy follow from the TSC).
const GUEST_HZ: u64 = 250;

/// The kernel command line of a guest under QEMU (pure).
pub fn kernel_cmdline(spec: &VmSpec) -> String {
    // reboot=t: drover-init's reboot triple-faults, which ends the
    // monitor at once; panic=-1 turns a guest panic into the same.
    format!("console=ttyS0 reboot=t panic=-1 {}", guest_args(spec))
}

/// What every engine appends to its kernel command line (pure).
fn guest_args(spec: &VmSpec) -> String {
    let mut s = "quiet".to_string();
    if let Some(n) = &spec.net {
        let net = NetConfig {
            ip: n.ip,
            prefix: n.prefix,
            gateway: Some(n.gateway),
        };
        s.push(' ');
        s.push_str(&net.cmdline());
    }
    if let Some(khz) = spec.tsc_khz {
        s.push_str(&format!(
            " tsc_early_khz={khz} lpj={}",
            khz * 1000 / GUEST_HZ
        ));
    }
    s
}

/// The kvm engine's command line (pure): `MONITOR… vmm FLAGS…`, where
/// `monitor` runs the shim entry point (`drover shim`). drover-vmm's own
/// command line (console, `reboot=k` through its i8042) comes first.
pub fn kvm_argv(monitor: &[String], spec: &VmSpec) -> Vec<String> {
    let mac = spec.net.as_ref().and_then(|n| {
        let bytes: Vec<u8> = n
            .mac
            .split(':')
            .map(|p| u8::from_str_radix(p, 16).ok())
            .collect::<Option<_>>()?;
        Some((n.tap.clone(), <[u8; 6]>::try_from(bytes).ok()?))
    });
    let args = super::monitor::MonitorArgs {
        kernel: spec.kernel.clone(),
        initrd: Some(spec.initrd.clone()),
        cmdline: guest_args(&VmSpec {
            tsc_khz: None,
            ..spec.clone()
        }),
        memory_mib: spec.memory_mib,
        vcpus: u8::try_from(spec.vcpus).unwrap_or(u8::MAX),
        net: mac,
    };
    let mut a = monitor.to_vec();
    a.push("vmm".into());
    a.extend(args.to_args());
    a
}

/// The qemu command line (pure): microvm with ACPI (so the stock kernel
/// finds the virtio-mmio devices), serial console on stdio, no reboot.
pub fn qemu_argv(qemu: &Path, spec: &VmSpec, kvm: bool) -> Vec<String> {
    let mut a: Vec<String> = vec![qemu.display().to_string()];
    let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
    push(&["-M", "microvm,acpi=on"]);
    if kvm {
        push(&["-accel", "kvm", "-cpu", "host"]);
    } else {
        push(&["-accel", "tcg"]);
    }
    let mem = spec.memory_mib.to_string();
    let cpus = spec.vcpus.to_string();
    push(&["-m", &mem, "-smp", &cpus]);
    push(&["-nodefaults", "-no-user-config", "-display", "none"]);
    push(&["-no-reboot", "-serial", "stdio"]);
    // QMP in the working directory (the run directory): snapshots.
    let qmp = format!("unix:{},server=on,wait=off", super::snapshot::qmp::SOCKET);
    push(&["-qmp", &qmp]);
    let (kernel, initrd) = (
        spec.kernel.display().to_string(),
        spec.initrd.display().to_string(),
    );
    let cmdline = kernel_cmdline(spec);
    push(&["-kernel", &kernel, "-initrd", &initrd, "-append", &cmdline]);
    if let Some(n) = &spec.net {
        let netdev = format!("tap,id=net0,ifname={},script=no,downscript=no", n.tap);
        let device = format!("virtio-net-device,netdev=net0,mac={}", n.mac);
        push(&["-netdev", &netdev, "-device", &device]);
    }
    if let Some(uri) = &spec.incoming {
        push(&["-incoming", uri]);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(kvm_device: bool, kvm_pvm: bool, hardware_virt: bool, qemu: bool) -> HostFacts {
        HostFacts {
            kvm_device,
            kvm_pvm,
            hardware_virt,
            qemu: qemu.then(|| PathBuf::from("/usr/bin/qemu-system-x86_64")),
            tsc_khz: None,
        }
    }

    #[test]
    fn auto_picks_qemu_on_kvm_pvm_and_explains() {
        let (e, why) = select(EngineChoice::Auto, &host(true, true, false, true)).unwrap();
        assert_eq!(e, Engine::Qemu { kvm: false });
        assert!(why.contains("kvm_pvm"), "{why}");
        let (e, _) = select(EngineChoice::Auto, &host(true, false, true, true)).unwrap();
        assert_eq!(e, Engine::Kvm, "hardware KVM: our own monitor");
        let (e, _) = select(EngineChoice::Qemu, &host(true, false, true, true)).unwrap();
        assert_eq!(e, Engine::Qemu { kvm: true });
        let (e, why) = select(EngineChoice::Auto, &host(false, false, false, true)).unwrap();
        assert_eq!((e.name(), why.contains("not usable")), ("qemu-tcg", true));
        assert!(select(EngineChoice::Auto, &host(false, false, true, false)).is_err());
    }

    #[test]
    fn kvm_is_refused_where_it_cannot_boot_linux() {
        let e = select(EngineChoice::Kvm, &host(true, true, false, true)).unwrap_err();
        assert!(e.contains("kvm_pvm"), "{e}");
        assert_eq!(
            select(EngineChoice::Kvm, &host(true, false, true, false)).map(|r| r.0),
            Ok(Engine::Kvm)
        );
        assert!("bogus".parse::<EngineChoice>().is_err());
        assert_eq!("qemu".parse(), Ok(EngineChoice::Qemu));
    }

    #[test]
    fn qemu_command_line_carries_kernel_initrd_and_tap() {
        let spec = VmSpec {
            kernel: "/k/vmlinuz".into(),
            initrd: "/run/initrd".into(),
            memory_mib: 256,
            vcpus: 2,
            net: Some(TapNet {
                tap: "dtabc".into(),
                mac: "02:d0:0a:58:00:05".into(),
                ip: Ipv4Addr::new(10, 88, 0, 5),
                prefix: 24,
                gateway: Ipv4Addr::new(10, 88, 0, 1),
            }),
            tsc_khz: Some(2_000_000),
            incoming: None,
        };
        let a = qemu_argv(Path::new("/usr/bin/qemu-system-x86_64"), &spec, false);
        let joined = a.join(" ");
        for needle in [
            "-M microvm,acpi=on",
            "-accel tcg",
            "-m 256 -smp 2",
            "-no-reboot",
            "-kernel /k/vmlinuz -initrd /run/initrd",
            "ifname=dtabc,script=no",
            "mac=02:d0:0a:58:00:05",
            "-qmp unix:qmp.sock,server=on,wait=off",
        ] {
            assert!(joined.contains(needle), "{needle} in {joined}");
        }
        let cmdline = &a[a.iter().position(|x| x == "-append").unwrap() + 1];
        assert_eq!(
            cmdline,
            "console=ttyS0 reboot=t panic=-1 quiet drover.ip=10.88.0.5/24 drover.gw=10.88.0.1 \
             tsc_early_khz=2000000 lpj=8000000"
        );
        assert_eq!(
            cpu_mhz_khz("flags\t: x\ncpu MHz\t\t: 2445.406\n"),
            Some(2_445_406)
        );
        assert_eq!(cpu_mhz_khz("nothing"), None);
        assert!(
            qemu_argv(Path::new("q"), &spec, true)
                .join(" ")
                .contains("-accel kvm -cpu host")
        );
        assert!(!joined.contains("-incoming"));
        let restore = VmSpec {
            incoming: Some("exec:cat '/s/state'".into()),
            ..spec
        };
        let a = qemu_argv(Path::new("q"), &restore, false);
        assert_eq!(a[a.len() - 2..], ["-incoming", "exec:cat '/s/state'"]);
    }
}
