//! The lab's cluster CA: every lab cluster runs with TLS on, as users run
//! it. Certificates come from the real `drover cert`; the harness reaches
//! the API as `admin` (group `system:masters`), by the CLI and by its own
//! HTTPS client.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::{drover_bin, run};

/// A CA in a folder of the lab's, and the certificates issued from it
/// (`NAME.crt`/`NAME.key`, named as `drover cert issue` names them).
#[derive(Clone)]
pub struct LabPki {
    dir: PathBuf,
    /// The admin's HTTPS client settings, built once.
    tls: Arc<rustls::ClientConfig>,
}

impl LabPki {
    /// The CA in `dir`, made (with the `admin` user) when `dir` has none.
    pub fn at(dir: &Path) -> LabPki {
        if !dir.join("ca.crt").exists() {
            cert(&["init", "--dir", &dir.display().to_string()]);
            issue_into(
                dir,
                &["--kind", "user", "--name", "admin"],
                &["--groups", "system:masters"],
            );
        }
        let tls = Arc::new(client_config(dir));
        LabPki {
            dir: dir.to_path_buf(),
            tls,
        }
    }

    /// `drover cert issue --kind KIND --name NAME --hosts HOSTS`.
    pub fn issue(&self, kind: &str, name: &str, hosts: &[&str]) {
        let hosts = hosts.join(",");
        let extra: &[&str] = if hosts.is_empty() {
            &[]
        } else {
            &["--hosts", &hosts]
        };
        issue_into(&self.dir, &["--kind", kind, "--name", name], extra);
    }

    pub fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// `--ca/--cert/--key` of a server or member serving with `stem`'s
    /// certificate (`api`, `peer-1`).
    pub fn serving_flags(&self, stem: &str) -> Vec<String> {
        vec![
            "--ca".into(),
            self.file("ca.crt"),
            "--cert".into(),
            self.file(&format!("{stem}.crt")),
            "--key".into(),
            self.file(&format!("{stem}.key")),
        ]
    }

    /// The agent of `node` with a certificate of its own (issued here).
    pub fn agent_flags(&self, node: &str) -> Vec<String> {
        self.issue("agent", node, &[]);
        vec![
            "--certificate-authority".into(),
            self.file("ca.crt"),
            "--client-certificate".into(),
            self.file(&format!("node-{node}.crt")),
            "--client-key".into(),
            self.file(&format!("node-{node}.key")),
        ]
    }

    /// The API at `addr` (`IP:PORT`), reached as admin.
    pub fn api(&self, addr: &str) -> Api {
        Api {
            addr: addr.to_string(),
            pki: Some(self.clone()),
        }
    }
}

/// A member's or server's API as the harness reaches it: over HTTPS,
/// trusting the lab CA alone, as `admin`.
#[derive(Clone)]
pub struct Api {
    /// `IP:PORT`.
    pub addr: String,
    /// `None`: plain HTTP, no credentials (a lab server with `--insecure`).
    pki: Option<LabPki>,
}

impl Api {
    /// A server at `addr` without TLS.
    pub fn plain(addr: &str) -> Api {
        Api {
            addr: addr.to_string(),
            pki: None,
        }
    }

    pub fn url(&self) -> String {
        match self.pki {
            Some(_) => format!("https://{}", self.addr),
            None => format!("http://{}", self.addr),
        }
    }

    /// The `drover` CLI's flags to reach this API as admin.
    pub fn cli_args(&self) -> Vec<String> {
        let Some(pki) = &self.pki else {
            return vec!["--server".into(), self.url()];
        };
        vec![
            "--server".into(),
            self.url(),
            "--certificate-authority".into(),
            pki.file("ca.crt"),
            "--client-certificate".into(),
            pki.file("admin.crt"),
            "--client-key".into(),
            pki.file("admin.key"),
        ]
    }

    /// The admin's TLS settings; `None` for a plain server.
    pub(crate) fn tls(&self) -> Option<Arc<rustls::ClientConfig>> {
        self.pki.as_ref().map(|p| p.tls.clone())
    }

    /// The IP the server's certificate must name.
    pub(crate) fn ip(&self) -> Result<IpAddr, String> {
        let host = self.addr.rsplit_once(':').map_or(&*self.addr, |(h, _)| h);
        host.trim_matches(['[', ']'])
            .parse()
            .map_err(|e| format!("address {}: {e}", self.addr))
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.addr)
    }
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Api({})", self.addr)
    }
}

fn cert(args: &[&str]) {
    let out = run(
        &drover_bin().display().to_string(),
        &[&["cert"], args].concat(),
    );
    assert!(
        out.status.success(),
        "drover cert {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

fn issue_into(dir: &Path, what: &[&str], extra: &[&str]) {
    let dir = dir.display().to_string();
    cert(&[&["issue", "--dir", &dir], what, extra].concat());
}

/// Trusts the lab CA alone and presents the admin certificate.
fn client_config(dir: &Path) -> rustls::ClientConfig {
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(&read("ca.crt")) {
        roots.add(ca.expect("ca.crt is PEM")).expect("a usable CA");
    }
    let chain = CertificateDer::pem_slice_iter(&read("admin.crt"))
        .collect::<Result<Vec<_>, _>>()
        .expect("admin.crt is PEM");
    let key = PrivateKeyDer::from_pem_slice(&read("admin.key")).expect("admin.key is PEM");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("the admin certificate and key");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}
