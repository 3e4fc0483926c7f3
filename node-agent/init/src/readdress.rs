//! The host's readdress line: a VM restored from a snapshot runs on a
//! new tap with a new pod IP and MAC, and the host writes this line to
//! its console so drover-init moves eth0 over (pure format and parse).

use crate::config::NetConfig;

/// The line's prefix.
pub const PREFIX: &str = "drover-init: readdress ";
/// What drover-init answers once eth0 has the new address.
pub const DONE: &str = "drover-init: readdressed";

/// eth0's new address, gateway and MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readdress {
    pub net: NetConfig,
    pub mac: [u8; 6],
}

impl Readdress {
    /// The console line (no newline).
    pub fn line(&self) -> String {
        let mac: Vec<String> = self.mac.iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{PREFIX}{} drover.mac={}",
            self.net.cmdline(),
            mac.join(":")
        )
    }

    /// Reads a console line: `None` if it is not a readdress line, an
    /// error naming the bad part if it is one but malformed.
    pub fn parse(line: &str) -> Option<Result<Readdress, String>> {
        let rest = line.trim().strip_prefix(PREFIX.trim_end())?;
        Some(parse_words(rest))
    }
}

fn parse_words(words: &str) -> Result<Readdress, String> {
    let net = NetConfig::from_cmdline(words)?.ok_or("readdress without drover.ip")?;
    let mac = words
        .split_whitespace()
        .find_map(|w| w.strip_prefix("drover.mac="))
        .ok_or("readdress without drover.mac")?;
    Ok(Readdress {
        net,
        mac: parse_mac(mac).ok_or_else(|| format!("drover.mac={mac}: want aa:bb:cc:dd:ee:ff"))?,
    })
}

/// `aa:bb:cc:dd:ee:ff` as bytes.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let bytes: Vec<u8> = s
        .split(':')
        .map(|p| (p.len() == 2).then(|| u8::from_str_radix(p, 16).ok())?)
        .collect::<Option<_>>()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn round_trips_and_names_what_is_wrong() {
        let r = Readdress {
            net: NetConfig {
                ip: Ipv4Addr::new(10, 88, 0, 9),
                prefix: 24,
                gateway: Some(Ipv4Addr::new(10, 88, 0, 1)),
            },
            mac: [2, 0xd0, 10, 88, 0, 9],
        };
        assert_eq!(
            r.line(),
            "drover-init: readdress drover.ip=10.88.0.9/24 drover.gw=10.88.0.1 drover.mac=02:d0:0a:58:00:09"
        );
        assert_eq!(Readdress::parse(&format!("{}\r", r.line())), Some(Ok(r)));
        assert_eq!(Readdress::parse("drover-init: stop"), None);
        assert_eq!(Readdress::parse("hello"), None);
        let bad = |l: &str| Readdress::parse(l).unwrap().unwrap_err();
        assert!(bad("drover-init: readdress drover.mac=02:00:00:00:00:01").contains("drover.ip"));
        assert!(bad("drover-init: readdress drover.ip=10.0.0.2/24").contains("drover.mac"));
        assert!(bad("drover-init: readdress drover.ip=10.0.0.2/24 drover.mac=zz").contains("zz"));
        assert!(
            bad("drover-init: readdress drover.ip=x drover.mac=02:00:00:00:00:01")
                .contains("drover.ip")
        );
        assert_eq!(parse_mac("02:00:00:00:00:1"), None);
    }
}
