//! Rolling-update arithmetic, pure: how far the new ReplicaSet may grow and
//! how far the old ones may shrink without exceeding `replicas + maxSurge`
//! pods or dropping below `replicas - maxUnavailable` available ones.

use drover_proto::types::workload::{Deployment, DeploymentStrategyType, RollingUpdateDeployment};

/// A ReplicaSet's size as the arithmetic sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// `spec.replicas`.
    pub desired: i32,
    /// `status.availableReplicas`, never counted above `desired`: pods past
    /// the desired count are on their way out even if the status is stale.
    pub available: i32,
}

impl Size {
    pub fn new(desired: i32, available: i32) -> Size {
        Size {
            desired,
            available: available.min(desired).max(0),
        }
    }
}

/// `(maxSurge, maxUnavailable)` resolved against `replicas`; both zero would
/// stall the rollout, so maxUnavailable becomes 1 then (as Kubernetes does).
pub fn fenceposts(d: &Deployment) -> Result<(i32, i32), String> {
    if d.spec.strategy.type_ != DeploymentStrategyType::RollingUpdate {
        return Ok((0, 0));
    }
    let default = RollingUpdateDeployment::default();
    let ru = d.spec.strategy.rolling_update.as_ref().unwrap_or(&default);
    let r = d.spec.replicas;
    let surge = ru.max_surge.scaled_value(r, true)?.max(0);
    let mut unavailable = ru.max_unavailable.scaled_value(r, false)?.max(0);
    if surge == 0 && unavailable == 0 {
        unavailable = 1;
    }
    Ok((surge, unavailable.min(r.max(0))))
}

/// The new ReplicaSet's next `spec.replicas`.
pub fn new_replicaset_target(replicas: i32, max_surge: i32, new: i32, total_desired: i32) -> i32 {
    if new >= replicas {
        return replicas;
    }
    let room = replicas + max_surge - total_desired;
    if room <= 0 {
        return new;
    }
    new + room.min(replicas - new)
}

/// Next `spec.replicas` of each old ReplicaSet (oldest first): first shed
/// their unavailable pods, then available ones while enough stay available.
pub fn old_replicasets_targets(
    replicas: i32,
    max_unavailable: i32,
    new: Size,
    old: &[Size],
) -> Vec<i32> {
    let mut targets: Vec<i32> = old.iter().map(|s| s.desired).collect();
    let old_total: i32 = targets.iter().sum();
    if old_total == 0 {
        return targets;
    }
    let all_total = old_total + new.desired;
    let min_available = replicas - max_unavailable;
    let new_unavailable = new.desired - new.available;
    let max_scaled_down = all_total - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return targets;
    }
    // Unhealthy pods of old ReplicaSets cost no availability: remove them first.
    let mut cleaned = 0;
    for (t, s) in targets.iter_mut().zip(old) {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = s.desired - s.available;
        if unhealthy <= 0 {
            continue;
        }
        let n = unhealthy.min(max_scaled_down - cleaned);
        *t -= n;
        cleaned += n;
    }
    // Then available pods, as far as minAvailable allows.
    let available: i32 = new.available + old.iter().map(|s| s.available).sum::<i32>();
    let mut room = available - min_available;
    for (t, s) in targets.iter_mut().zip(old) {
        if room <= 0 {
            break;
        }
        let n = (*t).min(s.available).min(room);
        *t -= n;
        room -= n;
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_replicaset_grows_within_surge() {
        // 10 replicas, surge 3: old at 10, new at 0 -> new may go to 3.
        assert_eq!(new_replicaset_target(10, 3, 0, 10), 3);
        // Already at the ceiling: wait.
        assert_eq!(new_replicaset_target(10, 3, 3, 13), 3);
        // Never past replicas.
        assert_eq!(new_replicaset_target(10, 3, 9, 9), 10);
        // Scaled down deployment: shrink the new ReplicaSet.
        assert_eq!(new_replicaset_target(2, 1, 5, 5), 2);
    }

    #[test]
    fn old_replicasets_keep_min_available() {
        // 10 replicas, maxUnavailable 2; old 10 all available, new 3 none available.
        let t = old_replicasets_targets(10, 2, Size::new(3, 0), &[Size::new(10, 10)]);
        assert_eq!(t, vec![8]);
        // Unhealthy old pods go first even past the availability budget.
        let t = old_replicasets_targets(10, 0, Size::new(3, 3), &[Size::new(10, 7)]);
        assert_eq!(t, vec![7]);
    }
}
