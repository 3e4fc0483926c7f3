//! Content-addressed blob store: every blob is written to a temp file while
//! being hashed and renamed into place only when its digest matches, so a
//! blob under its final name is always complete and verified.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::digest::{Digest, Hashing};

/// Errors of the blob store.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The content did not hash to the digest it was announced with.
    #[error("bad digest: expected {expected}, content hashes to {actual}")]
    DigestMismatch { expected: Digest, actual: Digest },
    /// The content was not the announced size.
    #[error("bad size for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    /// A blob the image needs is not in the store.
    #[error("blob {0} is not in the image store")]
    Missing(Digest),
    /// The disk failed us.
    #[error("image store I/O on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_path_buf(),
        source,
    }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A directory of blobs named by their sha256.
#[derive(Clone, Debug)]
pub struct BlobStore {
    blobs: PathBuf,
    tmp: PathBuf,
}

impl BlobStore {
    /// Opens (creating) the store under `root`, discarding leftovers of
    /// interrupted writes.
    pub fn open(root: &Path) -> Result<Self, BlobError> {
        let blobs = root.join("blobs").join("sha256");
        let tmp = root.join("tmp");
        fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
        }
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        Ok(BlobStore { blobs, tmp })
    }

    /// Where the blob lives (whether or not it is present).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// Whether the blob is present.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// A fresh path in the store's temp dir (same filesystem, so renames are atomic).
    pub fn temp_path(&self, hint: &str) -> PathBuf {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        self.tmp.join(format!("{hint}.{}.{n}", std::process::id()))
    }

    /// Starts writing a blob that must hash to `expected`.
    pub fn writer(&self, expected: &Digest) -> Result<BlobWriter, BlobError> {
        let tmp = self.temp_path(expected.hex());
        let file = File::create(&tmp).map_err(io_err(&tmp))?;
        Ok(BlobWriter {
            out: Some(Hashing::new(file)),
            tmp,
            dest: self.path(expected),
            expected: expected.clone(),
        })
    }

    /// Copies `reader` into the store as `expected`, verifying it.
    pub fn put_reader(&self, expected: &Digest, mut reader: impl Read) -> Result<u64, BlobError> {
        if self.contains(expected) {
            return Ok(0);
        }
        let mut w = self.writer(expected)?;
        io::copy(&mut reader, &mut w).map_err(io_err(&w.tmp.clone()))?;
        w.commit()
    }

    /// Stores bytes whose digest we compute ourselves (manifests we synthesise).
    pub fn put_bytes(&self, data: &[u8]) -> Result<Digest, BlobError> {
        let digest = Digest::of(data);
        self.put_reader(&digest, data)?;
        Ok(digest)
    }

    /// Reads a whole blob, re-verifying it: small JSON blobs are cheap to
    /// check and a flipped bit on disk must not turn into a wrong config.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>, BlobError> {
        let path = self.path(digest);
        let data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BlobError::Missing(digest.clone()));
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let actual = Digest::of(&data);
        if &actual != digest {
            return Err(BlobError::DigestMismatch {
                expected: digest.clone(),
                actual,
            });
        }
        Ok(data)
    }

    /// Opens a blob for streaming (layers); the caller verifies as it reads.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, BlobError> {
        let path = self.path(digest);
        File::open(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => BlobError::Missing(digest.clone()),
            _ => io_err(&path)(e),
        })
    }

    /// Removes a blob; absent is fine.
    pub fn remove(&self, digest: &Digest) -> Result<(), BlobError> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&path)(e)),
            _ => Ok(()),
        }
    }

    /// Every blob present, with its size.
    pub fn list(&self) -> Result<Vec<(Digest, u64)>, BlobError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.blobs).map_err(io_err(&self.blobs))? {
            let entry = entry.map_err(io_err(&self.blobs))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if let Ok(d) = format!("sha256:{name}").parse::<Digest>() {
                let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                out.push((d, len));
            }
        }
        Ok(out)
    }
}

/// A blob being written; dropped without [`BlobWriter::commit`] it leaves nothing.
pub struct BlobWriter {
    out: Option<Hashing<File>>,
    tmp: PathBuf,
    dest: PathBuf,
    expected: Digest,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.out.as_ref().map_or(0, Hashing::bytes)
    }

    /// Verifies the digest and moves the blob into place.
    pub fn commit(mut self) -> Result<u64, BlobError> {
        let Some(out) = self.out.take() else {
            return Err(BlobError::Missing(self.expected.clone()));
        };
        let (actual, bytes, file) = out.finish();
        if actual != self.expected {
            return Err(BlobError::DigestMismatch {
                expected: self.expected.clone(),
                actual,
            });
        }
        file.sync_all().map_err(io_err(&self.tmp))?;
        drop(file);
        fs::rename(&self.tmp, &self.dest).map_err(io_err(&self.dest))?;
        Ok(bytes)
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.out.as_mut() {
            Some(out) => out.write(buf),
            None => Err(io::Error::other("blob writer already committed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.as_mut().map_or(Ok(()), Write::flush)
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // Committed writers were renamed away; anything else is half-written.
        let _ = fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verified_blob_lands_and_bad_one_leaves_nothing() {
        let dir = tempfile::tempdir().map_err(|e| e.to_string());
        let Ok(dir) = dir else { return };
        let store = BlobStore::open(dir.path()).map_err(|e| e.to_string());
        let Ok(store) = store else { panic!("open") };
        let good = Digest::of(b"layer");
        assert!(store.put_reader(&good, &b"layer"[..]).is_ok());
        assert_eq!(store.read(&good).ok().as_deref(), Some(&b"layer"[..]));

        let wrong = Digest::of(b"other");
        let err = store.put_reader(&wrong, &b"layer"[..]);
        assert!(matches!(err, Err(BlobError::DigestMismatch { .. })));
        assert!(!store.contains(&wrong));
        let leftovers = fs::read_dir(dir.path().join("tmp")).map(|d| d.count());
        assert_eq!(leftovers.ok(), Some(0));
    }

    #[test]
    fn corrupted_blob_on_disk_is_detected_on_read() {
        let Ok(dir) = tempfile::tempdir() else { return };
        let Ok(store) = BlobStore::open(dir.path()) else {
            panic!("open")
        };
        let Ok(d) = store.put_bytes(b"{}") else {
            panic!("put")
        };
        assert!(fs::write(store.path(&d), b"{ }").is_ok());
        assert!(matches!(
            store.read(&d),
            Err(BlobError::DigestMismatch { .. })
        ));
    }
}
