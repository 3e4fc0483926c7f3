//! Pure builders of a pod's status from what its containers are doing:
//! phase, the four standard conditions (keeping transition times when a
//! condition did not change), and container statuses.

use drover_proto::Time;
use drover_proto::meta::Condition;
use drover_proto::types::Pod;
use drover_proto::types::pod::{
    ContainerState, ContainerStateRunning, ContainerStatus, PodPhase, PodStatus, RestartPolicy,
};

use super::reasons;

/// What the status is made from, besides the containers.
#[derive(Clone, Debug, Default)]
pub struct PodFacts {
    /// The pod's IP, once networking gave it one.
    pub pod_ip: Option<String>,
    /// The node's address.
    pub host_ip: Option<String>,
    /// When the agent first took the pod on.
    pub start_time: Option<Time>,
}

/// Kubernetes' phase rule: Running while any container runs or will be
/// restarted; Succeeded when all ended with 0 and none will restart;
/// Failed when all ended and one failed without a restart coming.
pub fn phase(policy: RestartPolicy, containers: &[ContainerStatus]) -> PodPhase {
    let state = |c: &ContainerStatus| c.state.clone().unwrap_or_default();
    if containers.is_empty() {
        return PodPhase::Pending;
    }
    if containers.iter().any(|c| state(c).running.is_some()) {
        return PodPhase::Running;
    }
    let terminated: Vec<i32> = containers
        .iter()
        .filter_map(|c| state(c).terminated.map(|t| t.exit_code))
        .collect();
    if terminated.len() < containers.len() {
        // Some wait: to start for the first time (Pending) or to restart
        // after a crash (Running, as the kubelet reports CrashLoopBackOff).
        let restarting = containers.iter().any(|c| c.restart_count > 0);
        return if restarting {
            PodPhase::Running
        } else {
            PodPhase::Pending
        };
    }
    let all_ok = terminated.iter().all(|&c| c == 0);
    match (policy, all_ok) {
        (_, true) => PodPhase::Succeeded,
        (RestartPolicy::Never, false) => PodPhase::Failed,
        // Restarts are coming for the failed ones.
        _ => PodPhase::Running,
    }
}

fn condition(type_: &str, ok: bool, now: Time, prev: Option<&PodStatus>) -> Condition {
    let status = if ok { "True" } else { "False" };
    let transition = prev
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .and_then(|c| c.last_transition_time)
        .unwrap_or(now);
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        last_transition_time: Some(transition),
        ..Condition::default()
    }
}

/// The full status for `containers` under `policy`.
pub fn pod_status(
    policy: RestartPolicy,
    containers: Vec<ContainerStatus>,
    facts: &PodFacts,
    prev: Option<&PodStatus>,
    now: Time,
) -> PodStatus {
    let phase = phase(policy, &containers);
    let all_ready = !containers.is_empty() && containers.iter().all(|c| c.ready);
    PodStatus {
        phase,
        conditions: vec![
            condition(reasons::POD_SCHEDULED, true, now, prev),
            condition(reasons::INITIALIZED, true, now, prev),
            condition(reasons::CONTAINERS_READY, all_ready, now, prev),
            condition(reasons::READY, all_ready, now, prev),
        ],
        host_ip: facts.host_ip.clone(),
        pod_ip: facts.pod_ip.clone(),
        start_time: prev
            .and_then(|p| p.start_time)
            .or(facts.start_time)
            .or(Some(now)),
        container_statuses: containers,
        ..PodStatus::default()
    }
}

/// A hollow node's report: every container running and ready since `now`.
pub fn all_running(pod: &Pod, facts: &PodFacts, now: Time) -> PodStatus {
    let containers = pod
        .spec
        .containers
        .iter()
        .map(|c| ContainerStatus {
            name: c.name.clone(),
            state: Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(now),
                }),
                ..ContainerState::default()
            }),
            ready: true,
            restart_count: 0,
            image: c.image.clone(),
            container_id: Some(format!("hollow://{}", c.name)),
            started: Some(true),
            ..ContainerStatus::default()
        })
        .collect();
    pod_status(
        pod.spec.restart_policy,
        containers,
        facts,
        pod.status.as_ref(),
        now,
    )
}

/// Whether `status` already says Running and Ready (nothing to write).
pub fn is_running_and_ready(status: Option<&PodStatus>) -> bool {
    status.is_some_and(|s| s.phase == PodPhase::Running && s.is_ready())
}

#[cfg(test)]
mod tests {
    use drover_proto::types::pod::{ContainerStateTerminated, ContainerStateWaiting};

    use super::*;

    fn running() -> ContainerStatus {
        ContainerStatus {
            name: "a".into(),
            state: Some(ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..ContainerState::default()
            }),
            ready: true,
            ..ContainerStatus::default()
        }
    }
    fn terminated(code: i32) -> ContainerStatus {
        ContainerStatus {
            name: "b".into(),
            state: Some(ContainerState {
                terminated: Some(ContainerStateTerminated {
                    exit_code: code,
                    ..ContainerStateTerminated::default()
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        }
    }
    fn waiting(restarts: i32) -> ContainerStatus {
        ContainerStatus {
            name: "c".into(),
            state: Some(ContainerState {
                waiting: Some(ContainerStateWaiting::default()),
                ..ContainerState::default()
            }),
            restart_count: restarts,
            ..ContainerStatus::default()
        }
    }

    #[test]
    fn phase_table() {
        use PodPhase::*;
        use RestartPolicy as P;
        let cases: Vec<(P, Vec<ContainerStatus>, PodPhase)> = vec![
            (P::Always, vec![], Pending),
            (P::Always, vec![waiting(0)], Pending),
            (P::Always, vec![waiting(2)], Running),
            (P::Always, vec![running(), terminated(1)], Running),
            (P::Never, vec![terminated(0), terminated(0)], Succeeded),
            (P::Never, vec![terminated(0), terminated(2)], Failed),
            (P::OnFailure, vec![terminated(2)], Running),
            (P::OnFailure, vec![terminated(0)], Succeeded),
        ];
        for (policy, cs, want) in cases {
            assert_eq!(phase(policy, &cs), want, "{policy:?} {cs:?}");
        }
    }

    #[test]
    fn conditions_keep_transition_times() {
        let t0 = Time::default();
        let t1 = t0 + chrono::Duration::seconds(5);
        let s0 = pod_status(
            RestartPolicy::Always,
            vec![waiting(0)],
            &PodFacts::default(),
            None,
            t0,
        );
        assert!(!s0.is_ready());
        let s1 = pod_status(
            RestartPolicy::Always,
            vec![running()],
            &PodFacts::default(),
            Some(&s0),
            t1,
        );
        assert!(s1.is_ready());
        let get = |s: &PodStatus, t: &str| {
            s.conditions
                .iter()
                .find(|c| c.type_ == t)
                .and_then(|c| c.last_transition_time)
        };
        assert_eq!(get(&s1, reasons::POD_SCHEDULED), Some(t0));
        assert_eq!(get(&s1, reasons::READY), Some(t1));
        assert_eq!(s1.start_time, Some(t0));
    }
}
