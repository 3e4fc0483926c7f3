//! What users see when a pod does not fit: a `FailedScheduling` Warning Event
//! and the `PodScheduled=False` condition with reason `Unschedulable`.

use drover_proto::meta::{Condition, ObjectReference};
use drover_proto::types::event::EventSource;
use drover_proto::types::pod::PodStatus;
use drover_proto::types::{Event, Pod};
use drover_proto::{ObjectMeta, Resource, Time};

pub const REASON_FAILED_SCHEDULING: &str = "FailedScheduling";
pub const REASON_UNSCHEDULABLE: &str = "Unschedulable";
pub const CONDITION_POD_SCHEDULED: &str = "PodScheduled";

/// The Warning Event recording why `pod` was not scheduled.
pub fn failed_scheduling_event(pod: &Pod, message: &str, component: &str, now: Time) -> Event {
    let nanos = now.timestamp_nanos_opt().unwrap_or_default();
    let mut event = Event {
        metadata: ObjectMeta {
            // Kubernetes names events `<object>.<hex timestamp>`.
            name: format!("{}.{:x}", pod.metadata.name, nanos),
            namespace: Some(pod.namespace().to_string()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            kind: "Pod".into(),
            namespace: Some(pod.namespace().to_string()),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            api_version: Some("v1".into()),
            resource_version: pod.metadata.resource_version.clone(),
            field_path: None,
        },
        reason: REASON_FAILED_SCHEDULING.into(),
        message: message.into(),
        source: EventSource {
            component: component.into(),
            host: None,
        },
        first_timestamp: Some(now),
        last_timestamp: Some(now),
        count: 1,
        type_: "Warning".into(),
        ..Default::default()
    };
    event.set_type_meta();
    event
}

/// `pod` with `PodScheduled=False/Unschedulable` carrying `message`, or
/// `None` when the condition already says exactly that (no write needed).
pub fn with_unschedulable_condition(pod: &Pod, message: &str, now: Time) -> Option<Pod> {
    let status = pod.status.clone().unwrap_or_default();
    let existing = status
        .conditions
        .iter()
        .find(|c| c.type_ == CONDITION_POD_SCHEDULED);
    if existing.is_some_and(|c| {
        c.status == "False"
            && c.reason.as_deref() == Some(REASON_UNSCHEDULABLE)
            && c.message.as_deref() == Some(message)
    }) {
        return None;
    }
    let transitioned = existing.is_none_or(|c| c.status != "False");
    let mut condition = Condition {
        type_: CONDITION_POD_SCHEDULED.into(),
        status: "False".into(),
        last_probe_time: None,
        last_transition_time: existing.and_then(|c| c.last_transition_time),
        reason: Some(REASON_UNSCHEDULABLE.into()),
        message: Some(message.into()),
        ..Default::default()
    };
    if transitioned {
        condition.last_transition_time = Some(now);
    }
    let mut conditions: Vec<Condition> = status
        .conditions
        .iter()
        .filter(|c| c.type_ != CONDITION_POD_SCHEDULED)
        .cloned()
        .collect();
    conditions.push(condition);
    let mut out = pod.clone();
    out.status = Some(PodStatus {
        conditions,
        ..status
    });
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::PodBuilder;

    #[test]
    fn event_names_the_pod() {
        let pod = PodBuilder::new("web-1").build();
        let e = failed_scheduling_event(
            &pod,
            "0/1 nodes are available: 1 Too many pods.",
            "drover-scheduler",
            Time::default(),
        );
        assert_eq!(
            (e.kind.as_str(), e.type_.as_str(), e.reason.as_str()),
            ("Event", "Warning", "FailedScheduling")
        );
        assert_eq!(e.involved_object.kind, "Pod");
        assert_eq!(e.involved_object.name, "web-1");
        assert_eq!(e.involved_object.uid.as_deref(), Some("uid-web-1"));
        assert_eq!(e.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(e.message, "0/1 nodes are available: 1 Too many pods.");
    }

    #[test]
    fn condition_is_written_once_per_message() {
        let pod = PodBuilder::new("p").build();
        let once = with_unschedulable_condition(&pod, "m1", Time::default()).expect("first write");
        let c = &once.status.as_ref().expect("status").conditions[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_deref()),
            ("PodScheduled", "False", Some("Unschedulable"))
        );
        assert!(with_unschedulable_condition(&once, "m1", Time::default()).is_none());
        let twice =
            with_unschedulable_condition(&once, "m2", Time::default()).expect("new message");
        assert_eq!(twice.status.as_ref().map(|s| s.conditions.len()), Some(1));
    }
}
