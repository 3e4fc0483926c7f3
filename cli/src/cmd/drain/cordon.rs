//! `drover cordon|uncordon NODE`: mark a node (un)schedulable.

use anyhow::Result;
use clap::Args;
use drover_proto::Kind;
use drover_proto::client::Client;

use crate::cmd::target::edit;

#[derive(Args)]
pub struct CordonArgs {
    /// The node's name.
    pub node: String,
}

/// Sets `spec.unschedulable`; prints what changed as kubectl does.
pub async fn set_unschedulable(client: &Client, node: &str, unschedulable: bool) -> Result<()> {
    let current = client.get(Kind::Node, "", node).await?;
    let was = current
        .body
        .get("spec")
        .and_then(|s| s.get("unschedulable"))
        .and_then(|u| u.as_bool())
        .unwrap_or(false);
    let verb = if unschedulable {
        "cordoned"
    } else {
        "uncordoned"
    };
    if was == unschedulable {
        println!("node/{node} already {verb}");
        return Ok(());
    }
    edit(client, Kind::Node, "", node, |o| {
        let spec = o
            .body
            .entry("spec")
            .or_insert_with(|| serde_json::json!({}));
        spec["unschedulable"] = serde_json::json!(unschedulable);
        Ok(())
    })
    .await?;
    println!("node/{node} {verb}");
    Ok(())
}

pub async fn run(server: &str, args: CordonArgs, unschedulable: bool) -> Result<()> {
    let client = crate::cmd::connect(server).await?;
    set_unschedulable(&client, &args.node, unschedulable).await
}
