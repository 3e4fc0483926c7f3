//! Integration with the real control plane: the scheduler loop against a
//! `drover server` process. A pod that fits nowhere stays Pending with the
//! reasons (Event + PodScheduled condition) and is bound as soon as a node
//! that fits registers.
//!
//! Needs the `drover` binary: `$DROVER_BIN`, or `drover` in the target dir
//! (`cargo build -p drover-cli` first). Without it the test says so and passes.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use drover_proto::Resource;
use drover_proto::client::{Client, ListOptions};
use drover_proto::types::{Event, Node, Pod};
use drover_scheduler::testing::{GI, NodeBuilder, PodBuilder};
use drover_scheduler::{SchedulerConfig, run};

fn drover_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("DROVER_BIN") {
        return Some(PathBuf::from(p));
    }
    // tests run from <target>/debug/deps/; the binary sits in <target>/debug/.
    let exe = std::env::current_exe().ok()?;
    let candidate = exe.parent()?.parent()?.join("drover");
    candidate.exists().then_some(candidate)
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(bin: &PathBuf, dir: &std::path::Path) -> (Server, String) {
    let mut child = Command::new(bin)
        .args(["server", "--data-dir"])
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn drover server");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("drover server listening on ") {
                let _ = tx.send(url.to_string());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server listening within 30s");
    (Server(child), url)
}

/// Polls `f` until it yields a value or `timeout` passes (a real process is
/// being waited for, so this is a deadline, not a sleep-and-hope).
async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_pod_reports_reasons_then_binds_when_a_node_registers() {
    let Some(bin) = drover_bin() else {
        eprintln!("skipped: no drover binary (set DROVER_BIN or cargo build -p drover-cli)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (_server, url) = start_server(&bin, dir.path());
    let client = Client::connect(&url).await.expect("connect");

    let small = NodeBuilder::new("small")
        .capacity(1000, 2 * GI, 110)
        .build();
    create_node(&client, &small).await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let config = SchedulerConfig {
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(400),
        ..Default::default()
    };
    let scheduler = tokio::spawn(run(client.clone(), config, stop_rx));

    let mut pod = PodBuilder::new("web").requests(2000, GI).build();
    pod.metadata.uid = None;
    pod.metadata.resource_version = None;
    client.create(&pod.to_object()).await.expect("create pod");

    let want = "0/1 nodes are available: 1 Insufficient cpu.";
    let event = eventually(
        "FailedScheduling event",
        Duration::from_secs(20),
        || async {
            let opts = ListOptions {
                namespace: Some("default".into()),
                ..Default::default()
            };
            let (events, _) = client.list_as::<Event>(&opts).await.ok()?;
            events
                .into_iter()
                .find(|e| e.involved_object.name == "web" && e.reason == "FailedScheduling")
        },
    )
    .await;
    assert_eq!(
        (event.type_.as_str(), event.message.as_str()),
        ("Warning", want)
    );
    let condition = eventually("PodScheduled=False", Duration::from_secs(20), || async {
        let p: Pod = client.get_as("default", "web").await.ok()?;
        p.status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "PodScheduled")
    })
    .await;
    assert_eq!(condition.status, "False");
    assert_eq!(condition.reason.as_deref(), Some("Unschedulable"));
    assert_eq!(condition.message.as_deref(), Some(want));
    let still: Pod = client.get_as("default", "web").await.expect("get pod");
    assert_eq!(still.spec.node_name, None, "stays Pending");

    create_node(&client, &NodeBuilder::new("big").build()).await;
    let node = eventually("bind", Duration::from_secs(20), || async {
        let p: Pod = client.get_as("default", "web").await.ok()?;
        p.spec.node_name
    })
    .await;
    assert_eq!(node, "big");

    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(10), scheduler)
        .await
        .expect("scheduler stops on shutdown")
        .expect("scheduler task");
}

async fn create_node(client: &Client, node: &Node) {
    let (created, _) = client.create(&node.to_object()).await.expect("create node");
    let created = Node::from_object(&created).expect("node");
    if created.status != node.status {
        let mut with_status = created.clone();
        with_status.status = node.status.clone();
        client
            .update_status(&with_status.to_object())
            .await
            .expect("node status");
    }
}
