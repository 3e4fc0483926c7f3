//! Filter: the pod's cpu, memory and pod-slot requests fit in what the node
//! has left (allocatable minus the requests of bound pods). Score: least- or
//! most-allocated over cpu and memory, per the configured strategy.

use crate::config::ScoringStrategy;
use crate::fit_error::Reason;
use crate::framework::{MAX_NODE_SCORE, Plugin, PodState};
use crate::resources::Resources;
use crate::snapshot::{ClusterSnapshot, NodeInfo};

/// Which resources `requests` would over-commit on `node`, if any.
pub fn insufficient(requests: Resources, node: &NodeInfo) -> Option<Reason> {
    insufficient_given(requests, node.allocatable(), node.requested)
}

/// Which resources `requests` would over-commit given `used` of `alloc`.
pub fn insufficient_given(
    requests: Resources,
    alloc: Resources,
    used: Resources,
) -> Option<Reason> {
    let cpu = requests.milli_cpu > 0 && used.milli_cpu + requests.milli_cpu > alloc.milli_cpu;
    let memory = requests.memory > 0 && used.memory + requests.memory > alloc.memory;
    let pods = used.pods + requests.pods > alloc.pods;
    (cpu || memory || pods).then_some(Reason::Insufficient { cpu, memory, pods })
}

pub struct NodeResourcesFit;

impl Plugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn filter(&self, state: &PodState<'_>, node: &NodeInfo) -> Result<(), Reason> {
        match insufficient(state.requests, node) {
            None => Ok(()),
            Some(r) => Err(r),
        }
    }

    fn score(&self, state: &PodState<'_>, node: &NodeInfo, _: &ClusterSnapshot) -> i64 {
        let alloc = node.allocatable();
        let used = node.non_zero_requested;
        let req = state.non_zero_requests;
        let per = |capacity: i64, requested: i64| -> i64 {
            if capacity <= 0 || requested > capacity {
                return 0;
            }
            match state.strategy {
                ScoringStrategy::LeastAllocated => {
                    (capacity - requested) * MAX_NODE_SCORE / capacity
                }
                ScoringStrategy::MostAllocated => requested * MAX_NODE_SCORE / capacity,
            }
        };
        (per(alloc.milli_cpu, used.milli_cpu + req.milli_cpu)
            + per(alloc.memory, used.memory + req.memory))
            / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{GI, NodeBuilder, PodBuilder, filter_in, scores, snapshot};
    use crate::{ScoringStrategy, framework::PodState};

    #[test]
    fn filter_table() {
        // Node: 4 cpu, 16Gi, 3 pods; already bound: 3 cpu, 8Gi, 2 pods.
        let node = NodeBuilder::new("n1").capacity(4000, 16 * GI, 3).build();
        let bound = [
            PodBuilder::new("b1")
                .requests(2000, 4 * GI)
                .node("n1")
                .build(),
            PodBuilder::new("b2")
                .requests(1000, 4 * GI)
                .node("n1")
                .build(),
        ];
        let snap = snapshot(&[node], &bound);
        let r = |cpu, memory, pods| Err(Reason::Insufficient { cpu, memory, pods });
        let cases = [
            ("fits exactly", 1000, 8 * GI, Ok(())),
            ("too much cpu", 1001, GI, r(true, false, false)),
            ("too much memory", 100, 9 * GI, r(false, true, false)),
            ("both", 2000, 9 * GI, r(true, true, false)),
            ("no requests", 0, 0, Ok(())),
        ];
        for (name, cpu, mem, want) in cases {
            let pod = PodBuilder::new("p").requests(cpu, mem).build();
            assert_eq!(
                filter_in(&NodeResourcesFit, &pod, &snap, "n1"),
                want,
                "{name}"
            );
        }
        let mut full = snap;
        full.upsert_pod(&PodBuilder::new("b3").node("n1").build());
        let pod = PodBuilder::new("p").build();
        assert_eq!(
            filter_in(&NodeResourcesFit, &pod, &full, "n1"),
            r(false, false, true)
        );
    }

    #[test]
    fn least_and_most_allocated() {
        let snap = snapshot(
            &[
                NodeBuilder::new("empty").build(),
                NodeBuilder::new("half").build(),
            ],
            &[PodBuilder::new("b")
                .requests(2000, 8 * GI)
                .node("half")
                .build()],
        );
        let pod = PodBuilder::new("p").requests(1000, 4 * GI).build();
        let least = scores(&NodeResourcesFit, &pod, &snap);
        assert_eq!((least["empty"], least["half"]), (75, 25));
        let state = PodState::new(&pod, &snap, ScoringStrategy::MostAllocated);
        let most: Vec<i64> = snap
            .nodes()
            .map(|n| NodeResourcesFit.score(&state, n, &snap))
            .collect();
        let by_name: Vec<_> = snap.nodes().map(|n| n.name.clone()).zip(most).collect();
        assert!(by_name.contains(&("empty".into(), 25)) && by_name.contains(&("half".into(), 75)));
    }
}
