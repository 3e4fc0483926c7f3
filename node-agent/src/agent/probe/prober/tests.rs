use drover_proto::meta::IntOrString;
use drover_proto::types::pod::TcpSocketAction;

use super::*;

fn probe(delay: i32, period: i32, success: i32, failure: i32) -> Probe {
    Probe {
        exec: None,
        http_get: None,
        tcp_socket: Some(TcpSocketAction {
            port: IntOrString::Int(80),
            host: None,
        }),
        initial_delay_seconds: delay,
        period_seconds: period,
        timeout_seconds: 1,
        success_threshold: success,
        failure_threshold: failure,
    }
}

fn fail() -> Outcome {
    Outcome::Failure("connection refused".into())
}

fn kinds(due: Vec<(ProbeKind, Probe)>) -> Vec<ProbeKind> {
    due.into_iter().map(|(k, _)| k).collect()
}

#[test]
fn no_probes_means_ready_at_once_and_nothing_due() {
    let mut p = Prober::new(&Container::default(), 0);
    assert!(p.ready() && p.started());
    assert!(p.due(1_000_000).is_empty());
    assert_eq!(p.next_wake(), None);
}

#[test]
fn readiness_waits_for_initial_delay_and_success_threshold() {
    let c = Container {
        readiness_probe: Some(probe(5, 2, 2, 3)),
        ..Container::default()
    };
    let mut p = Prober::new(&c, 1_000);
    assert!(!p.ready(), "not ready before the first success");
    assert!(p.due(5_999).is_empty());
    assert_eq!(p.next_wake(), Some(6_000));
    assert_eq!(kinds(p.due(6_000)), vec![ProbeKind::Readiness]);
    assert!(p.due(6_000).is_empty(), "in flight");
    assert_eq!(p.next_wake(), None);
    assert!(
        p.record(ProbeKind::Readiness, Outcome::Success, 6_010)
            .is_empty()
    );
    assert_eq!(p.next_wake(), Some(8_010));
    p.due(8_010);
    assert_eq!(
        p.record(ProbeKind::Readiness, Outcome::Success, 8_020),
        vec![Decision::ReadyChanged(true)]
    );
    // Three failures in a row make it unready; a success in between resets.
    for (t, outcome) in [
        (10_000, fail()),
        (12_000, Outcome::Success),
        (14_000, fail()),
        (16_000, fail()),
    ] {
        p.due(t);
        p.record(ProbeKind::Readiness, outcome, t);
        assert!(p.ready(), "at {t}");
    }
    p.due(18_000);
    let d = p.record(ProbeKind::Readiness, fail(), 18_000);
    assert_eq!(
        d,
        vec![
            Decision::Unhealthy {
                kind: ProbeKind::Readiness,
                message: "Readiness probe failed: connection refused".into()
            },
            Decision::ReadyChanged(false)
        ]
    );
}

#[test]
fn liveness_kills_after_failure_threshold_and_then_stops_probing() {
    let c = Container {
        liveness_probe: Some(probe(0, 1, 1, 2)),
        ..Container::default()
    };
    let mut p = Prober::new(&c, 0);
    assert!(p.ready(), "no readiness probe: ready once started");
    p.due(0);
    let d = p.record(ProbeKind::Liveness, fail(), 10);
    assert!(matches!(d.as_slice(), [Decision::Unhealthy { .. }]));
    p.due(1_010);
    let d = p.record(ProbeKind::Liveness, fail(), 1_020);
    assert!(matches!(
        d.as_slice(),
        [
            Decision::Unhealthy { .. },
            Decision::Kill {
                kind: ProbeKind::Liveness,
                ..
            },
            Decision::ReadyChanged(false)
        ]
    ));
    assert!(p.due(100_000).is_empty());
    assert_eq!(p.next_wake(), None);
}

#[test]
fn startup_gates_liveness_and_readiness() {
    let c = Container {
        startup_probe: Some(probe(0, 1, 1, 30)),
        liveness_probe: Some(probe(0, 10, 1, 3)),
        readiness_probe: Some(probe(0, 10, 1, 3)),
        ..Container::default()
    };
    let mut p = Prober::new(&c, 0);
    assert!(!p.started() && !p.ready());
    assert_eq!(kinds(p.due(0)), vec![ProbeKind::Startup]);
    p.record(ProbeKind::Startup, fail(), 5);
    assert_eq!(kinds(p.due(1_005)), vec![ProbeKind::Startup]);
    p.record(ProbeKind::Startup, Outcome::Success, 1_010);
    assert!(p.started() && !p.ready());
    assert_eq!(
        kinds(p.due(1_010)),
        vec![ProbeKind::Liveness, ProbeKind::Readiness]
    );
    assert_eq!(
        p.record(ProbeKind::Readiness, Outcome::Success, 1_020),
        vec![Decision::ReadyChanged(true)]
    );
    assert!(
        p.due(1_000_000)
            .iter()
            .all(|(k, _)| *k != ProbeKind::Startup)
    );
}

#[test]
fn startup_failure_threshold_kills() {
    let c = Container {
        startup_probe: Some(probe(0, 1, 1, 1)),
        ..Container::default()
    };
    let mut p = Prober::new(&c, 0);
    p.due(0);
    let d = p.record(ProbeKind::Startup, fail(), 1);
    assert!(d.iter().any(|d| matches!(
        d,
        Decision::Kill {
            kind: ProbeKind::Startup,
            ..
        }
    )));
}
