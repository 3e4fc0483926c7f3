//! What the cluster's names resolve to (pure): `SERVICE.NAMESPACE.svc.
//! cluster.local` → the Service's cluster IP. Short forms are the
//! resolver's business (a pod's `search` list expands them).

use std::net::Ipv4Addr;

use drover_proto::types::service::Service;

/// The cluster's DNS domain.
pub const DOMAIN: &str = "cluster.local";

/// The answer for one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The name's addresses.
    Found(Vec<Ipv4Addr>),
    /// The name exists but has no address of the type asked (or none: a
    /// headless service).
    NoData,
    /// No such name in the cluster's domain.
    NxDomain,
    /// Not a cluster name: ask the upstream resolver.
    Upstream,
}

/// Resolves `name` (lower case, no final dot) for record type A when `a`,
/// another type otherwise; `find(namespace, name)` looks a Service up.
pub fn lookup(name: &str, a: bool, find: impl Fn(&str, &str) -> Option<Service>) -> Lookup {
    let Some(rest) = name
        .strip_suffix(DOMAIN)
        .filter(|r| r.is_empty() || r.ends_with('.'))
    else {
        return Lookup::Upstream;
    };
    let labels: Vec<&str> = rest.trim_end_matches('.').split('.').collect();
    match labels.as_slice() {
        [svc, ns, "svc"] => {
            let Some(found) = find(ns, svc) else {
                return Lookup::NxDomain;
            };
            let ip = found
                .spec
                .cluster_ip
                .as_deref()
                .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
            match ip {
                Some(ip) if a => Lookup::Found(vec![ip]),
                _ => Lookup::NoData,
            }
        }
        // The domain itself and `svc` / namespaces under it exist, empty.
        [""] | ["svc"] | [_, "svc"] => Lookup::NoData,
        _ => Lookup::NxDomain,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_proto::Resource;

    fn svc(ns: &str, name: &str, ip: Option<&str>) -> Service {
        let mut s = Service::default();
        s.metadata.name = name.into();
        s.metadata.namespace = Some(ns.into());
        s.spec.cluster_ip = ip.map(str::to_string);
        s
    }

    #[test]
    fn service_names_resolve_to_cluster_ips() {
        let services = [
            svc("default", "web", Some("10.96.0.2")),
            svc("shop", "web", Some("10.96.0.7")),
            svc("default", "headless", Some("None")),
        ];
        let find = |ns: &str, name: &str| {
            services
                .iter()
                .find(|s| s.name() == name && s.namespace() == ns)
                .cloned()
        };
        let at = |n: &str| lookup(n, true, find);
        assert_eq!(
            at("web.default.svc.cluster.local"),
            Lookup::Found(vec![Ipv4Addr::new(10, 96, 0, 2)])
        );
        assert_eq!(
            at("web.shop.svc.cluster.local"),
            Lookup::Found(vec![Ipv4Addr::new(10, 96, 0, 7)])
        );
        assert_eq!(
            lookup("web.default.svc.cluster.local", false, find),
            Lookup::NoData
        );
        assert_eq!(at("headless.default.svc.cluster.local"), Lookup::NoData);
        assert_eq!(at("nope.default.svc.cluster.local"), Lookup::NxDomain);
        assert_eq!(at("web.default.cluster.local"), Lookup::NxDomain);
        assert_eq!(at("default.svc.cluster.local"), Lookup::NoData);
        assert_eq!(at("cluster.local"), Lookup::NoData);
        assert_eq!(at("example.com"), Lookup::Upstream);
        assert_eq!(at("notcluster.local"), Lookup::Upstream);
    }
}
