//! Score: prefer nodes that already have the pod's images (`status.images`),
//! weighted by image size and by how widely the image is spread, so large
//! images start fast without piling every pod on the one node that has them.

use drover_proto::types::Pod;

use crate::framework::{MAX_NODE_SCORE, Plugin, PodState};
use crate::snapshot::{ClusterSnapshot, NodeInfo, normalize_image};

const MB: i64 = 1024 * 1024;
/// Below this much image data present, a node gets no locality score.
const MIN_THRESHOLD: i64 = 23 * MB;
/// Per container, image data above this earns nothing more.
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

#[derive(Debug, Default)]
pub struct State {
    /// (image, nodes having it)
    images: Vec<(String, i64)>,
    total_nodes: i64,
}

impl State {
    pub fn new(pod: &Pod, snapshot: &ClusterSnapshot) -> State {
        let images = pod
            .spec
            .containers
            .iter()
            .map(|c| normalize_image(&c.image))
            .map(|i| {
                let n = i64::from(snapshot.image_node_count(&i));
                (i, n)
            })
            .filter(|(_, n)| *n > 0)
            .collect();
        State {
            images,
            total_nodes: snapshot.num_nodes() as i64,
        }
    }
}

pub struct ImageLocality;

impl Plugin for ImageLocality {
    fn name(&self) -> &'static str {
        "ImageLocality"
    }

    fn skip_score(&self, state: &PodState<'_>) -> bool {
        state.images.images.is_empty()
    }

    fn score(&self, state: &PodState<'_>, node: &NodeInfo, _: &ClusterSnapshot) -> i64 {
        let s = &state.images;
        let Some(facts) = node.facts() else { return 0 };
        if s.images.is_empty() || s.total_nodes == 0 {
            return 0;
        }
        let sum: i64 = s
            .images
            .iter()
            .filter_map(|(i, spread)| {
                facts
                    .images
                    .get(i)
                    .map(|size| size.saturating_mul(*spread) / s.total_nodes)
            })
            .sum();
        let containers = state.pod.spec.containers.len().max(1) as i64;
        let max = MAX_CONTAINER_THRESHOLD * containers;
        let sum = sum.clamp(MIN_THRESHOLD, max);
        (sum - MIN_THRESHOLD) * MAX_NODE_SCORE / (max - MIN_THRESHOLD)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{NodeBuilder, PodBuilder, scores, snapshot};

    #[test]
    fn table() {
        let snap = snapshot(
            &[
                NodeBuilder::new("big").image("db:1", 1000 * MB).build(),
                NodeBuilder::new("both")
                    .image("db:1", 1000 * MB)
                    .image("web", 10 * MB)
                    .build(),
                NodeBuilder::new("none").build(),
            ],
            &[],
        );
        let db = PodBuilder::new("p").image("db:1").build();
        let s = scores(&ImageLocality, &db, &snap);
        // 1000MB spread over 2 of 3 nodes → 666MB → (666-23)/(1000-23).
        assert_eq!((s["big"], s["both"], s["none"]), (65, 65, 0));
        let web = PodBuilder::new("p").image("web:latest").build();
        assert!(
            scores(&ImageLocality, &web, &snap)
                .values()
                .all(|&v| v == 0),
            "small images earn nothing"
        );
    }
}
