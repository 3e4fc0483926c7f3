//! What the shim reads from a container's cgroup: OOM kills, and which
//! cgroup directories exist (for cleanup checks). Handles v1, hybrid and v2.

use std::fs;
use std::path::{Path, PathBuf};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Parses the `oom_kill N` line of `memory.events` (v2) or
/// `memory.oom_control` (v1).
pub fn parse_oom_kill(text: &str) -> Option<u64> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == "oom_kill")
        .and_then(|(_, v)| v.trim().parse().ok())
}

fn relative(cgroups_path: &Path) -> PathBuf {
    cgroups_path
        .strip_prefix("/")
        .unwrap_or(cgroups_path)
        .to_path_buf()
}

/// How many processes the OOM killer killed in the cgroup, if it can be read.
pub fn oom_kill_count(cgroups_path: &Path) -> Option<u64> {
    let rel = relative(cgroups_path);
    let root = Path::new(CGROUP_ROOT);
    [
        root.join("memory").join(&rel).join("memory.oom_control"),
        root.join(&rel).join("memory.events"),
        root.join("unified").join(&rel).join("memory.events"),
    ]
    .iter()
    .find_map(|p| fs::read_to_string(p).ok())
    .and_then(|t| parse_oom_kill(&t))
}

/// Parses `usage_usec N` from a v2 `cpu.stat`, in nanoseconds.
pub fn parse_cpu_stat_usage_ns(text: &str) -> Option<u64> {
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .find(|(k, _)| *k == "usage_usec")
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        .map(|us| us.saturating_mul(1000))
}

/// CPU time the cgroup's processes used so far, in nanoseconds (for
/// metrics and the autoscaler; also how tests see a CPU limit bite).
pub fn cpu_usage_ns(cgroups_path: &Path) -> Option<u64> {
    let rel = relative(cgroups_path);
    let root = Path::new(CGROUP_ROOT);
    let v1 = fs::read_to_string(root.join("cpuacct").join(&rel).join("cpuacct.usage"))
        .or_else(|_| fs::read_to_string(root.join("cpu,cpuacct").join(&rel).join("cpuacct.usage")))
        .ok()
        .and_then(|t| t.trim().parse().ok());
    v1.or_else(|| {
        fs::read_to_string(root.join(&rel).join("cpu.stat"))
            .ok()
            .and_then(|t| parse_cpu_stat_usage_ns(&t))
    })
}

/// Working set from a memory usage and `memory.stat` (pure): usage minus
/// inactive page cache, as the kubelet counts it (what an OOM kill looks
/// at). v1 names the hierarchical figure `total_inactive_file`.
pub fn working_set(usage: u64, memory_stat: &str) -> u64 {
    let field = |name: &str| {
        memory_stat
            .lines()
            .filter_map(|l| l.split_once(' '))
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.trim().parse::<u64>().ok())
    };
    let inactive = field("total_inactive_file")
        .or_else(|| field("inactive_file"))
        .unwrap_or(0);
    usage.saturating_sub(inactive)
}

/// Memory working set of the cgroup, in bytes (v1 memory controller, else
/// the v2 or hybrid unified tree).
pub fn memory_working_set_bytes(cgroups_path: &Path) -> Option<u64> {
    let rel = relative(cgroups_path);
    let root = Path::new(CGROUP_ROOT);
    let read = |dir: PathBuf, usage: &str| {
        let usage = fs::read_to_string(dir.join(usage))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let stat = fs::read_to_string(dir.join("memory.stat")).unwrap_or_default();
        Some(working_set(usage, &stat))
    };
    read(root.join("memory").join(&rel), "memory.usage_in_bytes")
        .or_else(|| read(root.join(&rel), "memory.current"))
        .or_else(|| read(root.join("unified").join(&rel), "memory.current"))
}

/// Every directory for this cgroup path across all mounted hierarchies
/// (v1 controllers, the v2 or hybrid unified tree).
pub fn existing_dirs(cgroups_path: &Path) -> Vec<PathBuf> {
    let rel = relative(cgroups_path);
    let mut out = Vec::new();
    let direct = Path::new(CGROUP_ROOT).join(&rel);
    if direct.is_dir() {
        out.push(direct);
    }
    if let Ok(entries) = fs::read_dir(CGROUP_ROOT) {
        for e in entries.flatten() {
            let p = e.path().join(&rel);
            if p.is_dir() {
                out.push(p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_oom_kill_from_v1_and_v2_files() {
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        let v2 = "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n";
        assert_eq!(parse_oom_kill(v1), Some(2));
        assert_eq!(parse_oom_kill(v2), Some(1));
        assert_eq!(parse_oom_kill("oom 1\n"), None);
    }

    #[test]
    fn working_set_leaves_out_inactive_cache() {
        let v1 = "cache 100\ninactive_file 10\ntotal_inactive_file 40\n";
        let v2 = "anon 500\nfile 300\ninactive_file 200\n";
        assert_eq!(working_set(1000, v1), 960);
        assert_eq!(working_set(1000, v2), 800);
        assert_eq!(working_set(100, "inactive_file 200\n"), 0);
        assert_eq!(working_set(100, ""), 100);
    }

    #[test]
    fn reads_v2_cpu_usage() {
        let stat = "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n";
        assert_eq!(parse_cpu_stat_usage_ns(stat), Some(1_500_000));
    }
}
