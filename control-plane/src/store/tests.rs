use std::time::{Duration, Instant};

use drover_proto::selector::{FieldSelector, Selector};
use drover_proto::{Kind, Object};
use serde_json::json;

use super::*;
use crate::command::Command;

fn cm(name: &str, value: &str) -> Object {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "uid": name}, "data": {"k": value}})).unwrap()
}

/// Reopens a store whose previous writer thread may still be releasing the lock.
fn reopen(dir: &std::path::Path) -> Arc<Store> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Store::open(dir, 1000) {
            Ok(s) => return s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("reopen: {e}"),
        }
    }
}

#[tokio::test]
async fn writes_survive_reopen_with_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 1000).unwrap();
    for i in 0..10 {
        store
            .propose(Command::Create {
                object: cm(&format!("c{i}"), "v"),
            })
            .await
            .unwrap();
    }
    assert_eq!(store.revision(), 10);
    drop(store);
    let store = reopen(dir.path());
    assert_eq!(store.revision(), 10);
    assert_eq!(store.object_count(), 10);
    let (items, rv) = store.list(
        Kind::ConfigMap,
        None,
        &Selector::everything(),
        &FieldSelector::default(),
    );
    assert_eq!((items.len(), rv), (10, 10));
    // Watch history survives too: resume from revision 7.
    let filter = WatchFilter {
        kind: Kind::ConfigMap,
        namespace: None,
        labels: Selector::everything(),
        fields: FieldSelector::default(),
    };
    let mut w = store.watch(filter, Some(7)).unwrap();
    let mut revs = vec![];
    for _ in 0..3 {
        revs.push(w.next().await.unwrap().unwrap().revision);
    }
    assert_eq!(revs, vec![8, 9, 10]);
}

#[tokio::test]
async fn concurrent_writers_are_batched_and_all_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 100_000).unwrap();
    let mut tasks = Vec::new();
    for t in 0..32 {
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                s.propose(Command::Create {
                    object: cm(&format!("t{t}-{i}"), "v"),
                })
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(store.revision(), 640);
    assert_eq!(store.object_count(), 640);
}

#[tokio::test]
async fn watch_delivers_live_changes_without_gaps_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 100_000).unwrap();
    store
        .propose(Command::Create {
            object: cm("before", "v"),
        })
        .await
        .unwrap();
    let filter = WatchFilter {
        kind: Kind::ConfigMap,
        namespace: Some("default".into()),
        labels: Selector::everything(),
        fields: FieldSelector::default(),
    };
    let mut w = store.watch(filter, None).unwrap();
    let writer = {
        let s = store.clone();
        tokio::spawn(async move {
            for i in 0..200 {
                s.propose(Command::Create {
                    object: cm(&format!("c{i}"), "v"),
                })
                .await
                .unwrap();
            }
        })
    };
    let mut last = 1;
    for _ in 0..200 {
        let item = tokio::time::timeout(Duration::from_secs(10), w.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(item.revision, last + 1, "gap or duplicate");
        assert_eq!(item.type_, "ADDED");
        last = item.revision;
    }
    writer.await.unwrap();
}

#[tokio::test]
async fn field_selector_watch_sees_binding_as_added() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 1000).unwrap();
    let pod: Object = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "uid": "u"}, "spec": {"containers": [{"name": "c", "image": "i"}]}})).unwrap();
    let created = store
        .propose(Command::Create { object: pod })
        .await
        .unwrap();
    let filter = WatchFilter {
        kind: Kind::Pod,
        namespace: None,
        labels: Selector::everything(),
        fields: FieldSelector::parse("spec.nodeName=n1").unwrap(),
    };
    let mut w = store.watch(filter, None).unwrap();
    let mut bound = (*created).clone();
    bound.body.get_mut("spec").unwrap()["nodeName"] = json!("n1");
    store
        .propose(Command::Update {
            object: bound,
            precondition: None,
        })
        .await
        .unwrap();
    let item = w.next().await.unwrap().unwrap();
    assert_eq!(item.type_, "ADDED");
}

#[tokio::test]
async fn watch_from_compacted_revision_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), 5).unwrap();
    for i in 0..20 {
        store
            .propose(Command::Create {
                object: cm(&format!("c{i}"), "v"),
            })
            .await
            .unwrap();
    }
    let filter = WatchFilter {
        kind: Kind::ConfigMap,
        namespace: None,
        labels: Selector::everything(),
        fields: FieldSelector::default(),
    };
    assert!(store.watch(filter.clone(), Some(3)).is_err());
    assert!(store.watch(filter, Some(15)).is_ok());
}

#[test]
fn corrupt_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("store"), b"this is not a database").unwrap();
    match Store::open(dir.path(), 10) {
        Err(e) => assert!(
            e.to_string().contains(&dir.path().display().to_string()),
            "{e}"
        ),
        Ok(_) => panic!("opened a corrupt data dir"),
    }
}
