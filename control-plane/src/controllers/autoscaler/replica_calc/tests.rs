use drover_proto::types::hpa::HpaSpec;

use super::*;
use crate::controllers::autoscaler::TOLERANCE;

fn spec(yaml_metrics: serde_json::Value, min: i32) -> HpaSpec {
    serde_json::from_value(serde_json::json!({
        "scaleTargetRef": {"kind": "Deployment", "name": "web"},
        "minReplicas": min, "maxReplicas": 10, "metrics": yaml_metrics,
    }))
    .unwrap()
}

fn cpu(target: i32) -> serde_json::Value {
    serde_json::json!([{"type": "Resource", "resource": {"name": "cpu",
        "target": {"type": "Utilization", "averageUtilization": target}}}])
}

fn rps(target: &str) -> serde_json::Value {
    serde_json::json!([{"type": "Pods", "pods": {"metric": {"name": "requests_per_second"},
        "target": {"type": "AverageValue", "averageValue": target}}}])
}

fn pod(cpu_millis: Option<f64>, rps: Option<f64>) -> PodSample {
    PodSample {
        name: "p".into(),
        ready: true,
        cpu_millis,
        cpu_request_millis: 100.0,
        rps,
    }
}

fn obs(pods: Vec<PodSample>) -> Observation {
    Observation {
        current_replicas: pods.len() as i32,
        pods,
        pending_requests: 0,
    }
}

#[test]
fn cpu_utilization_table() {
    // (per-pod usage in millicores of a 100m request, target %, expected)
    let cases: &[(&[f64], i32, i32)] = &[
        (&[70.0, 70.0], 70, 2),             // on target
        (&[75.0, 75.0], 70, 2),             // within 10%
        (&[140.0, 140.0], 70, 4),           // double
        (&[35.0, 35.0, 35.0, 35.0], 70, 2), // half
        (&[100.0], 50, 2),
        (&[1.0, 1.0, 1.0], 70, 1), // nearly idle: ceil keeps one
    ];
    for (usage, target, want) in cases {
        let o = obs(usage.iter().map(|u| pod(Some(*u), None)).collect());
        let r = recommend(&spec(cpu(*target), 1), &o, TOLERANCE).unwrap();
        assert_eq!(r.replicas, *want, "usage {usage:?} target {target}");
    }
}

#[test]
fn requests_per_second_average_value() {
    let o = obs(vec![pod(None, Some(250.0)), pod(None, Some(350.0))]);
    let r = recommend(&spec(rps("100"), 1), &o, TOLERANCE).unwrap();
    assert_eq!(r.replicas, 6);
    let avg = r.metrics[0]
        .pods
        .as_ref()
        .unwrap()
        .current
        .average_value
        .clone();
    assert_eq!(avg.map(|q| q.as_f64()), Some(300.0));
}

#[test]
fn missing_samples_never_cause_a_flap() {
    // Two pods far above target, one without a sample: the missing one
    // counts as 0 for scale-up (3 × 150/100 → ratio (150+150+0)/3/100 = 1.0).
    let o = obs(vec![
        pod(None, Some(150.0)),
        pod(None, Some(150.0)),
        pod(None, None),
    ]);
    let r = recommend(&spec(rps("100"), 1), &o, TOLERANCE).unwrap();
    assert_eq!(r.replicas, 3, "stays put rather than scale on a guess");
    // Far above even with the pessimistic fill: (600 + 0) / 2 pods is 3×
    // the target, so 2 pods become 6.
    let o = obs(vec![pod(None, Some(600.0)), pod(None, None)]);
    let r = recommend(&spec(rps("100"), 1), &o, TOLERANCE).unwrap();
    assert_eq!(r.replicas, 6);
}

#[test]
fn not_ready_pods_do_not_count() {
    let mut starting = pod(Some(0.0), Some(0.0));
    starting.ready = false;
    let o = Observation {
        current_replicas: 3,
        pods: vec![pod(Some(140.0), None), pod(Some(140.0), None), starting],
        pending_requests: 0,
    };
    let r = recommend(&spec(cpu(70), 1), &o, TOLERANCE).unwrap();
    assert_eq!(r.replicas, 4);
}

#[test]
fn the_largest_metric_wins() {
    let metrics = serde_json::json!([
        {"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 70}}},
        {"type": "Pods", "pods": {"metric": {"name": "requests_per_second"},
            "target": {"type": "AverageValue", "averageValue": "100"}}},
    ]);
    let o = obs(vec![
        pod(Some(10.0), Some(500.0)),
        pod(Some(10.0), Some(500.0)),
    ]);
    let r = recommend(&spec(metrics, 1), &o, TOLERANCE).unwrap();
    assert_eq!(r.replicas, 10);
    assert_eq!(r.metrics.len(), 2);
}

#[test]
fn idle_requests_scale_to_zero_only_when_min_is_zero() {
    let metrics = serde_json::json!([
        {"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 70}}},
        {"type": "Pods", "pods": {"metric": {"name": "requests_per_second"},
            "target": {"type": "AverageValue", "averageValue": "100"}}},
    ]);
    let mut idle = obs(vec![pod(Some(2.0), Some(0.0)), pod(Some(2.0), Some(0.0))]);
    assert_eq!(
        recommend(&spec(metrics.clone(), 0), &idle, TOLERANCE)
            .unwrap()
            .replicas,
        0
    );
    // Requests still held on some node: not back to zero yet.
    idle.pending_requests = 1;
    assert_eq!(
        recommend(&spec(metrics.clone(), 0), &idle, TOLERANCE)
            .unwrap()
            .replicas,
        1
    );
    assert_eq!(
        recommend(&spec(metrics, 1), &idle, TOLERANCE)
            .unwrap()
            .replicas,
        1
    );
}

#[test]
fn from_zero_held_requests_wake_one_replica() {
    let mut o = obs(vec![]);
    assert_eq!(
        recommend(&spec(rps("100"), 0), &o, TOLERANCE)
            .unwrap()
            .replicas,
        0
    );
    o.pending_requests = 3;
    assert_eq!(
        recommend(&spec(rps("100"), 0), &o, TOLERANCE)
            .unwrap()
            .replicas,
        1
    );
}

#[test]
fn bad_specs_are_errors_not_panics() {
    let o = obs(vec![pod(Some(10.0), Some(1.0))]);
    assert_eq!(
        recommend(&spec(serde_json::json!([]), 1), &o, TOLERANCE),
        Err(RecommendError::NoMetrics)
    );
    assert!(matches!(
        recommend(&spec(cpu(0), 1), &o, TOLERANCE),
        Err(RecommendError::BadTarget(..))
    ));
    assert!(matches!(
        recommend(&spec(rps("0"), 1), &o, TOLERANCE),
        Err(RecommendError::BadTarget(..))
    ));
    let no_samples = obs(vec![pod(None, None)]);
    assert!(matches!(
        recommend(&spec(rps("10"), 1), &no_samples, TOLERANCE),
        Err(RecommendError::NoSamples(_))
    ));
    let mut no_request = pod(Some(10.0), None);
    no_request.cpu_request_millis = 0.0;
    assert_eq!(
        recommend(&spec(cpu(50), 1), &obs(vec![no_request]), TOLERANCE),
        Err(RecommendError::NoRequests)
    );
}
