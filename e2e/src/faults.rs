//! Network faults injected inside a host's namespace with nftables: a table
//! of our own that drops traffic, so healing is deleting that table.
//!
//! `tc netem` is not available on these kernels, so loss is emulated with
//! `numgen random` and latency is not offered.

use crate::lab::Host;

/// The nftables table (family inet) that holds a host's faults.
pub const TABLE: &str = "drover_e2e_faults";

/// A network fault, seen from the host it is injected into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Cut off from every other lab host (loopback still works).
    Isolated,
    /// Cut off from the named hosts only (a partition between two sides).
    CutFrom(Vec<String>),
    /// Drops this percentage (0–100) of packets in each direction.
    Loss(u8),
}

/// The `nft -f` input that installs `fault` into one host.
pub fn ruleset(fault: &Fault, hosts: &[Host]) -> String {
    let rules = match fault {
        Fault::Isolated => {
            let all: Vec<&str> = hosts.iter().map(|h| h.ip.as_str()).collect();
            drop_addresses(&all)
        }
        Fault::CutFrom(names) => {
            let ips: Vec<&str> = hosts
                .iter()
                .filter(|h| names.contains(&h.name))
                .map(|h| h.ip.as_str())
                .collect();
            drop_addresses(&ips)
        }
        Fault::Loss(percent) => {
            // `numgen random mod 100` is 0..=99, so 100% is an unconditional drop.
            let rule = match *percent {
                0 => String::new(),
                p if p >= 100 => "drop".to_string(),
                p => format!("numgen random mod 100 < {p} drop"),
            };
            if rule.is_empty() {
                (String::new(), String::new())
            } else {
                (
                    format!("iifname \"eth0\" {rule}"),
                    format!("oifname \"eth0\" {rule}"),
                )
            }
        }
    };
    format!(
        "table inet {TABLE} {{\n\
         \tchain input {{\n\t\ttype filter hook input priority -10; policy accept;\n\t\t{}\n\t}}\n\
         \tchain output {{\n\t\ttype filter hook output priority -10; policy accept;\n\t\t{}\n\t}}\n\
         }}\n",
        rules.0, rules.1
    )
}

/// Input and output rules dropping traffic from and to `ips`.
fn drop_addresses(ips: &[&str]) -> (String, String) {
    if ips.is_empty() {
        return (String::new(), String::new());
    }
    let set = ips.join(", ");
    (
        format!("iifname \"eth0\" ip saddr {{ {set} }} drop"),
        format!("oifname \"eth0\" ip daddr {{ {set} }} drop"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, ip: &str) -> Host {
        Host {
            name: name.into(),
            netns: format!("ns-{name}"),
            ip: ip.into(),
        }
    }

    #[test]
    fn isolation_drops_every_lab_address_both_ways() {
        let hosts = [host("a", "10.213.1.2"), host("b", "10.213.1.3")];
        let r = ruleset(&Fault::Isolated, &hosts);
        assert!(
            r.contains("ip saddr { 10.213.1.2, 10.213.1.3 } drop"),
            "{r}"
        );
        assert!(
            r.contains("ip daddr { 10.213.1.2, 10.213.1.3 } drop"),
            "{r}"
        );
        assert!(r.starts_with("table inet drover_e2e_faults {"));
    }

    #[test]
    fn cut_names_only_the_chosen_hosts() {
        let hosts = [host("a", "10.213.1.2"), host("b", "10.213.1.3")];
        let r = ruleset(&Fault::CutFrom(vec!["b".into()]), &hosts);
        assert!(r.contains("ip saddr { 10.213.1.3 } drop"), "{r}");
        assert!(!r.contains("10.213.1.2"), "{r}");
    }

    #[test]
    fn loss_is_a_percentage_of_packets() {
        let r = ruleset(&Fault::Loss(30), &[]);
        assert!(
            r.contains("iifname \"eth0\" numgen random mod 100 < 30 drop"),
            "{r}"
        );
        let all = ruleset(&Fault::Loss(250), &[]);
        assert!(all.contains("iifname \"eth0\" drop"), "{all}");
        assert!(!ruleset(&Fault::Loss(0), &[]).contains("drop"));
    }
}
