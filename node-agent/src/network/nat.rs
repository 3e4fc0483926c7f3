//! Outbound NAT for a node's pods: an nftables table of our own per bridge,
//! masquerading traffic from the pod CIDR that leaves it.

use std::io::Write;
use std::process::{Command, Stdio};

use super::cidr::Cidr;

/// The table name for `bridge` (family ip).
pub fn table(bridge: &str) -> String {
    format!(
        "drover_{}",
        bridge.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
    )
}

/// The `nft -f` script that (re)creates the table atomically.
pub fn ruleset(bridge: &str, cidr: &Cidr) -> String {
    let t = table(bridge);
    format!(
        "table ip {t}\n\
         delete table ip {t}\n\
         table ip {t} {{\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr {cidr} ip daddr != {cidr} masquerade\n\
         \t}}\n\
         }}\n"
    )
}

/// Applies the ruleset with `nft`.
pub fn apply(bridge: &str, cidr: &Cidr) -> std::io::Result<()> {
    nft(&["-f", "-"], Some(&ruleset(bridge, cidr)))
}

/// Removes the table (nothing to do if it is gone).
pub fn remove(bridge: &str) {
    let _ = nft(&["delete", "table", "ip", &table(bridge)], None);
}

fn nft(args: &[&str], input: Option<&str>) -> std::io::Result<()> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| std::io::Error::other(format!("running nft (install nftables): {e}")))?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "nft {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masquerades_only_traffic_leaving_the_pod_cidr() {
        let r = ruleset("drover0", &Cidr::parse("10.88.3.0/24").unwrap());
        assert!(r.starts_with("table ip drover_drover0\ndelete table ip drover_drover0\n"));
        assert!(r.contains("ip saddr 10.88.3.0/24 ip daddr != 10.88.3.0/24 masquerade"));
        assert_eq!(table("br-0.x"), "drover_br_0_x");
    }
}
