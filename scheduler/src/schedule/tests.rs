//! End-to-end tests of the pure core: filters and scores together.

use drover_proto::types::pod::Runtime;

use super::*;
use crate::snapshot::{HOSTNAME_LABEL, ZONE_LABEL};
use crate::testing::{GI, NodeBuilder, PodBuilder, snapshot};

#[test]
fn fit_error_summarises_every_node() {
    let snap = snapshot(
        &[
            NodeBuilder::new("small1").capacity(4000, GI, 110).build(),
            NodeBuilder::new("small2").capacity(4000, GI, 110).build(),
            NodeBuilder::new("small3").capacity(4000, GI, 110).build(),
            NodeBuilder::new("big-no-vm1")
                .capacity(4000, 64 * GI, 110)
                .build(),
            NodeBuilder::new("big-no-vm2")
                .capacity(4000, 64 * GI, 110)
                .build(),
        ],
        &[],
    );
    // The runtime filter runs before resources, so each node reports one reason.
    let pod = PodBuilder::new("vm")
        .runtime(Runtime::Vm)
        .requests(100, 8 * GI)
        .build();
    let mut snap2 = snap;
    for n in ["small1", "small2", "small3"] {
        snap2.upsert_node(
            &NodeBuilder::new(n)
                .capacity(4000, GI, 110)
                .runtimes(&["container", "vm"])
                .build(),
        );
    }
    let err = schedule(&pod, &snap2).expect_err("nothing fits");
    assert_eq!(
        err.to_string(),
        "0/5 nodes are available: 3 Insufficient memory, 2 node(s) didn't offer runtime vm."
    );
    assert_eq!(err.node_reasons.len(), 5);
}

#[test]
fn picks_least_allocated_and_is_deterministic() {
    let snap = snapshot(
        &[
            NodeBuilder::new("busy").build(),
            NodeBuilder::new("idle").build(),
        ],
        &[PodBuilder::new("b")
            .requests(3000, 12 * GI)
            .node("busy")
            .build()],
    );
    let pod = PodBuilder::new("p").requests(500, GI).build();
    assert_eq!(schedule(&pod, &snap).as_deref(), Ok("idle"));
}

#[test]
fn most_allocated_bin_packs() {
    let s = Scheduler::new(SchedulerConfig {
        scoring_strategy: crate::ScoringStrategy::MostAllocated,
        ..Default::default()
    });
    let snap = snapshot(
        &[
            NodeBuilder::new("busy").build(),
            NodeBuilder::new("idle").build(),
        ],
        &[PodBuilder::new("b")
            .requests(2000, 8 * GI)
            .node("busy")
            .build()],
    );
    let pod = PodBuilder::new("p").requests(500, GI).build();
    assert_eq!(s.schedule(&pod, &snap).as_deref(), Ok("busy"));
}

#[test]
fn ties_break_by_uid_deterministically() {
    let nodes: Vec<_> = (0..20)
        .map(|i| NodeBuilder::new(&format!("n{i}")).build())
        .collect();
    let snap = snapshot(&nodes, &[]);
    let mut chosen = std::collections::BTreeSet::new();
    for i in 0..50 {
        let pod = PodBuilder::new(&format!("p{i}")).build();
        let first = schedule(&pod, &snap);
        assert_eq!(
            first,
            schedule(&pod, &snap),
            "same pod, same snapshot, same node"
        );
        chosen.insert(first.unwrap_or_default());
    }
    assert!(
        chosen.len() > 5,
        "equal nodes are spread by uid: {chosen:?}"
    );
}

#[test]
fn replicas_spread_across_zones_with_assume() {
    let nodes: Vec<_> = ["a", "b", "c"]
        .iter()
        .flat_map(|z| (0..3).map(move |i| NodeBuilder::new(&format!("{z}{i}")).zone(z).build()))
        .collect();
    let mut snap = snapshot(&nodes, &[]);
    let mut per_zone = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..9 {
        let pod = PodBuilder::new(&format!("r{i}"))
            .owner("rs")
            .label("app", "web")
            .requests(100, GI)
            .build();
        let node = schedule(&pod, &snap).expect("fits");
        snap.assume(&pod, &node);
        let zone = snap
            .node(&node)
            .and_then(|n| n.label(ZONE_LABEL))
            .unwrap_or("")
            .to_string();
        *per_zone.entry(zone).or_default() += 1;
    }
    assert_eq!(per_zone.values().copied().collect::<Vec<_>>(), [3, 3, 3]);
}

#[test]
fn anti_affinity_per_host_fills_each_node_once() {
    let nodes: Vec<_> = (0..3)
        .map(|i| NodeBuilder::new(&format!("n{i}")).build())
        .collect();
    let mut snap = snapshot(&nodes, &[]);
    for i in 0..3 {
        let pod = PodBuilder::new(&format!("r{i}"))
            .label("app", "db")
            .anti_affinity(HOSTNAME_LABEL, "db")
            .build();
        let node = schedule(&pod, &snap).expect("fits");
        snap.assume(&pod, &node);
    }
    let pod = PodBuilder::new("r3")
        .label("app", "db")
        .anti_affinity(HOSTNAME_LABEL, "db")
        .build();
    assert_eq!(
        schedule(&pod, &snap).map_err(|e| e.to_string()),
        // The replicas' own terms repel the new replica (checked first, as in Kubernetes).
        Err(
            "0/3 nodes are available: 3 node(s) didn't satisfy existing pods anti-affinity rules."
                .into()
        )
    );
}

#[test]
fn sampling_stops_early_on_big_clusters() {
    let nodes: Vec<_> = (0..1000)
        .map(|i| NodeBuilder::new(&format!("n{i}")).build())
        .collect();
    let snap = snapshot(&nodes, &[]);
    let c = SchedulerConfig::default();
    assert_eq!(c.num_feasible_nodes_to_find(snap.num_nodes()), 420);
    assert!(schedule(&PodBuilder::new("p").build(), &snap).is_ok());
}

#[test]
fn empty_cluster() {
    let snap = ClusterSnapshot::new();
    let err = schedule(&PodBuilder::new("p").build(), &snap).expect_err("no nodes");
    assert_eq!(err.to_string(), "0/0 nodes are available.");
}
