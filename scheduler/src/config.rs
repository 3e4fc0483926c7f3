//! Scheduler configuration: scoring strategy, plugin weights and sampling.

use std::time::Duration;

/// How the resource score ranks nodes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ScoringStrategy {
    /// Prefer the emptiest node (spreads load; Kubernetes' default).
    #[default]
    LeastAllocated,
    /// Prefer the fullest node that fits (bin packing).
    MostAllocated,
}

/// Settings for the pure core and the loop. `Default` is Kubernetes' defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerConfig {
    pub scoring_strategy: ScoringStrategy,
    /// Percentage of nodes to find feasible before scoring; `None` adapts to
    /// cluster size as kube-scheduler does (50% minus 1% per 125 nodes, at least 5%).
    pub percentage_of_nodes_to_score: Option<u32>,
    /// Lower bound on feasible nodes to find, whatever the percentage.
    pub min_feasible_nodes_to_find: usize,
    /// Backoff for a pod that did not fit: doubles per attempt up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// How long an unschedulable pod waits for a helpful cluster event before
    /// it is retried anyway.
    pub unschedulable_flush: Duration,
    /// Bind calls in flight at once.
    pub max_concurrent_binds: usize,
    /// Name written in Events' `source.component`.
    pub scheduler_name: String,
}

impl Default for SchedulerConfig {
    fn default() -> SchedulerConfig {
        SchedulerConfig {
            scoring_strategy: ScoringStrategy::LeastAllocated,
            percentage_of_nodes_to_score: None,
            min_feasible_nodes_to_find: 100,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            unschedulable_flush: Duration::from_secs(60),
            max_concurrent_binds: 64,
            scheduler_name: "drover-scheduler".into(),
        }
    }
}

impl SchedulerConfig {
    /// How many feasible nodes to look for among `num_nodes` before scoring.
    pub fn num_feasible_nodes_to_find(&self, num_nodes: usize) -> usize {
        if num_nodes <= self.min_feasible_nodes_to_find {
            return num_nodes;
        }
        let pct = match self.percentage_of_nodes_to_score {
            Some(p) => p.clamp(1, 100) as usize,
            None => 50usize.saturating_sub(num_nodes / 125).max(5),
        };
        (num_nodes * pct / 100).max(self.min_feasible_nodes_to_find)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_sampling_matches_kube_scheduler() {
        let c = SchedulerConfig::default();
        assert_eq!(c.num_feasible_nodes_to_find(50), 50);
        assert_eq!(c.num_feasible_nodes_to_find(1000), 420);
        assert_eq!(c.num_feasible_nodes_to_find(5000), 500);
        assert_eq!(c.num_feasible_nodes_to_find(100_000), 5000);
    }
}
