//! The node's image store: OCI images pulled from registries or imported
//! from layouts, kept as verified blobs, unpacked once per layer and shared
//! between containers through overlayfs.

pub mod blobs;
pub mod digest;
pub mod entry;
mod error;
pub mod gc;
pub mod import;
pub mod index;
pub mod manifest;
pub mod policy;
pub mod pull;
pub mod push;
pub mod unpack;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use oci_spec::distribution::Reference;
use oci_spec::image::ImageConfiguration;

pub use blobs::{BlobError, BlobStore};
pub use digest::Digest;
pub use error::ImageError;
pub use import::ImportError;
pub use policy::{PullAction, PullPolicy};
pub use pull::{PullError, PullOptions, PullProgress};
pub use push::{PushError, PushOptions};
pub use unpack::{LayerStore, UnpackError};

use index::ImageIndex;
use manifest::Document;

/// A resolved image: everything needed to build a container's root
/// filesystem and default process.
#[derive(Clone, Debug)]
pub struct Image {
    /// The normalised name (`docker.io/example/busybox:1`).
    pub name: String,
    /// The manifest digest the name resolved to.
    pub manifest: Digest,
    /// The config blob.
    pub config_digest: Digest,
    /// Layer blobs, bottom first.
    pub layers: Vec<Digest>,
    /// Uncompressed layer digests from the config, bottom first.
    pub diff_ids: Vec<Digest>,
    /// The image config (entrypoint, cmd, env, working dir, user).
    pub config: ImageConfiguration,
}

/// A name and what it points at, for `drover image ls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSummary {
    /// Normalised name.
    pub name: String,
    /// Manifest digest.
    pub manifest: Digest,
}

/// Normalises an image reference (`busybox` → `docker.io/library/busybox:latest`).
pub fn normalize_name(name: &str) -> Result<String, ImageError> {
    parse_reference(name).map(|r| r.whole())
}

fn parse_reference(name: &str) -> Result<Reference, ImageError> {
    name.parse::<Reference>()
        .map_err(|e| ImageError::InvalidName {
            name: name.to_string(),
            reason: e.to_string(),
        })
}

/// The on-disk image store of one node.
#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
    blobs: BlobStore,
    layers: LayerStore,
    index: Mutex<ImageIndex>,
}

impl ImageStore {
    /// Opens the store under `data_dir/images`, creating it if needed.
    pub fn open(data_dir: &Path) -> Result<Self, ImageError> {
        let root = data_dir.join("images");
        let blobs = BlobStore::open(&root)?;
        let layers_dir = root.join("layers");
        let layers = LayerStore::open(&layers_dir).map_err(|source| ImageError::Io {
            path: layers_dir.clone(),
            source,
        })?;
        let index_path = root.join("index.json");
        let index = ImageIndex::load(&index_path).map_err(|source| ImageError::Io {
            path: index_path,
            source,
        })?;
        Ok(ImageStore {
            root,
            blobs,
            layers,
            index: Mutex::new(index),
        })
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The blob store (for pull and import).
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    fn index(&self) -> MutexGuard<'_, ImageIndex> {
        // A poisoned lock only means another thread panicked mid-update of an
        // in-memory map that is saved atomically: the data is still usable.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every named image.
    pub fn list(&self) -> Vec<ImageSummary> {
        self.index()
            .entries()
            .iter()
            .map(|(name, e)| ImageSummary {
                name: name.clone(),
                manifest: e.manifest.clone(),
            })
            .collect()
    }

    /// Whether `name` is in the store.
    pub fn contains(&self, name: &str) -> bool {
        normalize_name(name).is_ok_and(|n| self.index().get(&n).is_some())
    }

    /// Resolves a name to its image, reading and verifying its manifest and config.
    pub fn resolve(&self, name: &str) -> Result<Image, ImageError> {
        let name = normalize_name(name)?;
        let manifest = {
            let mut index = self.index();
            let entry = index
                .get(&name)
                .ok_or_else(|| ImageError::UnknownImage(name.clone()))?
                .manifest
                .clone();
            index.touch(&name);
            entry
        };
        self.image_from_manifest(name, manifest)
    }

    fn image_from_manifest(&self, name: String, manifest: Digest) -> Result<Image, ImageError> {
        let data = self.blobs.read(&manifest)?;
        let Document::Manifest(doc) = manifest::parse_document(&data)? else {
            return Err(ImageError::NotAManifest(manifest));
        };
        let refs = manifest::manifest_refs(&doc)?;
        let config_data = self.blobs.read(&refs.config)?;
        let (config, diff_ids) = manifest::parse_config(&config_data, refs.layers.len())?;
        Ok(Image {
            name,
            manifest,
            config_digest: refs.config,
            layers: refs.layers,
            diff_ids,
            config,
        })
    }

    /// Names `manifest` (already stored with all its blobs) as `name`,
    /// checking first that the image is complete.
    pub fn tag(&self, name: &str, manifest: &Digest) -> Result<Image, ImageError> {
        let name = normalize_name(name)?;
        let image = self.image_from_manifest(name.clone(), manifest.clone())?;
        for layer in &image.layers {
            if !self.blobs.contains(layer) {
                return Err(BlobError::Missing(layer.clone()).into());
            }
        }
        let path = self.root.join("index.json");
        self.index()
            .set(&name, manifest.clone())
            .map_err(|source| ImageError::Io { path, source })?;
        Ok(image)
    }

    /// Picks up images imported into the store's directory by another
    /// process since it was opened.
    pub fn reload_index(&self) -> Result<(), ImageError> {
        let path = self.root.join("index.json");
        self.index()
            .merge_from_disk()
            .map_err(|source| ImageError::Io { path, source })
    }

    /// Forgets a name (blobs stay until [`ImageStore::gc`]).
    pub fn remove(&self, name: &str) -> Result<(), ImageError> {
        let name = normalize_name(name)?;
        let path = self.root.join("index.json");
        match self.index().remove(&name) {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(ImageError::UnknownImage(name)),
            Err(source) => Err(ImageError::Io { path, source }),
        }
    }

    /// Unpacks the image's layers (each at most once, ever) and returns the
    /// overlayfs lower directories, topmost first as overlayfs wants them.
    pub fn prepare_layers(&self, image: &Image) -> Result<Vec<PathBuf>, ImageError> {
        let mut dirs = Vec::with_capacity(image.layers.len());
        for (layer, diff_id) in image.layers.iter().zip(&image.diff_ids) {
            dirs.push(self.layers.ensure(&self.blobs, layer, Some(diff_id))?);
        }
        dirs.reverse();
        Ok(dirs)
    }

    /// The layer store (for GC and tests).
    pub fn layers(&self) -> &LayerStore {
        &self.layers
    }
}
