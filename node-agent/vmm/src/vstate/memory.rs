//! Guest RAM: anonymous mappings for a fresh VM, or private mappings of a snapshot file
//! (copy-on-write, so the snapshot stays intact) for a restored one.

use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::path::Path;

use vm_memory::mmap::MmapRegionBuilder;
use vm_memory::{
    FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion,
    GuestRegionMmap, MemoryRegionAddress,
};

use crate::arch::e820::ram_regions;

/// Errors creating or saving guest memory.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// mmap failed.
    #[error("cannot map guest memory: {0}")]
    Map(String),
    /// Snapshot memory file unusable.
    #[error("snapshot memory file: {0}")]
    File(#[from] io::Error),
    /// Snapshot memory file too short for the configured RAM.
    #[error("snapshot memory file holds {have} bytes, the VM needs {need}")]
    FileTooShort {
        /// File size.
        have: u64,
        /// Bytes needed.
        need: u64,
    },
}

/// Anonymous, zeroed guest RAM of `mem_size` bytes laid out around the MMIO gap.
pub fn create(mem_size: u64) -> Result<GuestMemoryMmap, MemoryError> {
    let ranges: Vec<(GuestAddress, usize)> = ram_regions(mem_size)
        .into_iter()
        .map(|(start, size)| (GuestAddress(start), size as usize))
        .collect();
    GuestMemoryMmap::from_ranges(&ranges).map_err(|e| MemoryError::Map(format!("{e:?}")))
}

/// Maps guest RAM privately from a snapshot file written by `save`: regions back to back.
pub fn restore(path: &Path, mem_size: u64) -> Result<GuestMemoryMmap, MemoryError> {
    let file = File::open(path)?;
    let have = file.metadata()?.len();
    if have < mem_size {
        return Err(MemoryError::FileTooShort {
            have,
            need: mem_size,
        });
    }
    let file = std::sync::Arc::new(file);
    let mut offset = 0u64;
    let mut regions = Vec::new();
    for (start, size) in ram_regions(mem_size) {
        let mapping = MmapRegionBuilder::new(size as usize)
            .with_file_offset(FileOffset::from_arc(file.clone(), offset))
            .with_mmap_prot(libc::PROT_READ | libc::PROT_WRITE)
            .with_mmap_flags(libc::MAP_PRIVATE | libc::MAP_NORESERVE)
            .build()
            .map_err(|e| MemoryError::Map(format!("{e:?}")))?;
        let region = GuestRegionMmap::new(mapping, GuestAddress(start))
            .ok_or_else(|| MemoryError::Map("region wraps the address space".into()))?;
        regions.push(region);
        offset += size;
    }
    GuestMemoryMmap::from_regions(regions).map_err(|e| MemoryError::Map(format!("{e:?}")))
}

/// Writes every region, in address order, to `path`. All-zero chunks become holes, so
/// a mostly idle guest leaves a small sparse file (reads of holes, and the private
/// mapping on restore, see zeros).
pub fn save(mem: &GuestMemoryMmap, path: &Path) -> Result<(), MemoryError> {
    const CHUNK: usize = 1 << 20;
    let map_err = |e: vm_memory::volatile_memory::Error| MemoryError::Map(format!("{e:?}"));
    let mut file = File::create(path)?;
    let mut buf = vec![0u8; CHUNK];
    let mut total: u64 = 0;
    for region in mem.iter() {
        let slice = region
            .get_slice(MemoryRegionAddress(0), region.len() as usize)
            .map_err(|e| MemoryError::Map(format!("{e:?}")))?;
        let mut off = 0usize;
        while off < slice.len() {
            let n = (slice.len() - off).min(CHUNK);
            slice
                .subslice(off, n)
                .map_err(map_err)?
                .copy_to(&mut buf[..n]);
            if buf[..n].iter().all(|b| *b == 0) {
                file.seek(SeekFrom::Current(n as i64))?;
            } else {
                file.write_all(&buf[..n])?;
            }
            off += n;
        }
        total += region.len();
    }
    // Trailing holes need an explicit length.
    file.set_len(total)?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::Bytes;

    #[test]
    fn save_then_restore_private_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mem");
        let mem = create(16 << 20).unwrap();
        mem.write_obj(0xdead_beef_u32, GuestAddress(0x1234))
            .unwrap();
        save(&mem, &path).unwrap();
        let restored = restore(&path, 16 << 20).unwrap();
        assert_eq!(
            restored.read_obj::<u32>(GuestAddress(0x1234)).unwrap(),
            0xdead_beef
        );
        restored.write_obj(1u32, GuestAddress(0x1234)).unwrap();
        // Mostly zero memory is stored sparse.
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), 16 << 20);
        assert!(
            std::os::unix::fs::MetadataExt::blocks(&meta) * 512 < 2 << 20,
            "sparse file"
        );
        // Private mapping: the file is untouched.
        let again = restore(&path, 16 << 20).unwrap();
        assert_eq!(
            again.read_obj::<u32>(GuestAddress(0x1234)).unwrap(),
            0xdead_beef
        );
        assert!(matches!(
            restore(&path, 32 << 20),
            Err(MemoryError::FileTooShort { .. })
        ));
    }
}
