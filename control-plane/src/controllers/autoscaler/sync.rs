//! One autoscaler sync as a pure function: from the HPA, its target's
//! scale and the observation to the new replica count, the HPA's status
//! (Kubernetes' conditions AbleToScale, ScalingActive, ScalingLimited) and
//! the Events to record. The controller performs what it returns.

use std::time::Duration;

use drover_proto::meta::{Condition, Time};
use drover_proto::types::HorizontalPodAutoscaler;
use drover_proto::types::hpa::HpaStatus;

use super::TOLERANCE;
use super::behavior::{Behavior, History, decide};
use super::replica_calc::{Observation, RecommendError, recommend};
use super::target::Unresolved;
use crate::controllers::deployment::status::set_condition;

/// The target's scale as read.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetScale {
    /// `spec.replicas` and `status.replicas` of the target.
    pub spec_replicas: i32,
    pub status_replicas: i32,
    /// Its pods, as the metrics show them.
    pub observation: Observation,
}

/// An Event to record about the HPA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub warning: bool,
    pub reason: &'static str,
    pub message: String,
}

/// What one sync decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The new `spec.replicas` of the target, when it changes.
    pub scale_to: Option<i32>,
    pub status: HpaStatus,
    pub notes: Vec<Note>,
}

fn condition(type_: &str, ok: bool, reason: &str, message: String, now: Time) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        last_transition_time: Some(now),
        reason: Some(reason.into()),
        message: Some(message),
        ..Condition::default()
    }
}

fn failed_metric_reason(e: &RecommendError) -> &'static str {
    match e {
        RecommendError::NoSamples(m) if m == "cpu" => "FailedGetResourceMetric",
        RecommendError::NoRequests => "FailedGetResourceMetric",
        RecommendError::NoSamples(_) => "FailedGetPodsMetric",
        RecommendError::Unsupported(_) | RecommendError::BadTarget(..) => "InvalidMetricSourceType",
        RecommendError::NoMetrics => "FailedComputeMetricsReplicas",
    }
}

/// Sets `c` and returns a warning Note when a failing condition is new
/// (status or reason changed), so a lasting failure is not an Event per sync.
fn set_failing(status: &mut HpaStatus, c: Condition) -> Option<Note> {
    let changed = status
        .conditions
        .iter()
        .find(|x| x.type_ == c.type_)
        .is_none_or(|x| x.status != c.status || x.reason != c.reason);
    let note = (changed && c.status == "False").then(|| Note {
        warning: true,
        reason: match c.reason.as_deref() {
            Some("FailedGetScale") => "FailedGetScale",
            Some("FailedGetResourceMetric") => "FailedGetResourceMetric",
            Some("FailedGetPodsMetric") => "FailedGetPodsMetric",
            Some("InvalidMetricSourceType") => "InvalidMetricSourceType",
            _ => "FailedComputeMetricsReplicas",
        },
        message: c.message.clone().unwrap_or_default(),
    });
    set_condition(&mut status.conditions, c);
    note
}

/// A sync that read the scale but computes no size: ScalingActive is
/// False for `reason`, and the size stays `desired`.
fn not_active(
    mut status: HpaStatus,
    reason: &str,
    message: String,
    desired: i32,
    now: Time,
) -> Plan {
    let read = "the HPA controller was able to get the target's current scale";
    set_condition(
        &mut status.conditions,
        condition("AbleToScale", true, "SucceededGetScale", read.into(), now),
    );
    let note = set_failing(
        &mut status,
        condition("ScalingActive", false, reason, message, now),
    );
    status.desired_replicas = desired;
    Plan {
        scale_to: None,
        status,
        notes: note.into_iter().collect(),
    }
}

/// The sync of `hpa` at `elapsed` (monotonic, for `history`) and `now`.
pub fn plan(
    hpa: &HorizontalPodAutoscaler,
    target: Result<TargetScale, Unresolved>,
    history: &mut History,
    elapsed: Duration,
    now: Time,
) -> Plan {
    let spec = &hpa.spec;
    let mut status = hpa.status.clone().unwrap_or_default();
    status.observed_generation = hpa.metadata.generation;
    let TargetScale {
        spec_replicas: current,
        status_replicas,
        observation: obs,
    } = match target {
        Ok(t) => t,
        Err(why) => {
            let msg =
                format!("the HPA controller was unable to get the target's current scale: {why}");
            let note = set_failing(
                &mut status,
                condition("AbleToScale", false, "FailedGetScale", msg, now),
            );
            return Plan {
                scale_to: None,
                status,
                notes: note.into_iter().collect(),
            };
        }
    };
    status.current_replicas = status_replicas;
    if current == 0 && spec.min_replicas > 0 {
        // Kubernetes: someone scaled the target to zero by hand.
        let msg = "scaling is disabled since the replica count of the target is zero";
        return not_active(status, "ScalingDisabled", msg.into(), 0, now);
    }
    let recommendation = match recommend(spec, &obs, TOLERANCE) {
        Ok(r) => r,
        Err(e) => {
            let msg = format!("the HPA was unable to compute the replica count: {e}");
            return not_active(status, failed_metric_reason(&e), msg, current, now);
        }
    };
    let mut notes = Vec::new();
    let behavior = Behavior::from_spec(spec.behavior.as_ref());
    let keep = [behavior.up.window, behavior.down.window]
        .into_iter()
        .chain(
            behavior
                .up
                .policies
                .iter()
                .chain(&behavior.down.policies)
                .map(|p| p.period()),
        )
        .max()
        .unwrap_or_default();
    history.prune(elapsed, keep);
    let decision = decide(
        &behavior,
        history,
        elapsed,
        current,
        recommendation.replicas,
        spec.min_replicas,
        spec.max_replicas,
    );
    let label = recommendation
        .reason
        .split(" asks for")
        .next()
        .unwrap_or_default()
        .to_string();
    set_condition(
        &mut status.conditions,
        condition(
            "ScalingActive",
            true,
            "ValidMetricFound",
            format!("the HPA was able to successfully calculate a replica count from {label}"),
            now,
        ),
    );
    let (limited, limit_reason, limit_msg) = match decision.limited_by {
        Some("maxReplicas") => (
            true,
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count".to_string(),
        ),
        Some("minReplicas") => (
            true,
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count".to_string(),
        ),
        Some("scale-up policy") => (
            true,
            "ScaleUpLimit",
            "the desired replica count is increasing faster than the maximum scale rate"
                .to_string(),
        ),
        Some("scale-down policy") => (
            true,
            "ScaleDownLimit",
            "the desired replica count is decreasing faster than the maximum scale rate"
                .to_string(),
        ),
        _ => (
            false,
            "DesiredWithinRange",
            "the desired count is within the acceptable range".to_string(),
        ),
    };
    set_condition(
        &mut status.conditions,
        condition("ScalingLimited", limited, limit_reason, limit_msg, now),
    );
    status.current_metrics = recommendation.metrics;
    status.desired_replicas = decision.replicas;
    let scale_to = (decision.replicas != current).then_some(decision.replicas);
    let able = match scale_to {
        Some(n) => {
            status.last_scale_time = Some(now);
            let why = if n > current {
                format!("{label} above target")
            } else {
                "All metrics below target".to_string()
            };
            notes.push(Note {
                warning: false,
                reason: "SuccessfulRescale",
                message: format!("New size: {n}; reason: {why}"),
            });
            condition(
                "AbleToScale",
                true,
                "SucceededRescale",
                format!("the HPA controller was able to update the target scale to {n}"),
                now,
            )
        }
        None if decision.limited_by == Some("stabilization window") => {
            let (reason, message) = if recommendation.replicas < current {
                (
                    "ScaleDownStabilized",
                    "recent recommendations were higher than current one, applying the highest recent recommendation",
                )
            } else {
                (
                    "ScaleUpStabilized",
                    "recent recommendations were lower than current one, applying the lowest recent recommendation",
                )
            };
            condition("AbleToScale", true, reason, message.into(), now)
        }
        None => condition(
            "AbleToScale",
            true,
            "ReadyForNewScale",
            "recommended size matches current size".into(),
            now,
        ),
    };
    set_condition(&mut status.conditions, able);
    Plan {
        scale_to,
        status,
        notes,
    }
}
