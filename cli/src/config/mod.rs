//! The client config file (`~/.drover/config`, `--config`, `DROVER_CONFIG`),
//! shaped like a kubeconfig: clusters (server URL, CA), users (client
//! certificate and key, or a token) and contexts pairing them.

use std::path::{Path, PathBuf};

use drover_proto::client::Credentials;
use serde::{Deserialize, Serialize};

/// The server a client talks to when nothing says otherwise.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7700";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct ClientConfig {
    #[serde(default)]
    pub current_context: String,
    #[serde(default)]
    pub clusters: Vec<NamedCluster>,
    #[serde(default)]
    pub users: Vec<NamedUser>,
    #[serde(default)]
    pub contexts: Vec<NamedContext>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NamedCluster {
    pub name: String,
    pub cluster: ClusterEntry,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NamedUser {
    pub name: String,
    pub user: UserEntry,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NamedContext {
    pub name: String,
    pub context: ContextEntry,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct ClusterEntry {
    pub server: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct UserEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ContextEntry {
    pub cluster: String,
    #[serde(default)]
    pub user: String,
}

/// Why the client config cannot be used; names the file and the entry.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the client config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("cannot write the client config {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where the server is and how to talk to it.
#[derive(Debug, Clone)]
pub struct Target {
    pub server: String,
    pub credentials: Credentials,
}

/// The config file to use: `--config`, else `DROVER_CONFIG` (clap reads
/// both into `explicit`), else `~/.drover/config` when it exists.
pub fn config_path(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let home = std::env::var_os("HOME")?;
    let default = Path::new(&home).join(".drover").join("config");
    default.exists().then_some(default)
}

impl ClientConfig {
    pub fn load(path: &Path) -> Result<ClientConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_saphyr::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Writes the file (owner-only: it may hold a token).
    pub fn save(&self, path: &Path) -> Result<(), ConfigError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let fail = |source| ConfigError::Write {
            path: path.to_path_buf(),
            source,
        };
        let text = serde_saphyr::to_string(self).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(fail)?;
        file.write_all(text.as_bytes()).map_err(fail)
    }

    /// Resolves `context` (default: `current-context`) into a server and
    /// credentials, reading the files it names. `path` is for messages.
    pub fn target(&self, context: Option<&str>, path: &Path) -> Result<Target, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let name = context.unwrap_or(&self.current_context);
        if name.is_empty() {
            // A file without a current context configures nothing.
            return Ok(Target {
                server: DEFAULT_SERVER.to_string(),
                credentials: Credentials::default(),
            });
        }
        let ctx = self
            .contexts
            .iter()
            .find(|c| c.name == name)
            .map(|c| &c.context)
            .ok_or_else(|| invalid(format!("contexts: no context named {name:?}")))?;
        let cluster = self
            .clusters
            .iter()
            .find(|c| c.name == ctx.cluster)
            .map(|c| &c.cluster)
            .ok_or_else(|| {
                invalid(format!(
                    "contexts[{name}].cluster: no cluster named {:?}",
                    ctx.cluster
                ))
            })?;
        let user = match ctx.user.as_str() {
            "" => UserEntry::default(),
            u => self
                .users
                .iter()
                .find(|x| x.name == u)
                .map(|x| x.user.clone())
                .ok_or_else(|| invalid(format!("contexts[{name}].user: no user named {u:?}")))?,
        };
        let read = |p: &PathBuf| {
            std::fs::read(p).map_err(|source| ConfigError::Read {
                path: p.clone(),
                source,
            })
        };
        let cert_pem = match (&user.client_certificate, &user.client_key) {
            (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
            (None, None) => None,
            _ => {
                return Err(invalid(format!(
                    "users[{}]: client-certificate and client-key go together",
                    ctx.user
                )));
            }
        };
        Ok(Target {
            server: cluster.server.clone(),
            credentials: Credentials {
                ca_pem: cluster
                    .certificate_authority
                    .as_ref()
                    .map(read)
                    .transpose()?,
                cert_pem,
                token: user.token.clone(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kubeconfig_shaped_file_resolves_to_a_target() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.crt");
        std::fs::write(&ca, "CA").unwrap();
        let text = format!(
            "current-context: dev\nclusters:\n- name: dev\n  cluster:\n    server: https://127.0.0.1:1\n    certificate-authority: {}\nusers:\n- name: alice\n  user:\n    token: secret\ncontexts:\n- name: dev\n  context: {{cluster: dev, user: alice}}\n- name: broken\n  context: {{cluster: nope}}\n",
            ca.display()
        );
        let path = dir.path().join("config");
        std::fs::write(&path, text).unwrap();
        let config = ClientConfig::load(&path).unwrap();
        let t = config.target(None, &path).unwrap();
        assert_eq!(t.server, "https://127.0.0.1:1");
        assert_eq!(t.credentials.ca_pem.as_deref(), Some(&b"CA"[..]));
        assert_eq!(t.credentials.token.as_deref(), Some("secret"));
        let e = config.target(Some("broken"), &path).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("contexts[broken].cluster: no cluster named \"nope\""),
            "{e}"
        );
        let e = config.target(Some("gone"), &path).unwrap_err();
        assert!(e.to_string().contains("no context named \"gone\""), "{e}");
        // What `save` writes, `load` reads back.
        let copy = dir.path().join("copy");
        config.save(&copy).unwrap();
        assert_eq!(ClientConfig::load(&copy).unwrap(), config);
    }
}
