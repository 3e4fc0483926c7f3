//! Filter: cordoned nodes (`spec.unschedulable`) take no new pods, unless the
//! pod tolerates `node.kubernetes.io/unschedulable:NoSchedule`.

use drover_proto::types::pod::{TaintEffect, TolerationOperator};

use crate::fit_error::Reason;
use crate::framework::{Plugin, PodState};
use crate::snapshot::NodeInfo;

pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

pub struct NodeUnschedulable;

impl Plugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
    }

    fn filter(&self, state: &PodState<'_>, node: &NodeInfo) -> Result<(), Reason> {
        let cordoned = node.facts().is_some_and(|f| f.unschedulable);
        if !cordoned {
            return Ok(());
        }
        let tolerated = state.pod.spec.tolerations.iter().any(|t| {
            let key_ok = match (&t.key, t.operator) {
                (None, TolerationOperator::Exists) => true,
                (Some(k), _) => k == UNSCHEDULABLE_TAINT,
                (None, _) => false,
            };
            key_ok && t.effect.is_none_or(|e| e == TaintEffect::NoSchedule)
        });
        if tolerated {
            Ok(())
        } else {
            Err(Reason::Unschedulable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{NodeBuilder, PodBuilder, filter_one};
    use drover_proto::types::pod::Toleration;

    #[test]
    fn table() {
        let tolerate = Toleration {
            key: Some(UNSCHEDULABLE_TAINT.into()),
            operator: TolerationOperator::Exists,
            effect: Some(TaintEffect::NoSchedule),
            ..Default::default()
        };
        let cases = [
            ("schedulable node", false, None, Ok(())),
            ("cordoned node", true, None, Err(Reason::Unschedulable)),
            ("cordoned, tolerated", true, Some(tolerate), Ok(())),
        ];
        for (name, cordoned, toleration, want) in cases {
            let node = NodeBuilder::new("n1").unschedulable(cordoned).build();
            let mut pod = PodBuilder::new("p").build();
            pod.spec.tolerations.extend(toleration);
            assert_eq!(filter_one(&NodeUnschedulable, &pod, &node), want, "{name}");
        }
    }
}
