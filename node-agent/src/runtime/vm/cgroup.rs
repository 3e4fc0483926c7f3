//! The monitor's cgroup: a VM pod's monitor process runs in the run's
//! cgroup (`/drover/POD/CONTAINER-ATTEMPT`, as a container would) with a
//! memory limit of guest RAM plus the monitor's own overhead and a CPU
//! quota of its vCPUs, so a guest cannot take more of the node than it was
//! given. cgroup v1 (and hybrid) controllers, or the v2 tree.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Memory the monitor itself may use beyond guest RAM (QEMU under TCG
/// measured ~60 MiB outside guest RAM; drover-vmm ~3 MiB).
pub const MONITOR_OVERHEAD_MIB: u64 = 192;

const ROOT: &str = "/sys/fs/cgroup";
const CFS_PERIOD_US: u64 = 100_000;

/// Limits for a monitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MonitorLimits {
    pub memory_bytes: u64,
    /// CPU in millicores (quota per CFS period).
    pub cpu_millis: u64,
}

/// One directory to create and the files to write in it (pure plan).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub dir: PathBuf,
    pub writes: Vec<(&'static str, String)>,
    /// Whether the process joins through this directory's cgroup.procs.
    pub join: bool,
}

fn relative(path: &Path) -> PathBuf {
    path.strip_prefix("/").unwrap_or(path).to_path_buf()
}

/// What to do for `path` under `root` (pure): v1 when `v2` is false.
pub fn plan(root: &Path, v2: bool, path: &Path, limits: MonitorLimits) -> Vec<Step> {
    let rel = relative(path);
    let quota = limits.cpu_millis * CFS_PERIOD_US / 1000;
    if v2 {
        // Each ancestor must hand memory and cpu down to its children.
        let mut steps = vec![];
        let mut dir = root.to_path_buf();
        for c in rel.components() {
            steps.push(Step {
                dir: dir.clone(),
                writes: vec![("cgroup.subtree_control", "+memory +cpu".into())],
                join: false,
            });
            dir.push(c);
        }
        steps.push(Step {
            dir,
            writes: vec![
                ("memory.max", limits.memory_bytes.to_string()),
                ("cpu.max", format!("{quota} {CFS_PERIOD_US}")),
            ],
            join: true,
        });
        return steps;
    }
    vec![
        Step {
            dir: root.join("memory").join(&rel),
            writes: vec![("memory.limit_in_bytes", limits.memory_bytes.to_string())],
            join: true,
        },
        Step {
            dir: root.join("cpu").join(&rel),
            writes: vec![
                ("cpu.cfs_period_us", CFS_PERIOD_US.to_string()),
                ("cpu.cfs_quota_us", quota.to_string()),
            ],
            join: true,
        },
    ]
}

fn is_v2() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

/// Creates the cgroup with its limits; returns the `cgroup.procs` files
/// the monitor must join.
pub fn create(path: &Path, limits: MonitorLimits) -> io::Result<Vec<PathBuf>> {
    let mut procs = vec![];
    for step in plan(Path::new(ROOT), is_v2(), path, limits) {
        fs::create_dir_all(&step.dir)?;
        for (file, value) in &step.writes {
            let p = step.dir.join(file);
            fs::write(&p, value)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", p.display())))?;
        }
        if step.join {
            procs.push(step.dir.join("cgroup.procs"));
        }
    }
    Ok(procs)
}

/// Removes the cgroup's directories (empty once the monitor is gone).
pub fn remove(path: &Path) {
    for step in plan(
        Path::new(ROOT),
        is_v2(),
        path,
        MonitorLimits {
            memory_bytes: 0,
            cpu_millis: 0,
        },
    ) {
        if step.join {
            let _ = fs::remove_dir(&step.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: MonitorLimits = MonitorLimits {
        memory_bytes: 448 << 20,
        cpu_millis: 2000,
    };

    #[test]
    fn v1_limits_memory_and_cpu_quota() {
        let steps = plan(Path::new("/cg"), false, Path::new("/drover/p/c-0"), LIMITS);
        assert_eq!(steps[0].dir, Path::new("/cg/memory/drover/p/c-0"));
        assert_eq!(
            steps[0].writes,
            [("memory.limit_in_bytes", "469762048".to_string())]
        );
        assert_eq!(steps[1].dir, Path::new("/cg/cpu/drover/p/c-0"));
        assert!(
            steps[1]
                .writes
                .contains(&("cpu.cfs_quota_us", "200000".to_string()))
        );
        assert!(steps.iter().all(|s| s.join));
    }

    #[test]
    fn v2_enables_controllers_down_the_tree() {
        let steps = plan(Path::new("/cg"), true, Path::new("/drover/p/c-0"), LIMITS);
        let dirs: Vec<_> = steps.iter().map(|s| s.dir.display().to_string()).collect();
        assert_eq!(
            dirs,
            ["/cg", "/cg/drover", "/cg/drover/p", "/cg/drover/p/c-0"]
        );
        assert!(steps[..3].iter().all(|s| !s.join));
        let last = &steps[3];
        assert!(last.join);
        assert!(
            last.writes
                .contains(&("cpu.max", "200000 100000".to_string()))
        );
        assert!(
            last.writes
                .contains(&("memory.max", "469762048".to_string()))
        );
    }
}
