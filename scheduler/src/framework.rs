//! The plugin framework: one [`Plugin`] trait for filters and scores, and the
//! per-pod [`PodState`] computed once before any node is looked at
//! (kube-scheduler's PreFilter/PreScore), so the per-node hot loop only reads.

use drover_proto::types::Pod;

use crate::config::ScoringStrategy;
use crate::fit_error::Reason;
use crate::plugins::{
    image_locality, inter_pod_affinity, node_affinity, topology_spread, workload_spread,
};
use crate::resources::Resources;
use crate::snapshot::{ClusterSnapshot, NodeInfo};

/// Highest score a plugin gives a node (kube-scheduler's `MaxNodeScore`).
pub const MAX_NODE_SCORE: i64 = 100;

/// A filter and/or score plugin. Filters reject nodes with a [`Reason`];
/// scores rank the nodes that passed, 0..=[`MAX_NODE_SCORE`] after `normalize`.
pub trait Plugin: Send + Sync {
    fn name(&self) -> &'static str;

    /// Whether this filter passes every node for this pod, so the hot loop
    /// can leave it out (kube-scheduler's PreFilter `Skip`).
    fn skip_filter(&self, _state: &PodState<'_>) -> bool {
        false
    }

    /// `Err` when the pod cannot run on `node`.
    fn filter(&self, _state: &PodState<'_>, _node: &NodeInfo) -> Result<(), Reason> {
        Ok(())
    }

    /// Whether this score would rank every node alike for this pod, so the
    /// hot loop can leave it out (kube-scheduler's PreScore `Skip`).
    fn skip_score(&self, _state: &PodState<'_>) -> bool {
        false
    }

    /// A raw score for `node`; see `normalize`.
    fn score(&self, _state: &PodState<'_>, _node: &NodeInfo, _snapshot: &ClusterSnapshot) -> i64 {
        0
    }

    /// Maps raw scores of all scored nodes onto 0..=100 (default: already there).
    fn normalize(&self, _scores: &mut [i64]) {}
}

/// Everything about the pod being scheduled that filters and scores need,
/// derived once per scheduling attempt.
#[derive(Debug)]
pub struct PodState<'a> {
    pub pod: &'a Pod,
    pub requests: Resources,
    pub non_zero_requests: Resources,
    pub strategy: ScoringStrategy,
    pub node_affinity: node_affinity::State<'a>,
    pub inter_pod: inter_pod_affinity::State<'a>,
    pub spread: topology_spread::State,
    pub workload: workload_spread::State<'a>,
    pub images: image_locality::State,
}

impl<'a> PodState<'a> {
    pub fn new(
        pod: &'a Pod,
        snapshot: &'a ClusterSnapshot,
        strategy: ScoringStrategy,
    ) -> PodState<'a> {
        let requests = Resources::of_pod(pod);
        let node_affinity = node_affinity::State::new(pod);
        let spread = topology_spread::State::new(pod, snapshot, &node_affinity);
        PodState {
            pod,
            requests,
            non_zero_requests: requests.non_zero(),
            strategy,
            inter_pod: inter_pod_affinity::State::new(pod, snapshot),
            spread,
            node_affinity,
            workload: workload_spread::State::new(pod, snapshot),
            images: image_locality::State::new(pod, snapshot),
        }
    }
}
