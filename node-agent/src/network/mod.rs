//! Pod networking on one node: a bridge holding the gateway of the node's
//! pod CIDR, and per pod a network namespace (shared by its containers, or
//! a VM's tap) with a veth on the bridge and an address from the CIDR;
//! outbound traffic is masqueraded. Addresses are persisted, so a restarted
//! agent re-adopts pods with the addresses they have.

pub mod cidr;
pub mod dns;
pub mod ipam;
pub mod link;
pub mod nat;
pub mod netns;
pub mod nft;
pub mod routes;
pub mod services;
pub mod tap;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub use cidr::Cidr;
use ipam::{Ipam, IpamError};
use link::LinkError;

/// Every node's pod CIDR is carved from this range (the control plane's
/// default): pod-to-pod traffic within it is routed, not masqueraded.
pub const DEFAULT_CLUSTER_CIDR: &str = "10.88.0.0/16";

/// The bridge name when the agent is not told otherwise.
pub const DEFAULT_BRIDGE: &str = "drover0";

/// What a pod's sandbox got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodAttachment {
    /// The network namespace to join (config.json `linux.namespaces`).
    pub netns: PathBuf,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

/// What a VM pod got: a tap on the bridge and the address its guest
/// configures on eth0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapAttachment {
    pub tap: String,
    /// Locally administered, derived from the address.
    pub mac: String,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
}

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("tap device {name}: {source}")]
    Tap {
        name: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Ipam(#[from] IpamError),
    #[error("network namespace {path}: {source}")]
    Netns {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("outbound NAT: {0}")]
    Nat(std::io::Error),
    #[error("enabling IPv4 forwarding: {0}")]
    Forwarding(std::io::Error),
}

/// The node's pod network.
#[derive(Debug)]
pub struct PodNetwork {
    pub bridge: String,
    pub cidr: Cidr,
    ipam: Ipam,
    netns_dir: PathBuf,
}

impl PodNetwork {
    /// Sets up the bridge, NAT and forwarding for `cidr`; state lives under
    /// `data_dir/network`. The cluster's pod range is the default one.
    pub async fn start(
        data_dir: &Path,
        bridge: &str,
        cidr: Cidr,
    ) -> Result<PodNetwork, NetworkError> {
        let cluster = Cidr::parse_range(DEFAULT_CLUSTER_CIDR).unwrap_or(cidr);
        Self::start_in(data_dir, bridge, cidr, cluster).await
    }

    /// As [`PodNetwork::start`], for a node whose pod CIDR is part of the
    /// pod range `cluster` (traffic to other nodes' pods is not masqueraded).
    pub async fn start_in(
        data_dir: &Path,
        bridge: &str,
        cidr: Cidr,
        cluster: Cidr,
    ) -> Result<PodNetwork, NetworkError> {
        let root = data_dir.join("network");
        let ipam = Ipam::open(
            &root.join("ipam").join(cidr.to_string().replace('/', "_")),
            cidr,
        )?;
        let h = link::connect()?;
        link::ensure_bridge(&h, bridge, cidr.gateway(), cidr.prefix).await?;
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(NetworkError::Forwarding)?;
        nat::apply(bridge, &cidr, &cluster).map_err(NetworkError::Nat)?;
        Ok(PodNetwork {
            bridge: bridge.to_string(),
            cidr,
            ipam,
            netns_dir: root.join("netns"),
        })
    }

    fn netns_path(&self, uid: &str) -> PathBuf {
        self.netns_dir.join(uid)
    }

    /// The host-side veth of a pod (≤ 15 characters, from its uid).
    fn veth_names(uid: &str) -> (String, String) {
        let id: String = uid
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(11)
            .collect();
        (format!("dv{id}"), format!("dp{id}"))
    }

    /// The tap of a VM pod (≤ 15 characters, from its uid).
    pub fn tap_name(uid: &str) -> String {
        let (host, _) = Self::veth_names(uid);
        format!("tap{}", &host[2..])
    }

    /// Gives VM pod `uid` its address and a tap on the bridge (idempotent).
    pub async fn attach_tap(&self, uid: &str) -> Result<TapAttachment, NetworkError> {
        let ip = self.ipam.allocate(uid)?;
        let tap = Self::tap_name(uid);
        tap::create(&tap).map_err(|source| NetworkError::Tap {
            name: tap.clone(),
            source,
        })?;
        let h = link::connect()?;
        let bridge =
            link::ensure_bridge(&h, &self.bridge, self.cidr.gateway(), self.cidr.prefix).await?;
        link::enslave(&h, &tap, bridge).await?;
        let [a, b, c, d] = ip.octets();
        Ok(TapAttachment {
            tap,
            mac: format!("02:d0:{a:02x}:{b:02x}:{c:02x}:{d:02x}"),
            ip,
            prefix: self.cidr.prefix,
            gateway: self.cidr.gateway(),
        })
    }

    /// The pod's address, if it has one.
    pub fn ip_of(&self, uid: &str) -> Option<Ipv4Addr> {
        self.ipam.lookup(uid)
    }

    /// Gives pod `uid` its namespace, veth and address (idempotent: a pod
    /// that has them keeps them).
    pub async fn attach(&self, uid: &str) -> Result<PodAttachment, NetworkError> {
        let path = self.netns_path(uid);
        let ip = self.ipam.allocate(uid)?;
        let attachment = PodAttachment {
            netns: path.clone(),
            ip,
            prefix: self.cidr.prefix,
            gateway: self.cidr.gateway(),
        };
        let (host, peer) = Self::veth_names(uid);
        let h = link::connect()?;
        if path.exists() && link::index_of(&h, &host).await.is_some() {
            return Ok(attachment);
        }
        let netns_err = |source| NetworkError::Netns {
            path: path.clone(),
            source,
        };
        netns::create(&path).map_err(netns_err)?;
        let ns = netns::open(&path).map_err(netns_err)?;
        let bridge =
            link::ensure_bridge(&h, &self.bridge, self.cidr.gateway(), self.cidr.prefix).await?;
        link::plug_veth(&h, &host, &peer, bridge, &ns).await?;
        let inside = link::connect_in(&ns)?;
        link::configure_pod_side(&inside, &peer, ip, self.cidr.prefix, self.cidr.gateway()).await?;
        Ok(attachment)
    }

    /// Removes pod `uid`'s veth and namespace and frees its address.
    pub async fn detach(&self, uid: &str) -> Result<(), NetworkError> {
        let (host, _) = Self::veth_names(uid);
        if let Ok(h) = link::connect() {
            link::delete(&h, &host).await?;
            link::delete(&h, &Self::tap_name(uid)).await?;
        }
        let path = self.netns_path(uid);
        netns::remove(&path).map_err(|source| NetworkError::Netns { path, source })?;
        self.ipam.release(uid);
        Ok(())
    }

    /// Pods holding an address (for orphan collection).
    pub fn attached(&self) -> Vec<String> {
        self.ipam
            .entries()
            .into_iter()
            .map(|(_, uid)| uid)
            .collect()
    }

    /// Removes the bridge and NAT table (the node leaves, or a test ends).
    pub async fn shutdown(&self) -> Result<(), NetworkError> {
        nat::remove(&self.bridge);
        let h = link::connect()?;
        link::delete(&h, &self.bridge).await?;
        Ok(())
    }
}
