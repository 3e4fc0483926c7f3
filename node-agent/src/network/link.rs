//! Links, addresses and routes through rtnetlink (no `ip` subprocesses).

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

use futures::TryStreamExt;
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, LinkVeth, RouteMessageBuilder};

/// A netlink failure, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct LinkError {
    pub what: String,
    pub source: std::io::Error,
}

fn fail(what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> LinkError {
    let what = what.into();
    move |e| LinkError {
        what,
        source: match e {
            rtnetlink::Error::NetlinkError(m) => m.to_io(),
            other => std::io::Error::other(other.to_string()),
        },
    }
}

fn exists(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -libc::EEXIST)
}

/// A netlink connection in the agent's own namespace.
pub fn connect() -> Result<Handle, LinkError> {
    let (conn, handle, _) = rtnetlink::new_connection().map_err(|source| LinkError {
        what: "opening a netlink socket".into(),
        source,
    })?;
    tokio::spawn(conn);
    Ok(handle)
}

/// A netlink connection inside the namespace `ns` (a socket belongs to the
/// namespace of the thread that opened it, so open it on a thread moved
/// there).
pub fn connect_in(ns: &File) -> Result<Handle, LinkError> {
    let runtime = tokio::runtime::Handle::current();
    let fd = ns.try_clone().map_err(|source| LinkError {
        what: "duplicating the namespace handle".into(),
        source,
    })?;
    let opened = std::thread::spawn(move || {
        let _enter = runtime.enter();
        nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(std::io::Error::from)?;
        rtnetlink::new_connection()
    })
    .join()
    .map_err(|_| LinkError {
        what: "entering the pod namespace".into(),
        source: std::io::Error::other("thread panicked"),
    })?;
    let (conn, handle, _) = opened.map_err(|source| LinkError {
        what: "opening a netlink socket in the pod namespace".into(),
        source,
    })?;
    tokio::spawn(conn);
    Ok(handle)
}

/// The index of link `name`, if it exists.
pub async fn index_of(h: &Handle, name: &str) -> Option<u32> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(link)) => Some(link.header.index),
        _ => None,
    }
}

/// Makes sure bridge `name` exists, holds `gateway/prefix` and is up.
pub async fn ensure_bridge(
    h: &Handle,
    name: &str,
    gateway: Ipv4Addr,
    prefix: u8,
) -> Result<u32, LinkError> {
    if index_of(h, name).await.is_none()
        && let Err(e) = h.link().add(LinkBridge::new(name).build()).execute().await
        && !exists(&e)
    {
        return Err(fail(format!("creating bridge {name}"))(e));
    }
    let index = index_of(h, name).await.ok_or_else(|| LinkError {
        what: format!("bridge {name}"),
        source: std::io::Error::other("vanished after creation"),
    })?;
    if let Err(e) = h
        .address()
        .add(index, IpAddr::V4(gateway), prefix)
        .execute()
        .await
        && !exists(&e)
    {
        return Err(fail(format!("adding {gateway}/{prefix} to {name}"))(e));
    }
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(fail(format!("bringing {name} up")))?;
    Ok(index)
}

/// Deletes link `name` if it exists.
pub async fn delete(h: &Handle, name: &str) -> Result<(), LinkError> {
    if let Some(index) = index_of(h, name).await {
        h.link()
            .del(index)
            .execute()
            .await
            .map_err(fail(format!("deleting {name}")))?;
    }
    Ok(())
}

/// Puts existing link `name` on the bridge and brings it up.
pub async fn enslave(h: &Handle, name: &str, bridge_index: u32) -> Result<(), LinkError> {
    let index = index_of(h, name).await.ok_or_else(|| LinkError {
        what: format!("link {name}"),
        source: std::io::Error::other("not found"),
    })?;
    h.link()
        .set(
            LinkUnspec::new_with_index(index)
                .controller(bridge_index)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(fail(format!("attaching {name} to the bridge")))
}

/// Creates veth `host` ↔ `peer`, puts `host` on the bridge and up, and moves
/// `peer` into the namespace `ns`.
pub async fn plug_veth(
    h: &Handle,
    host: &str,
    peer: &str,
    bridge_index: u32,
    ns: &File,
) -> Result<(), LinkError> {
    delete(h, host).await?;
    h.link()
        .add(LinkVeth::new(host, peer).build())
        .execute()
        .await
        .map_err(fail(format!("creating veth {host}")))?;
    let host_index = index_of(h, host).await.ok_or_else(|| LinkError {
        what: format!("veth {host}"),
        source: std::io::Error::other("vanished after creation"),
    })?;
    let peer_index = index_of(h, peer).await.ok_or_else(|| LinkError {
        what: format!("veth peer {peer}"),
        source: std::io::Error::other("vanished after creation"),
    })?;
    h.link()
        .set(
            LinkUnspec::new_with_index(host_index)
                .controller(bridge_index)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(fail(format!("attaching {host} to the bridge")))?;
    // A pod reaching itself through a service address: where br_netfilter
    // is on, the DNATed frame is bridged back out the port it came in by.
    h.link()
        .set_port(LinkBridgePort::new(host_index).hairpin(true).build())
        .execute()
        .await
        .map_err(fail(format!("hairpin mode on {host}")))?;
    h.link()
        .set(
            LinkUnspec::new_with_index(peer_index)
                .setns_by_fd(ns.as_raw_fd())
                .build(),
        )
        .execute()
        .await
        .map_err(fail(format!("moving {peer} into the pod namespace")))?;
    Ok(())
}

/// Inside a pod's namespace: renames `peer` to eth0 with `ip/prefix`, brings
/// it and loopback up, and routes everything via `gateway`.
pub async fn configure_pod_side(
    h: &Handle,
    peer: &str,
    ip: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
) -> Result<(), LinkError> {
    let index = match index_of(h, peer).await {
        Some(i) => i,
        // Already renamed by an earlier, interrupted attempt.
        None => index_of(h, "eth0").await.ok_or_else(|| LinkError {
            what: format!("pod side {peer}"),
            source: std::io::Error::other("not found in the pod namespace"),
        })?,
    };
    h.link()
        .set(LinkUnspec::new_with_index(index).name("eth0").build())
        .execute()
        .await
        .map_err(fail("naming the pod interface eth0"))?;
    if let Err(e) = h
        .address()
        .add(index, IpAddr::V4(ip), prefix)
        .execute()
        .await
        && !exists(&e)
    {
        return Err(fail(format!("adding {ip}/{prefix} to eth0"))(e));
    }
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(fail("bringing eth0 up"))?;
    if let Some(lo) = index_of(h, "lo").await {
        h.link()
            .set(LinkUnspec::new_with_index(lo).up().build())
            .execute()
            .await
            .map_err(fail("bringing lo up"))?;
    }
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .build();
    if let Err(e) = h.route().add(route).execute().await
        && !exists(&e)
    {
        return Err(fail(format!("default route via {gateway}"))(e));
    }
    Ok(())
}
