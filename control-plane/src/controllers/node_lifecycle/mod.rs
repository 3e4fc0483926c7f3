//! The node lifecycle controller: notices nodes whose agent stopped
//! heartbeating (Ready becomes Unknown, `node.kubernetes.io/unreachable`
//! NoExecute taint) or reports NotReady (`not-ready` taint), removes the
//! taint when the node is back, and evicts the pods of tainted nodes once
//! their toleration runs out, so their ReplicaSets replace them elsewhere.

pub mod eviction;
pub mod health;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_proto::client::{ClientError, DeleteOptions};
use drover_proto::types::pod::TaintEffect;
use drover_proto::types::{Node, Pod};
use drover_proto::{Kind, Resource, Time};
use futures::future::join_all;

use crate::controllers::api::ControllerApi;
use crate::controllers::error::ControllerError;
use crate::controllers::events::{EventRecorder, EventType};
use crate::controllers::runtime::clock::elapsed;
use crate::controllers::runtime::{
    Action, Cache, Clock, Handler, Notification, Reconciler, WorkQueue, key_of,
};
use health::{Health, Probe};

/// Deletions issued at once when a node's pods are evicted.
const EVICTION_CONCURRENCY: usize = 32;

/// Timings of the node lifecycle controller.
#[derive(Debug, Clone, Copy)]
pub struct NodeLifecycleConfig {
    /// Silence after which a node is unreachable (Kubernetes'
    /// `--node-monitor-grace-period`, 40 s).
    pub grace: Duration,
    /// How long pods that say nothing about the unreachable/not-ready taints
    /// stay on such a node (Kubernetes' DefaultTolerationSeconds is 300 s;
    /// ours is 30 s: replacing a web replica quickly matters more here).
    pub default_toleration: Duration,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        NodeLifecycleConfig {
            grace: Duration::from_secs(40),
            default_toleration: Duration::from_secs(30),
        }
    }
}

pub struct NodeLifecycleController<A: ControllerApi> {
    pub api: A,
    pub clock: Arc<dyn Clock>,
    pub nodes: Cache<Node>,
    pub pods: Cache<Pod>,
    pub queue: Arc<WorkQueue>,
    pub config: NodeLifecycleConfig,
    pub events: EventRecorder<A>,
    probes: Mutex<HashMap<String, Probe>>,
}

/// The cache key of the node called `name`.
pub fn node_key(name: &str) -> String {
    let mut n = Node::default();
    n.metadata.name = name.to_string();
    key_of(&n)
}

fn has_no_execute(node: &Node) -> bool {
    node.spec
        .taints
        .iter()
        .any(|t| t.effect == TaintEffect::NoExecute)
}

fn until(at: Time, now: Time) -> Duration {
    elapsed(now, at)
}

impl<A: ControllerApi> NodeLifecycleController<A> {
    pub fn new(
        api: A,
        clock: Arc<dyn Clock>,
        nodes: Cache<Node>,
        pods: Cache<Pod>,
        queue: Arc<WorkQueue>,
        config: NodeLifecycleConfig,
    ) -> Self {
        NodeLifecycleController {
            events: EventRecorder::new(api.clone(), clock.clone(), "node-controller"),
            api,
            clock,
            nodes,
            pods,
            queue,
            config,
            probes: Mutex::default(),
        }
    }

    /// Enqueues a node whenever it changes (every heartbeat).
    pub fn node_handler(&self) -> Handler<Node> {
        let queue = self.queue.clone();
        Arc::new(move |n| match n {
            Notification::Added(node)
            | Notification::Updated { new: node, .. }
            | Notification::Deleted(node) => queue.add(key_of(node.as_ref())),
        })
    }

    /// Enqueues the node of a pod that lands on (or changes on) a node with
    /// NoExecute taints, so its eviction time is computed.
    pub fn pod_handler(&self) -> Handler<Pod> {
        let queue = self.queue.clone();
        let nodes = self.nodes.clone();
        Arc::new(move |n| {
            let pod = match n {
                Notification::Added(p) | Notification::Updated { new: p, .. } => p,
                Notification::Deleted(_) => return,
            };
            if let Some(name) = pod.spec.node_name.as_deref() {
                let key = node_key(name);
                if nodes.get(&key).is_some_and(|node| has_no_execute(&node)) {
                    queue.add(key);
                }
            }
        })
    }

    fn probe(&self, key: &str, node: &Node, now: Time) -> Probe {
        let mut probes = self.probes.lock().unwrap_or_else(|p| p.into_inner());
        let probe = health::observe(probes.get(key), node.status.as_ref(), now);
        probes.insert(key.to_string(), probe.clone());
        probe
    }

    /// Writes Ready=Unknown; returns the node as stored.
    async fn mark_unknown(&self, node: Node, now: Time) -> Result<Node, ControllerError> {
        let Some(status) = health::mark_unknown(node.status.as_ref(), now) else {
            return Ok(node);
        };
        let mut updated = node.clone();
        updated.status = Some(status);
        // Compare-and-set: a heartbeat that just arrived wins.
        let stored = self
            .api
            .update_status(&updated.to_object())
            .await
            .map_err(|e| {
                ControllerError::api("marking unknown", format!("node/{}", node.name()), e)
            })?;
        self.events
            .record(
                &node,
                EventType::Warning,
                "NodeNotReady",
                format!(
                    "Node {} status is now: NodeNotReady (agent stopped posting status)",
                    node.name()
                ),
            )
            .await;
        decode(&stored, node.name())
    }

    /// Adds or removes the health taints; returns the node as stored.
    async fn sync_taints(
        &self,
        node: Node,
        health: Health,
        now: Time,
    ) -> Result<Node, ControllerError> {
        let taints = health::desired_taints(&node.spec.taints, health, now);
        if taints == node.spec.taints {
            return Ok(node);
        }
        let mut updated = node.clone();
        updated.spec.taints = taints;
        let stored =
            self.api.update(&updated.to_object()).await.map_err(|e| {
                ControllerError::api("tainting", format!("node/{}", node.name()), e)
            })?;
        if health == Health::Ready {
            self.events
                .record(
                    &node,
                    EventType::Normal,
                    "NodeReady",
                    format!("Node {} status is now: NodeReady", node.name()),
                )
                .await;
        }
        decode(&stored, node.name())
    }

    /// Deletes one pod: gracefully for an eviction, at once otherwise.
    async fn delete_pod(
        &self,
        pod: Arc<Pod>,
        eviction: bool,
    ) -> (Arc<Pod>, bool, Result<drover_proto::Object, ClientError>) {
        let opts = DeleteOptions {
            grace_period_seconds: (!eviction).then_some(0),
            ..DeleteOptions::default()
        };
        let r = self
            .api
            .delete(Kind::Pod, pod.namespace(), pod.name(), &opts)
            .await;
        (pod, eviction, r)
    }

    /// Evicts the pods of a node with NoExecute taints whose time is up, and
    /// force-deletes pods stuck terminating on an unreachable node (nobody is
    /// there to finish them). Returns when to look again.
    async fn evict(
        &self,
        node: &Node,
        health: Health,
        now: Time,
    ) -> Result<Option<Duration>, ControllerError> {
        if !has_no_execute(node) {
            return Ok(None);
        }
        // Kubernetes' "full disruption" rule: when no node is ready the
        // problem is more likely ours (network, control plane) than the
        // nodes'; evicting everything would only make it worse.
        if !self
            .nodes
            .all()
            .iter()
            .any(|n| n.is_ready() && !has_no_execute(n))
        {
            return Ok(Some(Duration::from_secs(5)));
        }
        let mut next: Option<Duration> = None;
        let mut soonest = |d: Duration| next = Some(next.map_or(d, |n: Duration| n.min(d)));
        let mut evict = Vec::new();
        let mut force = Vec::new();
        for pod in self.pods.all() {
            if pod.spec.node_name.as_deref() != Some(node.name()) {
                continue;
            }
            match pod.metadata.deletion_timestamp {
                None => match eviction::eviction_time(
                    &pod,
                    &node.spec.taints,
                    self.config.default_toleration,
                    now,
                ) {
                    Some(at) if at <= now => evict.push(pod),
                    Some(at) => soonest(until(at, now)),
                    None => {}
                },
                Some(at) if health == Health::Unreachable => {
                    if at <= now {
                        force.push(pod);
                    } else {
                        soonest(until(at, now));
                    }
                }
                Some(_) => {}
            }
        }
        let jobs: Vec<(Arc<Pod>, bool)> = evict
            .into_iter()
            .map(|p| (p, true))
            .chain(force.into_iter().map(|p| (p, false)))
            .collect();
        let mut results = Vec::with_capacity(jobs.len());
        for chunk in jobs.chunks(EVICTION_CONCURRENCY) {
            let batch = chunk
                .iter()
                .map(|(p, eviction)| self.delete_pod(p.clone(), *eviction));
            results.extend(join_all(batch).await);
        }
        let mut first_error = None;
        for (pod, eviction, r) in results {
            match r {
                Ok(_) if eviction => {
                    let message = format!(
                        "Marking for deletion Pod {}/{}",
                        pod.namespace(),
                        pod.name()
                    );
                    self.events
                        .record(
                            pod.as_ref(),
                            EventType::Normal,
                            "TaintManagerEviction",
                            message,
                        )
                        .await;
                }
                Ok(_) | Err(ClientError::NotFound(_)) => {}
                Err(e) => {
                    first_error.get_or_insert(ControllerError::api(
                        "evicting",
                        format!("pod/{}", pod.name()),
                        e,
                    ));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(next),
        }
    }
}

fn decode(o: &drover_proto::Object, name: &str) -> Result<Node, ControllerError> {
    Node::from_object(o).map_err(|e| ControllerError::Invalid {
        object: format!("node/{name}"),
        message: e.to_string(),
    })
}

impl<A: ControllerApi> Reconciler for NodeLifecycleController<A> {
    fn name(&self) -> &'static str {
        "node-lifecycle"
    }

    async fn reconcile(&self, key: &str) -> Result<Action, ControllerError> {
        let Some(node) = self.nodes.get(key) else {
            self.probes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(key);
            return Ok(Action::await_change());
        };
        let now = self.clock.now();
        let probe = self.probe(key, &node, now);
        let health = health::assess(&probe, self.config.grace, now);
        let mut node = node.as_ref().clone();
        if health == Health::Unreachable {
            node = self.mark_unknown(node, now).await?;
        }
        node = self.sync_taints(node, health, now).await?;
        let evict_again = self.evict(&node, health, now).await?;
        // A silent node turns unreachable with time alone: look again then.
        let lapse = health::until_lapse(&probe, self.config.grace, now)
            .filter(|_| health != Health::Unreachable)
            .map(|d| d + Duration::from_millis(100));
        let next = [lapse, evict_again].into_iter().flatten().min();
        Ok(next.map_or(Action::await_change(), Action::requeue))
    }
}
