//! The pure scheduling algorithm: filter nodes (stopping once enough feasible
//! ones are found, as kube-scheduler's percentageOfNodesToScore does), score
//! them with weighted plugins, and pick the best with a tie-break seeded by
//! the pod's uid so the result is deterministic.

use std::sync::LazyLock;

use drover_proto::types::Pod;

use crate::NodeName;
use crate::config::SchedulerConfig;
use crate::fit_error::{FitError, Reason};
use crate::framework::{Plugin, PodState};
use crate::plugins;
use crate::snapshot::{ClusterSnapshot, NodeInfo, pod_key};

/// A configured set of filter and score plugins.
pub struct Scheduler {
    config: SchedulerConfig,
    filters: Vec<Box<dyn Plugin>>,
    scores: Vec<(Box<dyn Plugin>, i64)>,
}

static DEFAULT: LazyLock<Scheduler> = LazyLock::new(|| Scheduler::new(SchedulerConfig::default()));

/// Places `pod` with the default configuration.
pub fn schedule(pod: &Pod, snapshot: &ClusterSnapshot) -> Result<NodeName, FitError> {
    DEFAULT.schedule(pod, snapshot)
}

impl Scheduler {
    pub fn new(config: SchedulerConfig) -> Scheduler {
        Scheduler {
            config,
            filters: plugins::default_filters(),
            scores: plugins::default_scores(),
        }
    }

    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// The node `pod` should run on, or why none can take it.
    pub fn schedule(&self, pod: &Pod, snapshot: &ClusterSnapshot) -> Result<NodeName, FitError> {
        let state = PodState::new(pod, snapshot, self.config.scoring_strategy);
        let order = snapshot.order();
        let n = order.len();
        let seed = seed_of(pod);
        let want = self.config.num_feasible_nodes_to_find(n);
        let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(want.min(n));
        let filters: Vec<&dyn Plugin> = self
            .filters
            .iter()
            .filter(|f| !f.skip_filter(&state))
            .map(|f| f.as_ref())
            .collect();
        // Start at a pod-specific offset so sampled searches cover all nodes.
        let start = if n == 0 {
            0
        } else {
            (seed % n as u64) as usize
        };
        for i in 0..n {
            let slot = order[(start + i) % n];
            let Some(node) = snapshot.node_at(slot) else {
                continue;
            };
            if filters.iter().all(|f| f.filter(&state, node).is_ok()) {
                feasible.push(node);
                if feasible.len() >= want {
                    break;
                }
            }
        }
        match feasible.len() {
            0 => Err(self.diagnose(&state, snapshot)),
            1 => Ok(feasible[0].name.clone()),
            _ => Ok(self.pick(&state, snapshot, &feasible, seed).name.clone()),
        }
    }

    /// The first filter that rejects `node`, if any.
    pub(crate) fn first_failure(&self, state: &PodState<'_>, node: &NodeInfo) -> Option<Reason> {
        self.filters
            .iter()
            .find_map(|f| f.filter(state, node).err())
    }

    /// Whether every filter but resource fit accepts `node` (preemption can
    /// only free resources).
    pub(crate) fn passes_except_resources(&self, state: &PodState<'_>, node: &NodeInfo) -> bool {
        self.filters
            .iter()
            .filter(|f| f.name() != "NodeResourcesFit")
            .all(|f| f.filter(state, node).is_ok())
    }

    /// Runs the filters on every node to say why each one refused the pod.
    fn diagnose(&self, state: &PodState<'_>, snapshot: &ClusterSnapshot) -> FitError {
        FitError {
            num_all_nodes: snapshot.num_nodes(),
            node_reasons: snapshot
                .nodes()
                .filter_map(|n| Some((n.name.clone(), self.first_failure(state, n)?)))
                .collect(),
        }
    }

    /// The highest weighted score; ties go to a reservoir sample seeded by the pod.
    fn pick<'a>(
        &self,
        state: &PodState<'_>,
        snapshot: &ClusterSnapshot,
        feasible: &[&'a NodeInfo],
        seed: u64,
    ) -> &'a NodeInfo {
        let mut total = vec![0i64; feasible.len()];
        let mut raw = vec![0i64; feasible.len()];
        for (plugin, weight) in &self.scores {
            if plugin.skip_score(state) {
                continue;
            }
            for (r, node) in raw.iter_mut().zip(feasible) {
                *r = plugin.score(state, node, snapshot);
            }
            plugin.normalize(&mut raw);
            for (t, r) in total.iter_mut().zip(&raw) {
                *t += r * weight;
            }
        }
        let mut rng = SplitMix64(seed);
        let mut best = 0;
        let mut ties = 1u64;
        for i in 1..feasible.len() {
            if total[i] > total[best] {
                best = i;
                ties = 1;
            } else if total[i] == total[best] {
                ties += 1;
                if rng.next().is_multiple_of(ties) {
                    best = i;
                }
            }
        }
        feasible[best]
    }
}

/// A stable hash of the pod's uid (or `ns/name` when it has none): FNV-1a,
/// fixed across runs and platforms unlike std's hasher.
pub(crate) fn seed_of(pod: &Pod) -> u64 {
    let key = match pod.metadata.uid.as_deref() {
        Some(uid) if !uid.is_empty() => uid.to_string(),
        _ => pod_key(pod),
    };
    key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Small deterministic generator for tie-breaking.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests;
