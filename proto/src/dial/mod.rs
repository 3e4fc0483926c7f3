//! Raw connections for the HTTP/1.1 streams gRPC does not carry (`logs`,
//! `exec`): plain TCP, or TLS trusting only the cluster CA and presenting
//! a client certificate when there is one. The CLI dials the API server
//! this way; the API server dials agents.

mod unverified;

use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};
use tokio::net::TcpStream;

use crate::client::Credentials;

/// Connecting and the TLS handshake must finish within this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A response head larger than this is refused.
const MAX_HEAD: usize = 16 << 10;

/// A byte stream, TCP or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An open connection.
pub type Conn = Box<dyn Io>;

/// Why a connection could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("TLS settings: {0}")]
    Settings(String),
    #[error("{0:?} is not a valid server name for TLS")]
    ServerName(String),
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("TLS with {addr} failed: {source}")]
    Handshake {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr} did not answer within {CONNECT_TIMEOUT:?}")]
    Timeout { addr: String },
}

/// Opens connections: plain, or TLS with one set of credentials.
#[derive(Clone, Default)]
pub struct Dialer {
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Dialer {
    /// Plain TCP.
    pub fn plain() -> Dialer {
        Dialer::default()
    }

    /// TLS trusting `credentials.ca_pem` alone, with its client certificate
    /// if it has one. HTTP/1.1 only: the streams are upgraded connections.
    pub fn tls(credentials: &Credentials) -> Result<Dialer, DialError> {
        let settings = DialError::Settings;
        let ca = credentials
            .ca_pem
            .as_deref()
            .ok_or_else(|| settings("no certificate authority to verify the server with".into()))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca) {
            let cert = cert.map_err(|e| settings(format!("the CA is not PEM: {e}")))?;
            roots
                .add(cert)
                .map_err(|e| settings(format!("the CA is not usable: {e}")))?;
        }
        if roots.is_empty() {
            return Err(settings("the CA file holds no PEM certificate".into()));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| settings(e.to_string()))?
            .with_root_certificates(roots);
        let mut config = match &credentials.cert_pem {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = CertificateDer::pem_slice_iter(cert)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| settings(format!("the client certificate is not PEM: {e}")))?;
                let key = PrivateKeyDer::from_pem_slice(key)
                    .map_err(|e| settings(format!("the client key is not PEM: {e}")))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| settings(format!("the client certificate and key: {e}")))?
            }
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Dialer {
            tls: Some(Arc::new(config)),
        })
    }

    /// True when connections are TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Connects to `addr` (`host:port`); with TLS the server's certificate
    /// must name `server_name`.
    pub async fn connect(&self, addr: &str, server_name: &str) -> Result<Conn, DialError> {
        let timeout = || DialError::Timeout {
            addr: addr.to_string(),
        };
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| timeout())?
            .map_err(|source| DialError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        let _ = tcp.set_nodelay(true);
        let Some(config) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|_| DialError::ServerName(server_name.to_string()))?;
        let connector = tokio_rustls::TlsConnector::from(config.clone());
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
            .await
            .map_err(|_| timeout())?
            .map_err(|source| DialError::Handshake {
                addr: addr.to_string(),
                source,
            })?;
        Ok(Box::new(tls))
    }
}

/// The status line and headers of an HTTP/1.1 response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// The status line, for messages.
    pub status_line: String,
    pub content_length: Option<u64>,
}

/// Reads a response head off `reader`, leaving the body to be read.
pub async fn read_head<R: AsyncRead + Unpin>(reader: &mut BufReader<R>) -> std::io::Result<Head> {
    let malformed = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut status_line = String::new();
    let mut read = reader.read_line(&mut status_line).await?;
    let mut content_length = None;
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).await?;
        read += n;
        if n == 0 || line == "\r\n" || line == "\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            content_length = value.trim().parse().ok();
        }
        if read > MAX_HEAD {
            return Err(malformed("the response head is too large"));
        }
    }
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| malformed("not an HTTP response"))?;
    Ok(Head {
        status,
        status_line: status_line.trim_end().to_string(),
        content_length,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn heads_are_read_and_the_body_left() {
        use tokio::io::AsyncReadExt;
        let raw = &b"HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope"[..];
        let mut r = BufReader::new(raw);
        let head = read_head(&mut r).await.expect("head");
        assert_eq!(head.status, 403);
        assert_eq!(head.status_line, "HTTP/1.1 403 Forbidden");
        assert_eq!(head.content_length, Some(4));
        let mut body = String::new();
        r.read_to_string(&mut body).await.expect("body");
        assert_eq!(body, "nope");
        let mut bad = BufReader::new(&b"garbage\r\n\r\n"[..]);
        assert!(read_head(&mut bad).await.is_err());
    }

    #[test]
    fn tls_needs_a_ca() {
        let err = Dialer::tls(&Credentials::default()).expect_err("no CA");
        assert!(
            err.to_string().contains("no certificate authority"),
            "{err}"
        );
        let bad = Credentials {
            ca_pem: Some(b"not pem".to_vec()),
            ..Credentials::default()
        };
        let err = Dialer::tls(&bad).expect_err("no certificate in the CA");
        assert!(
            err.to_string().contains("holds no PEM certificate"),
            "{err}"
        );
    }
}
