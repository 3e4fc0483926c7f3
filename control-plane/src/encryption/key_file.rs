//! The `--encryption-key-file`: Kubernetes' EncryptionConfiguration shape
//! with the `aesgcm` provider (32-byte keys, base64). The first provider
//! writes: its first key seals new Secrets; every listed key opens old ones,
//! so a key is rotated by putting the new one first and rewriting Secrets.
//! `identity: {}` first stores plaintext (to turn encryption off while the
//! keys still read what they sealed).

use std::path::Path;

use base64::Engine;
use serde::Deserialize;

use super::envelope::KEY_LEN;

/// Why a key file was refused; the message names the file.
#[derive(Debug, thiserror::Error)]
#[error("encryption key file {path}: {problem}")]
pub struct KeyFileError {
    pub path: String,
    pub problem: String,
}

/// One named key from the file.
#[derive(Clone, PartialEq, Eq)]
pub struct NamedKey {
    pub name: String,
    pub secret: [u8; KEY_LEN],
}

impl std::fmt::Debug for NamedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material, not even in a debug log.
        f.debug_struct("NamedKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What the file says: the keys, in order, and whether the first seals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyConfig {
    pub keys: Vec<NamedKey>,
    /// False when `identity` is the first provider: new Secrets are stored
    /// as plaintext, the keys only open what they sealed.
    pub encrypt_writes: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileDoc {
    api_version: String,
    kind: String,
    resources: Vec<ResourceDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceDoc {
    resources: Vec<String>,
    providers: Vec<ProviderDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderDoc {
    aesgcm: Option<KeysDoc>,
    identity: Option<EmptyDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysDoc {
    keys: Vec<KeyDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyDoc {
    name: String,
    secret: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmptyDoc {}

impl KeyConfig {
    /// Reads and checks the key file at `path`.
    pub fn load(path: &Path) -> Result<KeyConfig, KeyFileError> {
        let text = std::fs::read_to_string(path).map_err(|e| KeyFileError {
            path: path.display().to_string(),
            problem: format!("cannot read it: {e}"),
        })?;
        KeyConfig::parse(&text).map_err(|problem| KeyFileError {
            path: path.display().to_string(),
            problem,
        })
    }

    /// Checks a key file's text; the error says what is wrong and where.
    pub fn parse(text: &str) -> Result<KeyConfig, String> {
        let doc: FileDoc = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        if doc.api_version != "apiserver.config.k8s.io/v1" || doc.kind != "EncryptionConfiguration"
        {
            return Err(format!(
                "expected apiVersion apiserver.config.k8s.io/v1 and kind EncryptionConfiguration, found {:?} {:?}",
                doc.api_version, doc.kind
            ));
        }
        let [entry] = doc.resources.as_slice() else {
            return Err("resources: expected one entry, for secrets".into());
        };
        if entry.resources != ["secrets"] {
            return Err(format!(
                "resources[0].resources: only [secrets] is encrypted, found {:?}",
                entry.resources
            ));
        }
        let mut keys = Vec::new();
        let mut encrypt_writes = None;
        for (i, provider) in entry.providers.iter().enumerate() {
            let at = format!("resources[0].providers[{i}]");
            match (&provider.aesgcm, &provider.identity) {
                (Some(aesgcm), None) => {
                    encrypt_writes.get_or_insert(true);
                    for (j, key) in aesgcm.keys.iter().enumerate() {
                        keys.push(parse_key(key, &format!("{at}.aesgcm.keys[{j}]"))?);
                    }
                }
                (None, Some(_)) => {
                    encrypt_writes.get_or_insert(false);
                }
                _ => return Err(format!("{at}: expected exactly one of aesgcm or identity")),
            }
        }
        if keys.is_empty() {
            return Err("no aesgcm keys: list at least one".into());
        }
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|k| k.name == key.name) {
                return Err(format!("key name {:?} is listed twice", key.name));
            }
        }
        Ok(KeyConfig {
            keys,
            encrypt_writes: encrypt_writes.unwrap_or(false),
        })
    }
}

/// A key file with one fresh random key named `name` (what `drover dev`
/// writes on first start).
pub fn generate(name: &str) -> String {
    use aes_gcm::aead::{KeyInit, OsRng};
    let key = aes_gcm::Aes256Gcm::generate_key(OsRng);
    format!(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - aesgcm:\n      keys:\n      - name: {name}\n        secret: {}\n",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

fn parse_key(key: &KeyDoc, at: &str) -> Result<NamedKey, String> {
    if key.name.is_empty() || key.name.contains(':') {
        return Err(format!(
            "{at}.name: {:?} must be non-empty and without ':' (it is written into every ciphertext)",
            key.name
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(key.secret.trim())
        .map_err(|e| format!("{at}.secret: not base64 ({e})"))?;
    let secret: [u8; KEY_LEN] = bytes.try_into().map_err(|b: Vec<u8>| {
        format!(
            "{at}.secret: {} bytes, expected {KEY_LEN} (make one with `head -c 32 /dev/urandom | base64`)",
            b.len()
        )
    })?;
    Ok(NamedKey {
        name: key.name.clone(),
        secret,
    })
}
