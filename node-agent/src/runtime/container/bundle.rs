//! A container's directory on the node: the OCI bundle (config.json and
//! the rootfs mount point), the overlay's upper and work directories and
//! the shim's state, and the one call that lays them out for a shim.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::rootfs::{self, Overlay};
use super::spec::{self, ContainerSpec, SpecError};
use crate::shim::ShimConfig;

/// The directories of one container, all under `dir`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerDir {
    dir: PathBuf,
}

impl ContainerDir {
    /// The layout rooted at `dir` (nothing is created yet).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ContainerDir { dir: dir.into() }
    }
    /// The root of it all.
    pub fn path(&self) -> &Path {
        &self.dir
    }
    /// The OCI bundle (holds config.json).
    pub fn bundle(&self) -> PathBuf {
        self.dir.join("bundle")
    }
    /// The merged root filesystem (overlay mount point).
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("bundle").join("rootfs")
    }
    /// The container's writable layer.
    pub fn upper(&self) -> PathBuf {
        self.dir.join("upper")
    }
    /// overlayfs's work directory.
    pub fn work(&self) -> PathBuf {
        self.dir.join("work")
    }
    /// The shim's state directory.
    pub fn shim_dir(&self) -> PathBuf {
        self.dir.join("shim")
    }
}

/// Everything needed to lay out a container for its shim.
#[derive(Clone, Debug)]
pub struct ContainerRequest {
    /// Runtime container id, unique on the node (`[A-Za-z0-9_.-]+`).
    pub id: String,
    /// What to run; its `rootfs` is replaced by the bundle's.
    pub spec: ContainerSpec,
    /// The image's unpacked layers, topmost first.
    pub lowers: Vec<PathBuf>,
    /// libcontainer's state root.
    pub runtime_root: PathBuf,
    /// The log file.
    pub log_path: PathBuf,
    /// Log rotation size.
    pub log_max_bytes: u64,
    /// Log files kept.
    pub log_max_files: u32,
    /// Grace period when the shim itself is sent SIGTERM.
    pub default_grace: Duration,
}

/// Laying out a container failed.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The id would not be a safe directory name.
    #[error("invalid container id {0:?}: use letters, digits, '_', '-', '.'")]
    BadId(String),
    /// The spec is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Writing the bundle failed.
    #[error("writing bundle {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

/// Whether `id` is safe as a file name and a libcontainer id (pure).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

/// Writes `config.json` and returns the shim's config; the shim mounts the
/// overlay itself (so a dead agent never leaves a mount without an owner).
pub fn prepare(dir: &ContainerDir, req: &ContainerRequest) -> Result<ShimConfig, BundleError> {
    if !valid_id(&req.id) {
        return Err(BundleError::BadId(req.id.clone()));
    }
    let io_err = |path: PathBuf| move |source| BundleError::Io { path, source };
    let bundle = dir.bundle();
    fs::create_dir_all(dir.rootfs()).map_err(io_err(dir.rootfs()))?;
    let mut spec = req.spec.clone();
    spec.rootfs = dir.rootfs();
    let oci = spec::runtime_spec(&spec)?;
    let json = serde_json::to_vec(&oci).map_err(|e| BundleError::Io {
        path: bundle.join("config.json"),
        source: io::Error::other(e),
    })?;
    fs::write(bundle.join("config.json"), json).map_err(io_err(bundle.join("config.json")))?;
    Ok(ShimConfig {
        container_id: req.id.clone(),
        bundle,
        runtime_root: req.runtime_root.clone(),
        overlay: Some(Overlay {
            lowers: req.lowers.clone(),
            upper: dir.upper(),
            work: dir.work(),
            target: dir.rootfs(),
        }),
        log_path: req.log_path.clone(),
        log_max_bytes: req.log_max_bytes,
        log_max_files: req.log_max_files,
        cgroups_path: spec.cgroups_path.clone(),
        default_grace_ms: u64::try_from(req.default_grace.as_millis()).unwrap_or(u64::MAX),
        vm: None,
    })
}

/// Removes a finished container's directory (writable layer included),
/// unmounting first in case its shim died before it could.
pub fn remove(dir: &ContainerDir) -> Result<(), BundleError> {
    rootfs::unmount(&dir.rootfs()).map_err(|e| BundleError::Io {
        path: dir.rootfs(),
        source: io::Error::other(e),
    })?;
    match fs::remove_dir_all(dir.path()) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(BundleError::Io {
            path: dir.path().to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_safe_names() {
        for ok in ["c1", "pod-a_b.0", "x"] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "ü", &"x".repeat(129)] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
