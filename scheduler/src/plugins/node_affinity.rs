//! Filter: `nodeSelector` and required node affinity (In, NotIn, Exists,
//! DoesNotExist, Gt, Lt; `matchFields` on `metadata.name`). Score: the sum of
//! the weights of the preferred terms a node matches, scaled to 0..=100.

use std::collections::BTreeMap;

use drover_proto::selector::SelectorOperator;
use drover_proto::types::Pod;
use drover_proto::types::pod::{
    NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, PreferredSchedulingTerm,
};

use crate::fit_error::Reason;
use crate::framework::{MAX_NODE_SCORE, Plugin, PodState};
use crate::snapshot::{ClusterSnapshot, NodeInfo};

/// The pod's node placement rules, borrowed from its spec.
#[derive(Debug)]
pub struct State<'a> {
    node_selector: &'a BTreeMap<String, String>,
    required: Option<&'a NodeSelector>,
    preferred: &'a [PreferredSchedulingTerm],
}

impl<'a> State<'a> {
    pub fn new(pod: &'a Pod) -> State<'a> {
        let na = pod
            .spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref());
        State {
            node_selector: &pod.spec.node_selector,
            required: na.and_then(|n| {
                n.required_during_scheduling_ignored_during_execution
                    .as_ref()
            }),
            preferred: na.map_or(&[], |n| {
                &n.preferred_during_scheduling_ignored_during_execution[..]
            }),
        }
    }

    /// Whether the pod restricts nodes at all (spread domains then honour it).
    pub fn is_restrictive(&self) -> bool {
        !self.node_selector.is_empty() || self.required.is_some()
    }

    /// Whether `node` satisfies nodeSelector and the required terms.
    pub fn matches(&self, node: &NodeInfo) -> bool {
        let Some(labels) = node.labels() else {
            return false;
        };
        let selector_ok = self
            .node_selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v));
        selector_ok
            && self.required.is_none_or(|r| {
                // No terms matches no node, as in Kubernetes.
                r.node_selector_terms
                    .iter()
                    .any(|t| term_matches(t, &node.name, labels))
            })
    }
}

/// A term's requirements are ANDed; a term with none matches nothing.
pub fn term_matches(
    term: &NodeSelectorTerm,
    node_name: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    if term.match_expressions.is_empty() && term.match_fields.is_empty() {
        return false;
    }
    term.match_expressions
        .iter()
        .all(|r| requirement_matches(r, labels.get(&r.key).map(String::as_str)))
        && term.match_fields.iter().all(|r| {
            // `metadata.name` is the only field node selectors may name.
            r.key == "metadata.name" && requirement_matches(r, Some(node_name))
        })
}

fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    match r.operator {
        SelectorOperator::In => value.is_some_and(|v| r.values.iter().any(|x| x == v)),
        SelectorOperator::NotIn => value.is_none_or(|v| !r.values.iter().any(|x| x == v)),
        SelectorOperator::Exists => value.is_some(),
        SelectorOperator::DoesNotExist => value.is_none(),
        SelectorOperator::Gt | SelectorOperator::Lt => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                r.values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == SelectorOperator::Gt {
                v > bound
            } else {
                v < bound
            }
        }
    }
}

pub struct NodeAffinity;

impl Plugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    fn skip_filter(&self, state: &PodState<'_>) -> bool {
        !state.node_affinity.is_restrictive()
    }

    fn filter(&self, state: &PodState<'_>, node: &NodeInfo) -> Result<(), Reason> {
        if state.node_affinity.matches(node) {
            Ok(())
        } else {
            Err(Reason::NodeAffinity)
        }
    }

    fn skip_score(&self, state: &PodState<'_>) -> bool {
        state.node_affinity.preferred.is_empty()
    }

    fn score(&self, state: &PodState<'_>, node: &NodeInfo, _: &ClusterSnapshot) -> i64 {
        let Some(labels) = node.labels() else {
            return 0;
        };
        state
            .node_affinity
            .preferred
            .iter()
            .filter(|p| term_matches(&p.preference, &node.name, labels))
            .map(|p| i64::from(p.weight))
            .sum()
    }

    fn normalize(&self, scores: &mut [i64]) {
        let max = scores.iter().copied().max().unwrap_or(0);
        if max > 0 {
            for s in scores {
                *s = *s * MAX_NODE_SCORE / max;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{NodeBuilder, PodBuilder, filter_one, scores, snapshot};
    use drover_proto::types::pod::{Affinity, NodeAffinity as NodeAffinitySpec};

    fn req(key: &str, op: SelectorOperator, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op,
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    fn with_required(terms: Vec<NodeSelectorTerm>) -> Pod {
        let mut pod = PodBuilder::new("p").build();
        pod.spec.affinity = Some(Affinity {
            node_affinity: Some(NodeAffinitySpec {
                required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                    node_selector_terms: terms,
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        pod
    }

    fn exprs(r: Vec<NodeSelectorRequirement>) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: r,
            match_fields: vec![],
        }
    }

    #[test]
    fn required_operators_table() {
        use SelectorOperator::*;
        let node = NodeBuilder::new("n1")
            .label("disk", "ssd")
            .label("gen", "5")
            .build();
        let cases = [
            ("In match", req("disk", In, &["ssd", "nvme"]), true),
            ("In miss", req("disk", In, &["hdd"]), false),
            ("NotIn match", req("disk", NotIn, &["hdd"]), true),
            ("NotIn miss", req("disk", NotIn, &["ssd"]), false),
            ("NotIn absent key", req("gpu", NotIn, &["a"]), true),
            ("Exists", req("disk", Exists, &[]), true),
            ("Exists absent", req("gpu", Exists, &[]), false),
            ("DoesNotExist", req("gpu", DoesNotExist, &[]), true),
            (
                "DoesNotExist present",
                req("disk", DoesNotExist, &[]),
                false,
            ),
            ("Gt", req("gen", Gt, &["4"]), true),
            ("Gt equal", req("gen", Gt, &["5"]), false),
            ("Lt", req("gen", Lt, &["6"]), true),
            ("Lt non-numeric", req("disk", Lt, &["6"]), false),
        ];
        for (name, r, fits) in cases {
            let pod = with_required(vec![exprs(vec![r])]);
            let want = if fits {
                Ok(())
            } else {
                Err(Reason::NodeAffinity)
            };
            assert_eq!(filter_one(&NodeAffinity, &pod, &node), want, "{name}");
        }
    }

    #[test]
    fn terms_are_ored_and_fields_match_node_name() {
        let node = NodeBuilder::new("n1").label("disk", "ssd").build();
        let miss = exprs(vec![req("disk", SelectorOperator::In, &["hdd"])]);
        let by_name = NodeSelectorTerm {
            match_expressions: vec![],
            match_fields: vec![req("metadata.name", SelectorOperator::In, &["n1"])],
        };
        let other_name = NodeSelectorTerm {
            match_expressions: vec![],
            match_fields: vec![req("metadata.name", SelectorOperator::In, &["n2"])],
        };
        let cases = [
            (
                "second term matches by name",
                vec![miss.clone(), by_name],
                true,
            ),
            ("no term matches", vec![miss, other_name], false),
            ("empty term list matches nothing", vec![], false),
            (
                "empty term matches nothing",
                vec![NodeSelectorTerm::default()],
                false,
            ),
        ];
        for (name, terms, fits) in cases {
            let want = if fits {
                Ok(())
            } else {
                Err(Reason::NodeAffinity)
            };
            assert_eq!(
                filter_one(&NodeAffinity, &with_required(terms), &node),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn node_selector() {
        let node = NodeBuilder::new("n1").label("disk", "ssd").build();
        let ok = PodBuilder::new("p").node_selector("disk", "ssd").build();
        let bad = PodBuilder::new("p").node_selector("disk", "hdd").build();
        assert_eq!(filter_one(&NodeAffinity, &ok, &node), Ok(()));
        assert_eq!(
            filter_one(&NodeAffinity, &bad, &node),
            Err(Reason::NodeAffinity)
        );
    }

    #[test]
    fn preferred_terms_score_by_weight() {
        let snap = snapshot(
            &[
                NodeBuilder::new("a")
                    .label("disk", "ssd")
                    .label("gpu", "y")
                    .build(),
                NodeBuilder::new("b").label("disk", "ssd").build(),
                NodeBuilder::new("c").build(),
            ],
            &[],
        );
        let mut pod = PodBuilder::new("p").build();
        let pref = |k: &str, w| PreferredSchedulingTerm {
            weight: w,
            preference: exprs(vec![req(k, SelectorOperator::Exists, &[])]),
        };
        pod.spec.affinity = Some(Affinity {
            node_affinity: Some(NodeAffinitySpec {
                preferred_during_scheduling_ignored_during_execution: vec![
                    pref("disk", 1),
                    pref("gpu", 3),
                ],
                ..Default::default()
            }),
            ..Default::default()
        });
        let s = scores(&NodeAffinity, &pod, &snap);
        assert_eq!((s["a"], s["b"], s["c"]), (100, 25, 0));
    }
}
