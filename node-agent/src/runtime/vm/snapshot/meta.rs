//! A snapshot's metadata (`meta.json` beside the state file): the
//! machine shape a restore must match and the state file's digest, so a
//! corrupt or foreign snapshot is refused with a reason instead of
//! QEMU failing halfway through loading it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The metadata file in a snapshot directory.
pub const META: &str = "meta.json";
/// The engine's saved state (QEMU's migration stream).
pub const STATE: &str = "state";
/// The initramfs the VM booted from (QEMU's ROM blocks must match).
pub const INITRD: &str = "initrd.cpio";

/// What a snapshot was taken of.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotMeta {
    pub name: String,
    /// `qemu-tcg` or `qemu-kvm` (an engine cannot load another's state).
    pub engine: String,
    pub memory_mib: u64,
    pub vcpus: u32,
    /// The guest kernel's size in bytes (a cheap check it is the same one).
    pub kernel_bytes: u64,
    /// `sha256:HEX` of the state file.
    pub state_digest: String,
    pub state_bytes: u64,
    /// `namespace/name` of the pod it was taken from.
    pub source_pod: String,
    /// Seconds since the epoch.
    pub created: u64,
}

/// The machine a restore would run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineShape {
    pub engine: String,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub kernel_bytes: u64,
}

/// Why a snapshot cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// No such snapshot on this node.
    #[error("snapshot {name:?} not found on this node ({dir})")]
    NotFound { name: String, dir: PathBuf },
    /// A file of it is missing, unreadable or does not match its metadata.
    #[error("snapshot {name:?} is corrupt: {why}")]
    Corrupt { name: String, why: String },
    /// It was taken of another machine shape.
    #[error("snapshot {name:?} does not fit this pod: {why}")]
    Mismatch { name: String, why: String },
}

impl SnapshotError {
    /// The pod status reason.
    pub fn reason(&self) -> &'static str {
        match self {
            SnapshotError::NotFound { .. } => "SnapshotNotFound",
            SnapshotError::Corrupt { .. } => "SnapshotCorrupt",
            SnapshotError::Mismatch { .. } => "SnapshotMismatch",
        }
    }
}

/// Where snapshot `name` lives under the agent's data directory.
pub fn snapshot_dir(data_dir: &Path, name: &str) -> PathBuf {
    data_dir.join("vm").join("snapshots").join(name)
}

/// The differences between the snapshot's machine and `want` (pure).
pub fn check_shape(meta: &SnapshotMeta, want: &MachineShape) -> Result<(), SnapshotError> {
    let mut why = vec![];
    if meta.engine != want.engine {
        why.push(format!(
            "engine {} (this node runs {})",
            meta.engine, want.engine
        ));
    }
    if meta.memory_mib != want.memory_mib {
        why.push(format!(
            "memory {} MiB (the pod asks {} MiB)",
            meta.memory_mib, want.memory_mib
        ));
    }
    if meta.vcpus != want.vcpus {
        why.push(format!(
            "{} vCPUs (the pod asks {})",
            meta.vcpus, want.vcpus
        ));
    }
    if meta.kernel_bytes != want.kernel_bytes {
        why.push("another guest kernel".to_string());
    }
    if why.is_empty() {
        return Ok(());
    }
    Err(SnapshotError::Mismatch {
        name: meta.name.clone(),
        why: format!("it was taken with {}", why.join(", ")),
    })
}

/// Reads and checks snapshot `name` in `dir`: metadata, the initramfs,
/// the state file's size and digest.
pub fn load(dir: &Path, name: &str) -> Result<SnapshotMeta, SnapshotError> {
    let corrupt = |why: String| SnapshotError::Corrupt {
        name: name.to_string(),
        why,
    };
    if !dir.is_dir() {
        return Err(SnapshotError::NotFound {
            name: name.to_string(),
            dir: dir.to_path_buf(),
        });
    }
    let meta_path = dir.join(META);
    let text = std::fs::read_to_string(&meta_path)
        .map_err(|e| corrupt(format!("{}: {e}", meta_path.display())))?;
    let meta: SnapshotMeta = serde_json::from_str(&text)
        .map_err(|e| corrupt(format!("{}: {e}", meta_path.display())))?;
    if !dir.join(INITRD).is_file() {
        return Err(corrupt(format!(
            "{} is missing",
            dir.join(INITRD).display()
        )));
    }
    let state = dir.join(STATE);
    let (bytes, digest) =
        file_digest(&state).map_err(|e| corrupt(format!("{}: {e}", state.display())))?;
    if bytes != meta.state_bytes || digest != meta.state_digest {
        return Err(corrupt(format!(
            "{} is {bytes} bytes with digest {digest}, the metadata says {} bytes, {}",
            state.display(),
            meta.state_bytes,
            meta.state_digest
        )));
    }
    Ok(meta)
}

/// The size and `sha256:HEX` digest of a file.
pub fn file_digest(path: &Path) -> std::io::Result<(u64, String)> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let bytes = std::io::copy(&mut f, &mut h)?;
    Ok((bytes, format!("sha256:{:x}", h.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> SnapshotMeta {
        SnapshotMeta {
            name: "s1".into(),
            engine: "qemu-tcg".into(),
            memory_mib: 256,
            vcpus: 1,
            kernel_bytes: 42,
            state_digest: String::new(),
            state_bytes: 0,
            source_pod: "default/web".into(),
            created: 1,
        }
    }

    fn shape() -> MachineShape {
        MachineShape {
            engine: "qemu-tcg".into(),
            memory_mib: 256,
            vcpus: 1,
            kernel_bytes: 42,
        }
    }

    #[test]
    fn shape_mismatch_names_every_difference() {
        assert!(check_shape(&meta(), &shape()).is_ok());
        let want = MachineShape {
            memory_mib: 512,
            vcpus: 2,
            ..shape()
        };
        let e = check_shape(&meta(), &want).unwrap_err();
        assert_eq!(e.reason(), "SnapshotMismatch");
        let text = e.to_string();
        assert!(
            text.contains("memory 256 MiB (the pod asks 512 MiB)"),
            "{text}"
        );
        assert!(text.contains("1 vCPUs (the pod asks 2)"), "{text}");
        let other = MachineShape {
            engine: "qemu-kvm".into(),
            ..shape()
        };
        assert!(
            check_shape(&meta(), &other)
                .unwrap_err()
                .to_string()
                .contains("engine")
        );
    }

    #[test]
    fn load_refuses_missing_and_tampered_snapshots() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("s1");
        assert_eq!(load(&dir, "s1").unwrap_err().reason(), "SnapshotNotFound");
        std::fs::create_dir(&dir).unwrap();
        assert_eq!(load(&dir, "s1").unwrap_err().reason(), "SnapshotCorrupt");
        std::fs::write(dir.join(STATE), b"memory").unwrap();
        std::fs::write(dir.join(INITRD), b"cpio").unwrap();
        let (bytes, digest) = file_digest(&dir.join(STATE)).unwrap();
        let m = SnapshotMeta {
            state_bytes: bytes,
            state_digest: digest,
            ..meta()
        };
        std::fs::write(dir.join(META), serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!(load(&dir, "s1").unwrap(), m);
        std::fs::write(dir.join(STATE), b"memorX").unwrap();
        let e = load(&dir, "s1").unwrap_err();
        assert!(e.to_string().contains("digest"), "{e}");
        std::fs::write(dir.join(META), b"{").unwrap();
        assert_eq!(load(&dir, "s1").unwrap_err().reason(), "SnapshotCorrupt");
    }
}
