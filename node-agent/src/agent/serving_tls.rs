//! TLS on the agent's port when the cluster runs with TLS: the agent
//! serves with its node certificate and admits only clients whose
//! certificate, from the cluster CA, puts them in `drover:control-plane`
//! (the API server), as a kubelet with `--client-ca-file` does. Users reach
//! logs and exec through the API server, which authorizes them first.

use std::sync::Arc;
use std::time::Duration;

use drover_proto::dial::Conn;
use drover_proto::identity::{CONTROL_PLANE_GROUP, Identity};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

/// A handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the agent cannot serve TLS with the files it was given.
#[derive(Debug, thiserror::Error)]
pub enum ServingTlsError {
    #[error("the cluster CA: {0}")]
    Ca(String),
    #[error("the node certificate: {0}")]
    Certificate(String),
    #[error("the node key: {0}")]
    Key(String),
}

/// Why a connection was not admitted.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("TLS handshake: {0}")]
    Handshake(std::io::Error),
    #[error("TLS handshake took longer than {HANDSHAKE_TIMEOUT:?}")]
    Timeout,
    #[error("{0:?} is not the control plane")]
    NotControlPlane(String),
}

/// The TLS side of the agent's port.
#[derive(Clone)]
pub struct ServingTls {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for ServingTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingTls").finish_non_exhaustive()
    }
}

/// Only the API server (and other control-plane members) may use the
/// agent's port (pure).
pub fn admits(who: &Identity) -> bool {
    who.groups.iter().any(|g| g == CONTROL_PLANE_GROUP)
}

impl ServingTls {
    /// From PEM: the cluster CA, the node's certificate and key.
    pub fn new(ca_pem: &[u8], cert_pem: &[u8], key_pem: &[u8]) -> Result<Self, ServingTlsError> {
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(ca_pem) {
            let ca = ca.map_err(|e| ServingTlsError::Ca(e.to_string()))?;
            roots
                .add(ca)
                .map_err(|e| ServingTlsError::Ca(e.to_string()))?;
        }
        let chain = CertificateDer::pem_slice_iter(cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ServingTlsError::Certificate(e.to_string()))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| ServingTlsError::Key(e.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| ServingTlsError::Ca(e.to_string()))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ServingTlsError::Certificate(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(|e| ServingTlsError::Certificate(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServingTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Finishes the handshake (a certificate from the CA is required) and
    /// admits the control plane only; anyone else gets a 403 and is closed.
    pub async fn accept(&self, tcp: TcpStream) -> Result<Conn, Refused> {
        let mut tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.acceptor.accept(tcp))
            .await
            .map_err(|_| Refused::Timeout)?
            .map_err(Refused::Handshake)?;
        let who = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|der| Identity::from_certificate_der(der).ok());
        match who {
            Some(who) if admits(&who) => Ok(Box::new(tls)),
            other => {
                let user = other.map(|w| w.user).unwrap_or_default();
                let body = format!(
                    "forbidden: user {user:?} is not the control plane; use the API server (drover logs, drover exec)\n"
                );
                let head = format!(
                    "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(body.as_bytes()).await;
                let _ = tls.shutdown().await;
                Err(Refused::NotControlPlane(user))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_control_plane_is_admitted() {
        let who = |user: &str, group: &str| Identity {
            user: user.into(),
            groups: vec![group.into()],
        };
        assert!(admits(&who("api", CONTROL_PLANE_GROUP)));
        assert!(!admits(&who("node:n2", "drover:nodes")));
        assert!(!admits(&who("admin", "system:masters")));
    }

    #[test]
    fn unreadable_files_are_named() {
        let err = ServingTls::new(b"", b"", b"").expect_err("no key");
        assert!(err.to_string().starts_with("the node key"), "{err}");
    }
}
