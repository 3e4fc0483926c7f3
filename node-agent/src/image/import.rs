//! Imports images from an OCI image layout (directory or tarball) or a
//! `docker save` tarball into the store, verifying every blob on the way in.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use serde::Deserialize;

use super::digest::{Digest, Hashing};
use super::manifest::{self, Document, ManifestError};
use super::{BlobError, Image, ImageError, ImageStore, entry};

/// The annotation that names an image inside an OCI layout.
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// The annotation containerd and Docker 25+ put on `docker save` layouts.
const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// Neither an OCI layout nor a `docker save` archive.
    #[error("{0} is neither an OCI image layout nor a docker save archive")]
    NotAnImage(PathBuf),
    /// The archive or layout names something outside itself.
    #[error("{path} refers to {entry:?}, which is outside the archive")]
    BadPath { path: PathBuf, entry: String },
    /// No name in the archive and none given.
    #[error("image {0} has no full name in the archive: give one with --name")]
    NoName(Digest),
    /// A name was given but the archive holds several images.
    #[error("the archive holds {0} images; --name can only name one")]
    AmbiguousName(usize),
    /// The archive's own index or manifest list is malformed.
    #[error("malformed {what} in {path}: {source}")]
    Json {
        what: &'static str,
        path: PathBuf,
        source: serde_json::Error,
    },
    /// A blob failed verification.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A manifest or config is malformed.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The store rejected the result.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Reading the archive failed.
    #[error("reading {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ImportError + '_ {
    move |source| ImportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Imports every image in `path`; `name` renames a single-image archive.
pub fn import(
    store: &ImageStore,
    path: &Path,
    name: Option<&str>,
) -> Result<Vec<Image>, ImportError> {
    let meta = fs::metadata(path).map_err(io_err(path))?;
    if meta.is_dir() {
        return import_dir(store, path, name);
    }
    let scratch = store.blobs().temp_path("import");
    let result = extract_archive(path, &scratch).and_then(|()| import_dir(store, &scratch, name));
    let _ = fs::remove_dir_all(&scratch);
    result
}

/// Extracts a (possibly gzip-compressed) tarball; the tar crate refuses
/// entries that would land outside `dest`.
fn extract_archive(path: &Path, dest: &Path) -> Result<(), ImportError> {
    fs::create_dir_all(dest).map_err(io_err(dest))?;
    let mut file = BufReader::new(File::open(path).map_err(io_err(path))?);
    let gzip = file
        .fill_buf()
        .map_err(io_err(path))?
        .starts_with(&[0x1f, 0x8b]);
    let reader: Box<dyn Read> = if gzip {
        Box::new(GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(false);
    archive.unpack(dest).map_err(io_err(path))
}

fn import_dir(
    store: &ImageStore,
    dir: &Path,
    name: Option<&str>,
) -> Result<Vec<Image>, ImportError> {
    if dir.join("index.json").is_file() {
        import_layout(store, dir, name)
    } else if dir.join("manifest.json").is_file() {
        import_docker_save(store, dir, name)
    } else {
        Err(ImportError::NotAnImage(dir.to_path_buf()))
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(
    path: &Path,
    what: &'static str,
) -> Result<T, ImportError> {
    let data = fs::read(path).map_err(io_err(path))?;
    serde_json::from_slice(&data).map_err(|source| ImportError::Json {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Whether an annotation value is a full reference rather than a bare tag
/// (the OCI spec allows `ref.name` to be just `1` or `latest`).
fn is_full_reference(value: &str) -> bool {
    value.contains('/') || value.contains(':')
}

fn copy_blob(store: &ImageStore, layout: &Path, digest: &Digest) -> Result<(), ImportError> {
    if store.blobs().contains(digest) {
        return Ok(());
    }
    // The digest was validated as 64 hex digits, so this path stays in the layout.
    let path = layout.join("blobs").join("sha256").join(digest.hex());
    let file = File::open(&path).map_err(io_err(&path))?;
    store.blobs().put_reader(digest, file)?;
    Ok(())
}

fn import_layout(
    store: &ImageStore,
    dir: &Path,
    name: Option<&str>,
) -> Result<Vec<Image>, ImportError> {
    let index_path = dir.join("index.json");
    let index: oci_spec::image::ImageIndex = read_json(&index_path, "index.json")?;
    let descriptors = index.manifests();
    if name.is_some() && descriptors.len() > 1 {
        return Err(ImportError::AmbiguousName(descriptors.len()));
    }
    let mut images = Vec::new();
    for desc in descriptors {
        let digest: Digest =
            desc.digest()
                .to_string()
                .parse()
                .map_err(|source| ManifestError::Digest {
                    what: "index.json",
                    source,
                })?;
        let annotated = desc.annotations().as_ref().and_then(|a| {
            a.get(CONTAINERD_NAME_ANNOTATION)
                .or_else(|| a.get(REF_NAME_ANNOTATION))
                .filter(|v| is_full_reference(v))
                .cloned()
        });
        let manifest = import_manifest_tree(store, dir, digest)?;
        let image_name = match (name, annotated) {
            (Some(n), _) => n.to_string(),
            (None, Some(n)) => n,
            (None, None) => return Err(ImportError::NoName(manifest)),
        };
        images.push(store.tag(&image_name, &manifest)?);
    }
    Ok(images)
}

/// Copies a manifest (following an index to this platform's manifest) and
/// all its blobs; returns the image manifest's digest.
fn import_manifest_tree(
    store: &ImageStore,
    dir: &Path,
    digest: Digest,
) -> Result<Digest, ImportError> {
    copy_blob(store, dir, &digest)?;
    let data = store.blobs().read(&digest)?;
    match manifest::parse_document(&data)? {
        Document::Index(index) => {
            let (os, arch) = manifest::host_platform();
            let chosen = manifest::choose_manifest(&index, os, arch)?;
            import_manifest_tree(store, dir, chosen)
        }
        Document::Manifest(m) => {
            let refs = manifest::manifest_refs(&m)?;
            copy_blob(store, dir, &refs.config)?;
            for layer in &refs.layers {
                copy_blob(store, dir, layer)?;
            }
            Ok(digest)
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerSaveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn inside(dir: &Path, rel: &str) -> Result<PathBuf, ImportError> {
    match entry::sanitize(Path::new(rel)) {
        Ok(Some(p)) => Ok(dir.join(p)),
        _ => Err(ImportError::BadPath {
            path: dir.join("manifest.json"),
            entry: rel.to_string(),
        }),
    }
}

/// Hashes a file and stores it under that digest.
fn store_file(store: &ImageStore, path: &Path) -> Result<(Digest, u64, bool), ImportError> {
    let mut reader = Hashing::new(BufReader::new(File::open(path).map_err(io_err(path))?));
    let mut magic = [0u8; 2];
    let got = reader.read(&mut magic).map_err(io_err(path))?;
    io::copy(&mut reader, &mut io::sink()).map_err(io_err(path))?;
    let (digest, size, _) = reader.finish();
    store
        .blobs()
        .put_reader(&digest, File::open(path).map_err(io_err(path))?)?;
    Ok((digest, size, got == 2 && magic == [0x1f, 0x8b]))
}

fn import_docker_save(
    store: &ImageStore,
    dir: &Path,
    name: Option<&str>,
) -> Result<Vec<Image>, ImportError> {
    let manifest_path = dir.join("manifest.json");
    let entries: Vec<DockerSaveEntry> = read_json(&manifest_path, "manifest.json")?;
    if name.is_some() && entries.len() > 1 {
        return Err(ImportError::AmbiguousName(entries.len()));
    }
    let mut images = Vec::new();
    for e in entries {
        let (config, config_size, _) = store_file(store, &inside(dir, &e.config)?)?;
        let mut layers = Vec::new();
        for layer in &e.layers {
            let (digest, size, gzip) = store_file(store, &inside(dir, layer)?)?;
            let media_type = if gzip {
                "application/vnd.oci.image.layer.v1.tar+gzip"
            } else {
                "application/vnd.oci.image.layer.v1.tar"
            };
            layers.push(serde_json::json!({
                "mediaType": media_type, "digest": digest.to_string(), "size": size,
            }));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config.to_string(), "size": config_size,
            },
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest).map_err(|source| ImportError::Json {
            what: "synthesised manifest",
            path: manifest_path.clone(),
            source,
        })?;
        let digest = store.blobs().put_bytes(&bytes)?;
        let names: Vec<String> = match name {
            Some(n) => vec![n.to_string()],
            None => e.repo_tags.unwrap_or_default(),
        };
        if names.is_empty() {
            return Err(ImportError::NoName(digest));
        }
        for n in names {
            images.push(store.tag(&n, &digest)?);
        }
    }
    Ok(images)
}
