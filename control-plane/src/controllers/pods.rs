//! What controllers ask of a pod: is it active, ready, available.

use std::time::Duration;

use drover_proto::Time;
use drover_proto::types::Pod;
use drover_proto::types::pod::PodPhase;

use crate::controllers::runtime::clock::elapsed;

/// Counts toward a ReplicaSet: not terminating and not finished.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().map(|s| s.phase).unwrap_or_default();
    pod.metadata.deletion_timestamp.is_none()
        && phase != PodPhase::Succeeded
        && phase != PodPhase::Failed
}

pub fn is_ready(pod: &Pod) -> bool {
    pod.status.as_ref().is_some_and(|s| s.is_ready())
}

/// When the pod's Ready condition last became True.
pub fn ready_since(pod: &Pod) -> Option<Time> {
    let s = pod.status.as_ref()?;
    let c = s
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")?;
    c.last_transition_time
        .or(s.start_time)
        .or(pod.metadata.creation_timestamp)
}

/// Ready for at least `min_ready` (Kubernetes' `IsPodAvailable`).
pub fn is_available(pod: &Pod, min_ready: Duration, now: Time) -> bool {
    if !is_ready(pod) {
        return false;
    }
    if min_ready.is_zero() {
        return true;
    }
    ready_since(pod).is_some_and(|t| elapsed(t, now) >= min_ready)
}

/// How long until a ready pod becomes available, if it is ready but not yet available.
pub fn until_available(pod: &Pod, min_ready: Duration, now: Time) -> Option<Duration> {
    if !is_ready(pod) || is_available(pod, min_ready, now) {
        return None;
    }
    let since = ready_since(pod)?;
    Some(min_ready.saturating_sub(elapsed(since, now)))
}

/// Whether `pod`'s controller is the object with `uid`.
pub fn controlled_by(pod: &Pod, uid: &str) -> bool {
    pod.metadata.controller_ref().is_some_and(|r| r.uid == uid)
}

pub fn seconds(s: i32) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}
