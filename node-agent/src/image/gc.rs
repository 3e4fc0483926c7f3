//! Image garbage collection: past a disk budget, forget the least recently
//! used images that no container uses, then delete every blob and unpacked
//! layer that no remaining image refers to.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use super::manifest::{self, Document};
use super::{Digest, ImageError, ImageStore};

/// What a collection did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Names forgotten.
    pub removed_images: Vec<String>,
    /// Blobs and unpacked layers deleted.
    pub removed_blobs: usize,
    /// Bytes on disk before and after.
    pub bytes_before: u64,
    /// Bytes on disk after.
    pub bytes_after: u64,
}

fn dir_size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path)
        .map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum())
        .unwrap_or(0)
}

impl ImageStore {
    /// Bytes the store takes on disk (blobs and unpacked layers).
    pub fn disk_usage(&self) -> u64 {
        dir_size(self.root())
    }

    /// Blobs an image keeps alive: manifest, config, layers.
    fn referenced(&self, manifest: &Digest) -> Vec<Digest> {
        let mut out = vec![manifest.clone()];
        if let Ok(data) = self.blobs().read(manifest)
            && let Ok(Document::Manifest(m)) = manifest::parse_document(&data)
            && let Ok(refs) = manifest::manifest_refs(&m)
        {
            out.push(refs.config);
            out.extend(refs.layers);
        }
        out
    }

    /// Collects garbage when the store exceeds `max_bytes`; images named in
    /// `in_use` are never removed.
    pub fn gc(&self, max_bytes: u64, in_use: &HashSet<String>) -> Result<GcReport, ImageError> {
        let mut report = GcReport {
            bytes_before: self.disk_usage(),
            ..GcReport::default()
        };
        if report.bytes_before <= max_bytes {
            report.bytes_after = report.bytes_before;
            return Ok(report);
        }
        let mut candidates: Vec<(u64, String)> = self
            .index()
            .entries()
            .iter()
            .filter(|(name, _)| !in_use.contains(*name))
            .map(|(name, e)| (e.last_used, name.clone()))
            .collect();
        candidates.sort();
        for (_, name) in candidates {
            if self.disk_usage() <= max_bytes {
                break;
            }
            self.remove(&name)?;
            report.removed_images.push(name);
            report.removed_blobs += self.sweep()?;
        }
        report.bytes_after = self.disk_usage();
        Ok(report)
    }

    /// Deletes blobs and layers no named image refers to; returns how many.
    pub fn sweep(&self) -> Result<usize, ImageError> {
        let manifests: Vec<Digest> = self.list().into_iter().map(|s| s.manifest).collect();
        let live: HashSet<Digest> = manifests.iter().flat_map(|m| self.referenced(m)).collect();
        let mut removed = 0;
        for (digest, _) in self.blobs().list()? {
            if !live.contains(&digest) {
                self.blobs().remove(&digest)?;
                removed += 1;
            }
        }
        let layers_io = |source| ImageError::Io {
            path: self.root().join("layers"),
            source,
        };
        for layer in self.layers().list().map_err(layers_io)? {
            if !live.contains(&layer) {
                self.layers().remove(&layer).map_err(layers_io)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}
