//! When a pod must leave a node with `NoExecute` taints (Kubernetes' taint
//! manager), as a pure function of the pod, the taints and the defaults.

use std::time::Duration;

use drover_proto::Time;
use drover_proto::types::Pod;
use drover_proto::types::node::Taint;
use drover_proto::types::pod::TaintEffect;

use super::health::{TAINT_NOT_READY, TAINT_UNREACHABLE};

/// When `pod` must be evicted from a node carrying `taints`; None if it
/// tolerates all of them forever.
///
/// A pod that says nothing about the unreachable/not-ready taints tolerates
/// them for `default_toleration` (what Kubernetes' DefaultTolerationSeconds
/// admission adds, 300 s there). Any other `NoExecute` taint it does not
/// tolerate evicts it at once; among matching tolerations the shortest
/// `tolerationSeconds` wins, and one without seconds tolerates forever.
pub fn eviction_time(
    pod: &Pod,
    taints: &[Taint],
    default_toleration: Duration,
    now: Time,
) -> Option<Time> {
    let default = chrono::Duration::from_std(default_toleration).unwrap_or(chrono::Duration::MAX);
    taints
        .iter()
        .filter(|t| t.effect == TaintEffect::NoExecute)
        .filter_map(|taint| {
            let since = taint.time_added.unwrap_or(now);
            let matching: Vec<_> = pod
                .spec
                .tolerations
                .iter()
                .filter(|t| taint.tolerated_by(t))
                .collect();
            if matching.is_empty() {
                let defaulted = taint.key == TAINT_UNREACHABLE || taint.key == TAINT_NOT_READY;
                return Some(if defaulted {
                    since.checked_add_signed(default).unwrap_or(since)
                } else {
                    since
                });
            }
            if matching.iter().any(|t| t.toleration_seconds.is_none()) {
                return None;
            }
            let seconds = matching
                .iter()
                .filter_map(|t| t.toleration_seconds)
                .min()
                .unwrap_or(0)
                .max(0);
            Some(since + chrono::Duration::seconds(seconds))
        })
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_proto::types::pod::{Toleration, TolerationOperator};

    fn at(s: i64) -> Time {
        chrono::DateTime::from_timestamp(1_700_000_000 + s, 0).expect("valid")
    }

    fn taint(key: &str, effect: TaintEffect, added: i64) -> Taint {
        Taint {
            key: key.into(),
            value: None,
            effect,
            time_added: Some(at(added)),
        }
    }

    fn pod(tolerations: Vec<Toleration>) -> Pod {
        let mut p = Pod::default();
        p.spec.tolerations = tolerations;
        p
    }

    fn tol(key: &str, seconds: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: TolerationOperator::Exists,
            effect: Some(TaintEffect::NoExecute),
            toleration_seconds: seconds,
            ..Toleration::default()
        }
    }

    const DEFAULT: Duration = Duration::from_secs(30);

    #[test]
    fn table() {
        use TaintEffect::*;
        let unreachable = taint(TAINT_UNREACHABLE, NoExecute, 10);
        let cases: Vec<(&str, Pod, Vec<Taint>, Option<Time>)> = vec![
            ("no taints", pod(vec![]), vec![], None),
            (
                "NoSchedule never evicts",
                pod(vec![]),
                vec![taint("x", NoSchedule, 0)],
                None,
            ),
            (
                "unreachable without toleration: the default",
                pod(vec![]),
                vec![unreachable.clone()],
                Some(at(40)),
            ),
            (
                "explicit seconds replace the default",
                pod(vec![tol(TAINT_UNREACHABLE, Some(5))]),
                vec![unreachable.clone()],
                Some(at(15)),
            ),
            (
                "shortest of several matching tolerations",
                pod(vec![
                    tol(TAINT_UNREACHABLE, Some(100)),
                    tol(TAINT_UNREACHABLE, Some(7)),
                ]),
                vec![unreachable.clone()],
                Some(at(17)),
            ),
            (
                "tolerating forever",
                pod(vec![tol(TAINT_UNREACHABLE, None)]),
                vec![unreachable.clone()],
                None,
            ),
            (
                "a toleration for another key does not replace the default",
                pod(vec![tol("other", None)]),
                vec![unreachable.clone()],
                Some(at(40)),
            ),
            (
                "a user NoExecute taint not tolerated evicts at once",
                pod(vec![]),
                vec![taint("maintenance", NoExecute, 3), unreachable.clone()],
                Some(at(3)),
            ),
            (
                "negative seconds count as zero",
                pod(vec![tol("maintenance", Some(-5))]),
                vec![taint("maintenance", NoExecute, 3)],
                Some(at(3)),
            ),
        ];
        for (name, p, taints, want) in cases {
            assert_eq!(eviction_time(&p, &taints, DEFAULT, at(50)), want, "{name}");
        }
    }
}
