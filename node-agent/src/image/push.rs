//! Pushing an image from the node's store to a registry (as `docker push`
//! or `skopeo copy` would): its config and layer blobs, then the manifest,
//! byte for byte, so the digest users pinned stays the same.

use oci_client::Client;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_spec::distribution::Reference;

use super::digest::Digest;
use super::pull::ensure_crypto_provider;
use super::{BlobError, ImageError, ImageStore};

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The target is not a valid reference.
    #[error("invalid target {target:?}: {reason}")]
    InvalidTarget { target: String, reason: String },
    /// The image is not in the store.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A blob of the image cannot be read.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The manifest in the store is not JSON with a media type.
    #[error("the stored manifest {digest} of {name} has no mediaType")]
    MediaType { name: String, digest: Digest },
    /// The registry refused or could not be reached.
    #[error("pushing to {target}: {detail}")]
    Registry { target: String, detail: String },
}

/// Where and how to push.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Speak plain HTTP to the target's registry.
    pub insecure: bool,
}

impl ImageStore {
    /// Pushes the stored image `name` to `target` (`HOST[:PORT]/REPO:TAG`)
    /// and returns the manifest digest; calls `progress` once per blob.
    pub async fn push(
        &self,
        name: &str,
        target: &str,
        opts: &PushOptions,
        progress: &mut (dyn FnMut(&Digest, usize) + Send),
    ) -> Result<Digest, PushError> {
        let image = self.resolve(name)?;
        let reference: Reference =
            target
                .parse()
                .map_err(|e: oci_client::ParseError| PushError::InvalidTarget {
                    target: target.to_string(),
                    reason: e.to_string(),
                })?;
        let manifest = self.blobs().read(&image.manifest)?;
        let media_type = serde_json::from_slice::<serde_json::Value>(&manifest)
            .ok()
            .and_then(|m| m["mediaType"].as_str()?.parse().ok())
            .ok_or_else(|| PushError::MediaType {
                name: image.name.clone(),
                digest: image.manifest.clone(),
            })?;
        ensure_crypto_provider();
        let registry = reference.resolve_registry().to_string();
        let client = Client::new(ClientConfig {
            protocol: if opts.insecure {
                ClientProtocol::HttpsExcept(vec![registry])
            } else {
                ClientProtocol::Https
            },
            ..Default::default()
        });
        let fail = |e: OciDistributionError| PushError::Registry {
            target: target.to_string(),
            detail: e.to_string(),
        };
        for digest in std::iter::once(&image.config_digest).chain(&image.layers) {
            let data = self.blobs().read(digest)?;
            let size = data.len();
            client
                .push_blob(&reference, data, &digest.to_string())
                .await
                .map_err(fail)?;
            progress(digest, size);
        }
        client
            .push_manifest_raw(&reference, manifest, media_type)
            .await
            .map_err(fail)?;
        Ok(image.manifest)
    }
}
