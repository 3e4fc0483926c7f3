//! Bootstrap tokens, as kubeadm's: `ID.SECRET` (`[a-z0-9]{6}.[a-z0-9]{16}`),
//! kept as a Secret `kube-system/bootstrap-token-ID` of type
//! `bootstrap.kubernetes.io/token`. Only the SHA-256 of the secret part is
//! stored; a join records the node in `used-by`, so a token works once.

use base64::Engine;
use drover_proto::{Object, Time};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

pub const NAMESPACE: &str = "kube-system";
pub const SECRET_TYPE: &str = "bootstrap.kubernetes.io/token";
const NAME_PREFIX: &str = "bootstrap-token-";
const ID_LEN: usize = 6;
const SECRET_LEN: usize = 16;

/// A token as its holder has it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenString {
    pub id: String,
    pub secret: String,
}

impl std::fmt::Debug for TokenString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenString")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

fn is_token_part(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl TokenString {
    /// Parses `ID.SECRET`; `None` unless both parts have kubeadm's shape.
    pub fn parse(s: &str) -> Option<TokenString> {
        let (id, secret) = s.trim().split_once('.')?;
        (is_token_part(id, ID_LEN) && is_token_part(secret, SECRET_LEN)).then(|| TokenString {
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    /// A new random token, each character uniform over `[a-z0-9]`.
    pub fn generate() -> TokenString {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        // Bytes from 252 up would favour a..d (256 = 7 × 36 + 4): dropped.
        const UNBIASED: usize = ALPHABET.len() * (256 / ALPHABET.len());
        use aes_gcm::aead::{KeyInit, OsRng};
        let mut chars = String::with_capacity(ID_LEN + SECRET_LEN);
        while chars.len() < ID_LEN + SECRET_LEN {
            // 32 bytes from the OS's generator (an AES key is just that).
            for b in aes_gcm::Aes256Gcm::generate_key(OsRng) {
                if (b as usize) < UNBIASED && chars.len() < ID_LEN + SECRET_LEN {
                    chars.push(ALPHABET[b as usize % ALPHABET.len()] as char);
                }
            }
        }
        let (id, secret) = chars.split_at(ID_LEN);
        TokenString {
            id: id.to_string(),
            secret: secret.to_string(),
        }
    }

    pub fn to_token(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }
}

pub fn secret_name(id: &str) -> String {
    format!("{NAME_PREFIX}{id}")
}

fn hash(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What the stored Secret says about a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    pub id: String,
    pub secret_sha256: String,
    pub expiration: Option<Time>,
    pub description: String,
    /// The node that joined with it, once used.
    pub used_by: Option<String>,
}

/// Why a join with a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefused {
    #[error("malformed token: expected ID.SECRET ([a-z0-9]{{6}}.[a-z0-9]{{16}})")]
    Malformed,
    #[error("unknown token {0:?} (never created, or deleted)")]
    Unknown(String),
    #[error("token {0:?}: the secret part does not match")]
    WrongSecret(String),
    #[error("token {id:?} expired at {at}")]
    Expired { id: String, at: String },
    #[error("token {id:?} was already used by node {node:?}; a token works once")]
    Used { id: String, node: String },
}

impl BootstrapToken {
    pub fn new(token: &TokenString, expiration: Option<Time>, description: &str) -> BootstrapToken {
        BootstrapToken {
            id: token.id.clone(),
            secret_sha256: hash(&token.secret),
            expiration,
            description: description.to_string(),
            used_by: None,
        }
    }

    /// The Secret that stores it (values base64, as `data` is).
    pub fn to_object(&self) -> Object {
        let mut data = Map::new();
        let mut put = |k: &str, v: &str| {
            let b64 = base64::engine::general_purpose::STANDARD.encode(v);
            data.insert(k.to_string(), Value::String(b64));
        };
        put("token-id", &self.id);
        put("token-secret-sha256", &self.secret_sha256);
        if let Some(at) = self.expiration {
            put("expiration", &at.to_rfc3339());
        }
        if !self.description.is_empty() {
            put("description", &self.description);
        }
        if let Some(node) = &self.used_by {
            put("used-by", node);
        }
        let value = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": secret_name(&self.id), "namespace": NAMESPACE},
            "type": SECRET_TYPE,
            "data": data,
        });
        serde_json::from_value(value).unwrap_or_default()
    }

    /// Reads a token's Secret; `None` if it is not one.
    pub fn from_object(object: &Object) -> Option<BootstrapToken> {
        if object.body.get("type")?.as_str()? != SECRET_TYPE {
            return None;
        }
        let data = object.body.get("data")?.as_object()?;
        let field = |k: &str| -> Option<String> {
            let b64 = data.get(k)?.as_str()?;
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
            String::from_utf8(bytes).ok()
        };
        Some(BootstrapToken {
            id: field("token-id")?,
            secret_sha256: field("token-secret-sha256")?,
            expiration: field("expiration")
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&chrono::Utc)),
            description: field("description").unwrap_or_default(),
            used_by: field("used-by"),
        })
    }

    /// May `token` join at `now`? The secret is checked first, so a
    /// guesser learns nothing about a token's state.
    pub fn check(&self, token: &TokenString, now: Time) -> Result<(), TokenRefused> {
        if !constant_time_eq(
            hash(&token.secret).as_bytes(),
            self.secret_sha256.as_bytes(),
        ) {
            return Err(TokenRefused::WrongSecret(token.id.clone()));
        }
        if let Some(at) = self.expiration
            && now >= at
        {
            return Err(TokenRefused::Expired {
                id: self.id.clone(),
                at: at.to_rfc3339(),
            });
        }
        if let Some(node) = &self.used_by {
            return Err(TokenRefused::Used {
                id: self.id.clone(),
                node: node.clone(),
            });
        }
        Ok(())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_character_is_equally_likely() {
        let mut counts = std::collections::HashMap::<char, usize>::new();
        for _ in 0..20_000 {
            for c in TokenString::generate()
                .to_token()
                .chars()
                .filter(|&c| c != '.')
            {
                *counts.entry(c).or_default() += 1;
            }
        }
        assert_eq!(counts.len(), 36);
        // 440,000 draws: ~12,222 each, σ ≈ 110. Modulo bias gave a..d +14%.
        let expected = 20_000.0 * (ID_LEN + SECRET_LEN) as f64 / 36.0;
        for (c, n) in counts {
            let off = (n as f64 - expected).abs() / expected;
            assert!(off < 0.05, "{c:?} drawn {n} times, expected ~{expected:.0}");
        }
    }

    #[test]
    fn generated_tokens_have_kubeadms_shape_and_differ() {
        let a = TokenString::generate();
        assert_eq!(TokenString::parse(&a.to_token()), Some(a.clone()));
        assert_ne!(a, TokenString::generate());
        for bad in [
            "abcdef",
            "abcdef.0123",
            "ABCDEF.0123456789abcdef",
            "abcdef.0123456789abcdeg!",
        ] {
            assert_eq!(TokenString::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_stored_secret_round_trips_without_the_token_secret() {
        let token = TokenString::parse("abcdef.0123456789abcdef").unwrap();
        let now = chrono::Utc::now();
        let stored = BootstrapToken::new(&token, Some(now), "rack 4");
        let object = stored.to_object();
        assert_eq!(object.metadata.name, "bootstrap-token-abcdef");
        assert!(
            !String::from_utf8(object.to_json())
                .unwrap()
                .contains("0123456789abcdef")
        );
        let back = BootstrapToken::from_object(&object).unwrap();
        assert_eq!(back.secret_sha256, stored.secret_sha256);
        assert_eq!(back.description, "rack 4");
    }

    #[test]
    fn a_token_is_refused_when_wrong_expired_or_used() {
        let token = TokenString::parse("abcdef.0123456789abcdef").unwrap();
        let now = chrono::Utc::now();
        let hour = chrono::Duration::hours(1);
        let mut stored = BootstrapToken::new(&token, Some(now + hour), "");
        assert_eq!(stored.check(&token, now), Ok(()));
        let wrong = TokenString::parse("abcdef.0123456789abcdee").unwrap();
        assert!(matches!(
            stored.check(&wrong, now),
            Err(TokenRefused::WrongSecret(_))
        ));
        assert!(matches!(
            stored.check(&token, now + hour),
            Err(TokenRefused::Expired { .. })
        ));
        stored.used_by = Some("n1".into());
        let e = stored.check(&token, now).unwrap_err();
        assert!(e.to_string().contains("already used by node \"n1\""), "{e}");
    }
}
