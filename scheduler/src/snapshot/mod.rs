//! The scheduler's view of the cluster: node infos with requested totals, the
//! pods bound to each, and the indexes filters and scores need (labels,
//! topology domains, images, workload owners, anti-affinity terms). Updated
//! incrementally from watch events and by "assume" at bind time; never rebuilt.

mod anti_terms;
pub mod fast_hash;
mod node_info;
mod pod_info;

use std::collections::{BTreeMap, HashMap};

use drover_proto::selector::{LabelSelector, Selector};
use drover_proto::types::{Node, Pod};

use anti_terms::AntiTermRegistry;
pub(crate) use anti_terms::ExistingTerm;
use fast_hash::{FastMap, FastSet};
pub use node_info::{HOSTNAME_LABEL, NodeFacts, NodeInfo, ZONE_LABEL, normalize_image};
pub(crate) use pod_info::resolve_namespaces;
pub use pod_info::{PodInfo, pod_key};

/// Where a workload's (one owner's) replicas run.
#[derive(Debug, Default)]
pub(crate) struct OwnerCounts {
    pub per_node: FastMap<u32, u32>,
    pub per_zone: FastMap<u32, u32>,
}

type LabelIndex = HashMap<String, HashMap<String, HashMap<String, FastSet<u32>>>>;

/// Incrementally maintained cluster state that [`crate::schedule`] reads.
#[derive(Debug, Default)]
pub struct ClusterSnapshot {
    nodes: Vec<Option<NodeInfo>>,
    free_node_slots: Vec<u32>,
    node_slots: HashMap<String, u32>,
    /// Slots of nodes with facts (real nodes), the order filters walk.
    order: Vec<u32>,
    pods: Vec<Option<PodInfo>>,
    free_pod_slots: Vec<u32>,
    pod_ids: HashMap<String, u32>,
    namespace_pods: HashMap<String, FastSet<u32>>,
    /// namespace → label key → value → pods.
    label_index: LabelIndex,
    /// Topology key → value → number of nodes in that domain.
    topology: HashMap<String, HashMap<String, u32>>,
    /// Image → number of nodes that have it.
    image_nodes: HashMap<String, u32>,
    owners: HashMap<String, OwnerCounts>,
    anti_terms: AntiTermRegistry,
    /// Zone label value → interned id (never shrinks: zones are few).
    zone_ids: HashMap<String, u32>,
    /// Node label keys and values → interned ids (never shrink: node labels
    /// are few distinct strings).
    label_keys: HashMap<String, u32>,
    label_values: HashMap<String, u32>,
}

impl ClusterSnapshot {
    pub fn new() -> ClusterSnapshot {
        ClusterSnapshot::default()
    }

    /// Number of real (registered) nodes.
    pub fn num_nodes(&self) -> usize {
        self.order.len()
    }

    /// Number of pods bound or assumed.
    pub fn num_pods(&self) -> usize {
        self.pod_ids.len()
    }

    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        let slot = *self.node_slots.get(name)?;
        self.node_at(slot).filter(|n| n.facts.is_some())
    }

    pub(crate) fn node_at(&self, slot: u32) -> Option<&NodeInfo> {
        self.nodes.get(slot as usize)?.as_ref()
    }

    /// Real nodes in the snapshot's stable walk order.
    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.order.iter().filter_map(|&s| self.node_at(s))
    }

    pub(crate) fn order(&self) -> &[u32] {
        &self.order
    }

    pub fn pod(&self, key: &str) -> Option<&PodInfo> {
        self.pod_at(*self.pod_ids.get(key)?)
    }

    pub(crate) fn pod_at(&self, id: u32) -> Option<&PodInfo> {
        self.pods.get(id as usize)?.as_ref()
    }

    /// Pods bound to `node`.
    pub fn pods_on<'a>(&'a self, node: &'a NodeInfo) -> impl Iterator<Item = &'a PodInfo> + 'a {
        node.pods.iter().filter_map(|&id| self.pod_at(id))
    }

    /// Number of nodes per value of `topology_key`.
    pub fn domains(&self, topology_key: &str) -> Option<&HashMap<String, u32>> {
        self.topology.get(topology_key)
    }

    pub(crate) fn image_node_count(&self, image: &str) -> u32 {
        self.image_nodes.get(image).copied().unwrap_or(0)
    }

    pub(crate) fn owner_counts(&self, owner: &str) -> Option<&OwnerCounts> {
        self.owners.get(owner)
    }

    pub(crate) fn anti_affinity_terms<'a>(
        &'a self,
        labels: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'a ExistingTerm> + 'a {
        self.anti_terms.candidates(labels)
    }

    /// Calls `f` with every pod in `namespaces` matching `selector`, walking
    /// the smallest label index bucket rather than every pod.
    pub(crate) fn for_each_matching_pod(
        &self,
        namespaces: &[String],
        label_selector: &LabelSelector,
        selector: &Selector,
        mut f: impl FnMut(&PodInfo),
    ) {
        for ns in namespaces {
            let bucket = label_selector
                .match_labels
                .iter()
                .map(|(k, v)| {
                    self.label_index
                        .get(ns)
                        .and_then(|m| m.get(k))
                        .and_then(|m| m.get(v))
                })
                .min_by_key(|b| b.map_or(0, |s| s.len()));
            let ids = match bucket {
                Some(Some(ids)) => ids,
                Some(None) => continue,
                None => match self.namespace_pods.get(ns) {
                    Some(ids) => ids,
                    None => continue,
                },
            };
            for &id in ids {
                if let Some(p) = self.pod_at(id)
                    && selector.matches(&p.labels)
                {
                    f(p);
                }
            }
        }
    }

    /// Adds or updates a node.
    pub fn upsert_node(&mut self, node: &Node) {
        let facts = NodeFacts::from_node(node);
        let slot = self.node_slot(&node.metadata.name);
        let Some(info) = self.nodes.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        let old = info.facts.take();
        let labels_changed = old.as_ref().map(|f| &f.labels) != Some(&facts.labels);
        if let Some(old) = &old {
            unindex_node_facts(&mut self.topology, &mut self.image_nodes, old);
        }
        index_node_facts(&mut self.topology, &mut self.image_nodes, &facts);
        if labels_changed {
            // Domain-dependent pod indexes (zones, anti-affinity terms) must be
            // recomputed under the new labels: detach the pods, then reattach.
            let ids = info.pods.clone();
            let detached: Vec<PodInfo> = ids.iter().filter_map(|&id| self.detach(id)).collect();
            let zone = self.intern_zone(&facts);
            let label_ids = self.intern_labels(&facts);
            if let Some(info) = self.nodes.get_mut(slot as usize).and_then(Option::as_mut) {
                info.facts = Some(facts);
                info.zone = zone;
                info.label_ids = label_ids;
            }
            for p in detached {
                self.attach(p);
            }
        } else {
            info.facts = Some(facts);
        }
        if let Some(info) = self.nodes.get_mut(slot as usize).and_then(Option::as_mut)
            && info.order_pos.is_none()
        {
            info.order_pos = Some(self.order.len());
            self.order.push(slot);
        }
    }

    /// The interned id of a label key, if any node ever had it.
    pub(crate) fn key_id(&self, key: &str) -> Option<u32> {
        self.label_keys.get(key).copied()
    }

    /// The interned id of a label value, if any node ever had it.
    #[cfg(test)]
    pub(crate) fn value_id(&self, value: &str) -> Option<u32> {
        self.label_values.get(value).copied()
    }

    fn intern_labels(&mut self, facts: &NodeFacts) -> Vec<(u32, u32)> {
        let mut ids = Vec::with_capacity(facts.labels.len());
        for (k, v) in &facts.labels {
            let next = self.label_keys.len() as u32;
            let k = *self.label_keys.entry(k.clone()).or_insert(next);
            let next = self.label_values.len() as u32;
            let v = *self.label_values.entry(v.clone()).or_insert(next);
            ids.push((k, v));
        }
        ids
    }

    fn intern_zone(&mut self, facts: &NodeFacts) -> Option<u32> {
        let zone = facts.labels.get(ZONE_LABEL)?;
        let next = self.zone_ids.len() as u32;
        Some(*self.zone_ids.entry(zone.clone()).or_insert(next))
    }

    /// Removes a node; its pods stay accounted on a placeholder until they go.
    pub fn remove_node(&mut self, name: &str) {
        let Some(&slot) = self.node_slots.get(name) else {
            return;
        };
        let Some(info) = self.nodes.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        if let Some(pos) = info.order_pos.take() {
            self.order.swap_remove(pos);
            if let Some(&moved) = self.order.get(pos)
                && let Some(Some(m)) = self.nodes.get_mut(moved as usize)
            {
                m.order_pos = Some(pos);
            }
        }
        let Some(info) = self.nodes.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        if info.facts.is_some() {
            // Detach while the node's labels are still known, so domain
            // counts are decremented where they were incremented.
            let ids = info.pods.clone();
            let detached: Vec<PodInfo> = ids.iter().filter_map(|&id| self.detach(id)).collect();
            if let Some(info) = self.nodes.get_mut(slot as usize).and_then(Option::as_mut)
                && let Some(old) = info.facts.take()
            {
                info.zone = None;
                info.label_ids.clear();
                unindex_node_facts(&mut self.topology, &mut self.image_nodes, &old);
            }
            for p in detached {
                self.attach(p);
            }
        }
        self.release_node_if_empty(slot);
    }

    /// Adds, updates or drops a pod according to its current object: pods with
    /// a `spec.nodeName` that are not terminal are accounted on their node.
    pub fn upsert_pod(&mut self, pod: &Pod) {
        let key = pod_key(pod);
        match pod.spec.node_name.as_deref() {
            Some(node) if !node.is_empty() && !pod.is_terminal() => {
                self.remove_pod(&key);
                self.attach(PodInfo::from_pod(pod, node));
            }
            _ => self.remove_pod(&key),
        }
    }

    /// Accounts `pod` on `node` before the bind is confirmed, so the next pod
    /// scheduled sees it (kube-scheduler's "assume").
    pub fn assume(&mut self, pod: &Pod, node: &str) {
        self.remove_pod(&pod_key(pod));
        self.attach(PodInfo::from_pod(pod, node));
    }

    /// Drops a pod by `ns/name` key (deleted, or an assumed bind that failed).
    pub fn remove_pod(&mut self, key: &str) {
        if let Some(&id) = self.pod_ids.get(key)
            && let Some(info) = self.detach(id)
        {
            self.pod_ids.remove(key);
            self.free_pod_slots.push(id);
            self.release_node_if_empty(info.node_slot);
        }
    }

    fn node_slot(&mut self, name: &str) -> u32 {
        if let Some(&s) = self.node_slots.get(name) {
            return s;
        }
        let slot = match self.free_node_slots.pop() {
            Some(s) => {
                self.nodes[s as usize] = Some(NodeInfo::new(name, s));
                s
            }
            None => {
                let s = self.nodes.len() as u32;
                self.nodes.push(Some(NodeInfo::new(name, s)));
                s
            }
        };
        self.node_slots.insert(name.to_string(), slot);
        slot
    }

    fn release_node_if_empty(&mut self, slot: u32) {
        let Some(Some(info)) = self.nodes.get(slot as usize) else {
            return;
        };
        if info.facts.is_none() && info.pods.is_empty() {
            self.node_slots.remove(&info.name);
            self.nodes[slot as usize] = None;
            self.free_node_slots.push(slot);
        }
    }

    /// Puts a pod into every index (a new id if it has none yet).
    fn attach(&mut self, mut info: PodInfo) {
        let slot = self.node_slot(&info.node_name);
        let term_keys: Vec<Option<u32>> = info
            .anti_affinity
            .iter()
            .map(|t| self.key_id(&t.topology_key))
            .collect();
        info.node_slot = slot;
        let key = info.key();
        let id = match self.pod_ids.get(&key) {
            Some(&id) => id,
            None => {
                let id = match self.free_pod_slots.pop() {
                    Some(id) => id,
                    None => {
                        self.pods.push(None);
                        (self.pods.len() - 1) as u32
                    }
                };
                self.pod_ids.insert(key, id);
                id
            }
        };
        let Some(node) = self.nodes.get_mut(slot as usize).and_then(Option::as_mut) else {
            return;
        };
        node.requested.add(info.requests);
        node.non_zero_requested.add(info.non_zero_requests);
        node.pods.push(id);
        let zone = node.zone;
        info.term_ids = info
            .anti_affinity
            .iter()
            .zip(&term_keys)
            .map(|(t, &key)| self.anti_terms.add(t, node.label_id(key)))
            .collect();
        if let Some(owner) = &info.owner {
            let counts = self.owners.entry(owner.clone()).or_default();
            *counts.per_node.entry(slot).or_default() += 1;
            if let Some(z) = zone {
                *counts.per_zone.entry(z).or_default() += 1;
            }
        }
        self.namespace_pods
            .entry(info.namespace.clone())
            .or_default()
            .insert(id);
        let ns_index = self.label_index.entry(info.namespace.clone()).or_default();
        for (k, v) in &info.labels {
            ns_index
                .entry(k.clone())
                .or_default()
                .entry(v.clone())
                .or_default()
                .insert(id);
        }
        self.pods[id as usize] = Some(info);
    }

    /// Takes a pod out of every index; keeps its id reserved in `pod_ids`.
    fn detach(&mut self, id: u32) -> Option<PodInfo> {
        let info = self.pods.get_mut(id as usize)?.take()?;
        let term_keys: Vec<Option<u32>> = info
            .anti_affinity
            .iter()
            .map(|t| self.key_id(&t.topology_key))
            .collect();
        let slot = info.node_slot;
        if let Some(node) = self.nodes.get_mut(slot as usize).and_then(Option::as_mut) {
            node.requested.sub(info.requests);
            node.non_zero_requested.sub(info.non_zero_requests);
            if let Some(pos) = node.pods.iter().position(|&p| p == id) {
                node.pods.swap_remove(pos);
            }
            for (&key, &tid) in term_keys.iter().zip(&info.term_ids) {
                self.anti_terms.remove(tid, node.label_id(key));
            }
            if let Some(owner) = &info.owner
                && let Some(counts) = self.owners.get_mut(owner)
            {
                decrement(&mut counts.per_node, &slot);
                if let Some(z) = node.zone {
                    decrement(&mut counts.per_zone, &z);
                }
                if counts.per_node.is_empty() {
                    self.owners.remove(owner);
                }
            }
        }
        if let Some(set) = self.namespace_pods.get_mut(&info.namespace) {
            set.remove(&id);
        }
        if let Some(ns_index) = self.label_index.get_mut(&info.namespace) {
            for (k, v) in &info.labels {
                if let Some(values) = ns_index.get_mut(k) {
                    if let Some(set) = values.get_mut(v) {
                        set.remove(&id);
                        if set.is_empty() {
                            values.remove(v);
                        }
                    }
                    if values.is_empty() {
                        ns_index.remove(k);
                    }
                }
            }
        }
        Some(info)
    }
}

fn decrement<K, S>(map: &mut HashMap<K::Owned, u32, S>, key: &K)
where
    K: std::hash::Hash + Eq + ?Sized + ToOwned,
    K::Owned: std::hash::Hash + Eq + std::borrow::Borrow<K>,
    S: std::hash::BuildHasher,
{
    if let Some(c) = map.get_mut(key) {
        *c = c.saturating_sub(1);
        if *c == 0 {
            map.remove(key);
        }
    }
}

fn index_node_facts(
    topology: &mut HashMap<String, HashMap<String, u32>>,
    images: &mut HashMap<String, u32>,
    facts: &NodeFacts,
) {
    for (k, v) in &facts.labels {
        *topology
            .entry(k.clone())
            .or_default()
            .entry(v.clone())
            .or_default() += 1;
    }
    for image in facts.images.keys() {
        *images.entry(image.clone()).or_default() += 1;
    }
}

fn unindex_node_facts(
    topology: &mut HashMap<String, HashMap<String, u32>>,
    images: &mut HashMap<String, u32>,
    facts: &NodeFacts,
) {
    for (k, v) in &facts.labels {
        if let Some(values) = topology.get_mut(k) {
            decrement(values, v.as_str());
            if values.is_empty() {
                topology.remove(k);
            }
        }
    }
    for image in facts.images.keys() {
        decrement(images, image.as_str());
    }
}

#[cfg(test)]
mod tests;
