use super::*;

fn backoff() -> Backoff {
    Backoff {
        initial: Duration::from_secs(10),
        max: Duration::from_secs(40),
        reset_after: Duration::from_secs(600),
    }
}

fn exit(code: i32, at: u64) -> Observation {
    Observation::Exited(Exit {
        exit_code: code,
        reason: if code == 0 { "Completed" } else { "Error" }.into(),
        finished_at_ms: at,
        ..Exit::default()
    })
}

fn started(m: &mut Machine, now: u64) {
    assert_eq!(
        m.next(Observation::Tick { now_ms: now }),
        vec![Effect::Start]
    );
    assert_eq!(m.next(Observation::Started { started_at_ms: now }), vec![]);
}

fn waiting_reason(m: &Machine) -> Option<&str> {
    match &m.state {
        State::Waiting { reason, .. } => Some(reason),
        _ => None,
    }
}

#[test]
fn backoff_doubles_to_its_cap() {
    let b = backoff();
    let delays: Vec<u64> = (0..6).map(|f| b.delay(f).as_secs()).collect();
    assert_eq!(delays, [0, 10, 20, 40, 40, 40]);
    assert_eq!(b.delay(u32::MAX), b.max);
}

#[test]
fn crash_loop_restarts_with_growing_delays() {
    let mut m = Machine::new(RestartPolicy::Always, backoff());
    started(&mut m, 0);
    // First crash: restart at once.
    assert_eq!(
        m.next(exit(1, 1_000)),
        vec![Effect::Cleanup, Effect::WakeAt { at_ms: 1_000 }]
    );
    assert_eq!(waiting_reason(&m), Some(reason::CRASH_LOOP_BACK_OFF));
    started(&mut m, 1_000);
    assert_eq!(m.restart_count, 1);
    // Second crash: 10 s.
    assert_eq!(
        m.next(exit(1, 2_000)),
        vec![Effect::Cleanup, Effect::WakeAt { at_ms: 12_000 }]
    );
    // Too early: wait on.
    assert_eq!(
        m.next(Observation::Tick { now_ms: 5_000 }),
        vec![Effect::WakeAt { at_ms: 12_000 }]
    );
    started(&mut m, 12_000);
    assert_eq!(m.restart_count, 2);
    assert_eq!(
        m.next(exit(1, 13_000)),
        vec![Effect::Cleanup, Effect::WakeAt { at_ms: 33_000 }]
    );
    assert_eq!(m.last_exit.as_ref().map(|e| e.exit_code), Some(1));
}

#[test]
fn running_long_enough_forgives_failures() {
    let mut m = Machine::new(RestartPolicy::Always, backoff());
    m.failures = 3;
    started(&mut m, 0);
    m.next(exit(1, 700_000));
    // Reset to the first (immediate) restart.
    assert_eq!(
        m.state,
        State::Waiting {
            reason: reason::CRASH_LOOP_BACK_OFF.into(),
            message: Some("back-off 0s restarting failed container".into()),
            retry_at_ms: 700_000
        }
    );
}

#[test]
fn restart_policy_table() {
    use RestartPolicy::*;
    for (policy, code, restarts) in [
        (Always, 0, true),
        (Always, 1, true),
        (OnFailure, 0, false),
        (OnFailure, 2, true),
        (Never, 0, false),
        (Never, 2, false),
    ] {
        let mut m = Machine::new(policy, backoff());
        started(&mut m, 0);
        m.next(exit(code, 10));
        assert_eq!(
            matches!(m.state, State::Waiting { .. }),
            restarts,
            "{policy:?} exit {code}"
        );
        assert_eq!(m.is_finished(), !restarts, "{policy:?} exit {code}");
    }
}

#[test]
fn pull_failures_back_off_as_image_pull_back_off() {
    let mut m = Machine::new(RestartPolicy::Never, backoff());
    assert_eq!(m.next(Observation::Tick { now_ms: 0 }), vec![Effect::Start]);
    let failed = Observation::StartFailed {
        now_ms: 100,
        reason: reason::ERR_IMAGE_PULL.into(),
        message: "registry unreachable".into(),
        pull: true,
    };
    assert_eq!(
        m.next(failed),
        vec![Effect::Cleanup, Effect::WakeAt { at_ms: 10_100 }]
    );
    assert_eq!(waiting_reason(&m), Some(reason::ERR_IMAGE_PULL));
    m.next(Observation::Tick { now_ms: 200 });
    assert_eq!(waiting_reason(&m), Some(reason::IMAGE_PULL_BACK_OFF));
    assert_eq!(
        m.next(Observation::Tick { now_ms: 10_100 }),
        vec![Effect::Start]
    );
    assert_eq!(m.restart_count, 0, "a failed pull is no restart");
    assert!(!m.is_finished(), "pulls are retried whatever the policy");
}

#[test]
fn delete_stops_a_running_container_and_never_restarts_it() {
    let mut m = Machine::new(RestartPolicy::Always, backoff());
    started(&mut m, 0);
    let grace = Duration::from_secs(30);
    assert_eq!(
        m.next(Observation::Delete { grace }),
        vec![Effect::Stop { grace }]
    );
    assert!(!m.is_finished());
    assert_eq!(m.next(exit(143, 500)), vec![Effect::Cleanup]);
    assert!(m.is_finished());
    assert_eq!(m.next(Observation::Tick { now_ms: 99_999 }), vec![]);
}

#[test]
fn delete_during_start_stops_once_started() {
    let mut m = Machine::new(RestartPolicy::Always, backoff());
    assert_eq!(m.next(Observation::Tick { now_ms: 0 }), vec![Effect::Start]);
    assert_eq!(
        m.next(Observation::Delete {
            grace: Duration::from_secs(5)
        }),
        vec![]
    );
    assert_eq!(
        m.next(Observation::Started { started_at_ms: 1 }),
        vec![Effect::Stop {
            grace: Duration::ZERO
        }]
    );
    m.next(exit(137, 2));
    assert!(m.is_finished());
}

#[test]
fn delete_of_a_waiting_container_finishes_it() {
    let mut m = Machine::new(RestartPolicy::Always, backoff());
    assert_eq!(
        m.next(Observation::Delete {
            grace: Duration::from_secs(5)
        }),
        vec![]
    );
    assert!(m.is_finished());
    assert_eq!(m.next(Observation::Tick { now_ms: 0 }), vec![]);
}

#[test]
fn adopted_containers_are_running_with_their_restart_count() {
    let mut m = Machine::adopted(RestartPolicy::Always, backoff(), 3, 50);
    assert_eq!(m.state, State::Running { started_at_ms: 50 });
    assert_eq!(m.restart_count, 3);
    assert_eq!(m.next(Observation::Tick { now_ms: 60 }), vec![]);
}
