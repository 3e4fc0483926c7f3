//! `drover dev` secures itself: a CA and certificates in its data dir
//! (made once, reused after), TLS on the API, and a client config entry so
//! `drover get ...` works with no flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use drover_control_plane::Security;
use drover_control_plane::auth::{Auth, Authorizer, TlsFiles, TokenBook, Tokens};
use drover_control_plane::encryption::{KeyConfig, SecretEncryption};
use drover_proto::client::Credentials;
use drover_proto::identity::MASTERS_GROUP;
use time::OffsetDateTime;

use crate::cmd::cert::{init_ca, issue_into};
use crate::config::{
    ClientConfig, ClusterEntry, ContextEntry, NamedCluster, NamedContext, NamedUser, UserEntry,
};
use crate::pki::{CertKind, CertRequest};

/// Name of the cluster, user and context `drover dev` writes.
const CONTEXT: &str = "drover-dev";
/// The admin's token (for the dashboard), in the static token format.
const TOKENS: &str = "tokens.csv";
/// The key file Secrets are encrypted with (`--encryption-key-file`'s format).
const ENCRYPTION_KEYS: &str = "encryption.yaml";

/// 128 random bits, hex.
fn random_token() -> Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom for the dashboard token")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes a file only its owner can read.
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The local node's name.
pub const NODE_NAME: &str = "dev";

/// The dev cluster's certificates.
pub struct DevPki {
    dir: PathBuf,
}

impl DevPki {
    /// Makes the CA and certificates under `data_dir/pki` unless they exist.
    pub fn ensure(data_dir: &Path, listen: SocketAddr) -> Result<DevPki> {
        let dir = data_dir.join("pki");
        let pki = DevPki { dir };
        if !pki.dir.join("ca.crt").exists() {
            init_ca(&pki.dir, 3650)?;
        }
        let year = Duration::from_secs(365 * 86_400);
        let wanted = [
            (CertKind::Server, "server", vec![]),
            (CertKind::User, "admin", vec![MASTERS_GROUP.to_string()]),
            (CertKind::Agent, NODE_NAME, vec![]),
        ];
        for (kind, name, groups) in wanted {
            let request = CertRequest {
                kind,
                name: name.to_string(),
                hosts: vec![listen.ip().to_string()],
                groups,
                not_before: OffsetDateTime::now_utc(),
                validity: year,
            };
            let stem = crate::pki::file_stem(&crate::pki::subject(&request)?.0);
            // The node's certificate is made anew each start: one from an
            // older drover could not serve the agent's port.
            if kind == CertKind::Agent || !pki.dir.join(format!("{stem}.crt")).exists() {
                issue_into(&pki.dir, &request, &pki.dir)?;
            }
        }
        let tokens = pki.path(TOKENS);
        if !tokens.exists() {
            let line = format!("{},admin,admin,\"{MASTERS_GROUP}\"\n", random_token()?);
            write_private(&tokens, &line)?;
        }
        let keys = pki.path(ENCRYPTION_KEYS);
        if !keys.exists() {
            write_private(
                &keys,
                &drover_control_plane::encryption::key_file::generate("dev1"),
            )?;
        }
        Ok(pki)
    }

    /// Secrets are encrypted at rest with the key made on first start.
    pub fn encryption(&self) -> Result<SecretEncryption> {
        Ok(SecretEncryption::new(Some(KeyConfig::load(
            &self.path(ENCRYPTION_KEYS),
        )?)))
    }

    /// The admin's dashboard login: the browser keeps the token in a cookie.
    pub fn dashboard_login(&self, url: &str) -> Result<String> {
        let text = std::fs::read_to_string(self.path(TOKENS))
            .with_context(|| format!("cannot read {}", self.path(TOKENS).display()))?;
        let token = text.split(',').next().unwrap_or_default();
        Ok(format!("{url}/ui/login?token={token}"))
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// TLS with the dev CA; the admin is `system:masters`, no other bindings.
    pub fn security(&self) -> Result<Security> {
        let tls = TlsFiles {
            ca: self.path("ca.crt"),
            cert: self.path("server.crt"),
            key: self.path("server.key"),
            crl: None,
        }
        .load()?;
        let tokens_path = self.path(TOKENS);
        let text = std::fs::read_to_string(&tokens_path)
            .with_context(|| format!("cannot read {}", tokens_path.display()))?;
        Ok(Security {
            tls,
            auth: Auth {
                tokens: Tokens::fixed(TokenBook::parse(&text, &tokens_path.display().to_string())?),
                authorizer: Authorizer::new(vec![]),
                revocation: None,
            },
            signer: None,
        })
    }

    fn credentials(&self, stem: &str) -> Result<Credentials> {
        let read =
            |p: PathBuf| std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()));
        Ok(Credentials {
            ca_pem: Some(read(self.path("ca.crt"))?),
            cert_pem: Some((
                read(self.path(&format!("{stem}.crt")))?,
                read(self.path(&format!("{stem}.key")))?,
            )),
            token: None,
        })
    }

    /// The admin's credentials (what the CLI uses).
    pub fn admin(&self) -> Result<Credentials> {
        self.credentials("admin")
    }

    /// The local node agent's credentials (`node:dev`).
    pub fn node(&self) -> Result<Credentials> {
        self.credentials(&format!("node-{NODE_NAME}"))
    }

    /// Adds (or replaces) the `drover-dev` cluster, user and context in the
    /// client config at `path` and makes it current; other entries stay.
    pub fn write_client_config(&self, path: &Path, server: &str) -> Result<()> {
        let mut config = match path.exists() {
            true => ClientConfig::load(path)?,
            false => ClientConfig::default(),
        };
        let absolute =
            |file: &str| std::path::absolute(self.path(file)).unwrap_or_else(|_| self.path(file));
        config.clusters.retain(|c| c.name != CONTEXT);
        config.clusters.push(NamedCluster {
            name: CONTEXT.into(),
            cluster: ClusterEntry {
                server: server.to_string(),
                certificate_authority: Some(absolute("ca.crt")),
            },
        });
        config.users.retain(|u| u.name != CONTEXT);
        config.users.push(NamedUser {
            name: CONTEXT.into(),
            user: UserEntry {
                client_certificate: Some(absolute("admin.crt")),
                client_key: Some(absolute("admin.key")),
                token: None,
            },
        });
        config.contexts.retain(|c| c.name != CONTEXT);
        config.contexts.push(NamedContext {
            name: CONTEXT.into(),
            context: ContextEntry {
                cluster: CONTEXT.into(),
                user: CONTEXT.into(),
            },
        });
        config.current_context = CONTEXT.into();
        config.save(path)?;
        Ok(())
    }
}

/// Where `drover dev` writes the client config: `--config`/`DROVER_CONFIG`,
/// else `~/.drover/config`.
pub fn client_config_path(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let home = std::env::var_os("HOME")?;
    Some(Path::new(&home).join(".drover").join("config"))
}
