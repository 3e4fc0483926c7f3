//! The server's TLS material (`--ca`, `--cert`, `--key`) and the rustls
//! configurations made from it: the API asks clients for a certificate
//! (optional, so bearer tokens work too); the Raft transport requires one.
//! With `--crl-file`, both refuse certificates the CA has revoked.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

use super::revocation::{CrlError, Revocation, RevokingVerifier};

/// Paths of the CA that signs every cluster certificate, and of this
/// server's own certificate and key.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Revoked certificates (`--crl-file`), signed by the CA.
    pub crl: Option<PathBuf>,
}

/// The files, read.
#[derive(Clone)]
pub struct TlsMaterial {
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    roots: Arc<RootCertStore>,
    chain: Vec<CertificateDer<'static>>,
    revocation: Option<Arc<Revocation>>,
}

/// Why the TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("TLS settings: {0}")]
    Config(String),
    #[error(transparent)]
    Crl(#[from] CrlError),
}

impl TlsFiles {
    pub fn load(&self) -> Result<TlsMaterial, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_path_buf(),
                source,
            })
        };
        let pem_error = |path: &Path, message: String| TlsError::Pem {
            path: path.to_path_buf(),
            message,
        };
        let (ca_pem, cert_pem, key_pem) = (read(&self.ca)?, read(&self.cert)?, read(&self.key)?);
        let certs = |path: &Path, pem: &[u8]| -> Result<Vec<CertificateDer<'static>>, TlsError> {
            let certs = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| pem_error(path, format!("not a PEM certificate: {e}")))?;
            if certs.is_empty() {
                return Err(pem_error(path, "holds no certificate".into()));
            }
            Ok(certs)
        };
        let mut roots = RootCertStore::empty();
        let cas = certs(&self.ca, &ca_pem)?;
        let revocation = match &self.crl {
            Some(path) => Some(Revocation::load(path, &cas[0])?),
            None => None,
        };
        for ca in cas {
            roots
                .add(ca)
                .map_err(|e| pem_error(&self.ca, format!("not a usable CA certificate: {e}")))?;
        }
        let chain = certs(&self.cert, &cert_pem)?;
        PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| pem_error(&self.key, format!("not a PEM private key: {e}")))?;
        Ok(TlsMaterial {
            ca_pem,
            cert_pem,
            key_pem,
            roots: Arc::new(roots),
            chain,
            revocation,
        })
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsMaterial {
    /// The API's server config: HTTP/2 (gRPC) and HTTP/1.1; a client
    /// certificate is verified against the CA when one is offered.
    pub fn api_server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        self.server_config(false, &[b"h2", b"http/1.1"])
    }

    /// Mutual TLS for the Raft transport, server side: a client
    /// certificate from this CA is required.
    pub fn peer_server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        self.server_config(true, &[b"h2"])
    }

    fn server_config(
        &self,
        mandatory: bool,
        alpn: &[&[u8]],
    ) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let key = PrivateKeyDer::from_pem_slice(&self.key_pem)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let config_error =
            |e: rustls::server::VerifierBuilderError| TlsError::Config(e.to_string());
        let verifier: Arc<dyn ClientCertVerifier> = match &self.revocation {
            Some(revocation) => {
                RevokingVerifier::new(self.roots.clone(), mandatory, revocation.clone())
                    .map_err(config_error)?
            }
            None => {
                let builder =
                    WebPkiClientVerifier::builder_with_provider(self.roots.clone(), provider());
                let builder = if mandatory {
                    builder
                } else {
                    builder.allow_unauthenticated()
                };
                builder.build().map_err(config_error)?
            }
        };
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), key)
            .map_err(|e| TlsError::Config(format!("the certificate and key do not match: {e}")))?;
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }

    /// The revocation list in force (`--crl-file`), if any.
    pub fn revocation(&self) -> Option<&Arc<Revocation>> {
        self.revocation.as_ref()
    }

    /// Mutual TLS for the Raft transport, client side.
    pub fn peer_client_tls(&self) -> tonic::transport::ClientTlsConfig {
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(&self.ca_pem))
            .identity(self.identity())
    }

    fn identity(&self) -> tonic::transport::Identity {
        tonic::transport::Identity::from_pem(&self.cert_pem, &self.key_pem)
    }

    /// Who this server's own certificate says it is.
    pub fn own_identity(&self) -> Result<drover_proto::identity::Identity, TlsError> {
        let der = self
            .chain
            .first()
            .ok_or_else(|| TlsError::Config("no certificate".into()))?;
        drover_proto::identity::Identity::from_certificate_der(der)
            .map_err(|e| TlsError::Config(e.to_string()))
    }
}
