//! Snapshot bookkeeping: totals and indexes follow every incremental change.

use super::*;
use crate::testing::{GI, NodeBuilder, PodBuilder, snapshot};

#[test]
fn requested_totals_follow_pod_changes() {
    let mut s = snapshot(&[NodeBuilder::new("n1").build()], &[]);
    let p = PodBuilder::new("p").requests(500, GI).node("n1").build();
    s.upsert_pod(&p);
    s.upsert_pod(&p); // an update must not double count
    let n = s.node("n1").expect("node");
    assert_eq!(
        (n.requested.milli_cpu, n.requested.memory, n.requested.pods),
        (500, GI, 1)
    );
    let mut done = p.clone();
    done.status = Some(drover_proto::types::pod::PodStatus {
        phase: drover_proto::types::pod::PodPhase::Succeeded,
        ..Default::default()
    });
    s.upsert_pod(&done);
    assert_eq!(
        s.node("n1").map(|n| n.requested.pods),
        Some(0),
        "terminal pods free resources"
    );
    s.upsert_pod(&p);
    s.remove_pod("default/p");
    assert_eq!(s.num_pods(), 0);
    assert_eq!(s.node("n1").map(|n| n.requested.milli_cpu), Some(0));
}

#[test]
fn pods_seen_before_their_node_are_kept() {
    let mut s = ClusterSnapshot::new();
    s.upsert_pod(
        &PodBuilder::new("early")
            .requests(100, GI)
            .label("app", "x")
            .anti_affinity(ZONE_LABEL, "y")
            .node("late")
            .build(),
    );
    assert_eq!(s.num_nodes(), 0);
    s.upsert_node(&NodeBuilder::new("late").zone("z1").build());
    let n = s.node("late").expect("node");
    assert_eq!(n.requested.milli_cpu, 100);
    let labels = BTreeMap::from([("app".to_string(), "y".to_string())]);
    let terms: Vec<_> = s.anti_terms.candidates(&labels).collect();
    assert_eq!(terms.len(), 1);
    assert_eq!(
        terms[0].domains.get(&s.value_id("z1").unwrap_or(u32::MAX)),
        Some(&1),
        "domain counted once the node's labels are known"
    );
    s.remove_node("late");
    assert_eq!(s.num_nodes(), 0);
    let terms: Vec<_> = s.anti_terms.candidates(&labels).collect();
    assert!(
        terms[0].domains.is_empty(),
        "domains released with the node's labels"
    );
    assert!(
        s.pod("default/early").is_some(),
        "pods outlive their node until deleted"
    );
    s.remove_pod("default/early");
    assert!(s.nodes.iter().all(Option::is_none), "placeholder released");
}

#[test]
fn label_changes_reindex_domains() {
    let mut s = snapshot(
        &[NodeBuilder::new("n1").zone("a").build()],
        &[PodBuilder::new("p").owner("rs").node("n1").build()],
    );
    assert_eq!(
        s.owner_counts("rs")
            .and_then(|c| c.per_zone.get(&s.zone_ids["a"])),
        Some(&1)
    );
    s.upsert_node(&NodeBuilder::new("n1").zone("b").build());
    let c = s.owner_counts("rs").expect("counts");
    let (a, b) = (s.zone_ids["a"], s.zone_ids["b"]);
    assert_eq!((c.per_zone.get(&a), c.per_zone.get(&b)), (None, Some(&1)));
    assert_eq!(s.domains(ZONE_LABEL).map(|d| d.len()), Some(1));
    assert_eq!(s.node("n1").map(|n| n.requested.pods), Some(1));
}

#[test]
fn node_removal_keeps_walk_order_consistent() {
    let nodes: Vec<_> = (0..5)
        .map(|i| NodeBuilder::new(&format!("n{i}")).build())
        .collect();
    let mut s = snapshot(&nodes, &[]);
    s.remove_node("n1");
    s.remove_node("n4");
    s.upsert_node(&NodeBuilder::new("n9").build());
    let mut names: Vec<_> = s.nodes().map(|n| n.name.clone()).collect();
    names.sort();
    assert_eq!(names, ["n0", "n2", "n3", "n9"]);
    for (pos, &slot) in s.order.iter().enumerate() {
        assert_eq!(s.node_at(slot).and_then(|n| n.order_pos), Some(pos));
    }
}
