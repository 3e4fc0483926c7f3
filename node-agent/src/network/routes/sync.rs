//! Applies the desired pod routes through rtnetlink: lists the routes of
//! ours (by protocol number) in the main table, replaces the wanted ones
//! and deletes the rest; re-run after each Node change, level-triggered.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use drover_proto::client::{Client, ListOptions};
use drover_proto::types::Node;
use futures::TryStreamExt;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol,
};
use rtnetlink::{Handle, RouteMessageBuilder};
use tokio::sync::Notify;

use super::{ROUTE_PROTOCOL, desired_routes};
use crate::agent::informer::{self, Cache};
use crate::network::Cidr;
use crate::network::link::{self, LinkError};

const RESYNC: Duration = Duration::from_secs(30);
const DEBOUNCE: Duration = Duration::from_millis(50);

/// Runs forever: keeps routes to the other nodes' pod CIDRs.
pub async fn run(client: Client, self_name: String, self_ip: Ipv4Addr, own: Cidr) {
    let nodes: Cache<Node> = Cache::default();
    let changed = Arc::new(Notify::new());
    let synced = Arc::new(AtomicBool::new(false));
    let (on_change, on_sync, flag) = (
        Arc::clone(&changed),
        Arc::clone(&changed),
        Arc::clone(&synced),
    );
    tokio::spawn(informer::run(
        client,
        ListOptions::default(),
        nodes.clone(),
        |_| true,
        move |_| on_change.notify_one(),
        move || {
            flag.store(true, Ordering::Release);
            on_sync.notify_one();
        },
    ));
    let mut applied: Option<BTreeMap<Cidr, Ipv4Addr>> = None;
    // Routes the kernel refused, reported once until they change.
    let mut reported: HashSet<(Cidr, Ipv4Addr)> = HashSet::new();
    loop {
        tokio::select! {
            _ = changed.notified() => tokio::time::sleep(DEBOUNCE).await,
            _ = tokio::time::sleep(RESYNC) => applied = None,
        }
        if !synced.load(Ordering::Acquire) {
            continue;
        }
        let want = desired_routes(&informer::snapshot(&nodes), &self_name, self_ip, own);
        if applied.as_ref() == Some(&want) {
            continue;
        }
        match sync(&want).await {
            Ok(refused) => {
                for (cidr, via, e) in refused {
                    if reported.insert((cidr, via)) {
                        tracing::warn!(
                            "route {cidr} via {via}: {e} (host-gw needs the nodes on one link)"
                        );
                    }
                }
                applied = Some(want);
            }
            Err(e) => tracing::warn!("syncing pod routes: {e}"),
        }
    }
}

/// Makes our routes in the main table exactly `want`; returns the routes
/// the kernel refused.
pub async fn sync(
    want: &BTreeMap<Cidr, Ipv4Addr>,
) -> Result<Vec<(Cidr, Ipv4Addr, LinkError)>, LinkError> {
    let h = link::connect()?;
    let have = ours(&h).await?;
    for (cidr, via) in &have {
        if want.get(cidr) != Some(via) {
            let msg = message(*cidr, *via);
            if let Err(e) = h.route().del(msg).execute().await {
                tracing::warn!("deleting route {cidr} via {via}: {e}");
            }
        }
    }
    let mut refused = Vec::new();
    for (cidr, via) in want {
        if have.get(cidr) == Some(via) {
            continue;
        }
        if let Err(e) = h
            .route()
            .add(message(*cidr, *via))
            .replace()
            .execute()
            .await
        {
            refused.push((
                *cidr,
                *via,
                LinkError {
                    what: format!("adding route {cidr} via {via}"),
                    source: match e {
                        rtnetlink::Error::NetlinkError(m) => m.to_io(),
                        other => std::io::Error::other(other.to_string()),
                    },
                },
            ));
        }
    }
    Ok(refused)
}

/// Removes every route of ours (teardown).
pub async fn remove_all() -> Result<(), LinkError> {
    sync(&BTreeMap::new()).await.map(drop)
}

fn message(cidr: Cidr, via: Ipv4Addr) -> RouteMessage {
    RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(cidr.network, cidr.prefix)
        .gateway(via)
        .protocol(RouteProtocol::Other(ROUTE_PROTOCOL))
        .build()
}

/// Our routes in the main table, by destination.
async fn ours(h: &Handle) -> Result<BTreeMap<Cidr, Ipv4Addr>, LinkError> {
    let mut stream = h
        .route()
        .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
        .execute();
    let mut found = BTreeMap::new();
    loop {
        let msg = match stream.try_next().await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => {
                return Err(LinkError {
                    what: "listing routes".into(),
                    source: std::io::Error::other(e.to_string()),
                });
            }
        };
        if msg.header.protocol != RouteProtocol::Other(ROUTE_PROTOCOL)
            || msg.header.table != RouteHeader::RT_TABLE_MAIN
        {
            continue;
        }
        let mut dst = None;
        let mut gw = None;
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Destination(RouteAddress::Inet(a)) => dst = Some(*a),
                RouteAttribute::Gateway(RouteAddress::Inet(a)) => gw = Some(*a),
                _ => {}
            }
        }
        if let (Some(dst), Some(gw)) = (dst, gw) {
            found.insert(
                Cidr {
                    network: dst,
                    prefix: msg.header.destination_prefix_length,
                },
                gw,
            );
        }
    }
    Ok(found)
}
