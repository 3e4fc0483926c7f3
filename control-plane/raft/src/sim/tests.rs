//! Deterministic cluster tests on the simulated network.

use super::{Sim, addr};
use crate::core::{MemberChange, Role};
use crate::error::{MembershipError, ProposeError, StepError};

fn cmd(i: usize) -> Vec<u8> {
    format!("cmd-{i}").into_bytes()
}

#[test]
fn elects_one_leader_all_agree() {
    let mut sim = Sim::new(3, 1);
    let leader = sim.wait_leader();
    assert_eq!(leader, 1, "member 1 has the shortest election timeout");
    sim.run(100);
    assert_eq!(sim.leaders(), vec![1], "no second leader, no churn");
    let term = sim.node(1).leadership().term;
    for id in 1..=3 {
        assert_eq!(sim.node(id).leadership().leader, Some(1));
        assert_eq!(sim.node(id).leadership().term, term);
    }
}

#[test]
fn reelects_after_leader_isolation_and_old_leader_rejoins() {
    let mut sim = Sim::new(3, 2);
    let old = sim.wait_leader();
    sim.write(b"before");
    sim.isolate(old);
    let new = sim.wait_leader();
    assert_ne!(new, old);
    // check_quorum: the isolated leader steps down on its own.
    assert!(sim.run_until(100, |s| s.node(old).leadership().role != Role::Leader));
    sim.write(b"after");
    sim.heal_all();
    assert!(sim.run_until(200, |s| s.node(old).leadership().leader == Some(new)));
    assert!(sim.wait_converged(&[1, 2, 3]));
    assert_eq!(
        sim.node(old).state_machine().commands(),
        vec![b"before".to_vec(), b"after".to_vec()]
    );
}

#[test]
fn stale_leader_cannot_commit_and_divergent_log_is_repaired() {
    let mut sim = Sim::new(5, 3);
    let old = sim.wait_leader();
    sim.write(b"base");
    sim.isolate(old);
    // The stale leader accepts proposals into its log but can never commit them.
    let mut stale: Vec<_> = (0..5)
        .map(|i| sim.propose(old, format!("stale-{i}").as_bytes()))
        .collect();
    let new = sim.wait_leader();
    assert_ne!(new, old);
    for i in 0..10 {
        sim.write(&cmd(i));
    }
    sim.run(50);
    for rx in &mut stale {
        assert!(
            rx.try_recv().is_err(),
            "an isolated leader acknowledged a write"
        );
    }
    sim.heal_all();
    assert!(sim.wait_converged(&[1, 2, 3, 4, 5]));
    for rx in &mut stale {
        assert_eq!(sim.wait(rx, 50), Some(Err(ProposeError::Dropped)));
    }
    let expected: Vec<Vec<u8>> = std::iter::once(b"base".to_vec())
        .chain((0..10).map(cmd))
        .collect();
    for (id, list) in sim.lists() {
        assert_eq!(list, expected, "member {id}");
    }
}

#[test]
fn minority_partition_cannot_elect_or_commit() {
    let mut sim = Sim::new(5, 4);
    let leader = sim.wait_leader();
    let others: Vec<u64> = (1..=5).filter(|&i| i != leader).collect();
    // Leader plus one follower on one side, three members on the other.
    let minority = [leader, others[0]];
    for &a in &minority {
        for &b in &others[1..] {
            sim.cut(a, b);
        }
    }
    let mut rx = sim.propose(leader, b"minority");
    sim.run(200);
    assert!(rx.try_recv().is_err());
    let majority_leader = sim.leaders().into_iter().find(|l| others[1..].contains(l));
    assert!(majority_leader.is_some(), "majority side elects a leader");
    sim.heal_all();
    assert!(sim.wait_converged(&[1, 2, 3, 4, 5]));
    assert_eq!(sim.wait(&mut rx, 50), Some(Err(ProposeError::Dropped)));
    assert!(
        sim.lists()
            .values()
            .all(|l| !l.contains(&b"minority".to_vec()))
    );
}

#[test]
fn lagging_member_catches_up_from_snapshot() {
    let mut sim = Sim::with_config(3, 5, |c| {
        c.snapshot_threshold = 20;
        c.compaction_margin = 5;
    });
    let leader = sim.wait_leader();
    let lagger = if leader == 3 { 2 } else { 3 };
    sim.isolate(lagger);
    for i in 0..100 {
        sim.write(&cmd(i));
    }
    assert!(
        sim.node(leader).status().snapshot_index > 60,
        "leader compacted its log"
    );
    sim.heal_all();
    assert!(sim.wait_converged(&[1, 2, 3]));
    let st = sim.node(lagger).status();
    assert!(
        st.snapshot_index > 60,
        "lagger installed a snapshot: {st:?}"
    );
    assert_eq!(
        sim.node(lagger).state_machine().commands(),
        (0..100).map(cmd).collect::<Vec<_>>()
    );
}

#[test]
fn lost_snapshot_message_is_resent() {
    let mut sim = Sim::with_config(3, 6, |c| {
        c.snapshot_threshold = 10;
        c.compaction_margin = 0;
    });
    let leader = sim.wait_leader();
    let lagger = if leader == 3 { 2 } else { 3 };
    sim.isolate(lagger);
    for i in 0..30 {
        sim.write(&cmd(i));
    }
    // Heal, but lose everything for a while so the first snapshot is lost.
    sim.heal_all();
    sim.drop_per_mille = 1000;
    sim.run(20);
    sim.drop_per_mille = 0;
    assert!(sim.wait_converged(&[1, 2, 3]));
    assert_eq!(sim.node(lagger).state_machine().commands().len(), 30);
}

#[test]
fn adds_a_member_then_removes_a_follower_and_the_leader() {
    let mut sim = Sim::with_config(3, 7, |c| c.snapshot_threshold = 15);
    let leader = sim.wait_leader();
    for i in 0..20 {
        sim.write(&cmd(i));
    }
    // A brand-new member starts empty and is configured by the leader.
    sim.start(4, None);
    sim.change(
        leader,
        MemberChange::Add {
            id: 4,
            addr: addr(4),
        },
    )
    .unwrap();
    assert_eq!(
        sim.change(
            leader,
            MemberChange::Add {
                id: 4,
                addr: addr(4)
            }
        ),
        Err(MembershipError::AlreadyMember(4))
    );
    sim.write(b"with-4");
    assert!(sim.wait_converged(&[1, 2, 3, 4]));
    assert_eq!(
        sim.node(4).members().get(&1),
        Some(&addr(1)),
        "addresses came with the snapshot"
    );
    assert_eq!(sim.node(4).status().members.len(), 4);

    let follower = (1..=3).find(|&i| i != leader).unwrap();
    sim.change(leader, MemberChange::Remove { id: follower })
        .unwrap();
    assert!(sim.run_until(50, |s| s.node(follower).leadership().role == Role::Removed));

    // Removing the leader hands leadership over.
    sim.change(leader, MemberChange::Remove { id: leader })
        .unwrap();
    assert!(sim.run_until(100, |s| {
        s.leaders()
            .first()
            .is_some_and(|l| *l != leader && *l != follower)
    }));
    assert_eq!(sim.node(leader).leadership().role, Role::Removed);
    let new = sim.leaders()[0];
    sim.write(b"after-removals");
    let rest: Vec<u64> = (1..=4).filter(|i| *i != leader && *i != follower).collect();
    assert!(sim.wait_converged(&rest));
    assert_eq!(sim.node(new).status().members.len(), 2);
    assert_eq!(
        sim.node(rest[0]).state_machine().commands().last(),
        Some(&b"after-removals".to_vec())
    );
    // The removed members no longer take writes.
    let mut rx = sim.propose(leader, b"x");
    assert_eq!(sim.wait(&mut rx, 1), Some(Err(ProposeError::Removed)));
}

#[test]
fn whole_cluster_restart_keeps_everything() {
    let mut sim = Sim::with_config(3, 8, |c| {
        c.snapshot_threshold = 10;
        c.compaction_margin = 3;
    });
    for i in 0..35 {
        sim.write(&cmd(i));
    }
    assert!(sim.wait_converged(&[1, 2, 3]));
    let before = sim.lists();
    for id in 1..=3 {
        sim.crash(id);
    }
    for id in 1..=3 {
        sim.start(id, None);
    }
    sim.wait_leader();
    assert!(sim.wait_converged(&[1, 2, 3]));
    assert_eq!(sim.lists(), before);
    sim.write(b"after-restart");
    assert!(sim.wait_converged(&[1, 2, 3]));
    assert_eq!(sim.node(2).state_machine().commands().len(), 36);
}

#[test]
fn restarted_member_catches_up_after_missing_writes() {
    let mut sim = Sim::with_config(3, 9, |c| c.snapshot_threshold = 25);
    let leader = sim.wait_leader();
    let down = if leader == 1 { 2 } else { 1 };
    sim.write(b"first");
    sim.crash(down);
    for i in 0..60 {
        sim.write(&cmd(i));
    }
    sim.start(down, None);
    assert!(sim.wait_converged(&[1, 2, 3]));
    assert_eq!(sim.node(down).state_machine().commands().len(), 61);
}

#[test]
fn lossy_delaying_network_loses_no_acknowledged_write() {
    let mut sim = Sim::with_config(5, 10, |c| c.snapshot_threshold = 30);
    sim.drop_per_mille = 150;
    sim.max_delay = 3;
    let mut acked = Vec::new();
    let mut attempts = 0;
    while acked.len() < 40 && attempts < 400 {
        attempts += 1;
        let Some(&leader) = sim.leaders().first() else {
            sim.tick();
            continue;
        };
        let c = cmd(acked.len());
        let mut rx = sim.propose(leader, &c);
        if let Some(Ok(_)) = sim.wait(&mut rx, 60) {
            acked.push(c);
        }
    }
    assert_eq!(acked.len(), 40, "progress despite loss");
    sim.drop_per_mille = 0;
    sim.max_delay = 0;
    assert!(sim.wait_converged(&[1, 2, 3, 4, 5]));
    for (id, list) in sim.lists() {
        // Every acknowledged write is present, in order, exactly once.
        let seen: Vec<_> = list.iter().filter(|c| acked.contains(c)).cloned().collect();
        assert_eq!(seen, acked, "member {id}");
    }
}

#[test]
fn follower_refuses_proposals_with_leader_hint() {
    let mut sim = Sim::new(3, 11);
    let leader = sim.wait_leader();
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    let mut rx = sim.propose(follower, b"x");
    assert_eq!(
        sim.wait(&mut rx, 0),
        Some(Err(ProposeError::NotLeader {
            leader: Some(leader)
        }))
    );
}

#[test]
fn read_index_resolves_after_apply_on_leader_and_follower() {
    let mut sim = Sim::new(3, 12);
    let leader = sim.wait_leader();
    sim.write(b"a");
    for id in 1..=3 {
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        sim.node_mut(id).read_index(tx);
        sim.settle();
        assert_eq!(sim.wait(&mut rx, 20), Some(Ok(())), "member {id}");
        assert_eq!(sim.node(id).state_machine().commands(), vec![b"a".to_vec()]);
    }
    // An isolated leader cannot confirm a read.
    sim.isolate(leader);
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    sim.node_mut(leader).read_index(tx);
    sim.settle();
    assert_ne!(sim.wait(&mut rx, 5), Some(Ok(())));
}

#[test]
fn messages_from_unknown_peers_are_rejected() {
    use protobuf::Message as _;
    let mut sim = Sim::new(3, 13);
    sim.wait_leader();
    let mut m = raft::prelude::Message::default();
    m.set_msg_type(raft::prelude::MessageType::MsgHeartbeat);
    m.to = 1;
    m.from = 9;
    m.term = 100;
    let bytes = m.write_to_bytes().unwrap();
    let term = sim.node(1).leadership().term;
    assert!(matches!(
        sim.node_mut(1).step_bytes(&bytes),
        Err(StepError::UnknownPeer { from: 9 })
    ));
    assert_eq!(
        sim.node(1).leadership().term,
        term,
        "rejected message had no effect"
    );
    m.to = 2;
    m.from = 3;
    let bytes = m.write_to_bytes().unwrap();
    assert!(matches!(
        sim.node_mut(1).step_bytes(&bytes),
        Err(StepError::WrongRecipient { .. })
    ));
    assert!(matches!(
        sim.node_mut(1).step_bytes(b"\xff\xff\xff"),
        Err(StepError::Decode(_))
    ));
    assert_eq!(sim.node(1).status().rejected_messages, 2);
}
