//! Running `nft` (Debian's nftables): rulesets go in as one `-f -`
//! transaction, so a change applies whole or not at all.

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `nft ARGS`, feeding `input` on stdin; returns stdout.
pub fn run(args: &[&str], input: Option<&str>) -> std::io::Result<String> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| std::io::Error::other(format!("running nft (install nftables): {e}")))?;
    if let Some(mut stdin) = child.stdin.take()
        && let Some(text) = input
    {
        stdin.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(std::io::Error::other(format!(
            "nft {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
