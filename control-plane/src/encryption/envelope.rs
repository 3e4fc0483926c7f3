//! The sealed form of a Secret's data: `drover:enc:aesgcm:v1:KEY:` then the
//! base64 of a random 96-bit nonce and the AES-256-GCM ciphertext (as
//! Kubernetes' `k8s:enc:aesgcm:v1:KEY:`). The key's name says which key
//! opens it, so several keys can be in use while one is rotated out.

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;

/// AES-256: keys are 32 bytes.
pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
pub const PREFIX: &str = "drover:enc:aesgcm:v1:";

/// Why a sealed value could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("not a drover:enc:aesgcm:v1 value")]
    NotSealed,
    #[error("the sealed value is damaged (not base64 or too short)")]
    Damaged,
    /// Wrong key under the right name, changed bytes, or moved to another object.
    #[error(
        "key {0:?} does not authenticate it (a different key under that name, or the data was altered)"
    )]
    Authentication(String),
}

/// Splits a sealed value into its key name and payload.
pub fn key_name(sealed: &str) -> Result<(&str, &str), OpenError> {
    sealed
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .ok_or(OpenError::NotSealed)
}

/// Seals `plaintext` with `key`, bound to `aad` (the object it belongs to).
pub fn seal(name: &str, key: &[u8; KEY_LEN], plaintext: &[u8], aad: &[u8]) -> String {
    let cipher = Aes256Gcm::new(key.into());
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    // Encryption into a Vec fails only past GCM's 64 GiB message limit.
    let ciphertext = cipher
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .unwrap_or_default();
    let mut payload = nonce.to_vec();
    payload.extend_from_slice(&ciphertext);
    format!(
        "{PREFIX}{name}:{}",
        base64::engine::general_purpose::STANDARD.encode(payload)
    )
}

/// Opens the payload part of a sealed value (after [`key_name`]) with `key`.
pub fn open(
    name: &str,
    key: &[u8; KEY_LEN],
    payload: &str,
    aad: &[u8],
) -> Result<Vec<u8>, OpenError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload)
        .map_err(|_| OpenError::Damaged)?;
    if bytes.len() < NONCE_LEN {
        return Err(OpenError::Damaged);
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    Aes256Gcm::new(key.into())
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .map_err(|_| OpenError::Authentication(name.to_string()))
}
