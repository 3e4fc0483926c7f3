//! A TLS listener for `axum::serve`: handshakes run on their own tasks (a
//! slow client never holds up others) and each connection carries the
//! identity its client certificate proves, if it offered one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use drover_proto::identity::Identity;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
        let local = listener.local_addr()?;
        let ready = spawn_acceptor(listener, config, |tls, addr| {
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
    tokio_stream::wrappers::ReceiverStream::new(spawn_acceptor(listener, config, |tls, _| Ok(tls)))
}

/// Accepts TCP on a task and runs each handshake on its own; what `made`
/// makes of each finished connection comes out of the channel.
fn spawn_acceptor<T: Send + 'static>(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    made: fn(TlsStream<TcpStream>, SocketAddr) -> T,
) -> mpsc::Receiver<T> {
    let (tx, ready) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            // Stops (and frees the port) once the server drops its end.
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
