//! Why a pod fits nowhere: structured per-node reasons, and the one-line
//! summary users read in Events and `drover describe pod`.

use std::collections::BTreeMap;
use std::fmt;

use drover_proto::types::pod::{Runtime, TaintEffect};

/// Why one node was filtered out. Messages are Kubernetes' own wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The node lacks cpu, memory and/or pod slots for the pod's requests.
    Insufficient {
        cpu: bool,
        memory: bool,
        pods: bool,
    },
    RuntimeNotOffered(Runtime),
    Unschedulable,
    NodeAffinity,
    UntoleratedTaint {
        key: String,
        value: String,
        effect: TaintEffect,
    },
    PodAffinity,
    PodAntiAffinity,
    ExistingPodsAntiAffinity,
    TopologySpread,
    TopologySpreadMissingLabel,
}

impl Reason {
    /// The user-facing message(s); a resource shortfall yields one per resource.
    pub fn messages(&self) -> Vec<String> {
        match self {
            Reason::Insufficient { cpu, memory, pods } => {
                let mut out = Vec::new();
                if *cpu {
                    out.push("Insufficient cpu".to_string());
                }
                if *memory {
                    out.push("Insufficient memory".to_string());
                }
                if *pods {
                    out.push("Too many pods".to_string());
                }
                out
            }
            Reason::RuntimeNotOffered(r) => {
                vec![format!("node(s) didn't offer runtime {}", r.as_str())]
            }
            Reason::Unschedulable => vec!["node(s) were unschedulable".into()],
            Reason::NodeAffinity => {
                vec!["node(s) didn't match Pod's node affinity/selector".into()]
            }
            Reason::UntoleratedTaint { key, value, .. } => {
                vec![format!("node(s) had untolerated taint {{{key}: {value}}}")]
            }
            Reason::PodAffinity => vec!["node(s) didn't match pod affinity rules".into()],
            Reason::PodAntiAffinity => vec!["node(s) didn't match pod anti-affinity rules".into()],
            Reason::ExistingPodsAntiAffinity => {
                vec!["node(s) didn't satisfy existing pods anti-affinity rules".into()]
            }
            Reason::TopologySpread => {
                vec!["node(s) didn't match pod topology spread constraints".into()]
            }
            Reason::TopologySpreadMissingLabel => vec![
                "node(s) didn't match pod topology spread constraints (missing required label)"
                    .into(),
            ],
        }
    }

    /// Whether evicting lower-priority pods from the node could clear this reason.
    pub fn resolvable_by_preemption(&self) -> bool {
        matches!(self, Reason::Insufficient { .. })
    }
}

/// No node can run the pod.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.summary())]
pub struct FitError {
    pub num_all_nodes: usize,
    /// Node name → why it was filtered out.
    pub node_reasons: BTreeMap<String, Reason>,
}

impl FitError {
    /// `0/5 nodes are available: 3 Insufficient memory, 2 node(s) didn't offer runtime vm.`
    /// Reasons are counted per node and listed by count (most first), then text.
    pub fn summary(&self) -> String {
        let mut histogram: BTreeMap<String, usize> = BTreeMap::new();
        for reason in self.node_reasons.values() {
            for m in reason.messages() {
                *histogram.entry(m).or_default() += 1;
            }
        }
        let mut counted: Vec<(usize, String)> =
            histogram.into_iter().map(|(m, c)| (c, m)).collect();
        counted.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let mut out = format!("0/{} nodes are available", self.num_all_nodes);
        if !counted.is_empty() {
            out.push_str(": ");
            let parts: Vec<String> = counted.iter().map(|(c, m)| format!("{c} {m}")).collect();
            out.push_str(&parts.join(", "));
        }
        out.push('.');
        out
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.messages().join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(reasons: &[(&str, Reason)], total: usize) -> FitError {
        FitError {
            num_all_nodes: total,
            node_reasons: reasons
                .iter()
                .map(|(n, r)| (n.to_string(), r.clone()))
                .collect(),
        }
    }

    const MEM: Reason = Reason::Insufficient {
        cpu: false,
        memory: true,
        pods: false,
    };

    #[test]
    fn summary_matches_kubernetes_wording() {
        let vm = Reason::RuntimeNotOffered(Runtime::Vm);
        let e = err(
            &[
                ("a", MEM),
                ("b", MEM),
                ("c", MEM),
                ("d", vm.clone()),
                ("e", vm),
            ],
            5,
        );
        assert_eq!(
            e.to_string(),
            "0/5 nodes are available: 3 Insufficient memory, 2 node(s) didn't offer runtime vm."
        );
    }

    #[test]
    fn summary_counts_each_insufficient_resource_and_ties_sort_by_text() {
        let both = Reason::Insufficient {
            cpu: true,
            memory: true,
            pods: false,
        };
        let e = err(&[("a", both), ("b", Reason::Unschedulable)], 2);
        assert_eq!(
            e.summary(),
            "0/2 nodes are available: 1 Insufficient cpu, 1 Insufficient memory, 1 node(s) were unschedulable."
        );
    }

    #[test]
    fn summary_with_no_nodes() {
        assert_eq!(err(&[], 0).summary(), "0/0 nodes are available.");
    }
}
