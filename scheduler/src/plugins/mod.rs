//! The filter and score plugins, one per file, and the default profile.

pub mod balanced_allocation;
pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_unschedulable;
pub mod resources_fit;
pub mod runtime_offered;
pub mod taint_toleration;
pub mod topology_spread;
pub mod workload_spread;

use crate::framework::Plugin;

/// Filters in the order kube-scheduler runs them; the first failure is the
/// node's reason.
pub fn default_filters() -> Vec<Box<dyn Plugin>> {
    vec![
        Box::new(node_unschedulable::NodeUnschedulable),
        Box::new(node_affinity::NodeAffinity),
        Box::new(runtime_offered::RuntimeOffered),
        Box::new(taint_toleration::TaintToleration),
        Box::new(resources_fit::NodeResourcesFit),
        Box::new(topology_spread::PodTopologySpread),
        Box::new(inter_pod_affinity::InterPodAffinity),
    ]
}

/// Scores with their weights (kube-scheduler's defaults where it has them).
pub fn default_scores() -> Vec<(Box<dyn Plugin>, i64)> {
    vec![
        (Box::new(resources_fit::NodeResourcesFit), 1),
        (Box::new(balanced_allocation::BalancedAllocation), 1),
        (Box::new(node_affinity::NodeAffinity), 2),
        (Box::new(topology_spread::PodTopologySpread), 2),
        (Box::new(workload_spread::WorkloadSpread), 2),
        (Box::new(image_locality::ImageLocality), 1),
    ]
}
