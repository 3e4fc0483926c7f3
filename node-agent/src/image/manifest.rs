//! Pure parsing of manifests, indexes and configs, and platform choice.

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

use super::digest::{Digest, DigestParseError};

/// A manifest or config that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON of the expected shape.
    #[error("malformed {what}: {source}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
    /// A digest inside it is not one we accept.
    #[error("{what} names a bad digest: {source}")]
    Digest {
        what: &'static str,
        source: DigestParseError,
    },
    /// An index with nothing for this machine.
    #[error("the image has no variant for {0}")]
    NoPlatform(String),
    /// The config lists a different number of layers than the manifest.
    #[error("the image config lists {config} layers but the manifest has {manifest}")]
    LayerCount { config: usize, manifest: usize },
}

/// A manifest document: an image manifest or an index of them.
#[derive(Debug)]
pub enum Document {
    /// A single-platform image manifest.
    Manifest(Box<ImageManifest>),
    /// A multi-platform index (or Docker manifest list).
    Index(Box<ImageIndex>),
}

/// Parses a manifest document of either kind (OCI or Docker schema 2).
pub fn parse_document(data: &[u8]) -> Result<Document, ManifestError> {
    let probe: serde_json::Value =
        serde_json::from_slice(data).map_err(|source| ManifestError::Json {
            what: "manifest",
            source,
        })?;
    if probe.get("manifests").is_some() {
        let index = serde_json::from_value(probe).map_err(|source| ManifestError::Json {
            what: "image index",
            source,
        })?;
        Ok(Document::Index(Box::new(index)))
    } else {
        let manifest = serde_json::from_value(probe).map_err(|source| ManifestError::Json {
            what: "image manifest",
            source,
        })?;
        Ok(Document::Manifest(Box::new(manifest)))
    }
}

/// The platform string of this machine, in OCI words (`linux/amd64`).
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    ("linux", arch)
}

/// Picks the manifest for `os/arch` from an index; entries without a
/// platform are taken as matching (single-image layouts often omit it).
pub fn choose_manifest(index: &ImageIndex, os: &str, arch: &str) -> Result<Digest, ManifestError> {
    let chosen = index.manifests().iter().find(|d| match d.platform() {
        None => true,
        Some(p) => p.os().to_string() == os && p.architecture().to_string() == arch,
    });
    let Some(desc) = chosen else {
        return Err(ManifestError::NoPlatform(format!("{os}/{arch}")));
    };
    desc.digest()
        .to_string()
        .parse()
        .map_err(|source| ManifestError::Digest {
            what: "image index",
            source,
        })
}

/// What the store needs from a manifest: its config and layer blobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestRefs {
    /// The config blob.
    pub config: Digest,
    /// Layer blobs, bottom first.
    pub layers: Vec<Digest>,
}

/// Extracts and validates the blob digests a manifest refers to.
pub fn manifest_refs(manifest: &ImageManifest) -> Result<ManifestRefs, ManifestError> {
    let parse = |s: String| {
        s.parse::<Digest>().map_err(|source| ManifestError::Digest {
            what: "image manifest",
            source,
        })
    };
    Ok(ManifestRefs {
        config: parse(manifest.config().digest().to_string())?,
        layers: manifest
            .layers()
            .iter()
            .map(|l| parse(l.digest().to_string()))
            .collect::<Result<_, _>>()?,
    })
}

/// Parses an image config and its layer diff_ids, checked against the manifest.
pub fn parse_config(
    data: &[u8],
    layer_count: usize,
) -> Result<(ImageConfiguration, Vec<Digest>), ManifestError> {
    let config: ImageConfiguration =
        serde_json::from_slice(data).map_err(|source| ManifestError::Json {
            what: "image config",
            source,
        })?;
    let diff_ids = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| {
            d.parse::<Digest>().map_err(|source| ManifestError::Digest {
                what: "image config",
                source,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if diff_ids.len() != layer_count {
        return Err(ManifestError::LayerCount {
            config: diff_ids.len(),
            manifest: layer_count,
        });
    }
    Ok((config, diff_ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &str = r#"{"schemaVersion":2,"manifests":[
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,
         "digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111",
         "platform":{"os":"linux","architecture":"arm64"}},
        {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,
         "digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222",
         "platform":{"os":"linux","architecture":"amd64"}}]}"#;

    #[test]
    fn index_picks_the_host_platform() {
        let Ok(Document::Index(index)) = parse_document(INDEX.as_bytes()) else {
            panic!("not an index")
        };
        let d = choose_manifest(&index, "linux", "amd64").map(|d| d.hex()[..4].to_string());
        assert_eq!(d.ok().as_deref(), Some("2222"));
        assert!(matches!(
            choose_manifest(&index, "linux", "s390x"),
            Err(ManifestError::NoPlatform(_))
        ));
    }

    #[test]
    fn garbage_is_a_clear_error_not_a_panic() {
        for bad in [&b"not json"[..], b"{}", b"{\"manifests\": 3}", b"\xff\xfe"] {
            assert!(parse_document(bad).is_err());
        }
        assert!(parse_config(b"{\"rootfs\":{}}", 1).is_err());
    }
}
