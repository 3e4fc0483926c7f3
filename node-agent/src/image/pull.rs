//! Pulls images from an OCI distribution registry with `oci-client`,
//! streaming every blob through the verifying blob store.

use std::io::Write;
use std::time::Duration;

use futures::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE, OciDescriptor,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use super::digest::Digest;
use super::manifest::{self, Document, ManifestError};
use super::policy::{self, NeverPullError, PullAction, PullPolicy};
use super::{BlobError, Image, ImageError, ImageStore};

/// How to reach registries.
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    /// Registries (`host:port`) spoken to over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Connect timeout; reads time out after four times as long without data.
    pub connect_timeout: Option<Duration>,
}

/// Progress of one blob of a pull.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullProgress {
    /// The blob being fetched.
    pub digest: Digest,
    /// Bytes received so far.
    pub received: u64,
    /// Bytes expected (from the manifest).
    pub total: u64,
    /// Whether the blob was already present and skipped.
    pub cached: bool,
}

/// Why a pull failed, worded for `ErrImagePull`.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The name is not a valid reference.
    #[error("invalid image name {name:?}: {reason}")]
    InvalidName { name: String, reason: String },
    /// The registry could not be reached.
    #[error("registry {registry} is unreachable: {detail}")]
    Unreachable { registry: String, detail: String },
    /// The registry does not have the image.
    #[error("image {0} not found in the registry")]
    UnknownImage(String),
    /// The registry wants credentials we do not have.
    #[error("registry {0} refused access (authentication required)")]
    Unauthorized(String),
    /// Content from the registry did not match its digest.
    #[error("bad digest for {name}: expected {expected}, got {actual}")]
    BadDigest {
        name: String,
        expected: Digest,
        actual: Digest,
    },
    /// The registry answered something else we cannot use.
    #[error("registry error pulling {name}: {detail}")]
    Registry { name: String, detail: String },
    /// The manifest or config is malformed.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// Storing a blob failed (including digest mismatches).
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The store rejected the image.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// `imagePullPolicy: Never` and the image is absent.
    #[error(transparent)]
    NeverPull(#[from] NeverPullError),
}

impl PullError {
    /// The Kubernetes-style reason for a container status.
    pub fn reason(&self) -> &'static str {
        match self {
            PullError::InvalidName { .. } => "InvalidImageName",
            PullError::NeverPull(_) => "ErrImageNeverPull",
            _ => "ErrImagePull",
        }
    }
}

fn classify(name: &str, registry: &str, err: OciDistributionError) -> PullError {
    use OciDistributionError as E;
    let not_found = |envelope: &oci_client::errors::OciEnvelope| {
        envelope.errors.iter().any(|e| {
            matches!(
                e.code,
                OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown | OciErrorCode::NotFound
            )
        })
    };
    match err {
        E::RequestError(e) if e.is_connect() || e.is_timeout() || e.is_request() => {
            PullError::Unreachable {
                registry: registry.to_string(),
                detail: error_chain(&e),
            }
        }
        E::ImageManifestNotFoundError(_) => PullError::UnknownImage(name.to_string()),
        E::RegistryError { ref envelope, .. } if not_found(envelope) => {
            PullError::UnknownImage(name.to_string())
        }
        E::ServerError { code: 404, .. } => PullError::UnknownImage(name.to_string()),
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => {
            PullError::Unauthorized(registry.to_string())
        }
        other => PullError::Registry {
            name: name.to_string(),
            detail: other.to_string(),
        },
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// Installs rustls' ring crypto provider for the process, once. reqwest is
/// built without a default provider (to avoid aws-lc's C build) and panics
/// when it finds none; an error here only means one is installed already.
pub fn ensure_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn client(opts: &PullOptions) -> Client {
    ensure_crypto_provider();
    Client::new(ClientConfig {
        protocol: ClientProtocol::HttpsExcept(opts.insecure_registries.clone()),
        connect_timeout: opts.connect_timeout,
        read_timeout: opts.connect_timeout.map(|t| t * 4),
        ..Default::default()
    })
}

const ACCEPTED: &[&str] = &[
    OCI_IMAGE_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

impl ImageStore {
    /// Makes sure `name` is usable under `policy`, pulling when it says so.
    pub async fn ensure_image(
        &self,
        name: &str,
        policy: PullPolicy,
        opts: &PullOptions,
        progress: &mut (dyn FnMut(PullProgress) + Send),
    ) -> Result<Image, PullError> {
        match policy::decide(policy, name, self.contains(name))? {
            PullAction::UseLocal => Ok(self.resolve(name)?),
            PullAction::Pull => self.pull(name, opts, progress).await,
        }
    }

    /// Pulls `name` from its registry into the store and names it.
    pub async fn pull(
        &self,
        name: &str,
        opts: &PullOptions,
        progress: &mut (dyn FnMut(PullProgress) + Send),
    ) -> Result<Image, PullError> {
        let reference: Reference =
            name.parse()
                .map_err(|e: oci_client::ParseError| PullError::InvalidName {
                    name: name.to_string(),
                    reason: e.to_string(),
                })?;
        let whole = reference.whole();
        let registry = reference.resolve_registry().to_string();
        let client = client(opts);
        let fail = |e| classify(&whole, &registry, e);

        let (bytes, _) = client
            .pull_manifest_raw(&reference, &RegistryAuth::Anonymous, ACCEPTED)
            .await
            .map_err(fail)?;
        let mut manifest_digest = Digest::of(&bytes);
        // A digest in the reference pins the content; tags are trusted to
        // name whatever the registry sends, which is then verified by digest.
        if let Some(pinned) = reference.digest() {
            check_pinned(&whole, pinned, &manifest_digest)?;
        }
        let mut manifest_bytes = bytes;
        if let Document::Index(index) = manifest::parse_document(&manifest_bytes)? {
            let (os, arch) = manifest::host_platform();
            let chosen = manifest::choose_manifest(&index, os, arch)?;
            let by_digest = reference.clone_with_digest(chosen.to_string());
            let (bytes, _) = client
                .pull_manifest_raw(&by_digest, &RegistryAuth::Anonymous, ACCEPTED)
                .await
                .map_err(fail)?;
            check_pinned(&whole, &chosen.to_string(), &Digest::of(&bytes))?;
            manifest_digest = chosen;
            manifest_bytes = bytes;
        }
        let Document::Manifest(doc) = manifest::parse_document(&manifest_bytes)? else {
            return Err(ImageError::NotAManifest(manifest_digest).into());
        };
        let refs = manifest::manifest_refs(&doc)?;
        let sizes =
            std::iter::once(doc.config().size()).chain(doc.layers().iter().map(|l| l.size()));
        let blobs = std::iter::once(&refs.config).chain(&refs.layers);
        for (digest, size) in blobs.zip(sizes) {
            self.fetch_blob(&client, &reference, digest, size, progress)
                .await
                .map_err(|e| match e {
                    FetchError::Oci(e) => fail(e),
                    FetchError::Pull(e) => e,
                })?;
        }
        self.blobs().put_bytes(&manifest_bytes)?;
        Ok(self.tag(&whole, &manifest_digest)?)
    }

    async fn fetch_blob(
        &self,
        client: &Client,
        reference: &Reference,
        digest: &Digest,
        size: u64,
        progress: &mut (dyn FnMut(PullProgress) + Send),
    ) -> Result<(), FetchError> {
        let mut report = |received, cached| {
            progress(PullProgress {
                digest: digest.clone(),
                received,
                total: size,
                cached,
            })
        };
        if self.blobs().contains(digest) {
            report(size, true);
            return Ok(());
        }
        let desc = OciDescriptor {
            digest: digest.to_string(),
            size: i64::try_from(size).unwrap_or(i64::MAX),
            ..Default::default()
        };
        let mut stream = client
            .pull_blob_stream(reference, &desc)
            .await
            .map_err(FetchError::Oci)?
            .stream;
        let mut writer = self
            .blobs()
            .writer(digest)
            .map_err(|e| FetchError::Pull(e.into()))?;
        let io_fail = |e: std::io::Error| {
            FetchError::Pull(PullError::Registry {
                name: reference.whole(),
                detail: format!("reading blob {digest}: {e}"),
            })
        };
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(io_fail)?;
            writer.write_all(&chunk).map_err(|e| {
                FetchError::Pull(
                    BlobError::Io {
                        path: self.blobs().path(digest),
                        source: e,
                    }
                    .into(),
                )
            })?;
            report(writer.written(), false);
        }
        writer.commit().map_err(|e| {
            FetchError::Pull(match e {
                BlobError::DigestMismatch { expected, actual } => PullError::BadDigest {
                    name: reference.whole(),
                    expected,
                    actual,
                },
                other => other.into(),
            })
        })?;
        Ok(())
    }
}

enum FetchError {
    Oci(OciDistributionError),
    Pull(PullError),
}

fn check_pinned(name: &str, pinned: &str, actual: &Digest) -> Result<(), PullError> {
    let expected: Digest =
        pinned.parse().map_err(
            |e: super::digest::DigestParseError| PullError::InvalidName {
                name: name.to_string(),
                reason: e.to_string(),
            },
        )?;
    if &expected != actual {
        return Err(PullError::BadDigest {
            name: name.to_string(),
            expected,
            actual: actual.clone(),
        });
    }
    Ok(())
}
