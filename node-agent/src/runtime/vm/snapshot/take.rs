//! Taking a snapshot of a running qemu-engine VM: pause, save the
//! machine through QMP `migrate` into a file, resume, then record the
//! metadata. Built in a `.NAME.partial` directory renamed into place, so
//! a failed or interrupted snapshot leaves no half snapshot behind.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use super::client::{ClientError, QmpClient};
use super::meta::{self, SnapshotMeta};
use super::qmp;

/// The name QEMU knows the state file's descriptor by.
const STATE_FD: &str = "drover-snapshot";
/// The longest a VM may stay paused while its state is written.
const SAVE_TIMEOUT: Duration = Duration::from_secs(300);

/// What to snapshot and where.
#[derive(Clone, Debug)]
pub struct TakeRequest<'a> {
    pub name: &'a str,
    /// The VM's run directory (its QMP socket and initramfs).
    pub run_dir: &'a Path,
    /// The agent's data directory.
    pub data_dir: &'a Path,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub kernel: &'a Path,
    pub source_pod: String,
}

/// A snapshot taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Taken {
    pub name: String,
    /// State file and initramfs together.
    pub size_bytes: u64,
    /// How long the guest was paused.
    pub paused_millis: u64,
    pub total_millis: u64,
}

/// Taking a snapshot failed.
#[derive(Debug, thiserror::Error)]
pub enum TakeError {
    #[error("snapshot {0:?} already exists on this node")]
    Exists(String),
    #[error("this VM has no QMP socket ({0}): snapshots need the qemu engine")]
    NoQmp(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Qmp(#[from] ClientError),
    /// Saving failed and resuming the guest failed too.
    #[error("{save}; resuming the VM failed as well: {resume}")]
    NotResumed {
        save: Box<TakeError>,
        resume: ClientError,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TakeError + '_ {
    move |source| TakeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Takes snapshot `req.name`.
pub fn take(req: &TakeRequest<'_>) -> Result<Taken, TakeError> {
    let started = Instant::now();
    let dir = meta::snapshot_dir(req.data_dir, req.name);
    if dir.exists() {
        return Err(TakeError::Exists(req.name.to_string()));
    }
    if !req.run_dir.join(qmp::SOCKET).exists() {
        return Err(TakeError::NoQmp(req.run_dir.join(qmp::SOCKET)));
    }
    let parent = dir.parent().unwrap_or(req.data_dir);
    let partial = parent.join(format!(".{}.partial", req.name));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).map_err(io(&partial))?;
    let result = save_into(req, &partial, started);
    match result {
        Ok(taken) => {
            std::fs::rename(&partial, &dir).map_err(io(&dir))?;
            Ok(taken)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            Err(e)
        }
    }
}

fn save_into(req: &TakeRequest<'_>, dir: &Path, started: Instant) -> Result<Taken, TakeError> {
    let mut qmp = QmpClient::connect(req.run_dir)?;
    let kvm = qmp::kvm_enabled(&qmp.execute("query-kvm", None)?);
    let state = dir.join(meta::STATE);
    let file = std::fs::File::create(&state).map_err(io(&state))?;
    qmp.send_fd(STATE_FD, &file)?;
    drop(file);
    qmp.execute("stop", None)?;
    let paused = Instant::now();
    let saved = qmp
        .send(&qmp::migrate_to_fd(STATE_FD), "migrate")
        .and_then(|_| qmp.wait_migration(SAVE_TIMEOUT));
    // The guest runs on whatever happened to the save.
    let resumed = qmp.execute("cont", None);
    let paused_millis = millis(paused.elapsed());
    match (saved, resumed) {
        (Ok(()), Ok(_)) => {}
        (Err(save), Err(resume)) => {
            return Err(TakeError::NotResumed {
                save: Box::new(save.into()),
                resume,
            });
        }
        (Err(e), Ok(_)) | (Ok(()), Err(e)) => return Err(e.into()),
    }
    let initrd = dir.join(meta::INITRD);
    let run_initrd = crate::runtime::vm::prepare::initrd_path_in(req.run_dir);
    let initrd_bytes = std::fs::copy(&run_initrd, &initrd).map_err(io(&run_initrd))?;
    let (state_bytes, state_digest) = meta::file_digest(&state).map_err(io(&state))?;
    let kernel_bytes = std::fs::metadata(req.kernel).map_err(io(req.kernel))?.len();
    let m = SnapshotMeta {
        name: req.name.to_string(),
        engine: if kvm { "qemu-kvm" } else { "qemu-tcg" }.to_string(),
        memory_mib: req.memory_mib,
        vcpus: req.vcpus,
        kernel_bytes,
        state_digest,
        state_bytes,
        source_pod: req.source_pod.clone(),
        created: SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let meta_path = dir.join(meta::META);
    let json = serde_json::to_vec_pretty(&m).map_err(|e| io(&meta_path)(e.into()))?;
    std::fs::write(&meta_path, json).map_err(io(&meta_path))?;
    Ok(Taken {
        name: req.name.to_string(),
        size_bytes: state_bytes + initrd_bytes,
        paused_millis,
        total_millis: millis(started.elapsed()),
    })
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
