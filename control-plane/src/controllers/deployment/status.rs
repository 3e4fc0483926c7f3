//! A Deployment's status: counts summed over its ReplicaSets, and the
//! Available and Progressing conditions (with the progress deadline).

use std::time::Duration;

use drover_proto::Time;
use drover_proto::meta::Condition;
use drover_proto::types::workload::{Deployment, DeploymentStatus, ReplicaSet};

use crate::controllers::pods::seconds;
use crate::controllers::runtime::clock::elapsed;

pub const AVAILABLE: &str = "Available";
pub const PROGRESSING: &str = "Progressing";
pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";

fn counts(rs: &ReplicaSet) -> (i32, i32, i32) {
    rs.status
        .as_ref()
        .map(|s| (s.replicas, s.ready_replicas, s.available_replicas))
        .unwrap_or_default()
}

/// Whether every replica runs the new template and is available.
pub fn is_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    s.updated_replicas == d.spec.replicas
        && s.replicas == d.spec.replicas
        && s.available_replicas == d.spec.replicas
        && s.observed_generation >= d.metadata.generation.unwrap_or(0)
}

fn condition(type_: &str, status: &str, reason: &str, message: String, now: Time) -> Condition {
    Condition {
        type_: type_.into(),
        status: status.into(),
        last_update_time: Some(now),
        last_transition_time: Some(now),
        reason: Some(reason.into()),
        message: Some(message),
        ..Condition::default()
    }
}

/// Sets `c` in `list`, keeping lastTransitionTime when the status did not change.
pub(crate) fn set_condition(list: &mut Vec<Condition>, mut c: Condition) {
    match list.iter_mut().find(|x| x.type_ == c.type_) {
        Some(old) => {
            if old.status == c.status {
                c.last_transition_time = old.last_transition_time;
            }
            *old = c;
        }
        None => list.push(c),
    }
}

pub fn get_condition<'a>(s: &'a DeploymentStatus, type_: &str) -> Option<&'a Condition> {
    s.conditions.iter().find(|c| c.type_ == type_)
}

/// The new status, and when to look again for the progress deadline.
pub fn calculate(
    d: &Deployment,
    new: Option<&ReplicaSet>,
    all: &[ReplicaSet],
    max_unavailable: i32,
    created_new: bool,
    now: Time,
) -> (DeploymentStatus, Option<Duration>) {
    let old = d.status.clone().unwrap_or_default();
    let sum = |f: fn((i32, i32, i32)) -> i32| all.iter().map(|rs| f(counts(rs))).sum::<i32>();
    let desired_total: i32 = all.iter().map(|rs| rs.spec.replicas).sum();
    let available = sum(|c| c.2);
    let mut s = DeploymentStatus {
        observed_generation: d.metadata.generation.unwrap_or(0),
        replicas: sum(|c| c.0),
        updated_replicas: new.map(|rs| counts(rs).0).unwrap_or(0),
        ready_replicas: sum(|c| c.1),
        available_replicas: available,
        unavailable_replicas: (desired_total.max(d.spec.replicas) - available).max(0),
        conditions: old.conditions.clone(),
        collision_count: old.collision_count,
    };
    let (status, reason, message) = if available >= d.spec.replicas - max_unavailable {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    let mut avail = condition(AVAILABLE, status, reason, message.into(), now);
    if let Some(prev) = get_condition(&old, AVAILABLE)
        && prev.status == status
    {
        // Unchanged: keep the old times so status writes settle.
        avail.last_update_time = prev.last_update_time;
    }
    set_condition(&mut s.conditions, avail);

    let rs_name = new.map(|rs| rs.metadata.name.clone()).unwrap_or_default();
    let previous = get_condition(&old, PROGRESSING).cloned();
    let deadline = seconds(d.spec.progress_deadline_seconds);
    let mut requeue = None;
    let progressing = if d.spec.paused {
        Some(condition(
            PROGRESSING,
            "Unknown",
            PAUSED,
            "Deployment is paused".into(),
            now,
        ))
    } else if previous.as_ref().and_then(|c| c.reason.as_deref()) == Some(PAUSED) {
        Some(condition(
            PROGRESSING,
            "Unknown",
            RESUMED,
            "Deployment is resumed".into(),
            now,
        ))
    } else if is_complete(d, &s) {
        let msg = format!("ReplicaSet \"{rs_name}\" has successfully progressed.");
        match &previous {
            Some(c)
                if c.reason.as_deref() == Some(NEW_RS_AVAILABLE)
                    && c.message.as_deref() == Some(msg.as_str()) =>
            {
                None
            }
            _ => Some(condition(PROGRESSING, "True", NEW_RS_AVAILABLE, msg, now)),
        }
    } else if created_new {
        let msg = format!("Created new replica set \"{rs_name}\"");
        Some(condition(PROGRESSING, "True", NEW_RS_CREATED, msg, now))
    } else if previous.is_none()
        || made_progress(&old, &s)
        || previous_was_complete(previous.as_ref())
    {
        let msg = format!("ReplicaSet \"{rs_name}\" is progressing.");
        requeue = Some(deadline);
        Some(condition(PROGRESSING, "True", RS_UPDATED, msg, now))
    } else {
        match &previous {
            Some(c) if c.reason.as_deref() == Some(PROGRESS_DEADLINE_EXCEEDED) => None,
            Some(c) => {
                let since = c.last_update_time.unwrap_or(now);
                let spent = elapsed(since, now);
                if spent >= deadline {
                    let msg = format!("ReplicaSet \"{rs_name}\" has timed out progressing.");
                    Some(condition(
                        PROGRESSING,
                        "False",
                        PROGRESS_DEADLINE_EXCEEDED,
                        msg,
                        now,
                    ))
                } else {
                    requeue = Some(deadline - spent);
                    None
                }
            }
            None => None,
        }
    };
    if let Some(c) = progressing {
        if c.reason.as_deref() != Some(NEW_RS_AVAILABLE) && !d.spec.paused && requeue.is_none() {
            requeue = Some(deadline);
        }
        set_condition(&mut s.conditions, c);
    }
    (s, requeue.map(|d| d + Duration::from_millis(100)))
}

fn previous_was_complete(c: Option<&Condition>) -> bool {
    c.is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE))
}

/// Whether the rollout moved since the last status (Kubernetes counts new
/// updated, ready or available replicas as progress).
fn made_progress(old: &DeploymentStatus, new: &DeploymentStatus) -> bool {
    new.updated_replicas > old.updated_replicas
        || new.available_replicas > old.available_replicas
        || new.ready_replicas > old.ready_replicas
        || new.replicas != old.replicas
}
