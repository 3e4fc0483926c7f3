//! Score: spread a workload's replicas (pods with the same controller owner)
//! across nodes and, weighted double, across zones — kube-scheduler's
//! SelectorSpread, read from the snapshot's per-owner counts.

use drover_proto::types::Pod;

use crate::framework::{MAX_NODE_SCORE, Plugin, PodState};
use crate::snapshot::{ClusterSnapshot, NodeInfo, OwnerCounts};

#[derive(Debug, Default)]
pub struct State<'a> {
    /// Whether the pod belongs to a workload at all.
    owned: bool,
    /// Where the workload's replicas run, resolved once per pod (not per node).
    counts: Option<&'a OwnerCounts>,
    max_per_node: i64,
    max_per_zone: i64,
}

impl<'a> State<'a> {
    pub fn new(pod: &Pod, snapshot: &'a ClusterSnapshot) -> State<'a> {
        let Some(owner) = pod.metadata.controller_ref() else {
            return State::default();
        };
        let counts = snapshot.owner_counts(&owner.uid);
        let max_of = |c: &OwnerCounts| {
            let node = c.per_node.values().copied().max().unwrap_or(0);
            let zone = c.per_zone.values().copied().max().unwrap_or(0);
            (i64::from(node), i64::from(zone))
        };
        let (max_per_node, max_per_zone) = counts.map_or((0, 0), max_of);
        State {
            owned: true,
            counts,
            max_per_node,
            max_per_zone,
        }
    }
}

pub struct WorkloadSpread;

impl Plugin for WorkloadSpread {
    fn name(&self) -> &'static str {
        "WorkloadSpread"
    }

    fn skip_score(&self, state: &PodState<'_>) -> bool {
        !state.workload.owned
    }

    fn score(&self, state: &PodState<'_>, node: &NodeInfo, _: &ClusterSnapshot) -> i64 {
        let s = &state.workload;
        let Some(counts) = s.counts else {
            return MAX_NODE_SCORE;
        };
        let fraction_free = |max: i64, count: i64| {
            if max <= 0 {
                MAX_NODE_SCORE
            } else {
                (max - count) * MAX_NODE_SCORE / max
            }
        };
        let on_node = counts
            .per_node
            .get(&node.slot)
            .copied()
            .map_or(0, i64::from);
        let node_score = fraction_free(s.max_per_node, on_node);
        match node.zone {
            Some(zone) if s.max_per_zone > 0 => {
                let in_zone = counts.per_zone.get(&zone).copied().map_or(0, i64::from);
                (node_score + 2 * fraction_free(s.max_per_zone, in_zone)) / 3
            }
            _ => node_score,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{NodeBuilder, PodBuilder, scores, snapshot};

    #[test]
    fn prefers_nodes_and_zones_without_replicas() {
        let rs = |name: &str, node: &str| PodBuilder::new(name).owner("rs1").node(node).build();
        let snap = snapshot(
            &[
                NodeBuilder::new("a1").zone("a").build(),
                NodeBuilder::new("a2").zone("a").build(),
                NodeBuilder::new("b1").zone("b").build(),
            ],
            &[
                rs("r1", "a1"),
                rs("r2", "a1"),
                PodBuilder::new("other").owner("rs2").node("b1").build(),
            ],
        );
        let pod = PodBuilder::new("p").owner("rs1").build();
        let s = scores(&WorkloadSpread, &pod, &snap);
        // a1: node 0, zone 0 → 0; a2: node 100, zone 0 → 33; b1: 100, 100 → 100.
        assert_eq!((s["a1"], s["a2"], s["b1"]), (0, 33, 100));
        let orphan = PodBuilder::new("q").build();
        assert!(
            scores(&WorkloadSpread, &orphan, &snap)
                .values()
                .all(|&v| v == 100)
        );
    }
}
