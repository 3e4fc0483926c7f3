//! The node's own usage from `/proc/stat` and `/proc/meminfo` (parsing is
//! pure): busy CPU time and memory in use, as NodeMetrics reports them.

/// CPU time spent busy (user, nice, system, irq, softirq, steal) on all
/// CPUs, in clock ticks, from the first line of `/proc/stat`.
pub fn parse_busy_ticks(proc_stat: &str) -> Option<u64> {
    let line = proc_stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let at = |i: usize| fields.get(i).copied().unwrap_or(0);
    (fields.len() >= 4).then(|| at(0) + at(1) + at(2) + at(5) + at(6) + at(7))
}

/// Memory in use (`MemTotal - MemAvailable`), in bytes.
pub fn parse_memory_in_use(meminfo: &str) -> Option<u64> {
    let kib = |name: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
    };
    Some(kib("MemTotal")?.saturating_sub(kib("MemAvailable")?) * 1024)
}

/// Busy CPU time of the node so far, in nanoseconds.
pub fn busy_cpu_ns() -> Option<u64> {
    let ticks = parse_busy_ticks(&std::fs::read_to_string("/proc/stat").ok()?)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0)?;
    Some(ticks.saturating_mul(1_000_000_000 / hz))
}

/// The node's memory in use, in bytes.
pub fn memory_in_use() -> Option<u64> {
    parse_memory_in_use(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_busy_ticks_and_memory() {
        let stat = "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 50 2 25 500 10 1 1 0 0 0\n";
        assert_eq!(parse_busy_ticks(stat), Some(100 + 5 + 50 + 3 + 2 + 1));
        assert_eq!(parse_busy_ticks("intr 1 2\n"), None);
        let meminfo =
            "MemTotal:       2000 kB\nMemFree:         500 kB\nMemAvailable:    1500 kB\n";
        assert_eq!(parse_memory_in_use(meminfo), Some(500 * 1024));
        assert_eq!(parse_memory_in_use("MemTotal: 1 kB\n"), None);
    }
}
