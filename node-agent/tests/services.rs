//! The service proxy's ruleset for real, as root, in a network namespace
//! of the test's own: a cluster IP is DNATed to its endpoint, one without
//! endpoints refuses at once, counters count connections and keep their
//! values when the rules change, stale chains and counters go, and the
//! table is removed at the end. Skips (saying why) when not root or
//! without nft.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use drover_node_agent::network::services::existing::parse;
use drover_node_agent::network::services::{
    Backend, ProxyConfig, ServicePortRule, WhenNoEndpoints, apply, read_counters, table,
};
use drover_node_agent::network::{Cidr, link};
use drover_proto::types::pod::Protocol;

fn rule(name: &str, vip: [u8; 4], endpoints: Vec<Backend>) -> ServicePortRule {
    ServicePortRule {
        id: format!("default/{name}/80"),
        cluster_ip: Ipv4Addr::from(vip),
        protocol: Protocol::Tcp,
        port: 80,
        node_port: None,
        endpoints,
        scale_from_zero: false,
    }
}

fn connect(to: [u8; 4]) -> std::io::Result<TcpStream> {
    TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::from(to), 80)),
        Duration::from_secs(2),
    )
}

#[test]
fn rules_dnat_refuse_count_and_go() {
    let nft = Command::new("nft").arg("--version").output();
    if !nix::unistd::geteuid().is_root() || nft.is_err() {
        eprintln!("skipped rules_dnat_refuse_count_and_go: needs root and nft (nftables)");
        return;
    }
    let outcome = std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let h = link::connect().expect("netlink");
            link::ensure_bridge(&h, "st0", Ipv4Addr::new(192, 0, 2, 1), 24)
                .await
                .expect("bridge");
        });
        // Cluster IPs are reached through a route, as on a node; the
        // "endpoint" is a local address, delivered over loopback.
        for args in [
            &["link", "set", "lo", "up"][..],
            &["route", "add", "default", "via", "192.0.2.254"],
        ] {
            let ok = Command::new("ip").args(args).status().expect("ip");
            assert!(ok.success(), "ip {args:?}");
        }
        let listener = TcpListener::bind("192.0.2.1:0").expect("listen");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                drop(conn);
            }
        });
        let cfg = ProxyConfig {
            table: table("st0"),
            node_ips: vec![Ipv4Addr::new(192, 0, 2, 1)],
            // The client is "in the cluster" and the endpoint not "on this
            // bridge": no masquerade, which loopback delivery would not take.
            local_cidr: Cidr::parse("10.99.1.0/24").expect("cidr"),
            cluster_cidr: Cidr::parse_range("192.0.2.0/24").expect("cidr"),
            when_no_endpoints: WhenNoEndpoints::Reject,
        };
        let here = Backend {
            ip: Ipv4Addr::new(192, 0, 2, 1),
            port,
        };
        let rules = vec![
            rule("a", [10, 96, 0, 2], vec![here]),
            rule("b", [10, 96, 0, 3], vec![]),
        ];
        // Twice: from nothing, then flushing what is there.
        apply(&cfg, &rules).expect("first apply");
        apply(&cfg, &rules).expect("second apply");
        for _ in 0..3 {
            connect([10, 96, 0, 2]).expect("the cluster IP reaches its endpoint");
        }
        let t = Instant::now();
        let refused = connect([10, 96, 0, 3]).expect_err("no endpoint");
        assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "{:?}",
            t.elapsed()
        );

        let counters = read_counters(&cfg.table).expect("counters");
        let ep = format!("ep/default/a/80/192.0.2.1/{port}");
        assert_eq!(counters.get("svc/default/a/80").map(|c| c.packets), Some(3));
        assert_eq!(counters.get(&ep).map(|c| c.packets), Some(3));

        // A second endpoint joins and b goes: a's counters keep counting.
        let other = Backend {
            ip: Ipv4Addr::new(192, 0, 2, 1),
            port: port.wrapping_add(1),
        };
        apply(&cfg, &[rule("a", [10, 96, 0, 2], vec![here, other])]).expect("apply");
        let counters = read_counters(&cfg.table).expect("counters");
        assert_eq!(counters.get("svc/default/a/80").map(|c| c.packets), Some(3));
        assert_eq!(counters.len(), 3, "{counters:?}");

        // Nothing left to serve: only the hooks remain.
        apply(&cfg, &[]).expect("apply");
        let listed = Command::new("nft")
            .args(["-j", "list", "table", "ip", &cfg.table])
            .output()
            .expect("nft");
        let existing = parse(&String::from_utf8_lossy(&listed.stdout));
        assert!(existing.counters.is_empty(), "{existing:?}");
        assert!(
            !existing.chains.iter().any(|c| c.starts_with("svc/")),
            "{existing:?}"
        );
        assert!(existing.chains.contains("prerouting"));

        drover_node_agent::network::services::remove("st0");
        let tables = Command::new("nft")
            .args(["list", "tables"])
            .output()
            .expect("nft");
        assert!(String::from_utf8_lossy(&tables.stdout).trim().is_empty());
    })
    .join();
    assert!(outcome.is_ok(), "the test thread failed");
}
