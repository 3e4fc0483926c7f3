//! Container root filesystems: an overlayfs mount of the image's unpacked
//! layers (shared, read-only) under a per-container upper directory.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

/// The directories of one container's overlay.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Overlay {
    /// Image layers, topmost first.
    pub lowers: Vec<PathBuf>,
    /// The container's writable layer.
    pub upper: PathBuf,
    /// overlayfs's scratch directory (same filesystem as `upper`).
    pub work: PathBuf,
    /// Where the merged tree is mounted (the bundle's rootfs).
    pub target: PathBuf,
}

/// Why a root filesystem could not be set up or torn down.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    /// A path overlayfs cannot take in its option string.
    #[error("overlay path {0:?} contains ',' or ':' or is not valid UTF-8")]
    BadPath(PathBuf),
    /// The image has no layers.
    #[error("an overlay needs at least one image layer")]
    NoLayers,
    /// Too many layers for one mount option string (a page).
    #[error("overlay options are {0} bytes, over the kernel's page-size limit")]
    TooLong(usize),
    /// mount(2) or umount(2) failed.
    #[error("{op} {path}: {source}")]
    Sys {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

/// overlayfs mount options for the given directories (pure).
pub fn overlay_options(o: &Overlay) -> Result<String, RootfsError> {
    if o.lowers.is_empty() {
        return Err(RootfsError::NoLayers);
    }
    let text = |p: &Path| {
        p.to_str()
            .filter(|s| !s.contains(',') && !s.contains(':'))
            .map(str::to_string)
            .ok_or_else(|| RootfsError::BadPath(p.to_path_buf()))
    };
    let lowers = o
        .lowers
        .iter()
        .map(|p| text(p))
        .collect::<Result<Vec<_>, _>>()?
        .join(":");
    let options = format!(
        "lowerdir={lowers},upperdir={},workdir={}",
        text(&o.upper)?,
        text(&o.work)?
    );
    if options.len() >= 4096 {
        return Err(RootfsError::TooLong(options.len()));
    }
    Ok(options)
}

/// Creates the upper, work and target directories and mounts the overlay.
pub fn mount_overlay(o: &Overlay) -> Result<(), RootfsError> {
    let options = overlay_options(o)?;
    for dir in [&o.upper, &o.work, &o.target] {
        fs::create_dir_all(dir).map_err(|source| RootfsError::Sys {
            op: "mkdir",
            path: dir.clone(),
            source,
        })?;
    }
    mount(
        Some("overlay"),
        &o.target,
        Some("overlay"),
        MsFlags::MS_NODEV,
        Some(options.as_str()),
    )
    .map_err(|e| RootfsError::Sys {
        op: "mount overlay on",
        path: o.target.clone(),
        source: e.into(),
    })
}

/// Unmounts the overlay; not being mounted is fine.
pub fn unmount(target: &Path) -> Result<(), RootfsError> {
    match umount2(target, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(RootfsError::Sys {
            op: "unmount",
            path: target.to_path_buf(),
            source: e.into(),
        }),
    }
}

/// Whether anything is mounted at `path` (from /proc/self/mountinfo).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| mp == want)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlay(lowers: &[&str]) -> Overlay {
        Overlay {
            lowers: lowers.iter().map(PathBuf::from).collect(),
            upper: "/c/upper".into(),
            work: "/c/work".into(),
            target: "/c/rootfs".into(),
        }
    }

    #[test]
    fn options_list_lowers_top_first() {
        let o = overlay(&["/l/top", "/l/base"]);
        assert_eq!(
            overlay_options(&o).ok().as_deref(),
            Some("lowerdir=/l/top:/l/base,upperdir=/c/upper,workdir=/c/work")
        );
    }

    #[test]
    fn refuses_what_overlayfs_would_misparse() {
        assert!(matches!(
            overlay_options(&overlay(&[])),
            Err(RootfsError::NoLayers)
        ));
        assert!(matches!(
            overlay_options(&overlay(&["/l/a:b"])),
            Err(RootfsError::BadPath(_))
        ));
        assert!(matches!(
            overlay_options(&overlay(&["/l/a,upperdir=/"])),
            Err(RootfsError::BadPath(_))
        ));
        let many: Vec<String> = (0..300)
            .map(|i| format!("/var/lib/drover/images/layers/{i:064}"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(matches!(
            overlay_options(&overlay(&many)),
            Err(RootfsError::TooLong(_))
        ));
    }
}
