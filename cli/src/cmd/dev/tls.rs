//! `drover dev` secures itself: a CA and certificates in its data dir
//! (made once, reused after), TLS on the API, and a client config entry so
//! `drover get ...` works with no flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use drover_control_plane::Security;
use drover_control_plane::auth::{Auth, Authorizer, TlsFiles, TokenBook};
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
            if !pki.dir.join(format!("{stem}.crt")).exists() {
                issue_into(&pki.dir, &request, &pki.dir)?;
            }
        }
        Ok(pki)
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
        }
        .load()?;
        Ok(Security {
            tls,
            auth: Auth {
                tokens: TokenBook::default(),
                authorizer: Authorizer::new(vec![]),
            },
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
