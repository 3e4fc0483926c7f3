//! Score: prefer nodes whose cpu and memory would be used in equal fractions
//! once the pod lands, so neither resource is stranded.

use crate::framework::{MAX_NODE_SCORE, Plugin, PodState};
use crate::snapshot::{ClusterSnapshot, NodeInfo};

pub struct BalancedAllocation;

impl Plugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        "BalancedAllocation"
    }

    fn score(&self, state: &PodState<'_>, node: &NodeInfo, _: &ClusterSnapshot) -> i64 {
        let alloc = node.allocatable();
        let used = node.non_zero_requested;
        let req = state.non_zero_requests;
        let fraction = |capacity: i64, requested: i64| -> f64 {
            if capacity <= 0 {
                return 1.0;
            }
            (requested as f64 / capacity as f64).min(1.0)
        };
        let cpu = fraction(alloc.milli_cpu, used.milli_cpu + req.milli_cpu);
        let mem = fraction(alloc.memory, used.memory + req.memory);
        // The standard deviation of two fractions is half their difference.
        let std = (cpu - mem).abs() / 2.0;
        ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{GI, NodeBuilder, PodBuilder, scores, snapshot};

    #[test]
    fn table() {
        let snap = snapshot(
            &[
                NodeBuilder::new("cpu-heavy").build(),
                NodeBuilder::new("even").build(),
            ],
            &[
                PodBuilder::new("a")
                    .requests(3000, GI)
                    .node("cpu-heavy")
                    .build(),
                PodBuilder::new("b")
                    .requests(1000, 4 * GI)
                    .node("even")
                    .build(),
            ],
        );
        let pod = PodBuilder::new("p").requests(1000, 4 * GI).build();
        let s = scores(&BalancedAllocation, &pod, &snap);
        // cpu-heavy: cpu 100%, mem 31.25% → 65; even: 50% / 50% → 100.
        assert_eq!((s["cpu-heavy"], s["even"]), (65, 100));
    }
}
