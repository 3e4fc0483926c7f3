//! Property tests over random clusters and pod sequences: whatever the input,
//! the core never over-commits a node, never violates a required
//! (anti-)affinity, and never exceeds a DoNotSchedule spread constraint's skew.

use std::collections::{BTreeMap, HashMap};

use drover_proto::types::Pod;
use drover_scheduler::snapshot::{HOSTNAME_LABEL, ZONE_LABEL};
use drover_scheduler::testing::{GI, NodeBuilder, PodBuilder};
use drover_scheduler::{ClusterSnapshot, Scheduler, SchedulerConfig, ScoringStrategy};
use proptest::prelude::*;

/// What every pod of one app must obey.
#[derive(Debug, Clone, Copy)]
enum Policy {
    Plain,
    AntiAffinity(&'static str),
    Affinity(&'static str),
    Spread(&'static str, i32),
}

const KEYS: [&str; 2] = [HOSTNAME_LABEL, ZONE_LABEL];

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        Just(Policy::Plain),
        (0..2usize).prop_map(|k| Policy::AntiAffinity(KEYS[k])),
        (0..2usize).prop_map(|k| Policy::Affinity(KEYS[k])),
        (0..2usize, 1..3i32).prop_map(|(k, s)| Policy::Spread(KEYS[k], s)),
    ]
}

#[derive(Debug, Clone)]
struct NodeSpec {
    milli_cpu: i64,
    memory_gi: i64,
    pods: i64,
    zone: Option<u8>,
}

fn node_spec() -> impl Strategy<Value = NodeSpec> {
    (
        500..4000i64,
        1..8i64,
        1..6i64,
        prop::option::weighted(0.85, 0..3u8),
    )
        .prop_map(|(c, m, p, z)| NodeSpec {
            milli_cpu: c,
            memory_gi: m,
            pods: p,
            zone: z,
        })
}

#[derive(Debug, Clone)]
struct PodSpec {
    app: usize,
    milli_cpu: i64,
    memory_mi: i64,
}

fn pod_spec() -> impl Strategy<Value = PodSpec> {
    (0..4usize, 0..1500i64, 0..3000i64).prop_map(|(app, c, m)| PodSpec {
        app,
        milli_cpu: c,
        memory_mi: m,
    })
}

fn build_pod(i: usize, spec: &PodSpec, policies: &[Policy]) -> Pod {
    let app = format!("app{}", spec.app);
    let b = PodBuilder::new(&format!("p{i}"))
        .label("app", &app)
        .requests(spec.milli_cpu, spec.memory_mi * 1024 * 1024);
    match policies[spec.app] {
        Policy::Plain => b,
        Policy::AntiAffinity(key) => b.anti_affinity(key, &app),
        Policy::Affinity(key) => b.affinity(key, &app),
        Policy::Spread(key, skew) => b.spread(key, skew, true, &app),
    }
    .build()
}

/// Node name → (labels, allocatable cpu, memory, pods).
type Nodes = BTreeMap<String, (BTreeMap<String, String>, i64, i64, i64)>;

fn check(
    nodes: &Nodes,
    placed: &[(Pod, String)],
    policies: &[Policy],
) -> Result<(), TestCaseError> {
    // 1. No node over-committed.
    for (name, (_, cpu, mem, pods)) in nodes {
        let on: Vec<&Pod> = placed
            .iter()
            .filter(|(_, n)| n == name)
            .map(|(p, _)| p)
            .collect();
        let used_cpu: i64 = on.iter().map(|p| p.total_request("cpu")).sum();
        let used_mem: i64 = on.iter().map(|p| p.total_request("memory")).sum();
        prop_assert!(used_cpu <= *cpu, "{name}: cpu {used_cpu} > {cpu}");
        prop_assert!(used_mem <= *mem, "{name}: memory {used_mem} > {mem}");
        prop_assert!(
            on.len() as i64 <= *pods,
            "{name}: {} pods > {pods}",
            on.len()
        );
    }
    let domain = |node: &str, key: &str| nodes.get(node).and_then(|(l, ..)| l.get(key)).cloned();
    let app_of = |p: &Pod| p.metadata.labels.get("app").cloned().unwrap_or_default();
    for (app_idx, policy) in policies.iter().enumerate() {
        let app = format!("app{app_idx}");
        let members: Vec<&(Pod, String)> =
            placed.iter().filter(|(p, _)| app_of(p) == app).collect();
        match *policy {
            Policy::Plain => {}
            // 2. Required anti-affinity: no two replicas share a domain.
            Policy::AntiAffinity(key) => {
                let mut seen = HashMap::new();
                for (p, n) in &members {
                    // A node without the key is in no domain, so it conflicts with nothing.
                    let Some(d) = domain(n, key) else { continue };
                    if let Some(other) = seen.insert(d, &p.metadata.name) {
                        prop_assert!(
                            false,
                            "{} and {other} share a {key} domain",
                            p.metadata.name
                        );
                    }
                }
            }
            // 3. Required affinity: all replicas in one domain (the first may go anywhere).
            Policy::Affinity(key) => {
                let domains: std::collections::BTreeSet<_> =
                    members.iter().map(|(_, n)| domain(n, key)).collect();
                prop_assert!(domains.len() <= 1, "{app} spread over {domains:?}");
                prop_assert!(!domains.contains(&None), "{app} on a node without {key}");
            }
            // 4. DoNotSchedule spread: skew over all domains of the key stays within maxSkew.
            Policy::Spread(key, max_skew) => {
                let mut counts: BTreeMap<String, i64> = nodes
                    .values()
                    .filter_map(|(l, ..)| l.get(key).map(|v| (v.clone(), 0)))
                    .collect();
                for (_, n) in &members {
                    let d = domain(n, key);
                    prop_assert!(d.is_some(), "spread pod on a node without {key}");
                    if let Some(d) = d {
                        *counts.entry(d).or_default() += 1;
                    }
                }
                let max = counts.values().max().copied().unwrap_or(0);
                let min = counts.values().min().copied().unwrap_or(0);
                prop_assert!(
                    max - min <= i64::from(max_skew),
                    "{app} over {key}: {counts:?} skew > {max_skew}"
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn invariants_hold_over_random_clusters(
        node_specs in prop::collection::vec(node_spec(), 1..12),
        policies in prop::collection::vec(policy(), 4),
        pods in prop::collection::vec(pod_spec(), 1..60),
        bin_pack in any::<bool>(),
        removals in prop::collection::vec(any::<prop::sample::Index>(), 0..5),
    ) {
        let mut snap = ClusterSnapshot::new();
        let mut nodes = Nodes::new();
        for (i, n) in node_specs.iter().enumerate() {
            let name = format!("n{i}");
            let mut b = NodeBuilder::new(&name).capacity(n.milli_cpu, n.memory_gi * GI, n.pods);
            if let Some(z) = n.zone {
                b = b.zone(&format!("z{z}"));
            }
            let node = b.build();
            let mut labels = node.metadata.labels.clone();
            labels.insert(HOSTNAME_LABEL.into(), name.clone());
            nodes.insert(name, (labels, n.milli_cpu, n.memory_gi * GI, n.pods));
            snap.upsert_node(&node);
        }
        let scheduler = Scheduler::new(SchedulerConfig {
            scoring_strategy: if bin_pack { ScoringStrategy::MostAllocated } else { ScoringStrategy::LeastAllocated },
            ..Default::default()
        });
        let mut placed: Vec<(Pod, String)> = Vec::new();
        for (i, spec) in pods.iter().enumerate() {
            let pod = build_pod(i, spec, &policies);
            if let Ok(node) = scheduler.schedule(&pod, &snap) {
                snap.assume(&pod, &node);
                placed.push((pod, node));
            }
            check(&nodes, &placed, &policies)?;
            // Deletions exercise the incremental bookkeeping, never a rebuild.
            if let Some(ix) = removals.get(i) && !placed.is_empty() && i % 7 == 3 {
                let (p, _) = placed.remove(ix.index(placed.len()));
                snap.remove_pod(&format!("default/{}", p.metadata.name));
            }
        }
        for name in nodes.keys() {
            let want: i64 = placed.iter().filter(|(_, n)| n == name).map(|(p, _)| p.total_request("cpu")).sum();
            prop_assert_eq!(snap.node(name).map(|n| n.requested.milli_cpu), Some(want));
        }
    }
}
