//! Filter and score: `topologySpreadConstraints`. A `DoNotSchedule`
//! constraint rejects a node when placing the pod there would make its domain
//! exceed the least-loaded domain by more than `maxSkew`; `ScheduleAnyway`
//! constraints only prefer the less loaded domains. Domains are the values of
//! `topologyKey` on the nodes the pod may use (its nodeSelector/affinity).

use std::collections::HashMap;

use drover_proto::Resource;
use drover_proto::selector::Selector;
use drover_proto::types::Pod;
use drover_proto::types::pod::{TopologySpreadConstraint, WhenUnsatisfiable};

use crate::fit_error::Reason;
use crate::framework::{MAX_NODE_SCORE, Plugin, PodState};
use crate::plugins::node_affinity;
use crate::snapshot::fast_hash::{FastMap, FastSet};
use crate::snapshot::{ClusterSnapshot, NodeInfo};

#[derive(Debug)]
struct Constraint {
    /// Interned topology key; `None` when no node has it.
    key: Option<u32>,
    max_skew: i64,
    hard: bool,
    /// Matching pods per interned domain value (domains with none are absent).
    counts: FastMap<u32, i64>,
    /// Matching pods in the least loaded eligible domain.
    min: i64,
    /// 1 when the pod matches its own selector (placing it adds to the count).
    self_match: i64,
}

#[derive(Debug, Default)]
pub struct State {
    constraints: Vec<Constraint>,
}

impl State {
    pub fn new(
        pod: &Pod,
        snapshot: &ClusterSnapshot,
        placement: &node_affinity::State<'_>,
    ) -> State {
        let constraints = pod
            .spec
            .topology_spread_constraints
            .iter()
            .map(|c| constraint(c, pod, snapshot, placement))
            .collect();
        State { constraints }
    }
}

fn constraint(
    c: &TopologySpreadConstraint,
    pod: &Pod,
    snapshot: &ClusterSnapshot,
    placement: &node_affinity::State<'_>,
) -> Constraint {
    let key = snapshot.key_id(&c.topology_key);
    let restrictive = placement.is_restrictive();
    // Eligible domains: every domain of the key, or those of the nodes the pod may use.
    let total_domains = if restrictive {
        snapshot
            .nodes()
            .filter(|n| placement.matches(n))
            .filter_map(|n| n.label_id(key))
            .collect::<FastSet<_>>()
            .len()
    } else {
        snapshot.domains(&c.topology_key).map_or(0, HashMap::len)
    };
    let mut counts: FastMap<u32, i64> = FastMap::default();
    let mut self_match = 0;
    // A constraint without a selector matches no pods, as in Kubernetes.
    if let Some(ls) = &c.label_selector
        && let Ok(selector) = Selector::from_label_selector(ls)
    {
        self_match = i64::from(selector.matches(&pod.metadata.labels));
        let namespaces = [pod.namespace().to_string()];
        snapshot.for_each_matching_pod(&namespaces, ls, &selector, |p| {
            let Some(node) = snapshot.node_at(p.node_slot) else {
                return;
            };
            if restrictive && !placement.matches(node) {
                return;
            }
            if let Some(v) = node.label_id(key) {
                *counts.entry(v).or_default() += 1;
            }
        });
    }
    let min = if counts.len() < total_domains {
        0
    } else {
        counts.values().copied().min().unwrap_or(0)
    };
    Constraint {
        key,
        max_skew: i64::from(c.max_skew.max(1)),
        hard: c.when_unsatisfiable == WhenUnsatisfiable::DoNotSchedule,
        counts,
        min,
        self_match,
    }
}

/// Marks a node lacking a soft constraint's key: it scores lowest.
const MISSING: i64 = i64::MAX;

pub struct PodTopologySpread;

impl Plugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }

    fn skip_filter(&self, state: &PodState<'_>) -> bool {
        state.spread.constraints.iter().all(|c| !c.hard)
    }

    fn filter(&self, state: &PodState<'_>, node: &NodeInfo) -> Result<(), Reason> {
        for c in state.spread.constraints.iter().filter(|c| c.hard) {
            let Some(v) = node.label_id(c.key) else {
                return Err(Reason::TopologySpreadMissingLabel);
            };
            let count = c.counts.get(&v).copied().unwrap_or(0);
            if count + c.self_match - c.min > c.max_skew {
                return Err(Reason::TopologySpread);
            }
        }
        Ok(())
    }

    fn skip_score(&self, state: &PodState<'_>) -> bool {
        state.spread.constraints.iter().all(|c| c.hard)
    }

    fn score(&self, state: &PodState<'_>, node: &NodeInfo, _: &ClusterSnapshot) -> i64 {
        let mut total = 0i64;
        for c in state.spread.constraints.iter().filter(|c| !c.hard) {
            match node.label_id(c.key) {
                None => return MISSING,
                Some(v) => total += c.counts.get(&v).copied().unwrap_or(0),
            }
        }
        total
    }

    /// Fewer matching pods in the node's domains scores higher.
    fn normalize(&self, scores: &mut [i64]) {
        let present = scores.iter().copied().filter(|&s| s != MISSING);
        let (min, max) = present.fold((i64::MAX, i64::MIN), |(lo, hi), s| (lo.min(s), hi.max(s)));
        for s in scores {
            *s = if *s == MISSING {
                0
            } else if max <= min {
                MAX_NODE_SCORE
            } else {
                (max - *s) * MAX_NODE_SCORE / (max - min)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::ZONE_LABEL;
    use crate::testing::{NodeBuilder, PodBuilder, filter_in, scores, snapshot};

    fn web(name: &str, node: &str) -> Pod {
        PodBuilder::new(name).label("app", "web").node(node).build()
    }

    /// Zones a (a1, a2), b (b1), c (c1); web pods: 2 in a, 1 in b, 0 in c.
    fn cluster() -> ClusterSnapshot {
        snapshot(
            &[
                NodeBuilder::new("a1").zone("a").build(),
                NodeBuilder::new("a2").zone("a").build(),
                NodeBuilder::new("b1").zone("b").build(),
                NodeBuilder::new("c1").zone("c").build(),
                NodeBuilder::new("nozone").build(),
            ],
            &[web("w1", "a1"), web("w2", "a2"), web("w3", "b1")],
        )
    }

    #[test]
    fn do_not_schedule_table() {
        let snap = cluster();
        let skew1 = PodBuilder::new("p")
            .label("app", "web")
            .spread(ZONE_LABEL, 1, true, "web")
            .build();
        let skew2 = PodBuilder::new("p")
            .label("app", "web")
            .spread(ZONE_LABEL, 2, true, "web")
            .build();
        let unlabelled = PodBuilder::new("p")
            .spread(ZONE_LABEL, 1, true, "web")
            .build();
        let cases = [
            (
                "skew 1: zone a would be 3 vs 0",
                &skew1,
                "a1",
                Err(Reason::TopologySpread),
            ),
            (
                "skew 1: zone b would be 2 vs 0",
                &skew1,
                "b1",
                Err(Reason::TopologySpread),
            ),
            ("skew 1: empty zone c", &skew1, "c1", Ok(())),
            (
                "skew 1: node without the key",
                &skew1,
                "nozone",
                Err(Reason::TopologySpreadMissingLabel),
            ),
            ("skew 2: zone b is fine", &skew2, "b1", Ok(())),
            (
                "skew 2: zone a would be 3",
                &skew2,
                "a1",
                Err(Reason::TopologySpread),
            ),
            (
                "pod not matching its selector adds nothing",
                &unlabelled,
                "b1",
                Ok(()),
            ),
            (
                "... but the skew must already hold",
                &unlabelled,
                "a1",
                Err(Reason::TopologySpread),
            ),
        ];
        for (name, pod, node, want) in cases {
            assert_eq!(
                filter_in(&PodTopologySpread, pod, &snap, node),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn domains_follow_node_selector() {
        // Restricted to zones a and b, the minimum is zone b's 1, not zone c's 0.
        let mut snap = cluster();
        for n in ["a1", "a2", "b1"] {
            let node = NodeBuilder::new(n)
                .zone(if n == "b1" { "b" } else { "a" })
                .label("pool", "x")
                .build();
            snap.upsert_node(&node);
        }
        let pod = PodBuilder::new("p")
            .label("app", "web")
            .node_selector("pool", "x")
            .spread(ZONE_LABEL, 1, true, "web")
            .build();
        assert_eq!(filter_in(&PodTopologySpread, &pod, &snap, "b1"), Ok(()));
        assert_eq!(
            filter_in(&PodTopologySpread, &pod, &snap, "a1"),
            Err(Reason::TopologySpread)
        );
    }

    #[test]
    fn schedule_anyway_prefers_emptier_domains() {
        let snap = cluster();
        let pod = PodBuilder::new("p")
            .label("app", "web")
            .spread(ZONE_LABEL, 1, false, "web")
            .build();
        assert_eq!(filter_in(&PodTopologySpread, &pod, &snap, "a1"), Ok(()));
        let s = scores(&PodTopologySpread, &pod, &snap);
        assert_eq!((s["a1"], s["b1"], s["c1"], s["nozone"]), (0, 50, 100, 0));
    }
}
