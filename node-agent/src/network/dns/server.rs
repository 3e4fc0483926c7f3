//! The node's DNS server: UDP on the pod bridge's gateway address, cluster
//! names answered from the Services the agent watches, other names
//! forwarded to the machine's resolver.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use drover_proto::types::service::Service;
use tokio::net::UdpSocket;

use super::message::{CLASS_IN, Rcode, TYPE_A, format_error, parse_query, response};
use super::zone::{Lookup, lookup};
use crate::agent::informer::{self, Cache};

/// Seconds clients may cache an answer (Services change).
pub const TTL: u32 = 5;
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The first `nameserver` of a resolv.conf that is not `own` (pure).
pub fn upstream_from(resolv_conf: &str, own: std::net::IpAddr) -> Option<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .find(|ip| *ip != own)
        .map(|ip| SocketAddr::new(ip, 53))
}

/// Answers queries on `socket` until the process ends.
pub async fn serve(socket: UdpSocket, services: Cache<Service>, upstream: Option<SocketAddr>) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!("dns: receiving: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let msg = buf[..n].to_vec();
        let (socket, services) = (Arc::clone(&socket), services.clone());
        tokio::spawn(async move {
            if let Some(reply) = answer(&msg, &services, upstream).await {
                let _ = socket.send_to(&reply, from).await;
            }
        });
    }
}

/// The reply to one message (None: nothing worth answering).
pub async fn answer(
    msg: &[u8],
    services: &Cache<Service>,
    upstream: Option<SocketAddr>,
) -> Option<Vec<u8>> {
    let Ok(q) = parse_query(msg) else {
        return format_error(msg);
    };
    let find = |ns: &str, name: &str| informer::cached(services, &format!("{ns}/{name}"));
    let found = if q.qclass == CLASS_IN {
        lookup(&q.name, q.qtype == TYPE_A, find)
    } else {
        Lookup::Upstream
    };
    Some(match found {
        Lookup::Found(ips) => response(&q, Rcode::NoError, &ips, TTL),
        Lookup::NoData => response(&q, Rcode::NoError, &[], TTL),
        Lookup::NxDomain => response(&q, Rcode::NxDomain, &[], TTL),
        Lookup::Upstream => match upstream {
            None => response(&q, Rcode::Refused, &[], 0),
            Some(up) => match forward(msg, up).await {
                Some(reply) => reply,
                None => response(&q, Rcode::ServFail, &[], 0),
            },
        },
    })
}

/// Relays `msg` to `up` and returns its reply.
async fn forward(msg: &[u8], up: SocketAddr) -> Option<Vec<u8>> {
    let bind: SocketAddr = if up.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(bind).await.ok()?;
    sock.connect(up).await.ok()?;
    sock.send(msg).await.ok()?;
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(UPSTREAM_TIMEOUT, sock.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(n);
    Some(buf)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    use super::*;
    use crate::network::dns::message::{answers, query};

    #[test]
    fn upstream_is_the_first_other_nameserver() {
        let own = std::net::IpAddr::from([10, 88, 0, 1]);
        let conf = "# x\nsearch example\nnameserver 10.88.0.1\nnameserver 192.0.2.53\nnameserver 8.8.8.8\n";
        assert_eq!(
            upstream_from(conf, own),
            Some(SocketAddr::from(([192, 0, 2, 53], 53)))
        );
        assert_eq!(upstream_from("search x\n", own), None);
    }

    /// The real server on loopback: cluster names answered, others refused
    /// without an upstream, garbage answered with FORMERR.
    #[tokio::test]
    async fn answers_over_udp() {
        let mut web = Service::default();
        web.metadata.name = "web".into();
        web.metadata.namespace = Some("default".into());
        web.spec.cluster_ip = Some("10.96.0.2".into());
        let cache: Cache<Service> = Arc::new(std::sync::RwLock::new(HashMap::from([(
            "default/web".to_string(),
            web,
        )])));
        let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = server.local_addr().expect("addr");
        tokio::spawn(serve(server, cache, None));
        let client = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        client.connect(addr).await.expect("connect");
        let mut buf = vec![0u8; 512];
        let mut ask = async |msg: Vec<u8>| {
            client.send(&msg).await.expect("send");
            let n = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf))
                .await
                .expect("an answer")
                .expect("recv");
            buf[..n].to_vec()
        };
        let r = ask(query(1, "web.default.svc.cluster.local", TYPE_A)).await;
        assert_eq!(answers(&r), Some((0, vec![Ipv4Addr::new(10, 96, 0, 2)])));
        let r = ask(query(2, "gone.default.svc.cluster.local", TYPE_A)).await;
        assert_eq!(answers(&r).map(|a| a.0), Some(3));
        let r = ask(query(3, "example.com", TYPE_A)).await;
        assert_eq!(answers(&r).map(|a| a.0), Some(5));
        let r = ask(vec![0xab, 0xcd, 0x01]).await;
        assert_eq!((&r[..2], r[3] & 0xf), (&[0xab, 0xcd][..], 1));
    }
}
