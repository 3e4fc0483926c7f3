//! The guest kernel: where it is on the node, which virtio modules come
//! with it, and installing Debian's cloud kernel (`drover vm
//! install-kernel`): `apt-get download` + `dpkg-deb -x`, never committed.
//!
//! An installed kernel is a directory holding `vmlinuz`, `version` and
//! `modules/*.ko`; `--vm-kernel PATH` names the `vmlinuz`, and the modules
//! are looked up beside it (a kernel with the drivers built in needs none).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The virtio drivers a guest needs, in the order they must be loaded.
pub const VIRTIO_MODULES: [&str; 7] = [
    "virtio_ring",
    "virtio",
    "virtio_mmio",
    "failover",
    "net_failover",
    "virtio_net",
    "virtio_blk",
];

/// The Debian package depending on the current cloud kernel.
pub const KERNEL_PACKAGE: &str = "linux-image-cloud-amd64";

/// Where CI and `install-kernel` without `--data-dir` put the kernel.
pub const DEFAULT_KERNEL_DIR: &str = "/var/cache/drover/kernel";

/// The env var tests and the agent read for the kernel's path.
pub const KERNEL_ENV: &str = "DROVER_VM_KERNEL";

/// The kernel directory inside an agent's data directory.
pub fn data_dir_kernel(data_dir: &Path) -> PathBuf {
    data_dir.join("vm").join("kernel")
}

/// A kernel ready to boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuestKernel {
    /// The bzImage.
    pub vmlinuz: PathBuf,
    /// Modules to load, in order (only those present: others are built in).
    pub modules: Vec<PathBuf>,
}

/// The kernel could not be found or installed.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// No kernel at the path.
    #[error("guest kernel {0} not found (run `drover vm install-kernel`, or pass --vm-kernel)")]
    Missing(PathBuf),
    /// A step of the installation failed.
    #[error("installing the guest kernel: {0}")]
    Install(String),
}

impl GuestKernel {
    /// The kernel at `vmlinuz` with the modules in `modules/` beside it.
    pub fn locate(vmlinuz: &Path) -> Result<GuestKernel, KernelError> {
        if !vmlinuz.is_file() {
            return Err(KernelError::Missing(vmlinuz.to_path_buf()));
        }
        let dir = vmlinuz.parent().unwrap_or(Path::new("/")).join("modules");
        let modules = VIRTIO_MODULES
            .iter()
            .map(|m| dir.join(format!("{m}.ko")))
            .filter(|p| p.is_file())
            .collect();
        Ok(GuestKernel {
            vmlinuz: vmlinuz.to_path_buf(),
            modules,
        })
    }

    /// The kernel named by `$DROVER_VM_KERNEL`, else the default install.
    pub fn default_path() -> PathBuf {
        std::env::var_os(KERNEL_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(DEFAULT_KERNEL_DIR).join("vmlinuz"))
    }
}

fn run(cmd: &mut Command) -> Result<String, KernelError> {
    let what = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| KernelError::Install(format!("{what}: {e}")))?;
    if !out.status.success() {
        return Err(KernelError::Install(format!(
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The versioned package a meta package's `Depends:` names (pure):
/// `linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)` → the name.
pub fn depended_image(depends: &str) -> Option<String> {
    depends
        .split([',', '|'])
        .map(|d| d.split_whitespace().next().unwrap_or(""))
        .find(|d| d.starts_with("linux-image-") && d != &KERNEL_PACKAGE)
        .map(str::to_string)
}

fn find(root: &Path, pred: &dyn Fn(&Path) -> bool, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            find(&p, pred, out);
        } else if pred(&p) {
            out.push(p);
        }
    }
}

/// Downloads the current Debian cloud kernel and installs its `vmlinuz`
/// and virtio modules into `dir`; returns the installed kernel.
pub fn install(dir: &Path) -> Result<GuestKernel, KernelError> {
    let io = |what: &str, e: std::io::Error| KernelError::Install(format!("{what}: {e}"));
    fs::create_dir_all(dir).map_err(|e| io(&dir.display().to_string(), e))?;
    let work = dir.join(format!(".download-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).map_err(|e| io(&work.display().to_string(), e))?;
    let result = install_in(dir, &work);
    let _ = fs::remove_dir_all(&work);
    result
}

fn deb_in(work: &Path, prefix: &str) -> Result<PathBuf, KernelError> {
    let mut debs = vec![];
    find(
        work,
        &|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".deb"))
        },
        &mut debs,
    );
    debs.pop()
        .ok_or_else(|| KernelError::Install(format!("apt-get download left no {prefix}*.deb")))
}

fn install_in(dir: &Path, work: &Path) -> Result<GuestKernel, KernelError> {
    run(Command::new("apt-get")
        .args(["download", KERNEL_PACKAGE])
        .current_dir(work))?;
    let meta = deb_in(work, KERNEL_PACKAGE)?;
    let depends = run(Command::new("dpkg-deb").arg("-f").arg(&meta).arg("Depends"))?;
    let image = depended_image(&depends).ok_or_else(|| {
        KernelError::Install(format!(
            "{KERNEL_PACKAGE} depends on no kernel image: {depends:?}"
        ))
    })?;
    run(Command::new("apt-get")
        .args(["download", &image])
        .current_dir(work))?;
    let deb = deb_in(work, &format!("{image}_"))?;
    let root = work.join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
    let mut found = vec![];
    find(
        &root.join("boot"),
        &|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        },
        &mut found,
    );
    let vmlinuz = found
        .pop()
        .ok_or_else(|| KernelError::Install(format!("{image} holds no boot/vmlinuz-*")))?;
    let modules_dir = dir.join("modules");
    let _ = fs::remove_dir_all(&modules_dir);
    fs::create_dir_all(&modules_dir).map_err(|e| io_install(&modules_dir, e))?;
    for m in VIRTIO_MODULES {
        let mut hits = vec![];
        let file = format!("{m}.ko");
        find(
            &root.join("lib/modules"),
            &|p| p.file_name().is_some_and(|n| n == file.as_str()),
            &mut hits,
        );
        // Absent: built into this kernel.
        if let Some(src) = hits.pop() {
            fs::copy(&src, modules_dir.join(&file)).map_err(|e| io_install(&src, e))?;
        }
    }
    let target = dir.join("vmlinuz");
    let tmp = dir.join("vmlinuz.tmp");
    fs::copy(&vmlinuz, &tmp).map_err(|e| io_install(&vmlinuz, e))?;
    fs::rename(&tmp, &target).map_err(|e| io_install(&target, e))?;
    let version = vmlinuz
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .unwrap_or("unknown");
    fs::write(dir.join("version"), format!("{version}\n")).map_err(|e| io_install(dir, e))?;
    GuestKernel::locate(&target)
}

fn io_install(path: &Path, e: std::io::Error) -> KernelError {
    KernelError::Install(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meta_package_names_the_image() {
        assert_eq!(
            depended_image("linux-image-6.1.0-56-cloud-amd64 (= 6.1.192-2)").as_deref(),
            Some("linux-image-6.1.0-56-cloud-amd64")
        );
        assert_eq!(depended_image("libc6, foo"), None);
    }

    #[test]
    fn locating_finds_the_modules_present_in_order() {
        let t = tempfile::tempdir().unwrap();
        assert!(matches!(
            GuestKernel::locate(&t.path().join("vmlinuz")),
            Err(KernelError::Missing(_))
        ));
        fs::write(t.path().join("vmlinuz"), "k").unwrap();
        fs::create_dir(t.path().join("modules")).unwrap();
        for m in ["virtio_net", "virtio_ring"] {
            fs::write(t.path().join(format!("modules/{m}.ko")), "m").unwrap();
        }
        let k = GuestKernel::locate(&t.path().join("vmlinuz")).unwrap();
        let names: Vec<_> = k
            .modules
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["virtio_ring.ko", "virtio_net.ko"]);
    }
}
