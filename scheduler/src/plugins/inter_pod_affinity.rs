//! Filter: required inter-pod affinity and anti-affinity over topology keys,
//! including the symmetric rule that a bound pod's anti-affinity repels an
//! incoming pod it matches. Domains are computed once per pod in `State`.

use drover_proto::Resource;
use drover_proto::selector::Selector;
use drover_proto::types::Pod;
use drover_proto::types::pod::PodAffinityTerm;

use crate::fit_error::Reason;
use crate::framework::{Plugin, PodState};
use crate::snapshot::fast_hash::{FastMap, FastSet};
use crate::snapshot::{ClusterSnapshot, NodeInfo, resolve_namespaces};

/// One term resolved to the topology domains holding pods it matches.
#[derive(Debug)]
struct TermDomains {
    /// Interned topology key; `None` when no node has it.
    key: Option<u32>,
    /// Interned values of the domains holding matching pods.
    domains: FastSet<u32>,
}

#[derive(Debug, Default)]
pub struct State<'a> {
    affinity: Vec<TermDomains>,
    /// No pod matches the affinity terms yet but the pod matches them itself:
    /// the first replica of a co-located group may go anywhere with the keys.
    affinity_self_satisfied: bool,
    anti_affinity: Vec<TermDomains>,
    /// Bound pods' anti-affinity terms matching this pod: key → forbidden domains.
    existing_anti: Vec<(Option<u32>, &'a FastMap<u32, u32>)>,
}

impl<'a> State<'a> {
    pub fn new(pod: &'a Pod, snapshot: &'a ClusterSnapshot) -> State<'a> {
        let ns = pod.namespace();
        let existing_anti = snapshot
            .anti_affinity_terms(&pod.metadata.labels)
            .filter(|t| {
                t.spec.namespaces.iter().any(|n| n == ns)
                    && t.selector
                        .as_ref()
                        .is_some_and(|s| s.matches(&pod.metadata.labels))
                    && !t.domains.is_empty()
            })
            .map(|t| (snapshot.key_id(&t.spec.topology_key), &t.domains))
            .collect();
        let Some(affinity) = pod.spec.affinity.as_ref() else {
            return State {
                existing_anti,
                ..State::default()
            };
        };
        let required = |a: Option<&'a drover_proto::types::pod::PodAffinity>| {
            a.map_or(&[][..], |a| {
                &a.required_during_scheduling_ignored_during_execution[..]
            })
        };
        let resolve = |terms: &'a [PodAffinityTerm]| -> Vec<(TermDomains, bool)> {
            terms
                .iter()
                .map(|t| resolve_term(t, pod, snapshot))
                .collect()
        };
        let aff = resolve(required(affinity.pod_affinity.as_ref()));
        let any_match = aff.iter().any(|(t, _)| !t.domains.is_empty());
        let all_self = aff.iter().all(|(_, self_match)| *self_match);
        State {
            affinity_self_satisfied: !aff.is_empty() && !any_match && all_self,
            affinity: aff.into_iter().map(|(t, _)| t).collect(),
            anti_affinity: resolve(required(affinity.pod_anti_affinity.as_ref()))
                .into_iter()
                .map(|(t, _)| t)
                .collect(),
            existing_anti,
        }
    }
}

/// The domains of pods matching `term`, and whether `pod` matches it itself.
fn resolve_term(
    term: &PodAffinityTerm,
    pod: &Pod,
    snapshot: &ClusterSnapshot,
) -> (TermDomains, bool) {
    let namespaces = resolve_namespaces(&term.namespaces, pod.namespace());
    let label_selector = term.label_selector.clone().unwrap_or_default();
    let key = snapshot.key_id(&term.topology_key);
    let mut domains = FastSet::default();
    let mut self_match = false;
    // An invalid selector matches nothing (validation should have refused it).
    if let Ok(selector) = Selector::from_label_selector(&label_selector) {
        self_match = namespaces.iter().any(|n| n == pod.namespace())
            && selector.matches(&pod.metadata.labels);
        snapshot.for_each_matching_pod(&namespaces, &label_selector, &selector, |p| {
            if let Some(v) = snapshot.node_at(p.node_slot).and_then(|n| n.label_id(key)) {
                domains.insert(v);
            }
        });
    }
    let domains = domains;
    (TermDomains { key, domains }, self_match)
}

pub struct InterPodAffinity;

impl Plugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        "InterPodAffinity"
    }

    fn skip_filter(&self, state: &PodState<'_>) -> bool {
        let s = &state.inter_pod;
        s.affinity.is_empty() && s.anti_affinity.is_empty() && s.existing_anti.is_empty()
    }

    fn filter(&self, state: &PodState<'_>, node: &NodeInfo) -> Result<(), Reason> {
        let s = &state.inter_pod;
        for (key, domains) in &s.existing_anti {
            if node
                .label_id(*key)
                .is_some_and(|v| domains.contains_key(&v))
            {
                return Err(Reason::ExistingPodsAntiAffinity);
            }
        }
        for t in &s.anti_affinity {
            if node.label_id(t.key).is_some_and(|v| t.domains.contains(&v)) {
                return Err(Reason::PodAntiAffinity);
            }
        }
        for t in &s.affinity {
            let ok = match node.label_id(t.key) {
                None => false,
                Some(v) => s.affinity_self_satisfied || t.domains.contains(&v),
            };
            if !ok {
                return Err(Reason::PodAffinity);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{HOSTNAME_LABEL, ZONE_LABEL};
    use crate::testing::{NodeBuilder, PodBuilder, filter_in, snapshot};

    fn cluster() -> ClusterSnapshot {
        snapshot(
            &[
                NodeBuilder::new("a1").zone("a").build(),
                NodeBuilder::new("a2").zone("a").build(),
                NodeBuilder::new("b1").zone("b").build(),
            ],
            &[PodBuilder::new("db").label("app", "db").node("a1").build()],
        )
    }

    #[test]
    fn table() {
        let snap = cluster();
        let anti_host = PodBuilder::new("p")
            .anti_affinity(HOSTNAME_LABEL, "db")
            .build();
        let anti_zone = PodBuilder::new("p").anti_affinity(ZONE_LABEL, "db").build();
        let aff_zone = PodBuilder::new("p").affinity(ZONE_LABEL, "db").build();
        let aff_missing = PodBuilder::new("p").affinity(ZONE_LABEL, "cache").build();
        let first_cache = PodBuilder::new("p")
            .label("app", "cache")
            .affinity(ZONE_LABEL, "cache")
            .build();
        let other_ns = PodBuilder::new("p")
            .namespace("other")
            .anti_affinity(HOSTNAME_LABEL, "db")
            .build();
        let e = |r| Err(r);
        let cases = [
            (
                "anti host: same node",
                &anti_host,
                "a1",
                e(Reason::PodAntiAffinity),
            ),
            ("anti host: other node same zone", &anti_host, "a2", Ok(())),
            (
                "anti zone: same zone",
                &anti_zone,
                "a2",
                e(Reason::PodAntiAffinity),
            ),
            ("anti zone: other zone", &anti_zone, "b1", Ok(())),
            ("affinity zone: same zone", &aff_zone, "a2", Ok(())),
            (
                "affinity zone: other zone",
                &aff_zone,
                "b1",
                e(Reason::PodAffinity),
            ),
            (
                "affinity to nothing",
                &aff_missing,
                "a1",
                e(Reason::PodAffinity),
            ),
            ("first of a self-affine group", &first_cache, "b1", Ok(())),
            (
                "anti in another namespace ignores default",
                &other_ns,
                "a1",
                Ok(()),
            ),
        ];
        for (name, pod, node, want) in cases {
            assert_eq!(
                filter_in(&InterPodAffinity, pod, &snap, node),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn existing_pods_anti_affinity_is_symmetric() {
        let mut snap = cluster();
        snap.upsert_pod(
            &PodBuilder::new("lonely")
                .label("app", "lonely")
                .anti_affinity(ZONE_LABEL, "web")
                .node("b1")
                .build(),
        );
        let web = PodBuilder::new("w").label("app", "web").build();
        assert_eq!(
            filter_in(&InterPodAffinity, &web, &snap, "b1"),
            Err(Reason::ExistingPodsAntiAffinity)
        );
        assert_eq!(filter_in(&InterPodAffinity, &web, &snap, "a1"), Ok(()));
        snap.remove_pod("default/lonely");
        assert_eq!(filter_in(&InterPodAffinity, &web, &snap, "b1"), Ok(()));
    }
}
