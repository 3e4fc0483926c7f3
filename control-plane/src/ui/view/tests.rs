use drover_proto::Resource;
use drover_proto::types::{Event, Node, Pod};
use serde_json::json;

use super::*;

fn node(name: &str, cpu: &str, pods: &str, ready: &str) -> Node {
    Node::from_object(
        &serde_json::from_value(
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"allocatable": {"cpu": cpu, "memory": "4Gi", "pods": pods},
                "conditions": [{"type": "Ready", "status": ready}], "runtimes": ["container", "vm"],
                "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}}),
        )
        .unwrap(),
    )
    .unwrap()
}

fn pod(name: &str, node: Option<&str>, cpu: &str, phase: &str) -> Pod {
    let mut spec = json!({"containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": cpu, "memory": "1Gi"}}}]});
    if let Some(n) = node {
        spec["nodeName"] = json!(n);
    }
    Pod::from_object(
        &serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec,
            "status": {"phase": phase}}))
        .unwrap(),
    )
    .unwrap()
}

#[test]
fn node_rows_sum_the_requests_of_unfinished_bound_pods() {
    let nodes = vec![node("b", "2", "10", "True"), node("a", "4", "110", "False")];
    assert!(node_ready(&nodes[0].to_object()) && !node_ready(&nodes[1].to_object()));
    let s = Snapshot {
        pods: [
            pod("p1", Some("b"), "500m", "Running"),
            pod("p2", Some("b"), "1", "Running"),
            pod("done", Some("b"), "1", "Succeeded"),
            pod("pending", None, "1", "Pending"),
        ]
        .iter()
        .map(|p| std::sync::Arc::new(p.to_object()))
        .collect(),
        ..Snapshot::default()
    };
    let rows = node_rows(&nodes, &s.pods);
    assert_eq!(rows[0].name, "a");
    assert_eq!(rows[0].ready, "NotReady");
    let b = &rows[1];
    assert_eq!(
        b.cpu_millis,
        Usage {
            used: 1500,
            allocatable: 2000
        }
    );
    assert_eq!(b.cpu_millis.percent(), 75);
    assert_eq!(
        b.pods,
        Usage {
            used: 2,
            allocatable: 10
        }
    );
    assert_eq!(b.memory_bytes.used, 2 << 30);
    assert_eq!(b.address, "10.0.0.1");
    assert_eq!(
        Usage {
            used: 5,
            allocatable: 0
        }
        .percent(),
        0
    );
    assert_eq!(
        Usage {
            used: 50,
            allocatable: 10
        }
        .percent(),
        100
    );
}

#[test]
fn pagination_clamps_the_page() {
    let items: Vec<u32> = (0..250).collect();
    let (rows, pages) = paginate(&items, 2, 100);
    assert_eq!((rows.len(), pages, rows[0]), (50, 3, 200));
    let (rows, _) = paginate(&items, 99, 100);
    assert_eq!(rows[0], 200, "past the end shows the last page");
    let empty: Vec<u32> = vec![];
    assert_eq!(paginate(&empty, 0, 100), (&[][..], 1));
}

#[test]
fn events_filter_by_type_and_text_newest_first() {
    let ev = |reason: &str, type_: &str, t: i64| -> Event {
        Event::from_object(
            &serde_json::from_value(json!({"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": format!("e{t}"), "namespace": "default"},
                "involvedObject": {"kind": "Pod", "name": "web-1"},
                "reason": reason, "message": "m", "type": type_, "count": 1,
                "lastTimestamp": chrono::DateTime::from_timestamp(t, 0).unwrap()}))
            .unwrap(),
        )
        .unwrap()
    };
    let all = vec![
        ev("Pulled", "Normal", 1),
        ev("BackOff", "Warning", 3),
        ev("Started", "Normal", 2),
    ];
    let names = |v: Vec<&Event>| v.iter().map(|e| e.reason.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(filter_events(&all, "", "")),
        ["BackOff", "Started", "Pulled"]
    );
    assert_eq!(names(filter_events(&all, "Warning", "")), ["BackOff"]);
    assert_eq!(names(filter_events(&all, "", "pull")), ["Pulled"]);
    assert_eq!(filter_events(&all, "", "WEB-1").len(), 3);
}

#[test]
fn pod_status_prefers_reasons_and_ages_read_like_kubectl() {
    let mut p = pod("p", Some("n"), "1", "Running");
    assert_eq!(pod_status(&p), "Running");
    p.status.as_mut().unwrap().container_statuses = serde_json::from_value(json!([
        {"name": "c", "image": "i", "imageID": "", "ready": false, "restartCount": 4,
         "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
    ]))
    .unwrap();
    assert_eq!(pod_status(&p), "CrashLoopBackOff");
    assert_eq!(pod_row(&p).restarts, 4);
    let now = chrono::Utc::now();
    assert_eq!(age(Some(now - chrono::Duration::seconds(30)), now), "30s");
    assert_eq!(age(Some(now - chrono::Duration::minutes(5)), now), "5m");
    assert_eq!(age(Some(now - chrono::Duration::hours(3)), now), "3h");
    assert_eq!(age(None, now), "-");
}

#[test]
fn names_sort_naturally() {
    let mut v = vec!["n-10", "n-2", "a", "n-1"];
    v.sort_by_key(|n| natural_key(n));
    assert_eq!(v, ["a", "n-1", "n-2", "n-10"]);
}

#[test]
fn raw_usage_matches_the_typed_requests() {
    let p = pod("p", Some("n1"), "250m", "Running");
    let o = p.to_object();
    assert_eq!(
        pod_usage(&o),
        Some(("n1", p.total_request("cpu"), p.total_request("memory")))
    );
    assert!(!is_vm(&o));
    let mut limits_only = serde_json::to_value(&p).unwrap();
    limits_only["spec"]["containers"][0]["resources"] =
        json!({"limits": {"cpu": "2", "memory": "1Gi"}});
    limits_only["spec"]["runtime"] = json!("vm");
    let o: drover_proto::Object = serde_json::from_value(limits_only).unwrap();
    assert_eq!(pod_usage(&o), Some(("n1", 2000, 1 << 30)));
    assert!(is_vm(&o));
}
