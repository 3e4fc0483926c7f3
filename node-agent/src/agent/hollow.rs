//! Hollow nodes, as Kubernetes' kubemark has them: many simulated Nodes in
//! one process that register, heartbeat, and report the pods bound to them
//! Running and Ready without running anything, so the control plane and
//! scheduler can be measured at thousands of nodes on one machine.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_proto::client::{Client, ClientError, DeleteOptions, ListOptions};
use drover_proto::types::node::{NodeAddress, NodeSystemInfo};
use drover_proto::types::{Node, Pod};
use drover_proto::{Kind, Resource};

use super::heartbeat;
use super::informer::{self, PodCache};
use super::node::{NodeFacts, hollow_pod_cidr, node_object};
use super::pod_status::{self, PodFacts};
use super::queue::WorkQueue;

/// The label marking hollow nodes, so tools can tell them apart.
pub const HOLLOW_LABEL: &str = "drover.dev/hollow";

/// A hollow fleet's shape.
#[derive(Clone, Debug)]
pub struct HollowConfig {
    /// How many nodes.
    pub count: usize,
    /// Node names are this followed by the index.
    pub name_prefix: String,
    /// CPU per node, millicores.
    pub cpu_millis: i64,
    /// Memory per node, bytes.
    pub memory_bytes: i64,
    /// Pods per node.
    pub max_pods: i64,
    /// Heartbeat period.
    pub heartbeat: Duration,
    /// API calls in flight at once.
    pub concurrency: usize,
}

/// Registering the fleet failed.
#[derive(Debug, thiserror::Error)]
pub enum HollowError {
    /// Some nodes could not be registered.
    #[error("{failed} of {count} hollow nodes could not be registered; first: {first}")]
    Register {
        failed: usize,
        count: usize,
        first: ClientError,
    },
}

/// One simulated node's identity (pure).
pub fn hollow_facts(cfg: &HollowConfig, index: usize) -> NodeFacts {
    let name = format!("{}{index}", cfg.name_prefix);
    // 172.16.0.0/12 holds a million node addresses.
    let n = (u32::try_from(index).unwrap_or(u32::MAX) & 0x000f_ffff).saturating_add(1);
    let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(172, 16, 0, 0)) | n);
    NodeFacts {
        name: name.clone(),
        cpu_millis: cfg.cpu_millis,
        memory_bytes: cfg.memory_bytes,
        max_pods: cfg.max_pods,
        reserved_cpu_millis: 0,
        reserved_memory_bytes: 0,
        addresses: vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: name,
            },
        ],
        runtimes: vec!["container".into(), "vm".into()],
        node_info: NodeSystemInfo {
            kernel_version: "hollow".into(),
            os_image: "hollow".into(),
            architecture: std::env::consts::ARCH.into(),
            operating_system: "linux".into(),
            agent_version: drover_proto::VERSION.into(),
            ..NodeSystemInfo::default()
        },
        labels: BTreeMap::from([(HOLLOW_LABEL.to_string(), "true".to_string())]),
        // Asked of the control plane like a real node's would be: a fixed
        // range per index would collide between two fleets on one server.
        pod_cidr: None,
        agent_port: None,
    }
}

/// A fake address for the `serial`-th pod of the node with `index`
/// (pods come and go; wrapping within the /24 is fine for a simulation).
pub fn hollow_pod_ip(index: usize, serial: u32) -> String {
    let cidr = hollow_pod_cidr(index);
    let base = cidr.trim_end_matches(".0/24");
    format!("{base}.{}", 2 + serial % 253)
}

struct Fleet {
    client: Client,
    /// Node name → (index, node IP).
    nodes: HashMap<String, (usize, String)>,
    cache: PodCache,
    queue: WorkQueue,
    serials: Mutex<HashMap<usize, u32>>,
}

/// Registers the fleet, then heartbeats and serves its pods until the
/// process ends; `on_ready` is called once every node is registered.
pub async fn run(
    client: Client,
    cfg: HollowConfig,
    on_ready: impl FnOnce(usize, Duration),
) -> Result<(), HollowError> {
    let started = Instant::now();
    let now = chrono::Utc::now();
    let facts: Vec<NodeFacts> = (0..cfg.count).map(|i| hollow_facts(&cfg, i)).collect();
    let nodes: Vec<Node> = facts.iter().map(|f| node_object(f, now)).collect();
    let failed = heartbeat::register_all(&client, &nodes, cfg.concurrency).await;
    if let Some((_, first)) = failed.first() {
        return Err(HollowError::Register {
            failed: failed.len(),
            count: cfg.count,
            first: first.clone(),
        });
    }
    on_ready(cfg.count, started.elapsed());

    let fleet = Arc::new(Fleet {
        client: client.clone(),
        nodes: facts
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let ip = f
                    .addresses
                    .first()
                    .map(|a| a.address.clone())
                    .unwrap_or_default();
                (f.name.clone(), (i, ip))
            })
            .collect(),
        cache: PodCache::default(),
        queue: WorkQueue::default(),
        serials: Mutex::new(HashMap::new()),
    });
    let beats = tokio::spawn(heartbeat::run(
        client.clone(),
        nodes,
        cfg.heartbeat,
        cfg.concurrency,
    ));
    for _ in 0..cfg.concurrency.max(1) {
        let fleet = Arc::clone(&fleet);
        tokio::spawn(async move {
            loop {
                let key = fleet.queue.get().await;
                fleet.reconcile(&key).await;
                fleet.queue.done(&key);
            }
        });
    }
    // One watch over all pods, filtered in memory: a field selector per
    // node would mean thousands of watch streams on the server.
    let names: HashSet<String> = fleet.nodes.keys().cloned().collect();
    let f = Arc::clone(&fleet);
    informer::run(
        client,
        ListOptions::default(),
        Arc::clone(&fleet.cache),
        move |p: &Pod| p.spec.node_name.as_ref().is_some_and(|n| names.contains(n)),
        move |key| f.queue.add(key),
        || {},
    )
    .await;
    beats.abort();
    Ok(())
}

impl Fleet {
    /// Level-triggered: looks at the pod as cached now and does what is
    /// left to do (report it running, or finish its deletion).
    async fn reconcile(&self, key: &str) {
        let Some(pod) = informer::cached(&self.cache, key) else {
            return;
        };
        let result = if pod.metadata.deletion_timestamp.is_some() {
            // Nothing runs, so stopping takes no time.
            let opts = DeleteOptions {
                grace_period_seconds: Some(0),
                ..DeleteOptions::default()
            };
            match self
                .client
                .delete(Kind::Pod, pod.namespace(), pod.name(), &opts)
                .await
            {
                Err(ClientError::NotFound(_)) => Ok(()),
                r => r.map(|_| ()),
            }
        } else if pod_status::is_running_and_ready(pod.status.as_ref()) {
            Ok(())
        } else {
            self.report_running(&pod).await
        };
        match result {
            Ok(()) | Err(ClientError::NotFound(_)) => {}
            // The watch brings the newer pod, which queues the key again.
            Err(ClientError::Conflict(_)) => {}
            Err(e) => {
                tracing::warn!("hollow pod {key}: {e}");
                self.queue.add(key);
            }
        }
    }

    async fn report_running(&self, pod: &Pod) -> Result<(), ClientError> {
        let node = pod.spec.node_name.as_deref().unwrap_or_default();
        let Some((index, host_ip)) = self.nodes.get(node).cloned() else {
            return Ok(());
        };
        let pod_ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .unwrap_or_else(|| {
                let mut serials = self.serials.lock().unwrap_or_else(|p| p.into_inner());
                let serial = serials.entry(index).or_insert(0);
                *serial = serial.wrapping_add(1);
                hollow_pod_ip(index, *serial - 1)
            });
        let facts = PodFacts {
            pod_ip: Some(pod_ip),
            host_ip: Some(host_ip),
            start_time: None,
        };
        let mut updated = pod.clone();
        updated.status = Some(pod_status::all_running(pod, &facts, chrono::Utc::now()));
        self.client
            .update_status(&updated.to_object())
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_are_distinct_per_index() {
        let cfg = HollowConfig {
            count: 3,
            name_prefix: "hollow-".into(),
            cpu_millis: 4000,
            memory_bytes: 16 << 30,
            max_pods: 110,
            heartbeat: heartbeat::DEFAULT_PERIOD,
            concurrency: 8,
        };
        let a = hollow_facts(&cfg, 0);
        let b = hollow_facts(&cfg, 300);
        assert_eq!(a.name, "hollow-0");
        assert_eq!(a.addresses[0].address, "172.16.0.1");
        assert_eq!(b.addresses[0].address, "172.16.1.45");
        assert_eq!(b.pod_cidr, None);
        assert_eq!(hollow_pod_ip(300, 0), "10.65.44.2");
        assert_eq!(hollow_pod_ip(300, 253), "10.65.44.2");
    }
}
