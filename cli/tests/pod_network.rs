//! Pod networking on a node, as root, with the real agent and server: a
//! busybox httpd pod answers at its pod IP from the host and from another
//! pod, keeps its address across an agent restart, and leaves no veth,
//! namespace or address behind when deleted.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::pod_net::PodNet;
use common::{AgentProcess, Server, curl, eventually, ok};
use drover_proto::client::{Client, DeleteOptions};
use drover_proto::types::Pod;
use drover_proto::types::pod::Container;
use drover_proto::{Kind, Resource};

fn skip_reason() -> Option<&'static str> {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        return Some("the real agent needs root");
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("/bin/busybox missing (apt-get install busybox-static)");
    }
    if Command::new("nft").arg("--version").output().is_err() {
        return Some("nft missing (apt-get install nftables)");
    }
    None
}

fn pod(name: &str, command: Vec<String>) -> Pod {
    let mut pod = Pod::default();
    pod.metadata.name = name.into();
    pod.metadata.namespace = Some("default".into());
    pod.spec.node_name = Some("n1".into());
    pod.spec.termination_grace_period_seconds = 1;
    pod.spec.containers = vec![Container {
        name: "c".into(),
        image: "example/busybox:1".into(),
        command,
        ..Container::default()
    }];
    pod
}

fn links() -> String {
    let out = Command::new("ip").args(["-o", "link"]).output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

#[test]
fn pods_get_addresses_serve_http_and_clean_up() {
    if let Some(why) = skip_reason() {
        eprintln!("skipped pods_get_addresses_serve_http_and_clean_up: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = common::build_busybox(dir.path());
    let data = dir.path().join("agent");
    let data_arg = data.to_str().expect("utf-8");
    let server = Server::start(&dir.path().join("server"));
    ok(server.drover(&[
        "image",
        "import",
        layout.to_str().expect("utf-8"),
        "--data-dir",
        data_arg,
    ]));
    let net = PodNet::unique();
    let [b, bridge, c, cidr] = net.args();
    let args = [
        "--node-name",
        "n1",
        "--data-dir",
        data_arg,
        "--logs-listen",
        "127.0.0.1:0",
        b,
        bridge,
        c,
        cidr,
    ];
    let mut agent = AgentProcess::start(
        &server.url,
        &args,
        "registered node n1",
        Duration::from_secs(30),
    );
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let client = rt.block_on(Client::connect(&server.url)).expect("connect");

    let httpd = ["busybox", "httpd", "-f", "-p", "8080", "-h", "/www"];
    let web = pod("web", httpd.iter().map(|s| s.to_string()).collect());
    rt.block_on(client.create(&web.to_object()))
        .expect("create web");
    let ip = eventually(Duration::from_secs(60), || {
        let p: Pod = rt.block_on(client.get_as("default", "web")).ok()?;
        p.status.as_ref()?.pod_ip.clone().filter(|_| p.is_ready())
    });
    let prefix = net.cidr.trim_end_matches(".0/24");
    assert!(ip.starts_with(prefix), "{ip} is not from {}", net.cidr);
    let url = format!("http://{ip}:8080/");
    let page = eventually(Duration::from_secs(20), || curl(&url));
    assert!(page.contains("Hello from Drover"), "{page}");

    // Another pod reaches it over the bridge.
    let script = format!("until wget -qO- {url}; do sleep 0.2; done; sleep 1000");
    let client_pod = pod("client", vec!["sh".into(), "-c".into(), script]);
    rt.block_on(client.create(&client_pod.to_object()))
        .expect("create client");
    eventually(Duration::from_secs(60), || {
        let logs = server.drover(&["logs", "client"]);
        String::from_utf8_lossy(&logs.stdout)
            .contains("Hello from Drover")
            .then_some(())
    });

    // An agent restart keeps the address and the reachability.
    agent.kill9();
    drop(agent);
    let agent = AgentProcess::start(
        &server.url,
        &args,
        "registered node n1",
        Duration::from_secs(30),
    );
    let p: Pod = rt.block_on(client.get_as("default", "web")).expect("get");
    assert_eq!(p.status.and_then(|s| s.pod_ip), Some(ip.clone()));
    assert!(curl(&url).is_some_and(|t| t.contains("Hello")));

    // Deleting the pods removes their veths, namespaces and addresses.
    let uids: Vec<String> = ["web", "client"]
        .iter()
        .map(|n| {
            let p: Pod = rt.block_on(client.get_as("default", n)).expect("get");
            p.metadata.uid.unwrap_or_default()
        })
        .collect();
    for name in ["web", "client"] {
        rt.block_on(client.delete(Kind::Pod, "default", name, &DeleteOptions::default()))
            .expect("delete");
    }
    eventually(Duration::from_secs(60), || {
        let left = rt
            .block_on(client.list(Kind::Pod, &Default::default()))
            .ok()?;
        left.0.is_empty().then_some(())
    });
    let veths = links();
    for uid in &uids {
        let id: String = uid
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(11)
            .collect();
        assert!(
            !veths.contains(&format!("dv{id}")),
            "veth of {uid} left: {veths}"
        );
    }
    let netns_left: Vec<_> = std::fs::read_dir(data.join("network/netns"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(netns_left.is_empty(), "namespaces left: {netns_left:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    assert!(
        !mounts.contains(data_arg),
        "mounts left under the agent's data dir"
    );
    assert!(curl(&url).is_none(), "the address still answers");
    drop(agent);
}
