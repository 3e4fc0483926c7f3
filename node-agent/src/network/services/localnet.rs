//! `route_localnet`: NodePorts on 127.0.0.1 need loopback sources to be
//! routable (then masqueraded), as kube-proxy does. The setting is the
//! machine's (per network namespace), so the value found is recorded and
//! put back when the node leaves.

use std::path::{Path, PathBuf};

const SYSCTL: &str = "/proc/sys/net/ipv4/conf/all/route_localnet";

fn record(state_dir: &Path) -> PathBuf {
    state_dir.join("route_localnet.before")
}

/// Turns `route_localnet` on, first recording the value found (once: an
/// agent restarting keeps the first record).
pub fn enable(state_dir: &Path) -> std::io::Result<()> {
    let was = std::fs::read_to_string(SYSCTL)?;
    let record = record(state_dir);
    if was.trim() != "1" && !record.exists() {
        std::fs::create_dir_all(state_dir)?;
        std::fs::write(&record, was.trim())?;
    }
    std::fs::write(SYSCTL, "1")
}

/// Puts back the value [`enable`] found, if it changed one.
pub fn restore(state_dir: &Path) {
    let record = record(state_dir);
    if let Ok(before) = std::fs::read_to_string(&record) {
        let _ = std::fs::write(SYSCTL, before.trim());
        let _ = std::fs::remove_file(record);
    }
}
