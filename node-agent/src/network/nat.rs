//! Outbound NAT for a node's pods: an nftables table of our own per bridge,
//! masquerading traffic from the pod CIDR that leaves the cluster's pods.

use super::cidr::Cidr;

/// The table name for `bridge` (family ip).
pub fn table(bridge: &str) -> String {
    format!(
        "drover_{}",
        bridge.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    )
}

/// The `nft -f` script that (re)creates the table atomically. Traffic to
/// `cluster` (every node's pods) keeps its source: other nodes route it
/// back by pod CIDR.
pub fn ruleset(bridge: &str, cidr: &Cidr, cluster: &Cidr) -> String {
    let t = table(bridge);
    let inside = if cluster.prefix <= cidr.prefix && cluster.contains(cidr.network) {
        cluster.to_string()
    } else {
        format!("{{ {cidr}, {cluster} }}")
    };
    format!(
        "table ip {t}\n\
         delete table ip {t}\n\
         table ip {t} {{\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr {cidr} ip daddr != {inside} masquerade\n\
         \t}}\n\
         }}\n"
    )
}

/// Applies the ruleset with `nft`.
pub fn apply(bridge: &str, cidr: &Cidr, cluster: &Cidr) -> std::io::Result<()> {
    super::nft::run(&["-f", "-"], Some(&ruleset(bridge, cidr, cluster))).map(drop)
}

/// Removes the table (nothing to do if it is gone).
pub fn remove(bridge: &str) {
    let _ = super::nft::run(&["delete", "table", "ip", &table(bridge)], None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masquerades_only_traffic_leaving_the_pod_cidr() {
        let r = ruleset(
            "drover0",
            &Cidr::parse("10.88.3.0/24").unwrap(),
            &Cidr::parse("10.88.0.0/16").unwrap(),
        );
        assert!(r.starts_with("table ip drover_drover0\ndelete table ip drover_drover0\n"));
        assert!(r.contains("ip saddr 10.88.3.0/24 ip daddr != 10.88.0.0/16 masquerade"));
        let apart = ruleset(
            "drover0",
            &Cidr::parse("10.90.3.0/24").unwrap(),
            &Cidr::parse("10.88.0.0/16").unwrap(),
        );
        assert!(apart.contains("ip daddr != { 10.90.3.0/24, 10.88.0.0/16 } masquerade"));
        assert_eq!(table("br-0.x"), "drover_br_0_x");
    }
}
