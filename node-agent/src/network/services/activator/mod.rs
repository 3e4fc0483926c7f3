//! Scale from zero, as Knative's activator does it: while a Service port
//! has no ready endpoint, this node's rules DNAT its TCP connections to one
//! local listener. The activator recovers each connection's original
//! destination, holds it (counted as a pending request, which the
//! autoscaler reads to scale the target from zero), and once the rules
//! show a ready endpoint splices it there; past the timeout it closes it.
//! With endpoints ready the rules DNAT straight to them again, so the
//! activator is off the data path.

pub mod holds;
pub mod original_dst;
pub mod route;

use std::net::SocketAddrV4;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

pub use holds::{HoldCount, Holds, Outcome};
use route::Rules;

use super::{Backend, ServicePortRule};

/// `--activator-timeout`'s default: how long a connection is held.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Between connection attempts to an endpoint that is Ready but refused.
const CONNECT_RETRY: Duration = Duration::from_millis(100);

/// The activator's handle: feeds it the applied rules, reads its counts.
#[derive(Debug, Clone)]
pub struct Activator {
    rules: Arc<watch::Sender<Rules>>,
    holds: Holds,
    addr: SocketAddrV4,
}

impl Activator {
    /// Listens on `addr` (port 0: any) and serves held connections until
    /// the runtime stops (call within it); each is held at most `timeout`.
    pub fn start(addr: SocketAddrV4, timeout: Duration) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let addr = match listener.local_addr()? {
            std::net::SocketAddr::V4(a) => a,
            std::net::SocketAddr::V6(_) => addr,
        };
        let (tx, rx) = watch::channel(Rules::default());
        let holds = Holds::default();
        tokio::spawn(serve(listener, rx, holds.clone(), timeout));
        Ok(Activator {
            rules: Arc::new(tx),
            holds,
            addr,
        })
    }

    /// Where the rules send connections to hold.
    pub fn addr(&self) -> SocketAddrV4 {
        self.addr
    }

    /// The rules just applied: releases connections whose service port
    /// now has a ready endpoint.
    pub fn set_rules(&self, rules: &[ServicePortRule]) {
        self.rules.send_replace(Arc::new(rules.to_vec()));
    }

    /// Held, forwarded and expired connections by service port.
    pub fn counts(&self) -> std::collections::BTreeMap<String, HoldCount> {
        self.holds.snapshot()
    }

    /// Forwarded connections by endpoint counter name (see
    /// [`Holds::endpoint_counters`]).
    pub fn endpoint_counters(&self) -> std::collections::BTreeMap<String, u64> {
        self.holds.endpoint_counters()
    }
}

async fn serve(
    listener: TcpListener,
    rules: watch::Receiver<Rules>,
    holds: Holds,
    timeout: Duration,
) {
    let seq = Arc::new(AtomicUsize::new(0));
    loop {
        let conn = match listener.accept().await {
            Ok((conn, _)) => conn,
            Err(e) => {
                // Out of file descriptors and the like: the clients retry.
                tracing::warn!("activator: accept: {e}");
                tokio::time::sleep(CONNECT_RETRY).await;
                continue;
            }
        };
        let (rules, holds, seq) = (rules.clone(), holds.clone(), Arc::clone(&seq));
        tokio::spawn(async move {
            let deadline = Instant::now() + timeout;
            if let Err(why) = hold(conn, rules, &holds, &seq, deadline).await {
                tracing::debug!("activator: {why}");
            }
        });
    }
}

/// Why a held connection was not forwarded.
#[derive(Debug, thiserror::Error)]
enum HoldError {
    /// conntrack has no original destination (not one of our DNATs)
    #[error("reading the original destination: {0}")]
    OriginalDst(std::io::Error),
    /// a destination no service port matches (the rules changed meanwhile)
    #[error("no TCP service port for {0}")]
    NoServicePort(SocketAddrV4),
    /// the timeout passed with no endpoint accepting
    #[error("{0}: no ready endpoint within the timeout")]
    Expired(String),
}

async fn hold(
    mut client: TcpStream,
    mut rules: watch::Receiver<Rules>,
    holds: &Holds,
    seq: &AtomicUsize,
    deadline: Instant,
) -> Result<(), HoldError> {
    let dst = original_dst::original_dst(&client).map_err(HoldError::OriginalDst)?;
    let id = {
        let current = rules.borrow();
        route::service_port_for(&current, dst)
            .map(|r| r.id.clone())
            .ok_or(HoldError::NoServicePort(dst))?
    };
    let held = holds.hold(&id);
    let Some((mut backend, to)) = connect(&mut rules, &id, seq, deadline).await else {
        held.settle(Outcome::Expired);
        return Err(HoldError::Expired(id));
    };
    held.settle(Outcome::Forwarded(to));
    // Either side closing ends the splice; errors are the peers' to see.
    let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
    Ok(())
}

/// A connection to a ready endpoint of `id`, trying until `deadline`.
async fn connect(
    rules: &mut watch::Receiver<Rules>,
    id: &str,
    seq: &AtomicUsize,
    deadline: Instant,
) -> Option<(TcpStream, Backend)> {
    loop {
        let endpoints = route::ready_endpoints(rules, id, deadline).await?;
        let b = route::pick(&endpoints, seq.fetch_add(1, Ordering::Relaxed))?;
        let attempt = TcpStream::connect((b.ip, b.port));
        if let Ok(Ok(conn)) = tokio::time::timeout_at(deadline, attempt).await {
            return Some((conn, b));
        }
        if Instant::now() + CONNECT_RETRY >= deadline {
            return None;
        }
        tokio::time::sleep(CONNECT_RETRY).await;
    }
}
