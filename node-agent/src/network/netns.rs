//! Pod network namespaces, kept alive by a bind mount (as `ip netns add`
//! does) so every container of the pod joins the same one by path.

use std::fs::File;
use std::path::Path;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};

/// Creates a new network namespace bound at `path` (idempotent: an
/// existing binding is kept).
pub fn create(path: &Path) -> std::io::Result<()> {
    if is_bound(path) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    File::create(path)?;
    let target = path.to_path_buf();
    // unshare(CLONE_NEWNET) moves only the calling thread: do it on a
    // short-lived thread of our own, never on a runtime worker.
    std::thread::spawn(move || -> std::io::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(std::io::Error::from)
    })
    .join()
    .map_err(|_| std::io::Error::other("the namespace thread panicked"))?
}

/// Opens the namespace for `setns` or moving links into it.
pub fn open(path: &Path) -> std::io::Result<File> {
    File::open(path)
}

/// Unbinds and removes the namespace file (the namespace goes with its
/// last user, and its links with it).
pub fn remove(path: &Path) -> std::io::Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(e.into()),
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Whether `path` is a namespace binding (an nsfs mount), not a plain file.
fn is_bound(path: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let p = path.to_string_lossy();
    mounts
        .lines()
        .any(|l| l.split_whitespace().nth(4) == Some(&*p) && l.contains(" nsfs "))
}
