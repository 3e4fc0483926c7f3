//! A TLS listener for `axum::serve`: handshakes run on their own tasks (a
//! slow client never holds up others), at most [`MAX_HANDSHAKES`] at once,
//! and each connection carries the identity its client certificate proves,
//! if it offered one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use drover_proto::identity::Identity;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in flight at once, per listener. Past it the listener stops
/// accepting until one ends, and new connections wait in the kernel's
/// backlog: a flood of connections that never say hello costs bounded
/// memory and tasks.
pub const MAX_HANDSHAKES: usize = 1024;

/// The far end of a TLS connection.
#[derive(Debug, Clone)]
pub struct TlsPeer {
    pub addr: SocketAddr,
    /// From the client certificate, verified against the cluster CA.
    pub identity: Option<Identity>,
    /// The client certificate's serial number, checked against the
    /// revocation list on each request (connections outlive revocations).
    pub serial: Option<Vec<u8>>,
}

impl Connected<IncomingStream<'_, TlsListener>> for TlsPeer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> TlsPeer {
        stream.remote_addr().clone()
    }
}

/// Accepts TCP and hands out finished TLS connections.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, TlsPeer)>,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> std::io::Result<Self> {
        TlsListener::with_limit(listener, config, MAX_HANDSHAKES)
    }

    /// [`TlsListener::new`] with at most `max_handshakes` in flight.
    pub fn with_limit(
        listener: TcpListener,
        config: Arc<rustls::ServerConfig>,
        max_handshakes: usize,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let ready = spawn_acceptor(listener, config, max_handshakes, |tls, addr| {
            let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
            let peer = TlsPeer {
                addr,
                identity: leaf.and_then(|der| Identity::from_certificate_der(der).ok()),
                serial: leaf.and_then(|der| super::revocation::certificate_serial(der)),
            };
            (tls, peer)
        });
        Ok(TlsListener { local, ready })
    }
}

/// Finished TLS connections of `listener`, for a tonic server
/// (`serve_with_incoming`): tonic reads the client certificates from them.
pub fn tls_incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
    let ready = spawn_acceptor(listener, config, MAX_HANDSHAKES, |tls, _| Ok(tls));
    tokio_stream::wrappers::ReceiverStream::new(ready)
}

/// Accepts TCP on a task and runs each handshake on its own, at most
/// `max_handshakes` at once; what `made` makes of each finished connection
/// comes out of the channel.
fn spawn_acceptor<T: Send + 'static>(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    max_handshakes: usize,
    made: fn(TlsStream<TcpStream>, SocketAddr) -> T,
) -> mpsc::Receiver<T> {
    let (tx, ready) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    let slots = Arc::new(Semaphore::new(max_handshakes.max(1)));
    tokio::spawn(async move {
        loop {
            // Stops (and frees the port) once the server drops its end.
            let slot = tokio::select! {
                s = slots.clone().acquire_owned() => s,
                _ = tx.closed() => return,
            };
            let Ok(slot) = slot else { return };
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = tx.closed() => return,
            };
            let (tcp, addr) = match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%addr, error = %e, "TLS handshake refused");
                        metrics::counter!("drover_tls_handshake_failures_total").increment(1);
                        return;
                    }
                    Err(_) => return,
                };
                drop(slot);
                let _ = tx.send(made(tls, addr)).await;
            });
        }
    });
    ready
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = TlsPeer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept task only ends with the process's runtime.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<TlsPeer> {
        Ok(TlsPeer {
            addr: self.local,
            identity: None,
            serial: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

    fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let der = CertificateDer::from(cert.cert.der().to_vec());
        let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![der.clone()], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    async fn handshake(addr: SocketAddr, client: Arc<rustls::ClientConfig>) -> std::io::Result<()> {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").unwrap();
        tokio_rustls::TlsConnector::from(client)
            .connect(name, tcp)
            .await
            .map(drop)
    }

    #[tokio::test]
    async fn connections_that_never_say_hello_hold_back_new_handshakes_only_up_to_the_limit() {
        let (server, client) = configs();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut listener = TlsListener::with_limit(tcp, server, 1).unwrap();
        let addr = listener.local;
        tokio::spawn(async move {
            loop {
                let _ = listener.accept().await;
            }
        });
        handshake(addr, client.clone()).await.expect("a free slot");

        // One silent connection takes the only slot: the next client waits.
        let silent = TcpStream::connect(addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let held =
            tokio::time::timeout(Duration::from_millis(500), handshake(addr, client.clone()));
        assert!(held.await.is_err(), "a handshake got past the limit");

        // It leaves: the slot is free again.
        drop(silent);
        let again = tokio::time::timeout(Duration::from_secs(5), handshake(addr, client));
        again.await.expect("the slot came back").expect("handshake");
    }
}
