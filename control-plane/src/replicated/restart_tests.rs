//! A member restarted from its data dir: the store holds every applied
//! write (written one batch per `Ready`), the log replays only what the
//! store lacks, and watches older than the restart relist.

use std::time::{Duration, Instant};

use drover_proto::selector::{FieldSelector, Selector};
use drover_proto::{Kind, Object};
use serde_json::json;

use super::{Member, RaftSettings, start};
use crate::command::Command;
use crate::store::WatchFilter;

fn cm(name: &str) -> Object {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "uid": name, "namespace": "default"}, "data": {"k": "v"}})).unwrap()
}

fn settings() -> RaftSettings {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    RaftSettings {
        id: 1,
        peer_listen: addr.parse().unwrap(),
        peers: [(1, addr)].into_iter().collect(),
        join: false,
        snapshot_threshold: 10_000,
    }
}

/// Starts the member, retrying while the previous incarnation lets go of
/// its files and port.
async fn start_member(dir: &std::path::Path, settings: &RaftSettings) -> Member {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match start(dir, 1000, settings, None).await {
            Ok(m) => return m,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("restart: {e}"),
        }
    }
}

/// Proposes until the single member has elected itself.
async fn create(member: &Member, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match member
            .store
            .propose(Command::Create { object: cm(name) })
            .await
        {
            Ok(_) => return,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("create {name}: {e}"),
        }
    }
}

fn configmaps() -> WatchFilter {
    WatchFilter {
        kind: Kind::ConfigMap,
        namespace: None,
        labels: Selector::everything(),
        fields: FieldSelector::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_member_keeps_every_write_and_old_watches_relist() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings();
    let member = start_member(dir.path(), &settings).await;
    let writes: Vec<_> = (0..40)
        .map(|i| {
            let m = &member;
            async move { create(m, &format!("c{i}")).await }
        })
        .collect();
    futures::future::join_all(writes).await;
    let revision = member.store.revision();
    assert_eq!(revision, 40);
    member.shutdown().await;

    let member = start_member(dir.path(), &settings).await;
    assert_eq!(member.store.revision(), revision);
    assert_eq!(member.store.object_count(), 40);
    assert!(
        member.store.watch(configmaps(), Some(10)).is_err(),
        "history from before the restart is not kept: an old watch must relist"
    );
    let mut w = member.store.watch(configmaps(), Some(revision)).unwrap();
    create(&member, "after").await;
    let item = tokio::time::timeout(Duration::from_secs(5), w.next())
        .await
        .expect("the watch sees the write after the restart")
        .unwrap()
        .unwrap();
    assert_eq!(item.revision, revision + 1);
    member.shutdown().await;
}
