//! Secrets encrypted at rest: the API seals a Secret's `data` before the
//! write becomes a command, so the Raft log, the store and its snapshots hold
//! only ciphertext (Kubernetes encrypts in the apiserver, before etcd, for
//! the same reason), and opens it on every read. Other kinds pass through.

pub mod envelope;
pub mod key_file;

use std::sync::Arc;

use drover_proto::{Kind, Object};
use serde_json::Value;

pub use key_file::{KeyConfig, KeyFileError};

/// Where a stored Secret keeps its sealed `data`.
const SEALED_FIELD: &str = "encryptedData";

/// Annotations that copy the whole manifest (`drover apply`'s, kubectl's):
/// for a Secret they hold its values, so they are sealed with `data`.
fn copies_the_manifest(annotation: &str) -> bool {
    annotation.ends_with("/last-applied-configuration")
}

/// Why a Secret could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncryptionError {
    #[error(
        "secret {object} is encrypted with key {key:?}, which is not in the server's --encryption-key-file; add that key back (after the new one) to read it"
    )]
    UnknownKey { object: String, key: String },
    #[error(
        "secret {object} is encrypted but this server has no --encryption-key-file; start it with the key file that sealed it"
    )]
    NoKeys { object: String },
    #[error("secret {object}: {source}")]
    Open {
        object: String,
        source: envelope::OpenError,
    },
    #[error("secret {object}: the decrypted data is not what the server sealed: {message}")]
    Decode { object: String, message: String },
}

/// How the server stores Secrets: plaintext (no key file, as Kubernetes'
/// `identity` provider) or sealed with the key file's first key.
#[derive(Debug, Clone, Default)]
pub struct SecretEncryption {
    keys: Option<KeyConfig>,
}

impl SecretEncryption {
    pub fn new(keys: Option<KeyConfig>) -> SecretEncryption {
        SecretEncryption { keys }
    }

    /// True when new Secrets are stored sealed.
    pub fn encrypts(&self) -> bool {
        self.write_key().is_some()
    }

    /// The form of `object` to store: a Secret's `data` sealed.
    pub fn seal(&self, mut object: Object) -> Object {
        if !is_secret(&object) {
            return object;
        }
        // A client cannot supply the sealed form itself.
        object.body.remove(SEALED_FIELD);
        let Some(key) = self.write_key() else {
            return object;
        };
        let copies: serde_json::Map<String, Value> = object
            .metadata
            .annotations
            .iter()
            .filter(|(k, _)| copies_the_manifest(k))
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        object
            .metadata
            .annotations
            .retain(|k, _| !copies_the_manifest(k));
        let data = object.body.remove("data").unwrap_or(Value::Null);
        let sealed_part = serde_json::json!({"data": data, "annotations": copies});
        let plaintext = serde_json::to_vec(&sealed_part).unwrap_or_default();
        let sealed = envelope::seal(&key.name, &key.secret, &plaintext, aad(&object).as_bytes());
        object
            .body
            .insert(SEALED_FIELD.to_string(), Value::String(sealed));
        object
    }

    /// The key new Secrets are sealed with, if they are sealed.
    fn write_key(&self) -> Option<&key_file::NamedKey> {
        let keys = self.keys.as_ref().filter(|k| k.encrypt_writes)?;
        keys.keys.first()
    }

    /// The form of a stored object to show: a Secret's `data` opened.
    pub fn open(&self, object: Arc<Object>) -> Result<Arc<Object>, EncryptionError> {
        let Some(Value::String(sealed)) =
            object.body.get(SEALED_FIELD).filter(|_| is_secret(&object))
        else {
            return Ok(object);
        };
        let name = aad(&object);
        let Some(keys) = &self.keys else {
            return Err(EncryptionError::NoKeys { object: name });
        };
        let (key_name, payload) =
            envelope::key_name(sealed).map_err(|source| EncryptionError::Open {
                object: name.clone(),
                source,
            })?;
        let Some(key) = keys.keys.iter().find(|k| k.name == key_name) else {
            return Err(EncryptionError::UnknownKey {
                object: name,
                key: key_name.to_string(),
            });
        };
        let plaintext =
            envelope::open(key_name, &key.secret, payload, name.as_bytes()).map_err(|source| {
                EncryptionError::Open {
                    object: name.clone(),
                    source,
                }
            })?;
        let decode = |message: String| EncryptionError::Decode {
            object: name.clone(),
            message,
        };
        let sealed_part: SealedPart =
            serde_json::from_slice(&plaintext).map_err(|e| decode(e.to_string()))?;
        let mut opened = (*object).clone();
        opened.body.remove(SEALED_FIELD);
        if !sealed_part.data.is_null() {
            opened.body.insert("data".to_string(), sealed_part.data);
        }
        opened.metadata.annotations.extend(sealed_part.annotations);
        Ok(Arc::new(opened))
    }
}

/// True when a stored object holds its data sealed.
pub fn is_sealed(object: &Object) -> bool {
    is_secret(object) && object.body.contains_key(SEALED_FIELD)
}

/// What the ciphertext holds.
#[derive(serde::Deserialize)]
struct SealedPart {
    data: Value,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

fn is_secret(object: &Object) -> bool {
    object.kind() == Ok(Kind::Secret)
}

/// What a sealed value is bound to: moving it to another Secret fails to open.
fn aad(object: &Object) -> String {
    format!(
        "secrets/{}/{}",
        object.metadata.namespace_or_default(),
        object.metadata.name
    )
}

#[cfg(test)]
mod tests;
