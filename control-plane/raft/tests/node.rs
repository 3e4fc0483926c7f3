//! The node task on real time and real fsync: replication, failover, membership through `RaftHandle`.

mod common;

use std::time::{Duration, Instant};

use common::{Member, bootstrap_members, config, propose_anywhere, start_member, wait_leader};
use drover_raft::{LocalNetwork, ProposeError, Role, Startup};

const TICK: Duration = Duration::from_millis(10);
const DEADLINE: Duration = Duration::from_secs(10);

/// Small snapshot threshold so snapshots are written in the background and
/// the new member catches up from one.
fn snappy(id: u64) -> drover_raft::RaftConfig {
    let mut cfg = config(id, TICK);
    cfg.snapshot_threshold = 40;
    cfg.compaction_margin = 10;
    cfg
}

async fn wait_applied(m: &Member, n: usize) {
    let start = Instant::now();
    while m.applied.lock().unwrap().len() < n {
        assert!(start.elapsed() < DEADLINE, "member {} stuck", m.handle.id());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_failover_and_membership() {
    let dir = tempfile::tempdir().unwrap();
    let net = LocalNetwork::new();
    let members: Vec<Member> = (1..=3)
        .map(|id| {
            start_member(
                &net,
                dir.path(),
                snappy(id),
                Startup::Bootstrap(bootstrap_members(3)),
            )
        })
        .collect();
    let all: Vec<&Member> = members.iter().collect();
    let leader = wait_leader(&all, DEADLINE).await;

    // Followers refuse with a hint; the leadership signal agrees.
    let follower = all.iter().find(|m| m.handle.id() != leader).unwrap();
    assert!(matches!(
        follower.handle.propose(b"x".to_vec()).await,
        Err(ProposeError::NotLeader { .. })
    ));

    // Concurrent writers through any member.
    let mut tasks = Vec::new();
    for w in 0..8 {
        let handles: Vec<_> = members.iter().map(|m| m.handle.clone()).collect();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..25 {
                let cmd = format!("w{w}-{i}").into_bytes();
                for h in handles.iter().cycle().take(6) {
                    if h.propose(cmd.clone()).await.is_ok() {
                        acked.push(cmd);
                        break;
                    }
                }
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert_eq!(acked.len(), 200);

    // Linearizable read on a follower sees every acknowledged write.
    follower.handle.read_index().await.unwrap();
    assert_eq!(follower.applied.lock().unwrap().len(), 200);

    let status = all[0].handle.status().await.unwrap();
    assert_eq!(status.members.len(), 3);
    let st = all
        .iter()
        .find(|m| m.handle.id() == leader)
        .unwrap()
        .handle
        .status()
        .await
        .unwrap();
    assert!(st.members.iter().all(|m| m.match_index.is_some()));

    // Kill the leader: the others elect a new one and keep taking writes.
    let old = all.iter().find(|m| m.handle.id() == leader).unwrap();
    let mut signal = old.handle.leadership();
    old.handle.shutdown().await;
    // Leader-only work hears about it.
    tokio::time::timeout(DEADLINE, signal.wait_for(|l| l.role == Role::Stopped))
        .await
        .unwrap()
        .unwrap();
    net.unregister(leader);
    let rest: Vec<&Member> = all
        .iter()
        .copied()
        .filter(|m| m.handle.id() != leader)
        .collect();
    let killed = Instant::now();
    propose_anywhere(&rest, b"after-failover".to_vec(), DEADLINE)
        .await
        .unwrap();
    eprintln!(
        "failover: first write {:?} after killing the leader",
        killed.elapsed()
    );
    let new_leader = wait_leader(&rest, DEADLINE).await;
    assert_ne!(new_leader, leader);

    // Add a brand-new member; it catches up. Then remove the dead one.
    let m4 = start_member(
        &net,
        dir.path(),
        snappy(4),
        Startup::Join(bootstrap_members(3)),
    );
    let lead = rest.iter().find(|m| m.handle.id() == new_leader).unwrap();
    lead.handle.add_member(4, "local-4".into()).await.unwrap();
    wait_applied(&m4, 201).await;
    let st4 = m4.handle.status().await.unwrap();
    assert!(
        st4.snapshot_index > 100,
        "member 4 caught up from a snapshot: {st4:?}"
    );
    lead.handle.remove_member(leader).await.unwrap();
    let st = lead.handle.status().await.unwrap();
    let ids: Vec<u64> = st.members.iter().map(|m| m.id).collect();
    assert!(!ids.contains(&leader) && ids.contains(&4), "{ids:?}");

    // Remove the current leader: the remaining two carry on.
    lead.handle.remove_member(new_leader).await.unwrap();
    let survivors: Vec<&Member> = rest
        .iter()
        .copied()
        .filter(|m| m.handle.id() != new_leader)
        .chain(std::iter::once(&m4))
        .collect();
    propose_anywhere(&survivors, b"after-leader-removal".to_vec(), DEADLINE)
        .await
        .unwrap();
    assert_eq!(lead.handle.leadership().borrow().role, Role::Removed);
    for m in &survivors {
        wait_applied(m, 202).await;
        let items = m.applied.lock().unwrap().clone();
        for a in &acked {
            assert_eq!(items.iter().filter(|c| *c == a).count(), 1);
        }
        assert_eq!(items, survivors[0].applied.lock().unwrap().clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_member_cluster_and_restart_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let net = LocalNetwork::new();
    let m = start_member(
        &net,
        dir.path(),
        config(1, TICK),
        Startup::Bootstrap(bootstrap_members(1)),
    );
    for i in 0..30u32 {
        m.handle.propose(i.to_be_bytes().to_vec()).await.unwrap();
    }
    m.handle.shutdown().await;
    net.unregister(1);
    // Let the old thread release the store before reopening it.
    let start = Instant::now();
    let m = loop {
        let (sm, applied) = common::SharedList::new();
        match drover_raft::RaftNode::start(
            config(1, TICK),
            &dir.path().join("member-1"),
            sm,
            net.transport(1),
            Startup::Restart,
        ) {
            Ok((handle, thread)) => {
                break Member {
                    handle,
                    applied,
                    thread: Some(thread),
                };
            }
            Err(e) => {
                assert!(start.elapsed() < DEADLINE, "restart failed: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    m.handle.read_index().await.unwrap();
    assert_eq!(m.applied.lock().unwrap().len(), 30);
    m.handle.propose(b"more".to_vec()).await.unwrap();
}
