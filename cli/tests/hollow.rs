//! Hollow nodes against the real server binary: a fleet registers,
//! heartbeats, reports a bound pod Running/Ready and finishes its deletion.

mod common;

use std::time::Duration;

use common::{AgentProcess, Server, eventually};
use drover_proto::client::{Client, ClientError, DeleteOptions, ListOptions};
use drover_proto::types::pod::{Container, PodPhase};
use drover_proto::types::{Node, Pod};
use drover_proto::{Kind, Resource};

fn pod(name: &str, node: &str) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = name.into();
    p.metadata.namespace = Some("default".into());
    p.spec.node_name = Some(node.into());
    p.spec.containers = vec![Container {
        name: "web".into(),
        image: "example/busybox:1".into(),
        ..Container::default()
    }];
    p
}

#[test]
fn fifty_hollow_nodes_run_and_delete_a_pod() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let _agent = AgentProcess::start(
        &server.url,
        &["--hollow", "--count", "50", "--heartbeat-seconds", "1"],
        "50 hollow nodes registered",
        Duration::from_secs(60),
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let client = rt.block_on(Client::connect(&server.url)).expect("connect");

    let (nodes, _) = rt
        .block_on(client.list_as::<Node>(&ListOptions::default()))
        .expect("list nodes");
    assert_eq!(nodes.len(), 50);
    let n7 = nodes
        .iter()
        .find(|n| n.name() == "hollow-7")
        .expect("hollow-7");
    assert!(n7.is_ready());
    let status = n7.status.as_ref().expect("status");
    assert_eq!(status.runtimes, ["container", "vm"]);
    assert_eq!(status.capacity["pods"].units(), 110);
    // Each hollow node got its own pod CIDR from the control plane.
    let cidrs: std::collections::HashSet<_> = nodes
        .iter()
        .filter_map(|n| n.spec.pod_cidr.clone())
        .collect();
    assert_eq!(cidrs.len(), 50, "{cidrs:?}");
    assert!(cidrs.iter().all(|c| c.starts_with("10.88.")), "{cidrs:?}");

    // Heartbeats move lastHeartbeatTime forward.
    let beat = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
            .and_then(|c| c.last_heartbeat_time)
    };
    let first = beat(n7);
    eventually(Duration::from_secs(10), || {
        let n: Node = rt.block_on(client.get_as("", "hollow-7")).ok()?;
        (beat(&n) > first).then_some(())
    });

    rt.block_on(client.create(&pod("p1", "hollow-7").to_object()))
        .expect("create pod");
    let running = eventually(Duration::from_secs(10), || {
        let p: Pod = rt.block_on(client.get_as("default", "p1")).ok()?;
        (p.status.as_ref()?.phase == PodPhase::Running && p.is_ready()).then_some(p)
    });
    let status = running.status.as_ref().expect("status");
    assert!(
        status
            .pod_ip
            .as_deref()
            .is_some_and(|ip| ip.starts_with("10.64.7.")),
        "{status:?}"
    );
    assert_eq!(status.host_ip.as_deref(), Some("172.16.0.8"));
    assert_eq!(status.container_statuses.len(), 1);
    assert!(status.container_statuses[0].ready);
    let types: Vec<&str> = status.conditions.iter().map(|c| c.type_.as_str()).collect();
    for t in ["PodScheduled", "Initialized", "ContainersReady", "Ready"] {
        assert!(types.contains(&t), "{types:?}");
    }

    // A graceful delete marks the pod; the hollow node finishes it.
    rt.block_on(client.delete(Kind::Pod, "default", "p1", &DeleteOptions::default()))
        .expect("delete");
    eventually(Duration::from_secs(10), || {
        matches!(
            rt.block_on(client.get(Kind::Pod, "default", "p1")),
            Err(ClientError::NotFound(_))
        )
        .then_some(())
    });
}
