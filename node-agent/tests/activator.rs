//! The activator for real, as root, in a network namespace of the test's
//! own: the service rules DNAT a cluster IP and a NodePort without
//! endpoints to it, it recovers each connection's original destination,
//! holds it (counted pending), closes it past the timeout (counted
//! expired), and splices it to an endpoint as soon as the rules show one;
//! then the rules DNAT straight to the endpoint and the activator is off
//! the path. The namespace (and the table in it) goes with the test's
//! thread. Skips (saying why) when not root or without nft.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::Command;
use std::time::Duration;

use drover_node_agent::network::services::{
    Activator, Backend, ProxyConfig, ServicePortRule, WhenNoEndpoints, apply, table,
};
use drover_node_agent::network::{Cidr, link};
use drover_proto::types::pod::Protocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};

const NODE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 2);
const HOLD: Duration = Duration::from_secs(2);
const ID: &str = "default/web/80";

fn rule(endpoints: Vec<Backend>) -> ServicePortRule {
    ServicePortRule {
        id: ID.into(),
        cluster_ip: VIP,
        protocol: Protocol::Tcp,
        port: 80,
        node_port: Some(30080),
        endpoints,
        scale_from_zero: true,
    }
}

/// Polls `f` every 20 ms until it holds, for at most 5 s.
async fn until(what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn scenario() {
    let h = link::connect().expect("netlink");
    link::ensure_bridge(&h, "act0", NODE, 24)
        .await
        .expect("bridge");
    for args in [
        &["link", "set", "lo", "up"][..],
        &["route", "add", "default", "via", "192.0.2.254"],
    ] {
        let ok = Command::new("ip").args(args).status().expect("ip");
        assert!(ok.success(), "ip {args:?}");
    }
    let activator = Activator::start(SocketAddrV4::new(NODE, 0), HOLD).expect("activator");
    let cfg = ProxyConfig {
        table: table("act0"),
        node_ips: vec![NODE],
        local_cidr: Cidr::parse("10.99.1.0/24").expect("cidr"),
        cluster_cidr: Cidr::parse_range("192.0.2.0/24").expect("cidr"),
        when_no_endpoints: WhenNoEndpoints::Hold {
            activator: activator.addr(),
        },
    };
    let asleep = vec![rule(vec![])];
    apply(&cfg, &asleep).expect("apply");
    activator.set_rules(&asleep);
    let count = |f: fn(&drover_node_agent::network::services::activator::HoldCount) -> u64| {
        activator.counts().get(ID).map_or(0, f)
    };

    // Through the NodePort: held, then closed at the timeout.
    let t = Instant::now();
    let mut late = TcpStream::connect((NODE, 30080))
        .await
        .expect("held, not refused");
    until("one pending", || count(|c| c.pending) == 1).await;
    let mut buf = Vec::new();
    let read = timeout(HOLD * 3, late.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "closed within the timeout");
    assert!(buf.is_empty());
    assert!(
        t.elapsed() >= HOLD - Duration::from_millis(100),
        "{:?}",
        t.elapsed()
    );
    until("one expired", || {
        count(|c| c.expired_total) == 1 && count(|c| c.pending) == 0
    })
    .await;

    // Through the cluster IP: held until an endpoint is ready, then spliced.
    let backend = TcpListener::bind((NODE, 0)).await.expect("backend");
    let port = backend.local_addr().expect("addr").port();
    let served = tokio::spawn(async move {
        let mut n = 0;
        while let Ok((mut conn, _)) = backend.accept().await {
            n += 1;
            let mut req = [0u8; 4];
            if conn.read_exact(&mut req).await.is_ok() {
                let _ = conn.write_all(&[b"pong:", &req[..]].concat()).await;
            }
            if n == 2 {
                return n;
            }
        }
        n
    });
    let mut client = TcpStream::connect((VIP, 80))
        .await
        .expect("held, not refused");
    client.write_all(b"ping").await.expect("write");
    until("one pending", || count(|c| c.pending) == 1).await;
    let awake = vec![rule(vec![Backend { ip: NODE, port }])];
    apply(&cfg, &awake).expect("apply");
    activator.set_rules(&awake);
    let mut answer = Vec::new();
    timeout(HOLD, client.read_to_end(&mut answer))
        .await
        .expect("answered before the timeout")
        .expect("read");
    assert_eq!(answer, b"pong:ping");
    assert_eq!(count(|c| c.forwarded_total), 1);
    let forwarded = format!("ep/{ID}/{NODE}/{port}");
    assert_eq!(activator.endpoint_counters().get(&forwarded), Some(&1));

    // With an endpoint the rules DNAT straight to it.
    let mut direct = TcpStream::connect((VIP, 80)).await.expect("connect");
    direct.write_all(b"next").await.expect("write");
    let mut answer = Vec::new();
    timeout(HOLD, direct.read_to_end(&mut answer))
        .await
        .expect("answered")
        .expect("read");
    assert_eq!(answer, b"pong:next");
    assert_eq!(count(|c| c.forwarded_total), 1, "not through the activator");
    assert_eq!(
        timeout(HOLD, served).await.ok().and_then(Result::ok),
        Some(2)
    );
}

#[test]
fn held_expired_and_forwarded_through_real_rules() {
    let nft = Command::new("nft").arg("--version").output();
    if !nix::unistd::geteuid().is_root() || nft.is_err() {
        eprintln!(
            "skipped held_expired_and_forwarded_through_real_rules: needs root and nft (nftables)"
        );
        return;
    }
    let outcome = std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async { timeout(Duration::from_secs(30), scenario()).await })
            .expect("bounded in time");
    })
    .join();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
