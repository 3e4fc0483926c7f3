//! The guest's config: what to run and how, written by the agent into
//! the initramfs as `/drover/config` (one `key value` per line, values
//! escaped so any byte but NUL survives), and the network settings init
//! reads from the kernel command line.

use std::net::Ipv4Addr;

/// Where the agent puts the config inside the initramfs.
pub const CONFIG_PATH: &str = "/drover/config";
/// Kernel modules to load, one file name per line, in dependency order.
pub const MODULES_ORDER: &str = "/drover/modules/order";
/// The directory holding those modules.
pub const MODULES_DIR: &str = "/drover/modules";

/// What init runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestConfig {
    /// The guest's host name.
    pub hostname: String,
    /// The command: program and arguments.
    pub args: Vec<String>,
    /// `NAME=VALUE` pairs, the image's then the pod's.
    pub env: Vec<(String, String)>,
    /// Working directory (`/` when empty).
    pub cwd: String,
    /// User and group to run as.
    pub uid: u32,
    pub gid: u32,
    /// Name servers for `/etc/resolv.conf` (none: the file is left alone).
    pub nameservers: Vec<String>,
    /// Search domains for `/etc/resolv.conf`.
    pub searches: Vec<String>,
}

/// A config line init could not understand.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} line {}: {}", CONFIG_PATH, self.line, self.message)
    }
}

fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            other => return Err(format!("bad escape \\{}", other.unwrap_or(' '))),
        }
    }
    Ok(out)
}

impl GuestConfig {
    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |k: &str, v: &str| {
            out.push_str(k);
            out.push(' ');
            out.push_str(&escape(v));
            out.push('\n');
        };
        line("hostname", &self.hostname);
        line("cwd", &self.cwd);
        line("uid", &self.uid.to_string());
        line("gid", &self.gid.to_string());
        for a in &self.args {
            line("arg", a);
        }
        for (k, v) in &self.env {
            line("env", &format!("{k}={v}"));
        }
        for n in &self.nameservers {
            line("nameserver", n);
        }
        for s in &self.searches {
            line("search", s);
        }
        out
    }

    /// Parses the file's text; unknown keys are errors (a newer agent
    /// with an older init must not be silently half-understood).
    pub fn parse(text: &str) -> Result<GuestConfig, ConfigError> {
        let mut c = GuestConfig::default();
        for (i, raw) in text.lines().enumerate() {
            let err = |message: String| ConfigError {
                line: i + 1,
                message,
            };
            if raw.is_empty() {
                continue;
            }
            let (key, value) = raw.split_once(' ').unwrap_or((raw, ""));
            let value = unescape(value).map_err(err)?;
            let number = |v: &str| {
                v.parse::<u32>()
                    .map_err(|_| err(format!("{key}: {v:?} is not a number")))
            };
            match key {
                "hostname" => c.hostname = value,
                "cwd" => c.cwd = value,
                "uid" => c.uid = number(&value)?,
                "gid" => c.gid = number(&value)?,
                "arg" => c.args.push(value),
                "env" => {
                    let (k, v) = value
                        .split_once('=')
                        .ok_or_else(|| err(format!("env {value:?} has no '='")))?;
                    c.env.push((k.to_string(), v.to_string()));
                }
                "nameserver" => c.nameservers.push(value),
                "search" => c.searches.push(value),
                other => return Err(err(format!("unknown key {other:?}"))),
            }
        }
        Ok(c)
    }

    /// `/etc/resolv.conf` for the guest, if it has name servers.
    pub fn resolv_conf(&self) -> Option<String> {
        if self.nameservers.is_empty() {
            return None;
        }
        let mut out = String::new();
        for n in &self.nameservers {
            out.push_str(&format!("nameserver {n}\n"));
        }
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        Some(out)
    }
}

/// The guest's eth0, from `drover.ip=ADDR/PREFIX drover.gw=ADDR` on the
/// kernel command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetConfig {
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
}

impl NetConfig {
    /// The kernel command line words for this config.
    pub fn cmdline(&self) -> String {
        let mut s = format!("drover.ip={}/{}", self.ip, self.prefix);
        if let Some(gw) = self.gateway {
            s.push_str(&format!(" drover.gw={gw}"));
        }
        s
    }

    /// Reads it from a kernel command line; `Ok(None)` when there is no
    /// `drover.ip` (no network).
    pub fn from_cmdline(cmdline: &str) -> Result<Option<NetConfig>, String> {
        let mut ip = None;
        let mut gateway = None;
        for word in cmdline.split_ascii_whitespace() {
            if let Some(v) = word.strip_prefix("drover.ip=") {
                let (addr, prefix) = v
                    .split_once('/')
                    .ok_or_else(|| format!("drover.ip={v}: want ADDRESS/PREFIX"))?;
                let addr: Ipv4Addr = addr
                    .parse()
                    .map_err(|_| format!("drover.ip={v}: bad address"))?;
                let prefix: u8 = prefix
                    .parse()
                    .ok()
                    .filter(|p| *p <= 32)
                    .ok_or_else(|| format!("drover.ip={v}: bad prefix"))?;
                ip = Some((addr, prefix));
            } else if let Some(v) = word.strip_prefix("drover.gw=") {
                gateway = Some(
                    v.parse()
                        .map_err(|_| format!("drover.gw={v}: bad address"))?,
                );
            }
        }
        Ok(ip.map(|(ip, prefix)| NetConfig {
            ip,
            prefix,
            gateway,
        }))
    }

    /// The netmask for the prefix.
    pub fn netmask(&self) -> Ipv4Addr {
        let bits = u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0);
        Ipv4Addr::from(bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_awkward_values() {
        let c = GuestConfig {
            hostname: "web-0".into(),
            args: vec![
                "sh".into(),
                "-c".into(),
                "echo a\\nb\n\rc; x=1 y".into(),
                "".into(),
            ],
            env: vec![
                ("PATH".into(), "/bin:/sbin".into()),
                ("E".into(), "a=b c".into()),
            ],
            cwd: "/srv dir".into(),
            uid: 65534,
            gid: 7,
            nameservers: vec!["10.0.0.10".into()],
            searches: vec!["default.svc".into(), "svc".into()],
        };
        assert_eq!(GuestConfig::parse(&c.render()), Ok(c.clone()));
        assert_eq!(
            c.resolv_conf().as_deref(),
            Some("nameserver 10.0.0.10\nsearch default.svc svc\n")
        );
        assert_eq!(GuestConfig::default().resolv_conf(), None);
    }

    #[test]
    fn bad_config_lines_name_the_line() {
        let e = GuestConfig::parse("arg x\nbogus 1\n").expect_err("unknown key");
        assert_eq!(e.line, 2);
        assert!(e.to_string().contains("bogus"), "{e}");
        assert!(GuestConfig::parse("uid -1").is_err());
        assert!(GuestConfig::parse("env NOEQUALS").is_err());
        assert!(GuestConfig::parse("arg bad\\q").is_err());
        assert!(GuestConfig::parse("arg trailing\\").is_err());
    }

    #[test]
    fn network_comes_from_the_kernel_command_line() {
        let n = NetConfig {
            ip: Ipv4Addr::new(10, 88, 0, 5),
            prefix: 24,
            gateway: Some(Ipv4Addr::new(10, 88, 0, 1)),
        };
        let line = format!("console=ttyS0 quiet {} panic=-1", n.cmdline());
        assert_eq!(NetConfig::from_cmdline(&line), Ok(Some(n)));
        assert_eq!(n.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(NetConfig::from_cmdline("console=ttyS0"), Ok(None));
        for bad in [
            "drover.ip=10.0.0.1",
            "drover.ip=10.0.0.1/33",
            "drover.ip=x/8",
            "drover.ip=1.2.3.4/8 drover.gw=nope",
        ] {
            assert!(NetConfig::from_cmdline(bad).is_err(), "{bad}");
        }
        let zero = NetConfig { prefix: 0, ..n };
        assert_eq!(zero.netmask(), Ipv4Addr::UNSPECIFIED);
        let host = NetConfig { prefix: 32, ..n };
        assert_eq!(host.netmask(), Ipv4Addr::BROADCAST);
    }
}
