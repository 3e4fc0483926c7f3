//! A small DNS server per node, on the pod bridge's gateway address:
//! `SERVICE.NAMESPACE.svc.cluster.local` → the Service's cluster IP, other
//! names forwarded to the machine's resolver.

pub mod message;
pub mod server;
pub mod zone;

pub use server::{serve, upstream_from};

/// A pod's `/etc/resolv.conf`: the node's server, and search domains so
/// `web` and `web.shop` resolve as `web.NAMESPACE.svc.cluster.local` and
/// `web.shop.svc.cluster.local` (Kubernetes' ClusterFirst policy).
pub fn resolv_conf(nameserver: std::net::Ipv4Addr, namespace: &str) -> String {
    let d = zone::DOMAIN;
    format!("nameserver {nameserver}\nsearch {namespace}.svc.{d} svc.{d} {d}\noptions ndots:5\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn resolv_conf_searches_the_pods_namespace_first() {
        let conf = super::resolv_conf(std::net::Ipv4Addr::new(10, 88, 0, 1), "shop");
        assert_eq!(
            conf,
            "nameserver 10.88.0.1\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
        );
    }
}
