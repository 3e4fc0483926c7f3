//! `deploy/NAME` or `deploy NAME`: what `scale` and `rollout` act on, and a
//! compare-and-set edit that retries when someone else wrote first.

use anyhow::{Result, anyhow};
use drover_proto::client::{Client, ClientError};
use drover_proto::{Kind, Object};

/// Resolves `["deploy/web"]` or `["deploy", "web"]`.
pub fn parse_target(words: &[String]) -> Result<(Kind, String)> {
    let (kind, name) = match words {
        [one] => one
            .split_once('/')
            .ok_or_else(|| anyhow!("expected TYPE/NAME or TYPE NAME, got {one:?}"))?,
        [kind, name] => (kind.as_str(), name.as_str()),
        _ => return Err(anyhow!("expected TYPE/NAME or TYPE NAME")),
    };
    Ok((super::parse_kind(kind)?, name.to_string()))
}

/// Reads, edits and writes back `kind/name`, re-reading on a conflict.
pub async fn edit(
    client: &Client,
    kind: Kind,
    namespace: &str,
    name: &str,
    mut f: impl FnMut(&mut Object) -> Result<()>,
) -> Result<Object> {
    for _ in 0..10 {
        let mut o = client.get(kind, namespace, name).await?;
        f(&mut o)?;
        match client.update(&o).await {
            Ok((stored, _)) => return Ok(stored),
            Err(ClientError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(anyhow!(
        "{}/{name}: kept changing while being edited; try again",
        kind.lower()
    ))
}

/// `deployment.apps/web`, as kubectl names objects in its confirmations.
pub fn qualified(kind: Kind, name: &str) -> String {
    match kind.group() {
        "" => format!("{}/{name}", kind.lower()),
        g => format!("{}.{g}/{name}", kind.lower()),
    }
}
