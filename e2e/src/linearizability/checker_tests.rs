use std::time::Duration;

use super::*;
use crate::linearizability::history::{Entry, INITIAL, Op, Outcome};

/// An entry from millisecond times (`None`: unknown outcome).
fn e(client: usize, op: Op, outcome: Outcome, from: u64, to: Option<u64>) -> Entry {
    Entry {
        client,
        member: 1,
        op,
        outcome,
        invoked: Duration::from_millis(from),
        completed: to.map(Duration::from_millis),
    }
}

fn linearizable(history: &[Entry]) -> bool {
    match check(INITIAL, history) {
        Verdict::Linearizable => true,
        Verdict::Violation { .. } => false,
        Verdict::Undecided { states } => panic!("undecided after {states} states"),
    }
}

#[test]
fn sequential_reads_see_the_last_write() {
    let h = [
        e(0, Op::Write(1), Outcome::Ok, 0, Some(1)),
        e(1, Op::Read, Outcome::Read(1), 2, Some(3)),
        e(0, Op::Write(2), Outcome::Ok, 4, Some(5)),
        e(1, Op::Read, Outcome::Read(2), 6, Some(7)),
    ];
    assert!(linearizable(&h));
}

#[test]
fn a_stale_read_after_a_completed_write_is_a_violation() {
    let h = [
        e(0, Op::Write(1), Outcome::Ok, 0, Some(1)),
        e(1, Op::Read, Outcome::Read(INITIAL), 2, Some(3)),
    ];
    match check(INITIAL, &h) {
        Verdict::Violation {
            stuck_at, total, ..
        } => {
            assert_eq!(total, 2);
            assert_eq!(stuck_at.op, Op::Read, "{stuck_at}");
        }
        other => panic!("expected a violation, got {other:?}"),
    }
}

#[test]
fn overlapping_operations_may_take_effect_in_either_order() {
    // The read overlaps the write: it may see the old or the new value.
    for seen in [INITIAL, 1] {
        let h = [
            e(0, Op::Write(1), Outcome::Ok, 0, Some(10)),
            e(1, Op::Read, Outcome::Read(seen), 2, Some(5)),
        ];
        assert!(linearizable(&h), "read {seen}");
    }
}

#[test]
fn reads_may_not_go_back_in_time() {
    // Two sequential reads within one write's window: new then old is not
    // an order any single point of the write explains.
    let h = [
        e(0, Op::Write(1), Outcome::Ok, 0, Some(10)),
        e(1, Op::Read, Outcome::Read(1), 1, Some(2)),
        e(1, Op::Read, Outcome::Read(INITIAL), 3, Some(4)),
    ];
    assert!(!linearizable(&h));
}

#[test]
fn compare_and_set_succeeds_only_on_the_expected_value() {
    let ok = [
        e(0, Op::Write(1), Outcome::Ok, 0, Some(1)),
        e(1, Op::Cas { expect: 1, new: 2 }, Outcome::Ok, 2, Some(3)),
        e(0, Op::Read, Outcome::Read(2), 4, Some(5)),
    ];
    assert!(linearizable(&ok));
    let wrong_expectation = [
        e(0, Op::Write(1), Outcome::Ok, 0, Some(1)),
        e(1, Op::Cas { expect: 7, new: 2 }, Outcome::Ok, 2, Some(3)),
    ];
    assert!(!linearizable(&wrong_expectation));
    let failed_but_matched = [
        e(0, Op::Write(1), Outcome::Ok, 0, Some(1)),
        e(
            1,
            Op::Cas { expect: 1, new: 2 },
            Outcome::CasFailed,
            2,
            Some(3),
        ),
    ];
    assert!(!linearizable(&failed_but_matched));
}

#[test]
fn two_successful_cas_from_the_same_value_is_a_lost_update() {
    let h = [
        e(0, Op::Cas { expect: 0, new: 1 }, Outcome::Ok, 0, Some(5)),
        e(1, Op::Cas { expect: 0, new: 2 }, Outcome::Ok, 1, Some(6)),
    ];
    assert!(!linearizable(&h));
}

#[test]
fn an_unknown_write_may_apply_late_or_never() {
    let never = [
        e(0, Op::Write(1), Outcome::Unknown, 0, None),
        e(1, Op::Read, Outcome::Read(INITIAL), 50, Some(51)),
    ];
    assert!(linearizable(&never));
    let late = [
        e(0, Op::Write(1), Outcome::Unknown, 0, None),
        e(1, Op::Read, Outcome::Read(INITIAL), 50, Some(51)),
        e(1, Op::Read, Outcome::Read(1), 60, Some(61)),
    ];
    assert!(linearizable(&late));
    // ... but it cannot take effect before it was sent.
    let early = [
        e(1, Op::Read, Outcome::Read(1), 0, Some(1)),
        e(0, Op::Write(1), Outcome::Unknown, 5, None),
    ];
    assert!(!linearizable(&early));
}

#[test]
fn a_read_without_an_answer_is_ignored() {
    let h = [
        e(0, Op::Write(1), Outcome::Ok, 0, Some(1)),
        e(1, Op::Read, Outcome::Unknown, 2, None),
        e(1, Op::Read, Outcome::Read(1), 3, Some(4)),
    ];
    assert!(linearizable(&h));
}

#[test]
fn a_value_no_one_wrote_is_a_violation() {
    let h = [e(1, Op::Read, Outcome::Read(42), 0, Some(1))];
    assert!(!linearizable(&h));
}

#[test]
fn long_concurrent_histories_are_decided_quickly() {
    // Three clients, each: write its own value, read it back, CAS onward;
    // the operations of different clients overlap pairwise.
    let mut h = Vec::new();
    let mut t = 0;
    let mut current = INITIAL;
    for round in 0..2_000u64 {
        let client = (round % 3) as usize;
        let v = round + 1;
        h.push(e(client, Op::Write(v), Outcome::Ok, t, Some(t + 3)));
        h.push(e(
            (client + 1) % 3,
            Op::Read,
            Outcome::Read(v),
            t + 4,
            Some(t + 6),
        ));
        let cas = Op::Cas {
            expect: current,
            new: 1_000_000 + v,
        };
        h.push(e(
            (client + 2) % 3,
            cas,
            Outcome::CasFailed,
            t + 1,
            Some(t + 5),
        ));
        current = v;
        t += 5;
    }
    let started = std::time::Instant::now();
    assert!(linearizable(&h));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// A history from a real register: each operation takes effect at a random
/// point inside its window, in that order; some answers are then lost.
fn executed_history(seed: u64) -> Vec<Entry> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut ops: Vec<(u64, Entry)> = (0..60)
        .map(|i| {
            let from = rng.u64(0..400);
            let to = from + rng.u64(1..40);
            let op = match rng.u8(0..3) {
                0 => Op::Read,
                1 => Op::Write(i + 1),
                _ => Op::Cas {
                    expect: rng.u64(0..=i),
                    new: i + 1,
                },
            };
            let point = rng.u64(from..to);
            (
                point,
                e(rng.usize(0..4), op, Outcome::Unknown, from, Some(to)),
            )
        })
        .collect();
    ops.sort_by_key(|(point, _)| *point);
    let mut state = INITIAL;
    for (_, entry) in &mut ops {
        entry.outcome = match entry.op {
            Op::Read => Outcome::Read(state),
            Op::Write(v) => {
                state = v;
                Outcome::Ok
            }
            Op::Cas { expect, new } if expect == state => {
                state = new;
                Outcome::Ok
            }
            Op::Cas { .. } => Outcome::CasFailed,
        };
        if entry.op != Op::Read && rng.u8(0..10) == 0 {
            entry.outcome = Outcome::Unknown;
            entry.completed = None;
        }
    }
    ops.into_iter().map(|(_, entry)| entry).collect()
}

#[test]
fn every_history_a_real_register_produces_is_linearizable() {
    for seed in 0..300 {
        let h = executed_history(seed);
        assert!(linearizable(&h), "seed {seed}: {:?}", check(INITIAL, &h));
    }
}

#[test]
fn a_read_changed_to_a_value_never_written_is_caught() {
    for seed in 0..100 {
        let mut h = executed_history(seed);
        if let Some(read) = h.iter_mut().find(|x| x.op == Op::Read) {
            read.outcome = Outcome::Read(999_999);
            assert!(!linearizable(&h), "seed {seed}");
        }
    }
}
