//! The control plane's parts together on the real binaries: server (with
//! scheduler and controllers) + hollow nodes + the example web service.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn example_web_service_is_scheduled_spread_and_becomes_ready() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("data"));
    let _agent = AgentProcess::start(
        &server.url,
        &["--hollow", "--count", "3", "--heartbeat-seconds", "1"],
        "3 hollow nodes registered",
        Duration::from_secs(60),
    );
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/web");
    ok(server.drover(&["apply", "-f", examples]));

    // The Deployment's 3 replicas are bound, one per node, and report Ready.
    let wide = eventually(Duration::from_secs(60), || {
        let out = stdout(&server.drover(&["get", "deploy", "web"]));
        out.contains("3/3")
            .then(|| stdout(&server.drover(&["get", "pods", "-o", "wide"])))
    });
    let nodes: std::collections::BTreeSet<&str> = wide
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(6))
        .collect();
    assert_eq!(nodes.len(), 3, "replicas spread over the 3 nodes:\n{wide}");

    // A VM pod needs a node offering vm (hollow nodes do), and a pod that fits
    // nowhere stays Pending with the reasons.
    let huge = "apiVersion: v1\nkind: Pod\nmetadata: {name: huge}\nspec:\n  containers:\n  - {name: c, image: example/busybox:1, resources: {requests: {cpu: \"64\"}}}\n";
    ok(server.drover_stdin(&["create", "-f", "-"], Some(huge)));
    let described = eventually(Duration::from_secs(30), || {
        let d = stdout(&server.drover(&["describe", "pod", "huge"]));
        d.contains("FailedScheduling").then_some(d)
    });
    assert!(
        described.contains("0/3 nodes are available: 3 Insufficient cpu"),
        "{described}"
    );
}
