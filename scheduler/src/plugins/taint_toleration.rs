//! Filter: a node's `NoSchedule` and `NoExecute` taints repel pods that do not
//! tolerate them (`PreferNoSchedule` is only a preference and never filters).

use drover_proto::types::node::Taint;
use drover_proto::types::pod::{TaintEffect, Toleration, TolerationOperator};

use crate::fit_error::Reason;
use crate::framework::{Plugin, PodState};
use crate::snapshot::NodeInfo;

/// Whether `t` tolerates `taint`, with Kubernetes' matching rules.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if t.effect.is_some_and(|e| e != taint.effect) {
        return false;
    }
    match (&t.key, t.operator) {
        // An empty key with Exists tolerates every taint.
        (None, TolerationOperator::Exists) => true,
        (None, TolerationOperator::Equal) => false,
        (Some(k), _) if *k != taint.key => false,
        (Some(_), TolerationOperator::Exists) => true,
        (Some(_), TolerationOperator::Equal) => {
            t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
        }
    }
}

pub struct TaintToleration;

impl Plugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn filter(&self, state: &PodState<'_>, node: &NodeInfo) -> Result<(), Reason> {
        let Some(facts) = node.facts() else {
            return Ok(());
        };
        let tolerations = &state.pod.spec.tolerations;
        let untolerated = facts.taints.iter().find(|taint| {
            matches!(
                taint.effect,
                TaintEffect::NoSchedule | TaintEffect::NoExecute
            ) && !tolerations.iter().any(|t| tolerates(t, taint))
        });
        match untolerated {
            None => Ok(()),
            Some(t) => Err(Reason::UntoleratedTaint {
                key: t.key.clone(),
                value: t.value.clone().unwrap_or_default(),
                effect: t.effect,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{NodeBuilder, PodBuilder, filter_one};

    fn tol(
        key: Option<&str>,
        op: TolerationOperator,
        value: Option<&str>,
        effect: Option<TaintEffect>,
    ) -> Toleration {
        Toleration {
            key: key.map(Into::into),
            operator: op,
            value: value.map(Into::into),
            effect,
            toleration_seconds: None,
        }
    }

    #[test]
    fn table() {
        use TaintEffect::*;
        use TolerationOperator::*;
        let cases = [
            ("no toleration, NoSchedule", NoSchedule, None, false),
            ("no toleration, NoExecute", NoExecute, None, false),
            (
                "no toleration, PreferNoSchedule",
                PreferNoSchedule,
                None,
                true,
            ),
            (
                "Equal key+value",
                NoSchedule,
                Some(tol(Some("gpu"), Equal, Some("yes"), Some(NoSchedule))),
                true,
            ),
            (
                "Equal wrong value",
                NoSchedule,
                Some(tol(Some("gpu"), Equal, Some("no"), Some(NoSchedule))),
                false,
            ),
            (
                "Exists key",
                NoExecute,
                Some(tol(Some("gpu"), Exists, None, None)),
                true,
            ),
            (
                "wrong effect",
                NoExecute,
                Some(tol(Some("gpu"), Exists, None, Some(NoSchedule))),
                false,
            ),
            (
                "wildcard",
                NoSchedule,
                Some(tol(None, Exists, None, None)),
                true,
            ),
            (
                "other key",
                NoSchedule,
                Some(tol(Some("disk"), Exists, None, None)),
                false,
            ),
        ];
        for (name, effect, toleration, fits) in cases {
            let node = NodeBuilder::new("n1").taint("gpu", "yes", effect).build();
            let mut pod = PodBuilder::new("p").build();
            pod.spec.tolerations.extend(toleration);
            let want = if fits {
                Ok(())
            } else {
                Err(Reason::UntoleratedTaint {
                    key: "gpu".into(),
                    value: "yes".into(),
                    effect,
                })
            };
            assert_eq!(filter_one(&TaintToleration, &pod, &node), want, "{name}");
        }
    }

    #[test]
    fn message_names_the_taint() {
        let r = Reason::UntoleratedTaint {
            key: "gpu".into(),
            value: "yes".into(),
            effect: TaintEffect::NoSchedule,
        };
        assert_eq!(r.to_string(), "node(s) had untolerated taint {gpu: yes}");
    }
}
