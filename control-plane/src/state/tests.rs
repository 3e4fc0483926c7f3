use std::sync::Arc;

use chrono::TimeZone;
use drover_proto::selector::{FieldSelector, Selector};
use drover_proto::{Kind, Object, OwnerReference, Time};
use serde_json::json;

use super::*;
use crate::command::{ApplyError, Command, Propagation};

fn t0() -> Time {
    chrono::Utc
        .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}

fn obj(v: serde_json::Value) -> Object {
    serde_json::from_value(v).unwrap()
}

fn pod(name: &str, node: Option<&str>) -> Object {
    let mut spec = json!({"containers": [{"name": "c", "image": "busybox"}], "terminationGracePeriodSeconds": 30});
    if let Some(n) = node {
        spec["nodeName"] = json!(n);
    }
    obj(
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "uid": format!("uid-{name}"), "labels": {"app": "web"}}, "spec": spec}),
    )
}

fn owned(mut o: Object, owner: &Object) -> Object {
    o.metadata.owner_references.push(OwnerReference {
        api_version: owner.api_version.clone(),
        kind: owner.kind.clone(),
        name: owner.metadata.name.clone(),
        uid: owner.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: None,
    });
    o
}

fn rs(name: &str) -> Object {
    obj(
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "uid": format!("uid-{name}")}, "spec": {"replicas": 1}}),
    )
}

fn create(sm: &mut StateMachine, o: Object) -> Arc<Object> {
    sm.apply(&Command::Create { object: o }).0.unwrap()
}

fn delete(kind: Kind, name: &str, propagation: Propagation, grace: Option<i64>) -> Command {
    Command::Delete {
        kind,
        namespace: "default".into(),
        name: name.into(),
        precondition: None,
        propagation,
        grace_period_seconds: grace,
        now: t0(),
    }
}

#[test]
fn create_get_and_revisions() {
    let mut sm = StateMachine::new(100);
    let a = create(&mut sm, pod("a", None));
    assert_eq!(a.metadata.resource_version.as_deref(), Some("1"));
    assert_eq!(a.metadata.generation, Some(1));
    assert_eq!(a.metadata.namespace.as_deref(), Some("default"));
    let b = create(&mut sm, pod("b", None));
    assert_eq!(b.metadata.resource_version.as_deref(), Some("2"));
    assert_eq!(sm.get(Kind::Pod, "default", "a"), Some(a));
    let (r, changes) = sm.apply(&Command::Create {
        object: pod("a", None),
    });
    assert!(matches!(r, Err(ApplyError::AlreadyExists { .. })));
    assert!(changes.is_empty());
    assert_eq!(sm.revision(), 2);
}

#[test]
fn unknown_namespace_is_refused() {
    let mut sm = StateMachine::new(100);
    let mut p = pod("a", None);
    p.metadata.namespace = Some("prod".into());
    let (r, _) = sm.apply(&Command::Create { object: p.clone() });
    assert!(matches!(r, Err(ApplyError::NotFound { .. })), "{r:?}");
    create(
        &mut sm,
        obj(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod"}})),
    );
    create(&mut sm, p);
}

#[test]
fn update_is_compare_and_set_and_bumps_generation_on_spec_only() {
    let mut sm = StateMachine::new(100);
    let a = create(&mut sm, rs("web"));
    let mut changed = (*a).clone();
    changed.body.insert("spec".into(), json!({"replicas": 3}));
    let (r, _) = sm.apply(&Command::Update {
        object: changed.clone(),
        precondition: Some(99),
    });
    assert!(
        matches!(
            r,
            Err(ApplyError::Conflict {
                expected: 99,
                actual: 1,
                ..
            })
        ),
        "{r:?}"
    );
    let b = sm
        .apply(&Command::Update {
            object: changed.clone(),
            precondition: Some(1),
        })
        .0
        .unwrap();
    assert_eq!(b.metadata.generation, Some(2));
    assert_eq!(b.metadata.revision(), Some(2));

    // Labels only: new revision, same generation.
    let mut relabel = (*b).clone();
    relabel.metadata.labels.insert("x".into(), "y".into());
    let c = sm
        .apply(&Command::Update {
            object: relabel,
            precondition: None,
        })
        .0
        .unwrap();
    assert_eq!(
        (c.metadata.generation, c.metadata.revision()),
        (Some(2), Some(3))
    );

    // No-op: no new revision.
    let d = sm
        .apply(&Command::Update {
            object: (*c).clone(),
            precondition: None,
        })
        .0
        .unwrap();
    assert_eq!(d.metadata.revision(), Some(3));

    // Status is kept by update and written by update_status without a generation bump.
    let mut with_status = (*d).clone();
    with_status
        .body
        .insert("status".into(), json!({"replicas": 3}));
    let e = sm
        .apply(&Command::UpdateStatus {
            object: with_status,
            precondition: Some(3),
        })
        .0
        .unwrap();
    assert_eq!(
        (e.metadata.generation, e.metadata.revision()),
        (Some(2), Some(4))
    );
    let mut no_status = (*e).clone();
    no_status.body.remove("status");
    no_status.body.insert("spec".into(), json!({"replicas": 4}));
    let f = sm
        .apply(&Command::Update {
            object: no_status,
            precondition: None,
        })
        .0
        .unwrap();
    assert_eq!(f.body.get("status"), Some(&json!({"replicas": 3})));
    // Identity fields cannot be changed by an update.
    let mut forged = (*f).clone();
    forged.metadata.uid = Some("forged".into());
    forged.metadata.generation = Some(100);
    let g = sm
        .apply(&Command::Update {
            object: forged,
            precondition: None,
        })
        .0
        .unwrap();
    assert_eq!(
        (g.metadata.uid.as_deref(), g.metadata.generation),
        (Some("uid-web"), Some(3))
    );
}

#[test]
fn finalizers_hold_deletion_until_removed() {
    let mut sm = StateMachine::new(100);
    let mut o = rs("web");
    o.metadata.finalizers = vec!["example.com/hold".into()];
    create(&mut sm, o);
    let marked = sm
        .apply(&delete(
            Kind::ReplicaSet,
            "web",
            Propagation::Background,
            None,
        ))
        .0
        .unwrap();
    assert_eq!(marked.metadata.deletion_timestamp, Some(t0()));
    assert!(sm.get(Kind::ReplicaSet, "default", "web").is_some());
    let mut release = (*marked).clone();
    release.metadata.finalizers.clear();
    let (r, changes) = sm.apply(&Command::Update {
        object: release,
        precondition: None,
    });
    assert!(r.is_ok());
    assert_eq!(changes.last().map(|c| c.type_), Some(ChangeType::Deleted));
    assert!(sm.get(Kind::ReplicaSet, "default", "web").is_none());
}

#[test]
fn bound_pods_terminate_gracefully() {
    let mut sm = StateMachine::new(100);
    create(&mut sm, pod("bound", Some("node-1")));
    create(&mut sm, pod("pending", None));
    let p = sm
        .apply(&delete(Kind::Pod, "bound", Propagation::Background, None))
        .0
        .unwrap();
    assert_eq!(p.metadata.deletion_grace_period_seconds, Some(30));
    assert_eq!(
        p.metadata.deletion_timestamp,
        Some(t0() + chrono::Duration::seconds(30))
    );
    // A second graceful delete changes nothing; the agent's final delete removes it.
    let rev = sm.revision();
    sm.apply(&delete(Kind::Pod, "bound", Propagation::Background, None))
        .0
        .unwrap();
    assert_eq!(sm.revision(), rev);
    sm.apply(&delete(
        Kind::Pod,
        "bound",
        Propagation::Background,
        Some(0),
    ))
    .0
    .unwrap();
    assert!(sm.get(Kind::Pod, "default", "bound").is_none());
    sm.apply(&delete(Kind::Pod, "pending", Propagation::Background, None))
        .0
        .unwrap();
    assert!(sm.get(Kind::Pod, "default", "pending").is_none());
}

#[test]
fn background_cascade_follows_owner_references() {
    let mut sm = StateMachine::new(100);
    let deploy = obj(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "uid": "uid-d"}, "spec": {}}),
    );
    create(&mut sm, deploy.clone());
    let r = create(&mut sm, owned(rs("web-1"), &deploy));
    create(&mut sm, owned(pod("web-1-a", None), &r));
    create(&mut sm, owned(pod("web-1-b", Some("n1")), &r));
    create(&mut sm, pod("unrelated", None));
    sm.apply(&delete(
        Kind::Deployment,
        "web",
        Propagation::Background,
        None,
    ))
    .0
    .unwrap();
    assert!(sm.get(Kind::ReplicaSet, "default", "web-1").is_none());
    assert!(sm.get(Kind::Pod, "default", "web-1-a").is_none());
    // The bound pod is terminating, for its agent to stop.
    let b = sm.get(Kind::Pod, "default", "web-1-b").unwrap();
    assert!(b.metadata.deletion_timestamp.is_some());
    assert!(sm.get(Kind::Pod, "default", "unrelated").is_some());
}

#[test]
fn orphan_keeps_dependents_and_drops_the_reference() {
    let mut sm = StateMachine::new(100);
    let r = create(&mut sm, rs("web"));
    create(&mut sm, owned(pod("a", None), &r));
    sm.apply(&delete(Kind::ReplicaSet, "web", Propagation::Orphan, None))
        .0
        .unwrap();
    let a = sm.get(Kind::Pod, "default", "a").unwrap();
    assert!(a.metadata.owner_references.is_empty());
}

#[test]
fn foreground_waits_for_dependents() {
    let mut sm = StateMachine::new(100);
    let r = create(&mut sm, rs("web"));
    create(&mut sm, owned(pod("a", Some("n1")), &r));
    let o = sm
        .apply(&delete(
            Kind::ReplicaSet,
            "web",
            Propagation::Foreground,
            None,
        ))
        .0
        .unwrap();
    assert!(
        o.metadata
            .finalizers
            .iter()
            .any(|f| f == "foregroundDeletion")
    );
    assert!(sm.get(Kind::ReplicaSet, "default", "web").is_some());
    // The agent finishes the pod: the owner goes with it.
    sm.apply(&delete(Kind::Pod, "a", Propagation::Background, Some(0)))
        .0
        .unwrap();
    assert!(sm.get(Kind::ReplicaSet, "default", "web").is_none());
}

#[test]
fn deleting_a_namespace_deletes_its_contents() {
    let mut sm = StateMachine::new(100);
    create(
        &mut sm,
        obj(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tmp"}})),
    );
    let mut p = pod("a", None);
    p.metadata.namespace = Some("tmp".into());
    create(&mut sm, p);
    let cmd = Command::Delete {
        kind: Kind::Namespace,
        namespace: String::new(),
        name: "tmp".into(),
        precondition: None,
        propagation: Propagation::Background,
        grace_period_seconds: None,
        now: t0(),
    };
    sm.apply(&cmd).0.unwrap();
    assert!(sm.get(Kind::Pod, "tmp", "a").is_none());
    assert!(sm.get(Kind::Namespace, "", "tmp").is_none());
}

#[test]
fn history_serves_watches_and_compacts() {
    let mut sm = StateMachine::new(3);
    for i in 0..5 {
        create(&mut sm, pod(&format!("p{i}"), None));
    }
    let since3 = sm.changes_since(3).unwrap();
    assert_eq!(
        since3.iter().map(|c| c.revision).collect::<Vec<_>>(),
        vec![4, 5]
    );
    assert_eq!(sm.changes_since(2).unwrap().len(), 3);
    let err = sm.changes_since(1).unwrap_err();
    assert_eq!(err.oldest, 2);
    assert!(sm.changes_since(5).unwrap().is_empty());
}

#[test]
fn lists_filter_by_namespace_labels_and_fields() {
    let mut sm = StateMachine::new(100);
    create(&mut sm, pod("a", Some("n1")));
    create(&mut sm, pod("b", Some("n2")));
    let all = sm.list(
        Kind::Pod,
        None,
        &Selector::everything(),
        &FieldSelector::default(),
    );
    assert_eq!(all.len(), 2);
    let on_n1 = sm.list(
        Kind::Pod,
        Some("default"),
        &Selector::parse("app=web").unwrap(),
        &FieldSelector::parse("spec.nodeName=n1").unwrap(),
    );
    assert_eq!(on_n1.len(), 1);
    assert_eq!(on_n1[0].metadata.name, "a");
    assert!(
        sm.list(
            Kind::Pod,
            Some("other"),
            &Selector::everything(),
            &FieldSelector::default()
        )
        .is_empty()
    );
}

/// A deterministic command sequence from a seed.
fn commands(seed: u64, n: usize) -> Vec<Command> {
    let mut x = seed | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|_| {
            let name = format!("p{}", next() % 20);
            match next() % 4 {
                0 | 1 => Command::Create {
                    object: pod(&name, (next() % 2 == 0).then_some("n1")),
                },
                2 => {
                    let mut p = pod(&name, None);
                    p.metadata
                        .labels
                        .insert("v".into(), (next() % 3).to_string());
                    Command::Update {
                        object: p,
                        precondition: (next() % 3 == 0).then(|| next() % 50),
                    }
                }
                _ => delete(
                    Kind::Pod,
                    &name,
                    Propagation::Background,
                    Some((next() % 2) as i64 * 5),
                ),
            }
        })
        .collect()
}

#[test]
fn replay_is_deterministic() {
    for seed in [1u64, 7, 42, 1234] {
        let cmds = commands(seed, 400);
        let mut a = StateMachine::new(1000);
        let mut b = StateMachine::new(1000);
        let ra: Vec<_> = cmds
            .iter()
            .map(|c| a.apply(c).0.map(|o| (*o).clone()))
            .collect();
        let rb: Vec<_> = cmds
            .iter()
            .map(|c| b.apply(c).0.map(|o| (*o).clone()))
            .collect();
        assert_eq!(ra, rb);
        assert_eq!(a.snapshot(), b.snapshot());
        // A snapshot restores the same state.
        let mut c = StateMachine::new(1000);
        c.restore(&a.snapshot()).unwrap();
        assert_eq!(c.snapshot(), a.snapshot());
        assert_eq!(c.revision(), a.revision());
    }
}

proptest::proptest! {
    /// Replaying history from any revision reconstructs every later change, in order, once.
    #[test]
    fn history_has_no_gaps(seed in 1u64..10_000, from in 0u64..50) {
        let mut sm = StateMachine::new(10_000);
        for c in commands(seed, 200) {
            let _ = sm.apply(&c);
        }
        let from = from.min(sm.revision());
        let changes = sm.changes_since(from).unwrap();
        let revs: Vec<u64> = changes.iter().map(|c| c.revision).collect();
        let want: Vec<u64> = (from + 1..=sm.revision()).collect();
        proptest::prop_assert_eq!(revs, want);
    }
}

fn svc(name: &str, extra: serde_json::Value) -> Object {
    let mut spec = json!({"selector": {"app": name}, "ports": [{"port": 80}]});
    if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    obj(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}))
}

#[test]
fn services_get_the_lowest_free_addresses() {
    let mut sm = StateMachine::new(100);
    let a = create(&mut sm, svc("a", json!({})));
    assert_eq!(a.body["spec"]["clusterIP"], "10.96.0.2");
    let b = create(&mut sm, svc("b", json!({"type": "NodePort"})));
    assert_eq!(b.body["spec"]["clusterIP"], "10.96.0.3");
    assert_eq!(b.body["spec"]["ports"][0]["nodePort"], 30000);
    let (r, _) = sm.apply(&Command::Create {
        object: svc("c", json!({"clusterIP": "10.96.0.2"})),
    });
    assert!(matches!(r, Err(ApplyError::Invalid(m)) if m.contains("already allocated")));
    let (r, _) = sm.apply(&Command::Create {
        object: svc(
            "c",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30000}]}),
        ),
    });
    assert!(matches!(r, Err(ApplyError::Invalid(m)) if m.contains("nodePort")));
    // Updates keep the addresses and refuse to change the cluster IP.
    let mut upd = svc(
        "b",
        json!({"type": "NodePort", "selector": {"app": "other"}}),
    );
    let kept = sm
        .apply(&Command::Update {
            object: upd.clone(),
            precondition: None,
        })
        .0
        .unwrap();
    assert_eq!(kept.body["spec"]["clusterIP"], "10.96.0.3");
    assert_eq!(kept.body["spec"]["ports"][0]["nodePort"], 30000);
    upd.body.get_mut("spec").unwrap()["clusterIP"] = json!("10.96.0.9");
    let (r, _) = sm.apply(&Command::Update {
        object: upd,
        precondition: None,
    });
    assert!(matches!(r, Err(ApplyError::Invalid(m)) if m.contains("immutable")));
    // A deleted service's address is reused.
    sm.apply(&delete(Kind::Service, "a", Propagation::Background, None))
        .0
        .unwrap();
    let c = create(&mut sm, svc("c", json!({})));
    assert_eq!(c.body["spec"]["clusterIP"], "10.96.0.2");
}

#[test]
fn dependents_of_a_gone_controller_are_refused() {
    let mut sm = StateMachine::new(100);
    let owner = create(&mut sm, rs("web"));
    create(&mut sm, owned(pod("p1", None), &owner));
    sm.apply(&delete(
        Kind::ReplicaSet,
        "web",
        Propagation::Background,
        None,
    ))
    .0
    .unwrap();
    // A controller with a stale cache tries to replace the pod.
    let (r, changes) = sm.apply(&Command::Create {
        object: owned(pod("p2", None), &owner),
    });
    assert!(matches!(r, Err(ApplyError::Invalid(m)) if m.contains("does not exist")));
    assert!(changes.is_empty());
}

fn node(name: &str, cidr: Option<&str>) -> Object {
    let mut spec = json!({});
    if let Some(c) = cidr {
        spec["podCIDR"] = json!(c);
    }
    obj(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec}))
}

fn cidr_of(o: &Object) -> Option<String> {
    o.body["spec"]["podCIDR"].as_str().map(str::to_string)
}

#[test]
fn nodes_get_distinct_pod_cidrs_kept_across_updates_and_freed_on_delete() {
    let mut sm = StateMachine::new(100);
    let a = create(&mut sm, node("a", None));
    let b = create(&mut sm, node("b", None));
    assert_eq!(cidr_of(&a).as_deref(), Some("10.88.0.0/24"));
    assert_eq!(cidr_of(&b).as_deref(), Some("10.88.1.0/24"));
    let asked = create(&mut sm, node("c", Some("10.77.5.0/24")));
    assert_eq!(cidr_of(&asked).as_deref(), Some("10.77.5.0/24"));

    // An agent re-registering without the field keeps its CIDR.
    let mut again = node("a", None);
    again.metadata.labels.insert("x".into(), "y".into());
    let updated = sm
        .apply(&Command::Update {
            object: again,
            precondition: None,
        })
        .0
        .unwrap();
    assert_eq!(cidr_of(&updated).as_deref(), Some("10.88.0.0/24"));
    let (moved, _) = sm.apply(&Command::Update {
        object: node("a", Some("10.88.9.0/24")),
        precondition: None,
    });
    assert!(matches!(moved, Err(ApplyError::Invalid(m)) if m.contains("immutable")));
    let (taken, _) = sm.apply(&Command::Create {
        object: node("d", Some("10.88.1.0/24")),
    });
    assert!(matches!(taken, Err(ApplyError::Invalid(m)) if m.contains("already assigned")));
    let (bad, _) = sm.apply(&Command::Create {
        object: node("e", Some("10.88.1.7/24")),
    });
    assert!(matches!(bad, Err(ApplyError::Invalid(m)) if m.contains("spec.podCIDR")));

    let mut del = delete(Kind::Node, "a", Propagation::Background, None);
    if let Command::Delete { namespace, .. } = &mut del {
        namespace.clear();
    }
    sm.apply(&del).0.unwrap();
    let f = create(&mut sm, node("f", None));
    assert_eq!(
        cidr_of(&f).as_deref(),
        Some("10.88.0.0/24"),
        "a's CIDR is free again"
    );
}

fn bind(name: &str, node: &str, precondition: Option<u64>) -> Command {
    Command::Bind {
        namespace: "default".into(),
        name: name.into(),
        node: node.into(),
        precondition,
    }
}

#[test]
fn bind_sets_the_node_once_by_compare_and_set() {
    let mut sm = StateMachine::new(100);
    let a = create(&mut sm, pod("a", None));

    let (r, changes) = sm.apply(&bind("a", "n1", Some(a.metadata.revision().unwrap() + 1)));
    assert!(matches!(r, Err(ApplyError::Conflict { .. })), "{r:?}");
    assert!(changes.is_empty());

    let (r, changes) = sm.apply(&bind("a", "n1", a.metadata.revision()));
    let bound = r.unwrap();
    assert_eq!(bound.body["spec"]["nodeName"], "n1");
    assert_eq!(
        bound.body["spec"]["containers"],
        a.body["spec"]["containers"]
    );
    assert_eq!(bound.metadata.generation, Some(2));
    assert_eq!(bound.metadata.revision(), Some(2));
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].type_, ChangeType::Modified);
    assert_eq!(changes[0].prev.as_deref(), Some(&*a));

    // Bound already: refused even without a precondition.
    let (r, changes) = sm.apply(&bind("a", "n2", None));
    assert!(matches!(r, Err(ApplyError::NotBindable { .. })), "{r:?}");
    assert!(changes.is_empty());
    assert_eq!(sm.get(Kind::Pod, "default", "a"), Some(bound));

    let (r, _) = sm.apply(&bind("missing", "n1", None));
    assert!(matches!(r, Err(ApplyError::NotFound { .. })), "{r:?}");
}

#[test]
fn a_pod_being_deleted_is_not_bound() {
    let mut sm = StateMachine::new(100);
    let mut p = pod("a", None);
    p.metadata.finalizers.push("example.com/hold".into());
    create(&mut sm, p);
    sm.apply(&delete(Kind::Pod, "a", Propagation::Background, None))
        .0
        .unwrap();
    let (r, changes) = sm.apply(&bind("a", "n1", None));
    assert!(matches!(r, Err(ApplyError::NotBindable { .. })), "{r:?}");
    assert!(changes.is_empty());
}
