//! What the scheduler knows about one node: its facts from the Node object and
//! the totals of the pods bound to it.

use std::collections::{BTreeMap, HashMap};

use drover_proto::types::Node;
use drover_proto::types::node::Taint;
use drover_proto::types::pod::Runtime;

use crate::resources::Resources;

/// Label Kubernetes gives a node's zone; used for spreading replicas.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// Label naming a node's host; synthesised from the node name when absent so
/// per-node topology constraints work on every node.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// The scheduling-relevant parts of a Node object.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeFacts {
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    /// `status.runtimes`; empty means an agent that predates the field (containers only).
    pub runtimes: Vec<String>,
    offers_container: bool,
    offers_vm: bool,
    pub allocatable: Resources,
    /// Image name → size in bytes, from `status.images`.
    pub images: HashMap<String, i64>,
}

impl NodeFacts {
    pub fn from_node(node: &Node) -> NodeFacts {
        let mut labels = node.metadata.labels.clone();
        labels
            .entry(HOSTNAME_LABEL.to_string())
            .or_insert_with(|| node.metadata.name.clone());
        let status = node.status.as_ref();
        let runtimes = status.map(|s| s.runtimes.clone()).unwrap_or_default();
        let images = status
            .map(|s| {
                s.images
                    .iter()
                    .flat_map(|i| {
                        i.names
                            .iter()
                            .map(move |n| (normalize_image(n), i.size_bytes))
                    })
                    .collect()
            })
            .unwrap_or_default();
        NodeFacts {
            labels,
            taints: node.spec.taints.clone(),
            unschedulable: node.spec.unschedulable,
            runtimes: runtimes.clone(),
            // Precomputed: the runtime filter runs on every node for every pod.
            offers_container: runtimes.is_empty() || runtimes.iter().any(|r| r == "container"),
            offers_vm: runtimes.iter().any(|r| r == "vm"),
            allocatable: Resources::allocatable(node),
            images,
        }
    }

    /// Whether pods of `runtime` can run here.
    pub fn offers(&self, runtime: Runtime) -> bool {
        match runtime {
            Runtime::Container => self.offers_container,
            Runtime::Vm => self.offers_vm,
        }
    }
}

/// `nginx` → `nginx:latest`, so pod images and node images compare equal.
pub fn normalize_image(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || last.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// One node slot in the snapshot. `facts` is `None` for a placeholder that
/// holds pods bound to a node the snapshot has not seen (yet, or any more).
#[derive(Debug, Clone)]
pub struct NodeInfo {
    pub name: String,
    /// Index in the snapshot's node table; stable while the node exists.
    pub(crate) slot: u32,
    pub(crate) facts: Option<NodeFacts>,
    /// Interned value of the zone label, so spreading compares integers.
    pub(crate) zone: Option<u32>,
    /// (key id, value id) of every label, interned by the snapshot so the
    /// topology filters compare integers instead of strings.
    pub(crate) label_ids: Vec<(u32, u32)>,
    /// Sum of the requests of the pods bound here.
    pub requested: Resources,
    /// Same with zero requests defaulted, for scoring.
    pub non_zero_requested: Resources,
    pub(crate) pods: Vec<u32>,
    /// Position in the snapshot's list of schedulable nodes.
    pub(crate) order_pos: Option<usize>,
}

impl NodeInfo {
    pub(crate) fn new(name: &str, slot: u32) -> NodeInfo {
        NodeInfo {
            name: name.to_string(),
            slot,
            facts: None,
            zone: None,
            label_ids: Vec::new(),
            requested: Resources::default(),
            non_zero_requested: Resources::default(),
            pods: Vec::new(),
            order_pos: None,
        }
    }

    pub fn facts(&self) -> Option<&NodeFacts> {
        self.facts.as_ref()
    }

    /// What the node offers; zero for a placeholder.
    pub fn allocatable(&self) -> Resources {
        self.facts
            .as_ref()
            .map(|f| f.allocatable)
            .unwrap_or_default()
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.facts.as_ref()?.labels.get(key).map(String::as_str)
    }

    /// The interned value of the label with interned key `key`.
    pub fn label_id(&self, key: Option<u32>) -> Option<u32> {
        let key = key?;
        self.label_ids
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    pub fn labels(&self) -> Option<&BTreeMap<String, String>> {
        self.facts.as_ref().map(|f| &f.labels)
    }

    pub fn num_pods(&self) -> usize {
        self.pods.len()
    }
}
