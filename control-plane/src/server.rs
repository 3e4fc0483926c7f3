//! `drover server`: opens the store and serves gRPC and the HTTP gateway on
//! one listener (tonic's routes inside the axum router; HTTP/1.1 and h2c
//! side by side).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use drover_proto::grpc::api_server::ApiServer;

use crate::api::{ApiCore, http, metrics};
use crate::store::{OpenError, Store};

/// Settings of one API server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    /// Changes kept for watches to resume from.
    pub history_limit: usize,
}

/// Why the server stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
}

/// Runs the server until `shutdown` resolves. `on_ready` receives the bound address.
pub async fn serve(
    config: ServerConfig,
    on_ready: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    metrics::install();
    let store = Store::open(&config.data_dir, config.history_limit)?;
    let core = ApiCore::new(store);
    let max = 1 << 30;
    let grpc = tonic::service::Routes::new(
        ApiServer::new(core.clone())
            .max_decoding_message_size(max)
            .max_encoding_message_size(max),
    )
    .into_axum_router();
    let app = grpc.merge(http::router(core));
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(ServeError::Serve)?;
    tracing::info!(%addr, data_dir = %config.data_dir.display(), "drover API serving gRPC and HTTP");
    on_ready(addr);
    // Without TCP_NODELAY, small HTTP/2 frames wait on delayed ACKs (~40 ms per request).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServeError::Serve)
}
