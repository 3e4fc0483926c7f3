//! How many replicas each metric asks for (Kubernetes' replica calculator):
//! `ceil(current × usage / target)`, nothing within the tolerance, and pods
//! without metrics counted pessimistically so a missing sample never causes
//! a flap (as 0 when scaling up, as the target when scaling down).

use drover_proto::Quantity;
use drover_proto::types::hpa::{
    HpaSpec, MetricIdentifier, MetricSourceType, MetricSpec, MetricStatus, MetricTargetType,
    MetricValueStatus, PodsMetricStatus, ResourceMetricStatus,
};

use super::REQUESTS_PER_SECOND;

/// One pod of the target, as the metrics pipeline last saw it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodSample {
    pub name: String,
    /// Running and Ready: only these count towards the average.
    pub ready: bool,
    /// CPU in use, millicores (None: no sample yet).
    pub cpu_millis: Option<f64>,
    /// Sum of the pod's containers' cpu requests, millicores.
    pub cpu_request_millis: f64,
    /// Requests per second served (None: no sample yet).
    pub rps: Option<f64>,
}

/// What the autoscaler sees of its target at one sync.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// `spec.replicas` of the target.
    pub current_replicas: i32,
    pub pods: Vec<PodSample>,
    /// Requests a node's proxy is holding for a service scaled to zero.
    pub pending_requests: u64,
}

/// The unclamped replica count the metrics ask for, and what was measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Recommendation {
    pub replicas: i32,
    pub metrics: Vec<MetricStatus>,
    /// Why, for the HPA's conditions and Events.
    pub reason: String,
}

/// Why no recommendation could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecommendError {
    /// the HPA has no metrics to scale on
    #[error("the HorizontalPodAutoscaler has no metrics")]
    NoMetrics,
    /// a metric this autoscaler cannot compute
    #[error("metric {0}: not supported (use Resource cpu or Pods {REQUESTS_PER_SECOND})")]
    Unsupported(String),
    /// a target without the value its type needs
    #[error("metric {0}: target needs {1}")]
    BadTarget(String, &'static str),
    /// no pod has reported the metric yet
    #[error("metric {0}: no pod has reported it yet")]
    NoSamples(String),
    /// cpu utilization without cpu requests cannot be computed
    #[error("cpu utilization: the pods have no cpu requests")]
    NoRequests,
}

/// The replica count `spec`'s metrics ask for given `obs` (the largest over
/// metrics, as Kubernetes takes), before behavior and min/max.
pub fn recommend(
    spec: &HpaSpec,
    obs: &Observation,
    tolerance: f64,
) -> Result<Recommendation, RecommendError> {
    if obs.current_replicas == 0 {
        // Scaled to zero: there is nothing to measure; wake on held requests.
        let replicas = i32::from(obs.pending_requests > 0);
        let reason = if replicas > 0 {
            format!("{} request(s) waiting for a replica", obs.pending_requests)
        } else {
            "scaled to zero and no requests waiting".to_string()
        };
        return Ok(Recommendation {
            replicas,
            metrics: Vec::new(),
            reason,
        });
    }
    if spec.metrics.is_empty() {
        return Err(RecommendError::NoMetrics);
    }
    let mut best: Option<(i32, String)> = None;
    let mut statuses = Vec::new();
    let mut all_request_metrics_idle = true;
    let mut has_request_metric = false;
    for metric in &spec.metrics {
        let (proposal, status, label) = one_metric(metric, obs, tolerance)?;
        if label == REQUESTS_PER_SECOND {
            has_request_metric = true;
            all_request_metrics_idle &= proposal == 0;
        }
        statuses.push(status);
        if best.as_ref().is_none_or(|(r, _)| proposal > *r) {
            best = Some((proposal, label));
        }
    }
    let (mut replicas, label) = best.ok_or(RecommendError::NoMetrics)?;
    let mut reason = format!("{label} asks for {replicas}");
    // An idle web service (no requests at all) may go to zero even though
    // its CPU never reads exactly 0.
    if spec.min_replicas == 0 && has_request_metric && all_request_metrics_idle {
        replicas = 0;
        reason = "no requests: scale to zero".to_string();
    }
    if replicas == 0 && obs.pending_requests > 0 {
        // Requests still held (the endpoint is not in every node's rules
        // yet): going back to zero would strand them.
        replicas = 1;
        reason = format!("{} request(s) waiting for a replica", obs.pending_requests);
    }
    Ok(Recommendation {
        replicas,
        metrics: statuses,
        reason,
    })
}

fn one_metric(
    metric: &MetricSpec,
    obs: &Observation,
    tolerance: f64,
) -> Result<(i32, MetricStatus, String), RecommendError> {
    match (metric.type_, &metric.resource, &metric.pods) {
        (MetricSourceType::Resource, Some(r), _) if r.name == "cpu" => {
            let target = match (r.target.type_, r.target.average_utilization) {
                (MetricTargetType::Utilization, Some(u)) if u > 0 => f64::from(u),
                _ => {
                    return Err(RecommendError::BadTarget(
                        "cpu".into(),
                        "type Utilization with averageUtilization > 0",
                    ));
                }
            };
            let ready: Vec<&PodSample> = obs.pods.iter().filter(|p| p.ready).collect();
            let request: f64 = ready.iter().map(|p| p.cpu_request_millis).sum();
            if request <= 0.0 {
                return Err(RecommendError::NoRequests);
            }
            // Utilization of each pod, in percent of its request.
            let samples: Vec<Option<f64>> = ready
                .iter()
                .map(|p| {
                    p.cpu_millis
                        .map(|u| 100.0 * u / p.cpu_request_millis.max(f64::MIN_POSITIVE))
                })
                .collect();
            let (replicas, average) =
                calculate(&samples, target, obs.current_replicas, tolerance, "cpu")?;
            let status = MetricStatus {
                type_: MetricSourceType::Resource,
                resource: Some(ResourceMetricStatus {
                    name: "cpu".into(),
                    current: MetricValueStatus {
                        average_utilization: Some(average.round() as i32),
                        ..Default::default()
                    },
                }),
                pods: None,
            };
            Ok((replicas, status, "cpu utilization".into()))
        }
        (MetricSourceType::Pods, _, Some(p)) if p.metric.name == REQUESTS_PER_SECOND => {
            let target = match (p.target.type_, &p.target.average_value) {
                (MetricTargetType::AverageValue, Some(v)) if v.as_f64() > 0.0 => v.as_f64(),
                _ => {
                    return Err(RecommendError::BadTarget(
                        REQUESTS_PER_SECOND.into(),
                        "type AverageValue with averageValue > 0",
                    ));
                }
            };
            let samples: Vec<Option<f64>> =
                obs.pods.iter().filter(|p| p.ready).map(|p| p.rps).collect();
            let (replicas, average) = calculate(
                &samples,
                target,
                obs.current_replicas,
                tolerance,
                REQUESTS_PER_SECOND,
            )?;
            let status = MetricStatus {
                type_: MetricSourceType::Pods,
                resource: None,
                pods: Some(PodsMetricStatus {
                    metric: MetricIdentifier {
                        name: REQUESTS_PER_SECOND.into(),
                    },
                    current: MetricValueStatus {
                        average_value: Some(Quantity::from_millis((average * 1000.0) as i64)),
                        ..Default::default()
                    },
                }),
            };
            // All pods reporting exactly no requests: this metric asks for 0.
            let idle = samples.iter().all(|s| *s == Some(0.0)) && !samples.is_empty();
            Ok((
                if idle { 0 } else { replicas },
                status,
                REQUESTS_PER_SECOND.into(),
            ))
        }
        _ => Err(RecommendError::Unsupported(format!("{:?}", metric.type_))),
    }
}

/// Kubernetes' calculation over per-pod values (None: no sample): returns
/// the proposed replicas and the average over the pods that reported.
fn calculate(
    samples: &[Option<f64>],
    target: f64,
    current: i32,
    tolerance: f64,
    name: &str,
) -> Result<(i32, f64), RecommendError> {
    let reported: Vec<f64> = samples.iter().flatten().copied().collect();
    if reported.is_empty() {
        return Err(RecommendError::NoSamples(name.into()));
    }
    let missing = samples.len() - reported.len();
    let average = reported.iter().sum::<f64>() / reported.len() as f64;
    let ratio = average / target;
    if missing == 0 {
        if (ratio - 1.0).abs() <= tolerance {
            return Ok((current, average));
        }
        return Ok((ceil(ratio * reported.len() as f64), average));
    }
    // Pods without samples: assume the value that argues against the move.
    let assumed = if ratio > 1.0 { 0.0 } else { target };
    let total = reported.iter().sum::<f64>() + assumed * missing as f64;
    let new_ratio = total / samples.len() as f64 / target;
    let flips = (ratio > 1.0 && new_ratio < 1.0) || (ratio < 1.0 && new_ratio > 1.0);
    if flips || (new_ratio - 1.0).abs() <= tolerance {
        return Ok((current, average));
    }
    Ok((ceil(new_ratio * samples.len() as f64), average))
}

fn ceil(x: f64) -> i32 {
    // A hair below an integer is that integer (float noise).
    (x - 1e-6).ceil().clamp(0.0, f64::from(i32::MAX)) as i32
}

#[cfg(test)]
mod tests;
