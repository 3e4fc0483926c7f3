//! `spec.behavior`: stabilization windows and scaling policies, with
//! Kubernetes' semantics and defaults (scale up: no window, at most
//! max(4 pods, +100%) per 15 s; scale down: a 300 s window, at most −100%
//! per 15 s). State (past recommendations and scale events) is kept by the
//! caller per autoscaler and passed in, so this stays a pure function.

use std::time::Duration;

use drover_proto::types::hpa::{HpaBehavior, HpaScalingPolicy, HpaScalingRules};

/// Resolved rules for one direction.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub window: Duration,
    pub select: Select,
    pub policies: Vec<Policy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    Max,
    Min,
    Disabled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Pods { value: i32, period: Duration },
    Percent { value: i32, period: Duration },
}

impl Policy {
    pub fn period(&self) -> Duration {
        match self {
            Policy::Pods { period, .. } | Policy::Percent { period, .. } => *period,
        }
    }
}

/// Both directions, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Behavior {
    pub up: Rules,
    pub down: Rules,
}

impl Behavior {
    /// `spec.behavior` with Kubernetes' defaults for what it leaves out.
    pub fn from_spec(spec: Option<&HpaBehavior>) -> Behavior {
        let secs = Duration::from_secs;
        let up_default = Rules {
            window: Duration::ZERO,
            select: Select::Max,
            policies: vec![
                Policy::Pods {
                    value: 4,
                    period: secs(15),
                },
                Policy::Percent {
                    value: 100,
                    period: secs(15),
                },
            ],
        };
        let down_default = Rules {
            window: secs(300),
            select: Select::Max,
            policies: vec![Policy::Percent {
                value: 100,
                period: secs(15),
            }],
        };
        Behavior {
            up: resolve(spec.and_then(|b| b.scale_up.as_ref()), up_default),
            down: resolve(spec.and_then(|b| b.scale_down.as_ref()), down_default),
        }
    }
}

fn resolve(rules: Option<&HpaScalingRules>, default: Rules) -> Rules {
    let Some(r) = rules else { return default };
    let window = r
        .stabilization_window_seconds
        .map(|s| Duration::from_secs(s.max(0) as u64))
        .unwrap_or(default.window);
    let select = match r.select_policy.as_deref() {
        Some("Min") => Select::Min,
        Some("Disabled") => Select::Disabled,
        Some("Max") => Select::Max,
        _ => default.select,
    };
    let policies = if r.policies.is_empty() {
        default.policies
    } else {
        r.policies.iter().filter_map(policy).collect()
    };
    Rules {
        window,
        select,
        policies,
    }
}

fn policy(p: &HpaScalingPolicy) -> Option<Policy> {
    let period = Duration::from_secs(p.period_seconds.max(1) as u64);
    match p.type_.as_str() {
        "Pods" => Some(Policy::Pods {
            value: p.value,
            period,
        }),
        "Percent" => Some(Policy::Percent {
            value: p.value,
            period,
        }),
        _ => None,
    }
}

/// What the autoscaler remembers between syncs (time since any origin).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Past raw recommendations.
    pub recommendations: Vec<(Duration, i32)>,
    /// Past scale changes (+ up, − down).
    pub events: Vec<(Duration, i32)>,
}

impl History {
    /// Forgets what no window or period can still need.
    pub fn prune(&mut self, now: Duration, keep: Duration) {
        let cutoff = now.saturating_sub(keep);
        self.recommendations.retain(|(t, _)| *t >= cutoff);
        self.events.retain(|(t, _)| *t >= cutoff);
    }
}

/// The decision of one sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaleDecision {
    pub replicas: i32,
    /// Why it is not what the metrics asked for, if it is not.
    pub limited_by: Option<&'static str>,
}

/// Stabilizes `desired` over the windows, then limits the change by the
/// policies and by min/max replicas; records the recommendation (and the
/// change, if any) in `history`.
pub fn decide(
    behavior: &Behavior,
    history: &mut History,
    now: Duration,
    current: i32,
    desired: i32,
    min: i32,
    max: i32,
) -> ScaleDecision {
    // Stabilize: scale up to the lowest, down to the highest recommendation
    // within the respective window.
    let mut up = desired;
    let mut down = desired;
    for (t, r) in &history.recommendations {
        if now.saturating_sub(*t) < behavior.up.window {
            up = up.min(*r);
        }
        if now.saturating_sub(*t) < behavior.down.window {
            down = down.max(*r);
        }
    }
    history.recommendations.push((now, desired));
    let mut replicas = current.max(up).min(down);
    let mut limited_by = (replicas != desired).then_some("stabilization window");

    if replicas > current {
        let limit = scale_up_limit(&behavior.up, history, now, current).max(current);
        let allowed = max.min(limit);
        if replicas > allowed {
            replicas = allowed;
            limited_by = Some(if allowed == max {
                "maxReplicas"
            } else {
                "scale-up policy"
            });
        }
    } else if replicas < current {
        let limit = scale_down_limit(&behavior.down, history, now, current).min(current);
        let allowed = min.max(limit);
        if replicas < allowed {
            replicas = allowed;
            limited_by = Some(if allowed == min {
                "minReplicas"
            } else {
                "scale-down policy"
            });
        }
    }
    // Outside [min, max] from the start (e.g. the user lowered max).
    if replicas > max {
        replicas = max;
        limited_by = Some("maxReplicas");
    }
    if replicas < min {
        replicas = min;
        limited_by = Some("minReplicas");
    }
    if replicas != current {
        history.events.push((now, replicas - current));
    }
    ScaleDecision {
        replicas,
        limited_by,
    }
}

/// Replicas at the start of a policy's period: current minus what was
/// added in it plus what was removed.
fn period_start(history: &History, now: Duration, period: Duration, current: i32) -> i32 {
    let changed: i32 = history
        .events
        .iter()
        .filter(|(t, _)| now.saturating_sub(*t) < period)
        .map(|(_, d)| *d)
        .sum();
    current - changed
}

fn scale_up_limit(rules: &Rules, history: &History, now: Duration, current: i32) -> i32 {
    if rules.select == Select::Disabled || rules.policies.is_empty() {
        return current;
    }
    let proposals = rules.policies.iter().map(|p| {
        let start = period_start(history, now, p.period(), current);
        match p {
            Policy::Pods { value, .. } => start.saturating_add(*value),
            Policy::Percent { value, .. } => {
                (f64::from(start) * (1.0 + f64::from(*value) / 100.0)).ceil() as i32
            }
        }
    });
    match rules.select {
        Select::Min => proposals.min().unwrap_or(current),
        _ => proposals.max().unwrap_or(current),
    }
}

fn scale_down_limit(rules: &Rules, history: &History, now: Duration, current: i32) -> i32 {
    if rules.select == Select::Disabled || rules.policies.is_empty() {
        return current;
    }
    let proposals = rules.policies.iter().map(|p| {
        let start = period_start(history, now, p.period(), current);
        match p {
            Policy::Pods { value, .. } => start.saturating_sub(*value),
            Policy::Percent { value, .. } => {
                (f64::from(start) * (1.0 - f64::from(*value) / 100.0)) as i32
            }
        }
    });
    // The largest allowed change ("Max") is the lowest replica count.
    match rules.select {
        Select::Min => proposals.max().unwrap_or(current),
        _ => proposals.min().unwrap_or(current),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn defaults() -> Behavior {
        Behavior::from_spec(None)
    }

    #[test]
    fn scale_up_is_limited_to_max_of_four_pods_or_double_per_15s() {
        let b = defaults();
        let mut h = History::default();
        // 2 → 20 wanted: max(2+4, 2×2) = 6.
        let d = decide(&b, &mut h, S(0), 2, 20, 1, 100);
        assert_eq!(d.replicas, 6);
        assert_eq!(d.limited_by, Some("scale-up policy"));
        // 5 s later, within the same period: still measured from 2.
        let d = decide(&b, &mut h, S(5), 6, 20, 1, 100);
        assert_eq!(d.replicas, 6);
        // After the period: from 6, max(10, 12) = 12.
        let d = decide(&b, &mut h, S(16), 6, 20, 1, 100);
        assert_eq!(d.replicas, 12);
    }

    #[test]
    fn scale_down_waits_for_the_stabilization_window() {
        let b = defaults();
        let mut h = History::default();
        assert_eq!(decide(&b, &mut h, S(0), 10, 10, 1, 100).replicas, 10);
        // Load drops: the 300 s window still remembers 10.
        let d = decide(&b, &mut h, S(10), 10, 2, 1, 100);
        assert_eq!(d.replicas, 10);
        assert_eq!(d.limited_by, Some("stabilization window"));
        let d = decide(&b, &mut h, S(200), 10, 2, 1, 100);
        assert_eq!(d.replicas, 10);
        // 300 s after the last high recommendation: down to 2.
        let d = decide(&b, &mut h, S(301), 10, 2, 1, 100);
        assert_eq!(d.replicas, 2);
    }

    #[test]
    fn min_and_max_bound_everything_and_zero_is_allowed() {
        let b = Behavior::from_spec(Some(&HpaBehavior {
            scale_down: Some(HpaScalingRules {
                stabilization_window_seconds: Some(0),
                ..Default::default()
            }),
            scale_up: None,
        }));
        let mut h = History::default();
        assert_eq!(decide(&b, &mut h, S(0), 3, 50, 1, 5).replicas, 5);
        assert_eq!(decide(&b, &mut h, S(100), 5, 0, 0, 5).replicas, 0);
        let d = decide(&b, &mut h, S(200), 3, 0, 2, 5);
        assert_eq!((d.replicas, d.limited_by), (2, Some("minReplicas")));
        assert_eq!(decide(&b, &mut h, S(300), 0, 1, 0, 5).replicas, 1);
    }

    #[test]
    fn policies_from_the_spec_and_select_min() {
        let rules = HpaScalingRules {
            stabilization_window_seconds: Some(0),
            select_policy: Some("Min".into()),
            policies: vec![
                HpaScalingPolicy {
                    type_: "Pods".into(),
                    value: 1,
                    period_seconds: 60,
                },
                HpaScalingPolicy {
                    type_: "Percent".into(),
                    value: 50,
                    period_seconds: 60,
                },
            ],
        };
        let b = Behavior::from_spec(Some(&HpaBehavior {
            scale_up: Some(rules.clone()),
            scale_down: Some(rules),
        }));
        let mut h = History::default();
        // Up from 4: min(4+1, 6) = 5.
        assert_eq!(decide(&b, &mut h, S(0), 4, 9, 1, 100).replicas, 5);
        // Down later from 8: Min change is the larger count, max(8-1, 4) = 7.
        assert_eq!(decide(&b, &mut h, S(100), 8, 1, 1, 100).replicas, 7);
        let disabled = Behavior::from_spec(Some(&HpaBehavior {
            scale_up: Some(HpaScalingRules {
                select_policy: Some("Disabled".into()),
                ..Default::default()
            }),
            scale_down: None,
        }));
        assert_eq!(
            decide(&disabled, &mut History::default(), S(0), 3, 9, 1, 100).replicas,
            3
        );
    }

    #[test]
    fn history_is_pruned() {
        let mut h = History {
            recommendations: vec![(S(0), 1), (S(500), 2)],
            events: vec![(S(0), 1)],
        };
        h.prune(S(600), S(300));
        assert_eq!(h.recommendations, vec![(S(500), 2)]);
        assert!(h.events.is_empty());
    }
}
