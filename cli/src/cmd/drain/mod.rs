//! `drover drain NODE`: cordon the node, then evict its pods (respecting
//! their grace periods) and wait, bounded, until they are gone. Bare pods
//! need `--force`, DaemonSet pods `--ignore-daemonsets`, as with kubectl.

pub mod cordon;
pub mod plan;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use clap::Args;
use drover_proto::Kind;
use drover_proto::Resource;
use drover_proto::client::{Client, ClientError, DeleteOptions, ListOptions};
use drover_proto::types::Pod;

use super::rollout::parse_duration;
use plan::{DrainFlags, plan};

#[derive(Args)]
pub struct DrainArgs {
    /// The node's name.
    node: String,
    /// Also evict pods that no controller would re-create.
    #[arg(long)]
    force: bool,
    /// Leave DaemonSet-managed pods on the node instead of refusing.
    #[arg(long)]
    ignore_daemonsets: bool,
    /// Seconds each pod gets to stop; negative uses the pod's own
    /// terminationGracePeriodSeconds.
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    grace_period: i64,
    /// Give up waiting after this long (e.g. 90s, 5m).
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    timeout: Duration,
}

async fn pods_on(client: &Client, node: &str) -> Result<Vec<Pod>> {
    let opts = ListOptions {
        namespace: None,
        field_selector: format!("spec.nodeName={node}"),
        ..ListOptions::default()
    };
    Ok(client.list_as::<Pod>(&opts).await?.0)
}

pub async fn run(server: &str, args: DrainArgs) -> Result<()> {
    let client = super::connect(server).await?;
    let node = args.node.as_str();
    cordon::set_unschedulable(&client, node, true).await?;

    let pods = pods_on(&client, node).await?;
    let flags = DrainFlags {
        force: args.force,
        ignore_daemonsets: args.ignore_daemonsets,
    };
    let plan = plan(&pods, flags);
    for (pod, why) in &plan.skipped {
        eprintln!("Warning: ignoring pod {pod}: {why}");
    }
    if !plan.blocked.is_empty() {
        let list: Vec<String> = plan
            .blocked
            .iter()
            .map(|(pod, why)| format!("{pod}: {why}"))
            .collect();
        return Err(anyhow!(
            "cannot drain node/{node} (it stays cordoned):\n  {}",
            list.join("\n  ")
        ));
    }

    // Each pod by uid, so a new pod of the same name does not count as the old one.
    let by_id: BTreeMap<String, &Pod> = pods
        .iter()
        .map(|p| (format!("{}/{}", p.namespace(), p.name()), p))
        .collect();
    let mut waiting: BTreeMap<String, String> = BTreeMap::new();
    let opts = DeleteOptions {
        grace_period_seconds: (args.grace_period >= 0).then_some(args.grace_period),
        ..DeleteOptions::default()
    };
    for id in &plan.evict {
        let Some(pod) = by_id.get(id) else { continue };
        println!("evicting pod {id}");
        match client
            .delete(Kind::Pod, pod.namespace(), pod.name(), &opts)
            .await
        {
            Ok(_) | Err(ClientError::NotFound(_)) => {}
            Err(e) => return Err(anyhow!("evicting pod {id}: {e}")),
        }
        waiting.insert(pod.metadata.uid.clone().unwrap_or_default(), id.to_string());
    }

    let deadline = Instant::now() + args.timeout;
    loop {
        let present: Vec<String> = pods_on(&client, node)
            .await?
            .into_iter()
            .filter_map(|p| p.metadata.uid)
            .collect();
        let gone: Vec<String> = waiting
            .keys()
            .filter(|uid| !present.contains(uid))
            .cloned()
            .collect();
        for uid in gone {
            if let Some(id) = waiting.remove(&uid) {
                println!("pod/{} evicted", id.rsplit('/').next().unwrap_or(&id));
            }
        }
        if waiting.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            let left: Vec<&str> = waiting.values().map(String::as_str).collect();
            return Err(anyhow!(
                "drain of node/{node} timed out after {:?}; still terminating: {}",
                args.timeout,
                left.join(", ")
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("node/{node} drained");
    Ok(())
}
