//! Registering Nodes and renewing their heartbeats. Renewals of many nodes
//! (a hollow fleet) are spread evenly over the period, so 5,000 nodes cost
//! a steady 500 small writes a second rather than a burst every 10 s.

use std::time::Duration;

use drover_proto::Resource;
use drover_proto::client::{Client, ClientError};
use drover_proto::types::Node;
use drover_proto::types::node::NodeStatus;
use futures::StreamExt;

use super::node::renew_heartbeat;

/// How often each node's Ready condition is renewed (Kubernetes' default).
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(10);

/// Slots per period: renewals run in this many evenly spaced batches.
const SLOTS: usize = 50;

/// Creates `node`, or takes over an existing Node of that name (the
/// agent restarted): its status is replaced, its spec (taints, cordon,
/// pod CIDR set by the control plane) kept.
pub async fn register(client: &Client, node: &Node) -> Result<Node, ClientError> {
    let created = match client.create(&node.to_object()).await {
        Ok((o, _)) => o,
        Err(ClientError::AlreadyExists(_)) => {
            let mut existing: Node = client.get_as("", node.name()).await?;
            existing.status = node.status.clone();
            existing.metadata.resource_version = None;
            client.update_status(&existing.to_object()).await?
        }
        Err(e) => return Err(e),
    };
    Node::from_object(&created).map_err(|e| ClientError::Decode(e.to_string()))
}

/// Registers every node, `concurrency` at a time; returns those that failed.
pub async fn register_all(
    client: &Client,
    nodes: &[Node],
    concurrency: usize,
) -> Vec<(String, ClientError)> {
    futures::stream::iter(nodes)
        .map(|n| async move { (n.name().to_string(), register(client, n).await) })
        .buffer_unordered(concurrency.max(1))
        .filter_map(|(name, r)| async move { r.err().map(|e| (name, e)) })
        .collect()
        .await
}

async fn renew(client: &Client, name: &str, status: &mut NodeStatus) -> Result<(), ClientError> {
    renew_heartbeat(status, chrono::Utc::now());
    let mut node = Node::default();
    node.metadata.name = name.to_string();
    node.status = Some(status.clone());
    client.update_status(&node.to_object()).await.map(|_| ())
}

/// Renews every node's heartbeat each `period`, forever. A node deleted
/// behind the agent's back is registered again.
pub async fn run(client: Client, nodes: Vec<Node>, period: Duration, concurrency: usize) {
    let mut entries: Vec<(Node, NodeStatus)> = nodes
        .into_iter()
        .map(|n| {
            let s = n.status.clone().unwrap_or_default();
            (n, s)
        })
        .collect();
    let slot_len = (period / SLOTS as u32).max(Duration::from_millis(1));
    let mut tick = tokio::time::interval(slot_len);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut slot = 0usize;
    loop {
        tick.tick().await;
        let batch = entries
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| i % SLOTS == slot)
            .map(|(_, e)| e);
        futures::stream::iter(batch)
            .for_each_concurrent(concurrency.max(1), |(node, status)| {
                let client = &client;
                async move {
                    match renew(client, node.name(), status).await {
                        Ok(()) => {}
                        Err(ClientError::NotFound(_)) => {
                            if let Err(e) = register(client, node).await {
                                tracing::warn!("re-registering node {}: {e}", node.name());
                            }
                        }
                        Err(e) => tracing::warn!("heartbeat of node {}: {e}", node.name()),
                    }
                }
            })
            .await;
        slot = (slot + 1) % SLOTS;
    }
}
