//! The name → manifest digest index of the image store, kept as one JSON
//! file replaced atomically.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::digest::Digest;

/// One named image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The manifest the name points at.
    pub manifest: Digest,
    /// Seconds since the epoch of the last pull, import or use (for GC).
    pub last_used: u64,
}

/// Names of images and what they point at.
#[derive(Debug)]
pub struct ImageIndex {
    path: PathBuf,
    entries: BTreeMap<String, IndexEntry>,
}

impl ImageIndex {
    /// Loads the index, empty when the file does not exist yet.
    pub fn load(path: &Path) -> io::Result<Self> {
        let entries = match fs::read(path) {
            Ok(data) => serde_json::from_slice(&data).map_err(io::Error::other)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(ImageIndex {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// The entry for a (normalised) name.
    pub fn get(&self, name: &str) -> Option<&IndexEntry> {
        self.entries.get(name)
    }

    /// All entries, by name.
    pub fn entries(&self) -> &BTreeMap<String, IndexEntry> {
        &self.entries
    }

    /// Points `name` at `manifest` and saves.
    pub fn set(&mut self, name: &str, manifest: Digest) -> io::Result<()> {
        self.entries.insert(
            name.to_string(),
            IndexEntry {
                manifest,
                last_used: now(),
            },
        );
        self.save()
    }

    /// Records a use of `name` (kept in memory; saved with the next change).
    pub fn touch(&mut self, name: &str) {
        if let Some(e) = self.entries.get_mut(name) {
            e.last_used = now();
        }
    }

    /// Takes the names another process (`drover image import` next to a
    /// running agent) added or moved in the file since it was loaded.
    pub fn merge_from_disk(&mut self) -> io::Result<()> {
        let disk = ImageIndex::load(&self.path)?;
        for (name, entry) in disk.entries {
            if self.entries.get(&name).map(|e| &e.manifest) != Some(&entry.manifest) {
                self.entries.insert(name, entry);
            }
        }
        Ok(())
    }

    /// Forgets `name` and saves.
    pub fn remove(&mut self, name: &str) -> io::Result<Option<IndexEntry>> {
        let old = self.entries.remove(name);
        self.save()?;
        Ok(old)
    }

    fn save(&self) -> io::Result<()> {
        let data = serde_json::to_vec_pretty(&self.entries).map_err(io::Error::other)?;
        let tmp = self.path.with_extension("json.tmp");
        fs::write(&tmp, data)?;
        fs::File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, &self.path)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_names_another_process_saved() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.json");
        let mut agent = ImageIndex::load(&path).expect("load");
        let mut importer = ImageIndex::load(&path).expect("load");
        let d = Digest::of(b"manifest");
        importer
            .set("docker.io/example/a:1", d.clone())
            .expect("set");
        assert!(agent.get("docker.io/example/a:1").is_none());
        agent.merge_from_disk().expect("merge");
        assert_eq!(
            agent.get("docker.io/example/a:1").map(|e| &e.manifest),
            Some(&d)
        );
    }
}
