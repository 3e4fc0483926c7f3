//! Snapshot data files beside the sled store, one per snapshot index, with a checksum.
//!
//! Kept out of sled on purpose: a multi-megabyte value in the same sled node
//! as the hard state is rewritten on every `Ready`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

fn path(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("snapshot-{index:020}.bin"))
}

/// FNV-1a, enough to catch torn or bit-flipped files.
fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Writes the file durably (temp file, fsync, rename, fsync dir).
pub fn write(dir: &Path, index: u64, data: &[u8]) -> std::io::Result<()> {
    let final_path = path(dir, index);
    let tmp = final_path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.write_all(&checksum(data).to_be_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, &final_path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Reads and verifies the file of snapshot `index`.
pub fn read(dir: &Path, index: u64) -> Result<Vec<u8>, String> {
    let p = path(dir, index);
    let mut bytes = std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()))?;
    if bytes.len() < 8 {
        return Err(format!("{} is truncated", p.display()));
    }
    let trailer = bytes.split_off(bytes.len() - 8);
    let expected = u64::from_be_bytes(trailer.try_into().map_err(|_| "bad trailer")?);
    if checksum(&bytes) != expected {
        return Err(format!("{} fails its checksum", p.display()));
    }
    Ok(bytes)
}

/// Removes snapshot files other than `keep` (older ones are superseded).
pub fn remove_others(dir: &Path, keep: u64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let keep = path(dir, keep);
    for e in entries.flatten() {
        let p = e.path();
        let is_snap = p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("snapshot-"));
        if is_snap && p != keep {
            // Best effort: a leftover file is only wasted space.
            drop(std::fs::remove_file(&p));
        }
    }
}
