//! Linearizability of one register's history: the Wing–Gong search with
//! Lowe's memoisation (as in Knossos and Porcupine). Calls and returns are
//! kept in time order in a linked list; the search linearizes a pending
//! call whenever the model allows it, backtracks when it meets the return
//! of an operation it has not linearized, and never revisits a (set of
//! linearized operations, register value) pair.
//!
//! Operations with unknown outcomes return "at infinity": they may take
//! effect any time after their call, or never.

use std::collections::HashSet;

use super::history::Entry;

/// Why a history is not linearizable, or could not be decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No order of the operations explains what the clients saw.
    Violation {
        /// The operation whose return no linearization could reach.
        stuck_at: Entry,
        /// The most operations any attempted order linearized.
        best: usize,
        total: usize,
    },
    /// The search visited more states than the limit allows.
    Undecided {
        states: usize,
    },
}

/// States the search may remember before it gives up.
const STATE_LIMIT: usize = 20_000_000;

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Linearizable => write!(f, "linearizable"),
            Verdict::Violation {
                stuck_at,
                best,
                total,
            } => write!(
                f,
                "not linearizable: no order reaches the return of [{stuck_at}] \
                 (at best {best} of {total} operations ordered)"
            ),
            Verdict::Undecided { states } => {
                write!(f, "undecided: the search gave up after {states} states")
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Event {
    Call(usize),
    Return(usize),
}

/// Checks `history` against a register that starts at `initial`.
pub fn check(initial: u64, history: &[Entry]) -> Verdict {
    let ops: Vec<&Entry> = history.iter().filter(|e| e.informative()).collect();
    let mut list = EventList::new(&ops);
    let mut linearized = Bits::new(ops.len());
    let mut seen: HashSet<(Bits, u64)> = HashSet::new();
    let mut stack: Vec<(usize, u64)> = Vec::new();
    let mut state = initial;
    let (mut best, mut stuck) = (0, None);
    let mut cursor = list.first();
    while let Some(node) = cursor {
        match list.event(node) {
            Event::Call(op) => {
                let next = ops[op].apply(state).and_then(|after| {
                    let mut bits = linearized.clone();
                    bits.set(op, true);
                    seen.insert((bits.clone(), after)).then_some((bits, after))
                });
                match next {
                    Some((bits, after)) => {
                        stack.push((op, state));
                        (state, linearized) = (after, bits);
                        list.lift(op);
                        cursor = list.first();
                    }
                    None => cursor = list.next(node),
                }
            }
            // Past every finite return: what is left may never have happened.
            Event::Return(op) if ops[op].completed.is_none() => return Verdict::Linearizable,
            Event::Return(op) => {
                if stack.len() >= best {
                    (best, stuck) = (stack.len(), Some(op));
                }
                let Some((undo, before)) = stack.pop() else {
                    return violation(&ops, stuck.unwrap_or(op), best);
                };
                state = before;
                linearized.set(undo, false);
                list.unlift(undo);
                cursor = list.next(list.call_of(undo));
            }
        }
        if seen.len() > STATE_LIMIT {
            return Verdict::Undecided { states: seen.len() };
        }
    }
    Verdict::Linearizable
}

fn violation(ops: &[&Entry], stuck: usize, best: usize) -> Verdict {
    Verdict::Violation {
        stuck_at: ops[stuck].clone(),
        best,
        total: ops.len(),
    }
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }

    fn set(&mut self, i: usize, on: bool) {
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        if on {
            self.0[word] |= bit;
        } else {
            self.0[word] &= !bit;
        }
    }
}

/// Calls and returns in time order, as a doubly linked list whose entries
/// can be taken out (an operation linearized) and put back (backtracking)
/// in last-out, first-in order.
struct EventList {
    events: Vec<Event>,
    /// Index 0 is the head sentinel; event `i` is node `i + 1`.
    prev: Vec<usize>,
    next: Vec<usize>,
    call_node: Vec<usize>,
    return_node: Vec<usize>,
}

impl EventList {
    fn new(ops: &[&Entry]) -> EventList {
        // Returns at "infinity" sort last; at equal times calls go first
        // (the operations overlap), the more permissive reading.
        let mut timed: Vec<(u128, u8, Event)> = Vec::with_capacity(ops.len() * 2);
        for (i, e) in ops.iter().enumerate() {
            timed.push((e.invoked.as_nanos(), 0, Event::Call(i)));
            let done = e.completed.map_or(u128::MAX, |t| t.as_nanos());
            timed.push((done, 1, Event::Return(i)));
        }
        timed.sort_by_key(|&(t, order, _)| (t, order));
        let n = timed.len();
        let mut list = EventList {
            events: Vec::with_capacity(n),
            prev: (0..=n).map(|i| i.saturating_sub(1)).collect(),
            next: (1..=n + 1).collect(),
            call_node: vec![0; ops.len()],
            return_node: vec![0; ops.len()],
        };
        for (i, (_, _, event)) in timed.into_iter().enumerate() {
            match event {
                Event::Call(op) => list.call_node[op] = i + 1,
                Event::Return(op) => list.return_node[op] = i + 1,
            }
            list.events.push(event);
        }
        list
    }

    fn first(&self) -> Option<usize> {
        self.next(0)
    }

    fn next(&self, node: usize) -> Option<usize> {
        let n = self.next[node];
        (n <= self.events.len()).then_some(n)
    }

    fn event(&self, node: usize) -> Event {
        self.events[node - 1]
    }

    fn call_of(&self, op: usize) -> usize {
        self.call_node[op]
    }

    fn lift(&mut self, op: usize) {
        self.unlink(self.call_node[op]);
        self.unlink(self.return_node[op]);
    }

    fn unlift(&mut self, op: usize) {
        self.relink(self.return_node[op]);
        self.relink(self.call_node[op]);
    }

    fn unlink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = n;
        if n <= self.events.len() {
            self.prev[n] = p;
        }
    }

    fn relink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = node;
        if n <= self.events.len() {
            self.prev[n] = node;
        }
    }
}

#[cfg(test)]
#[path = "checker_tests.rs"]
mod tests;
