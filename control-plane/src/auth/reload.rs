//! Picks up changes to a credentials file without a restart: the file's
//! fingerprint (modification time, size, inode) is polled, and a changed
//! file is read again. A file that no longer reads or parses leaves the
//! last good contents in force and is logged.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How often watched files are looked at.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// What identifies one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl Fingerprint {
    /// `None` when the file cannot be looked at (missing, no permission).
    pub fn of(path: &Path) -> Option<Fingerprint> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        Some(Fingerprint {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode: meta.ino(),
        })
    }
}

/// Calls `reload(path)` on a task whenever the file at `path` changes,
/// from now on (the caller has read the current version). `reload`
/// returns an error to keep what it had; the error is logged once per
/// version of the file.
pub fn spawn_watch<F>(
    path: PathBuf,
    what: &'static str,
    mut reload: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut(&Path) -> Result<(), String> + Send + 'static,
{
    let mut seen = Fingerprint::of(&path);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = Fingerprint::of(&path);
            if now == seen {
                continue;
            }
            seen = now;
            if now.is_none() {
                tracing::error!(file = %path.display(), "{what}: the file is gone; keeping the last version read");
                continue;
            }
            match reload(&path) {
                Ok(()) => tracing::info!(file = %path.display(), "{what}: reloaded"),
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "{what}: not reloaded; keeping the last good version")
                }
            }
        }
    })
}
