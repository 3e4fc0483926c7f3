//! Unpacks layer blobs into directories that overlayfs can stack, once per
//! layer, converting OCI whiteouts into overlayfs whiteouts.

use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use nix::sys::stat::{Mode, SFlag, makedev, mknod};

use super::blobs::{BlobError, BlobStore};
use super::digest::{Digest, Hashing};
use super::entry::{self, EntryKind, EntryPathError};

/// Why a layer could not be unpacked. The unpacked directory is never used
/// after any of these: it is built under a temporary name and discarded.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The layer blob is missing or unreadable.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The layer's tar stream is damaged.
    #[error("corrupt layer {layer}: {source}")]
    Corrupt { layer: Digest, source: io::Error },
    /// An entry's path is refused.
    #[error("corrupt layer {layer}: {source}")]
    BadEntry {
        layer: Digest,
        source: EntryPathError,
    },
    /// An entry would land outside the layer (through a symlink).
    #[error("corrupt layer {layer}: entry {path:?} escapes the layer through a symlink")]
    Escape { layer: Digest, path: PathBuf },
    /// The uncompressed content does not match the image config's diff_id.
    #[error(
        "corrupt layer {layer}: uncompressed content hashes to {actual}, config says {expected}"
    )]
    DiffIdMismatch {
        layer: Digest,
        expected: Digest,
        actual: Digest,
    },
    /// A compression we do not read.
    #[error("layer {layer} uses an unsupported compression ({what})")]
    Unsupported { layer: Digest, what: &'static str },
    /// Writing the unpacked tree failed.
    #[error("unpacking layer {layer} into {path}: {source}")]
    Io {
        layer: Digest,
        path: PathBuf,
        source: io::Error,
    },
}

/// Unpacked layers, one directory per layer blob digest.
#[derive(Clone, Debug)]
pub struct LayerStore {
    root: PathBuf,
}

impl LayerStore {
    /// Opens (creating) the layer directory, removing half-unpacked leftovers.
    pub fn open(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root)?;
        for entry in fs::read_dir(root)? {
            let entry = entry?;
            if entry.file_name().as_bytes().starts_with(b".tmp-") {
                fs::remove_dir_all(entry.path())?;
            }
        }
        Ok(LayerStore {
            root: root.to_path_buf(),
        })
    }

    /// Where a layer's unpacked tree lives.
    pub fn path(&self, layer: &Digest) -> PathBuf {
        self.root.join(layer.hex())
    }

    /// Whether the layer is already unpacked.
    pub fn contains(&self, layer: &Digest) -> bool {
        self.path(layer).is_dir()
    }

    /// Unpacks `layer` from the blob store unless done before; returns its directory.
    pub fn ensure(
        &self,
        blobs: &BlobStore,
        layer: &Digest,
        diff_id: Option<&Digest>,
    ) -> Result<PathBuf, UnpackError> {
        let dest = self.path(layer);
        if dest.is_dir() {
            return Ok(dest);
        }
        // Unique per call: pods starting together unpack the same layer on
        // several threads of one process; the first rename wins.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self
            .root
            .join(format!(".tmp-{}-{}-{n}", layer.hex(), std::process::id()));
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| UnpackError::Io {
                layer: layer.clone(),
                path,
                source,
            }
        };
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        let result = blobs
            .open_blob(layer)
            .map_err(UnpackError::from)
            .and_then(|file| unpack_into(file, layer, diff_id, &tmp));
        if let Err(e) = result {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        if let Err(e) = fs::rename(&tmp, &dest) {
            let _ = fs::remove_dir_all(&tmp);
            // Someone else finished the same layer first: theirs is as good.
            if !dest.is_dir() {
                return Err(io_err(&dest)(e));
            }
        }
        Ok(dest)
    }

    /// Removes an unpacked layer.
    pub fn remove(&self, layer: &Digest) -> io::Result<()> {
        match fs::remove_dir_all(self.path(layer)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Digests of every unpacked layer.
    pub fn list(&self) -> io::Result<Vec<Digest>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let name = entry?.file_name();
            if let Some(d) = name
                .to_str()
                .and_then(|n| format!("sha256:{n}").parse().ok())
            {
                out.push(d);
            }
        }
        Ok(out)
    }
}

/// Streams a (possibly gzip-compressed) layer tar into `dest`.
pub fn unpack_into(
    blob: File,
    layer: &Digest,
    diff_id: Option<&Digest>,
    dest: &Path,
) -> Result<(), UnpackError> {
    let corrupt = |source| UnpackError::Corrupt {
        layer: layer.clone(),
        source,
    };
    let mut buffered = BufReader::with_capacity(256 * 1024, blob);
    let magic = buffered.fill_buf().map_err(corrupt)?;
    let stream: Box<dyn Read> = match magic {
        [0x1f, 0x8b, ..] => Box::new(GzDecoder::new(buffered)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => {
            return Err(UnpackError::Unsupported {
                layer: layer.clone(),
                what: "zstd",
            });
        }
        _ => Box::new(buffered),
    };
    let mut hashed = Hashing::new(stream);
    {
        let mut archive = tar::Archive::new(&mut hashed);
        archive.set_preserve_permissions(true);
        archive.set_preserve_mtime(true);
        archive.set_unpack_xattrs(true);
        archive.set_overwrite(true);
        // Ownership needs CAP_CHOWN; an unprivileged agent keeps its own.
        archive.set_preserve_ownerships(nix::unistd::geteuid().is_root());
        let entries = archive.entries().map_err(corrupt)?;
        for entry in entries {
            let mut entry = entry.map_err(corrupt)?;
            let raw = entry.path().map_err(corrupt)?.into_owned();
            unpack_entry(&mut entry, &raw, layer, dest)?;
        }
    }
    // Tar ends with padding blocks the archive reader may not consume; the
    // diff_id covers them too.
    io::copy(&mut hashed, &mut io::sink()).map_err(corrupt)?;
    let (actual, _, _) = hashed.finish();
    if let Some(expected) = diff_id
        && &actual != expected
    {
        return Err(UnpackError::DiffIdMismatch {
            layer: layer.clone(),
            expected: expected.clone(),
            actual,
        });
    }
    Ok(())
}

fn unpack_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    raw: &Path,
    layer: &Digest,
    dest: &Path,
) -> Result<(), UnpackError> {
    let bad = |source| UnpackError::BadEntry {
        layer: layer.clone(),
        source,
    };
    let io_err = |path: &Path, source| UnpackError::Io {
        layer: layer.clone(),
        path: path.to_path_buf(),
        source,
    };
    let Some(rel) = entry::sanitize(raw).map_err(bad)? else {
        // The layer root itself: keep our directory, take its mode.
        if let Ok(mode) = entry.header().mode() {
            use std::os::unix::fs::PermissionsExt;
            let _ = fs::set_permissions(dest, fs::Permissions::from_mode(mode & 0o7777));
        }
        return Ok(());
    };
    if entry.header().entry_type().is_hard_link()
        && let Ok(Some(target)) = entry.link_name()
    {
        entry::sanitize_link_target(&target).map_err(bad)?;
    }
    match entry::classify(rel).map_err(bad)? {
        EntryKind::Normal(rel) => {
            ensure_parents(dest, &rel, layer)?;
            let inside = entry
                .unpack_in(dest)
                .map_err(|source| UnpackError::Corrupt {
                    layer: layer.clone(),
                    source,
                })?;
            if !inside {
                return Err(UnpackError::Escape {
                    layer: layer.clone(),
                    path: rel,
                });
            }
        }
        EntryKind::Whiteout(rel) => {
            ensure_parents(dest, &rel, layer)?;
            let path = dest.join(&rel);
            remove_any(&path).map_err(|e| io_err(&path, e))?;
            // overlayfs's whiteout: a 0:0 character device.
            mknod(&path, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
                .map_err(|e| io_err(&path, e.into()))?;
        }
        EntryKind::Opaque(rel) => {
            ensure_parents(dest, &rel.join("x"), layer)?;
            let dir = dest.join(&rel);
            fs::create_dir_all(&dir).map_err(|e| io_err(&dir, e))?;
            set_opaque(&dir).map_err(|e| io_err(&dir, e))?;
        }
    }
    Ok(())
}

/// Creates the parent directories of `rel` under `root`, refusing to pass
/// through a symlink (which could point anywhere on the host).
fn ensure_parents(root: &Path, rel: &Path, layer: &Digest) -> Result<(), UnpackError> {
    let mut cur = root.to_path_buf();
    let Some(parent) = rel.parent() else {
        return Ok(());
    };
    for component in parent.components() {
        cur.push(component);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(UnpackError::Escape {
                    layer: layer.clone(),
                    path: rel.to_path_buf(),
                });
            }
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                // A file where a directory must be: later entries replace earlier ones.
                remove_any(&cur)
                    .and_then(|()| fs::create_dir(&cur))
                    .map_err(|source| UnpackError::Io {
                        layer: layer.clone(),
                        path: cur.clone(),
                        source,
                    })?;
            }
            Err(_) => fs::create_dir(&cur).map_err(|source| UnpackError::Io {
                layer: layer.clone(),
                path: cur.clone(),
                source,
            })?,
        }
    }
    Ok(())
}

fn remove_any(path: &Path) -> io::Result<()> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Marks a directory opaque for overlayfs.
fn set_opaque(dir: &Path) -> io::Result<()> {
    let path = CString::new(dir.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let name = c"trusted.overlay.opaque";
    let value = b"y";
    // SAFETY: both strings are NUL-terminated and live across the call; the
    // value pointer and length describe a valid byte slice.
    let rc = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests;
