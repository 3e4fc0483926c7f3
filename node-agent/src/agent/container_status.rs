//! A container's reported status, from its lifecycle machine (pure).

use chrono::TimeZone;
use drover_proto::Time;
use drover_proto::types::pod::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus,
};

use super::lifecycle::{Exit, Machine, State};

fn time(ms: u64) -> Option<Time> {
    let ms = i64::try_from(ms).ok()?;
    chrono::Utc.timestamp_millis_opt(ms).single()
}

fn terminated(e: &Exit) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: e.exit_code,
            signal: e.signal,
            reason: Some(e.reason.clone()),
            message: e.message.clone(),
            started_at: e.started_at_ms.and_then(time),
            finished_at: time(e.finished_at_ms),
        }),
        ..ContainerState::default()
    }
}

/// The status of container `name` running `image`; `ready` is its
/// readiness (running, and its readiness probe passing when it has one).
pub fn container_status(
    name: &str,
    image: &str,
    container_id: Option<String>,
    m: &Machine,
    ready: bool,
) -> ContainerStatus {
    let (state, running) = match &m.state {
        State::Waiting {
            reason, message, ..
        } => (
            ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(reason.clone()),
                    message: message.clone(),
                }),
                ..ContainerState::default()
            },
            false,
        ),
        State::Starting => (
            ContainerState {
                waiting: Some(ContainerStateWaiting {
                    reason: Some(super::lifecycle::reason::CONTAINER_CREATING.into()),
                    message: None,
                }),
                ..ContainerState::default()
            },
            false,
        ),
        State::Running { started_at_ms } | State::Stopping { started_at_ms } => (
            ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: time(*started_at_ms),
                }),
                ..ContainerState::default()
            },
            true,
        ),
        State::Terminated(e) => (terminated(e), false),
    };
    ContainerStatus {
        name: name.to_string(),
        state: Some(state),
        last_state: m.last_exit.as_ref().map(terminated),
        ready: running && ready,
        restart_count: m.restart_count,
        image: image.to_string(),
        container_id,
        started: Some(running),
        ..ContainerStatus::default()
    }
}

#[cfg(test)]
mod tests {
    use drover_proto::types::pod::RestartPolicy;

    use super::*;
    use crate::agent::lifecycle::{Backoff, Observation};

    #[test]
    fn crash_shows_back_off_and_last_state() {
        let mut m = Machine::new(RestartPolicy::Always, Backoff::default());
        m.next(Observation::Tick { now_ms: 0 });
        m.next(Observation::Started {
            started_at_ms: 1_000,
        });
        let s = container_status("a", "img", None, &m, true);
        assert!(s.ready && s.state.as_ref().is_some_and(|s| s.running.is_some()));
        m.next(Observation::Exited(Exit {
            exit_code: 137,
            signal: Some(9),
            reason: "OOMKilled".into(),
            finished_at_ms: 2_000,
            ..Exit::default()
        }));
        let s = container_status("a", "img", None, &m, true);
        assert!(!s.ready);
        let waiting = s.state.and_then(|s| s.waiting).expect("waiting");
        assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
        let last = s.last_state.and_then(|s| s.terminated).expect("last");
        assert_eq!(
            (last.exit_code, last.reason.as_deref()),
            (137, Some("OOMKilled"))
        );
        assert_eq!(last.started_at, time(1_000));
    }
}
