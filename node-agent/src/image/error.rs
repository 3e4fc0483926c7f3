//! Errors of resolving and preparing images, worded for a pod's status.

use std::io;
use std::path::PathBuf;

use super::blobs::BlobError;
use super::digest::Digest;
use super::manifest::ManifestError;
use super::unpack::UnpackError;

/// Why an image in the store cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The name is not a valid image reference.
    #[error("invalid image name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    /// Nothing of that name is in the node's store.
    #[error("image {0} is not present on the node")]
    UnknownImage(String),
    /// The name points at an index, not a single image.
    #[error("{0} is an image index, not an image manifest")]
    NotAManifest(Digest),
    /// A blob is missing or corrupt.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A manifest or config is malformed.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A layer could not be unpacked.
    #[error(transparent)]
    Unpack(#[from] UnpackError),
    /// The store's own files failed.
    #[error("image store I/O on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl ImageError {
    /// The Kubernetes-style reason for a container status.
    pub fn reason(&self) -> &'static str {
        match self {
            ImageError::InvalidName { .. } => "InvalidImageName",
            ImageError::UnknownImage(_) => "ErrImageNeverPull",
            _ => "CreateContainerError",
        }
    }
}
