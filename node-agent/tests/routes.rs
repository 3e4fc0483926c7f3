//! Pod routes to other nodes for real, as root, in a network namespace of
//! the test's own (gone when its thread ends): routes are added, replaced
//! when a node's address changes, removed when a node goes, refused and
//! reported when the gateway is not on a link, and all removed at the end;
//! routes of other protocols are never touched. Skips (saying why) when
//! not root.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Command;

use drover_node_agent::network::routes::sync::sync;
use drover_node_agent::network::routes::{ROUTE_PROTOCOL, remove_all};
use drover_node_agent::network::{Cidr, link};

/// `ip route show proto P` in the calling thread's namespace, one route a
/// line.
fn routes(proto: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["route", "show", "proto", proto])
        .output()
        .expect("ip route");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // A bridge without ports may or may not be reported down.
        .map(|l| l.replace(" linkdown", "").trim().to_string())
        .collect()
}

fn want(routes: &[(&str, [u8; 4])]) -> BTreeMap<Cidr, Ipv4Addr> {
    routes
        .iter()
        .map(|(c, ip)| (Cidr::parse(c).expect("cidr"), Ipv4Addr::from(*ip)))
        .collect()
}

#[test]
fn routes_follow_the_desired_set() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped routes_follow_the_desired_set: needs root (network namespaces)");
        return;
    }
    // A thread moved into a fresh network namespace: its sockets and the
    // `ip` it runs live there, and the namespace goes with the thread.
    let outcome = std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let h = link::connect().expect("netlink");
            link::ensure_bridge(&h, "rt0", Ipv4Addr::new(192, 0, 2, 1), 24)
                .await
                .expect("bridge");
            // Someone else's route in the same table stays.
            let other = Command::new("ip")
                .args([
                    "route",
                    "add",
                    "10.99.9.0/24",
                    "via",
                    "192.0.2.9",
                    "proto",
                    "static",
                ])
                .status()
                .expect("ip route add");
            assert!(other.success());

            let two = want(&[
                ("10.99.1.0/24", [192, 0, 2, 5]),
                ("10.99.2.0/24", [192, 0, 2, 6]),
            ]);
            let refused = sync(&two).await.expect("sync");
            assert!(refused.is_empty(), "{refused:?}");
            let proto = ROUTE_PROTOCOL.to_string();
            assert_eq!(
                routes(&proto),
                [
                    "10.99.1.0/24 via 192.0.2.5 dev rt0",
                    "10.99.2.0/24 via 192.0.2.6 dev rt0"
                ]
            );

            // Node 2 moved, node 1 left, a node beyond any link joined.
            let next = want(&[
                ("10.99.2.0/24", [192, 0, 2, 7]),
                ("10.99.3.0/24", [203, 0, 113, 1]),
            ]);
            let refused = sync(&next).await.expect("sync");
            assert_eq!(refused.len(), 1, "{refused:?}");
            assert_eq!(refused[0].1, Ipv4Addr::new(203, 0, 113, 1));
            assert_eq!(routes(&proto), ["10.99.2.0/24 via 192.0.2.7 dev rt0"]);
            // Level-triggered: the same set again changes nothing.
            sync(&next).await.expect("sync");
            assert_eq!(routes(&proto), ["10.99.2.0/24 via 192.0.2.7 dev rt0"]);

            remove_all().await.expect("remove");
            assert!(routes(&proto).is_empty());
            assert_eq!(routes("static"), ["10.99.9.0/24 via 192.0.2.9 dev rt0"]);
        });
    })
    .join();
    assert!(outcome.is_ok(), "the test thread failed");
}
