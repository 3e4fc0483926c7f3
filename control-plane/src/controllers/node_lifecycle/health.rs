//! How healthy a node looks, from its agent's heartbeats as this controller
//! observed them, and what that implies for its Ready condition and taints.
//! Pure functions of their inputs.
//!
//! Like Kubernetes' node lifecycle controller, the grace period runs from
//! when *this controller* last saw the heartbeat change, never from the
//! heartbeat's own timestamp: a control plane that was down, or an agent
//! whose clock is off, does not make every node look dead at once.

use std::time::Duration;

use drover_proto::Time;
use drover_proto::meta::Condition;
use drover_proto::types::node::{NodeStatus, Taint};
use drover_proto::types::pod::TaintEffect;

use crate::controllers::runtime::clock::elapsed;

/// Taint of a node whose agent stopped reporting.
pub const TAINT_UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Taint of a node whose agent reports it is not ready.
pub const TAINT_NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Reason written into the Ready condition when heartbeats lapse.
pub const REASON_STATUS_UNKNOWN: &str = "NodeStatusUnknown";

/// What the agent last reported, and when the controller first saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    heartbeat: Option<Time>,
    ready: Option<String>,
    pub observed_at: Time,
}

fn ready_condition(status: Option<&NodeStatus>) -> Option<&Condition> {
    status?.conditions.iter().find(|c| c.type_ == "Ready")
}

/// The probe after looking at `status` at `now`: unchanged when the agent
/// reported nothing new, restarted at `now` otherwise.
pub fn observe(previous: Option<&Probe>, status: Option<&NodeStatus>, now: Time) -> Probe {
    let ready = ready_condition(status);
    let heartbeat = ready.and_then(|c| c.last_heartbeat_time.or(c.last_transition_time));
    let ready = ready.map(|c| c.status.clone());
    match previous {
        Some(p) if p.heartbeat == heartbeat && p.ready == ready => p.clone(),
        _ => Probe {
            heartbeat,
            ready,
            observed_at: now,
        },
    }
}

/// A node's health as the controller judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Reporting, and Ready (or not yet saying anything while within grace).
    Ready,
    /// Reporting, and says it is not ready.
    NotReady,
    /// Silent for longer than the grace period (or already marked Unknown).
    Unreachable,
}

/// Judges a node from its probe; `grace` is the node monitor grace period.
pub fn assess(probe: &Probe, grace: Duration, now: Time) -> Health {
    if elapsed(probe.observed_at, now) > grace {
        return Health::Unreachable;
    }
    match probe.ready.as_deref() {
        Some("False") => Health::NotReady,
        Some("Unknown") => Health::Unreachable,
        _ => Health::Ready,
    }
}

/// How long until a silent node becomes unreachable (None when it already is).
pub fn until_lapse(probe: &Probe, grace: Duration, now: Time) -> Option<Duration> {
    let silent = elapsed(probe.observed_at, now);
    (silent <= grace).then(|| grace - silent)
}

/// The status with Ready set to Unknown, or None when it already says so.
pub fn mark_unknown(status: Option<&NodeStatus>, now: Time) -> Option<NodeStatus> {
    let mut status = status.cloned().unwrap_or_default();
    let unknown = |previous: Option<&Condition>| Condition {
        type_: "Ready".into(),
        status: "Unknown".into(),
        last_heartbeat_time: previous.and_then(|c| c.last_heartbeat_time),
        last_transition_time: Some(now),
        reason: Some(REASON_STATUS_UNKNOWN.into()),
        message: Some("Drover agent stopped posting node status.".into()),
        ..Condition::default()
    };
    match status.conditions.iter_mut().find(|c| c.type_ == "Ready") {
        Some(c) if c.status == "Unknown" => return None,
        Some(c) => *c = unknown(Some(c)),
        None => status.conditions.push(unknown(None)),
    }
    Some(status)
}

fn is_health_taint(t: &Taint) -> bool {
    t.effect == TaintEffect::NoExecute && (t.key == TAINT_UNREACHABLE || t.key == TAINT_NOT_READY)
}

/// The node's taints for `health`: the user's own kept as they are, the
/// unreachable/not-ready NoExecute taint added or removed, keeping its
/// original `timeAdded` while it stays.
pub fn desired_taints(current: &[Taint], health: Health, now: Time) -> Vec<Taint> {
    let wanted = match health {
        Health::Ready => None,
        Health::NotReady => Some(TAINT_NOT_READY),
        Health::Unreachable => Some(TAINT_UNREACHABLE),
    };
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| !is_health_taint(t) || Some(t.key.as_str()) == wanted)
        .cloned()
        .collect();
    if let Some(key) = wanted
        && !out.iter().any(|t| is_health_taint(t) && t.key == key)
    {
        out.push(Taint {
            key: key.into(),
            value: None,
            effect: TaintEffect::NoExecute,
            time_added: Some(now),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> Time {
        chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("valid")
    }

    fn at(s: i64) -> Time {
        t0() + chrono::Duration::seconds(s)
    }

    fn status(ready: &str, heartbeat: Time) -> NodeStatus {
        NodeStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: ready.into(),
                last_heartbeat_time: Some(heartbeat),
                last_transition_time: Some(t0()),
                ..Condition::default()
            }],
            ..NodeStatus::default()
        }
    }

    const GRACE: Duration = Duration::from_secs(40);

    #[test]
    fn grace_runs_from_when_the_controller_saw_a_change() {
        // The heartbeat is an hour old, but the controller only just started.
        let s = status("True", at(-3600));
        let p = observe(None, Some(&s), at(0));
        assert_eq!(assess(&p, GRACE, at(0)), Health::Ready);
        assert_eq!(assess(&p, GRACE, at(40)), Health::Ready);
        assert_eq!(
            until_lapse(&p, GRACE, at(30)),
            Some(Duration::from_secs(10))
        );
        assert_eq!(assess(&p, GRACE, at(41)), Health::Unreachable);
        assert_eq!(until_lapse(&p, GRACE, at(41)), None);
        // The same heartbeat seen again does not renew the probe...
        let p2 = observe(Some(&p), Some(&s), at(39));
        assert_eq!(p2.observed_at, at(0));
        // ...a new one does.
        let p3 = observe(Some(&p), Some(&status("True", at(38))), at(39));
        assert_eq!(p3.observed_at, at(39));
        assert_eq!(assess(&p3, GRACE, at(70)), Health::Ready);
    }

    #[test]
    fn the_agent_saying_not_ready_or_unknown_counts_at_once() {
        let p = observe(None, Some(&status("False", at(0))), at(0));
        assert_eq!(assess(&p, GRACE, at(1)), Health::NotReady);
        let p = observe(None, Some(&status("Unknown", at(0))), at(0));
        assert_eq!(assess(&p, GRACE, at(1)), Health::Unreachable);
        // Nothing reported yet: ready until the grace period says otherwise.
        let p = observe(None, None, at(0));
        assert_eq!(assess(&p, GRACE, at(1)), Health::Ready);
        assert_eq!(assess(&p, GRACE, at(41)), Health::Unreachable);
    }

    #[test]
    fn mark_unknown_keeps_the_heartbeat_and_is_idempotent() {
        let s = status("True", at(5));
        let marked = mark_unknown(Some(&s), at(50)).expect("changed");
        let c = &marked.conditions[0];
        assert_eq!(c.status, "Unknown");
        assert_eq!(c.reason.as_deref(), Some(REASON_STATUS_UNKNOWN));
        assert_eq!(c.last_heartbeat_time, Some(at(5)));
        assert_eq!(c.last_transition_time, Some(at(50)));
        assert_eq!(mark_unknown(Some(&marked), at(60)), None);
        let fresh = mark_unknown(None, at(1)).expect("added");
        assert_eq!(fresh.conditions.len(), 1);
    }

    #[test]
    fn taints_follow_health_and_keep_user_taints() {
        let user = Taint {
            key: "dedicated".into(),
            value: Some("db".into()),
            effect: TaintEffect::NoSchedule,
            time_added: None,
        };
        let ready = desired_taints(std::slice::from_ref(&user), Health::Ready, at(0));
        assert_eq!(ready, vec![user.clone()]);

        let down = desired_taints(&ready, Health::Unreachable, at(10));
        assert_eq!(down.len(), 2);
        assert_eq!(down[1].key, TAINT_UNREACHABLE);
        assert_eq!(down[1].effect, TaintEffect::NoExecute);
        assert_eq!(down[1].time_added, Some(at(10)));
        // Still down later: the taint keeps its first time.
        assert_eq!(desired_taints(&down, Health::Unreachable, at(99)), down);

        let not_ready = desired_taints(&down, Health::NotReady, at(20));
        assert_eq!(
            not_ready.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(),
            vec!["dedicated", TAINT_NOT_READY]
        );
        assert_eq!(
            desired_taints(&not_ready, Health::Ready, at(30)),
            vec![user]
        );
    }
}
