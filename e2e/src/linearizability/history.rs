//! One key's history of operations on a compare-and-set register, as the
//! clients saw them: what they asked, what came back, and when.
//!
//! Values are unique per write (client number and sequence), so a
//! resourceVersion a client read stands for exactly one value: an update
//! conditioned on that resourceVersion is a compare-and-set on the value.

use std::fmt;
use std::time::Duration;

/// The value every key holds before the run (created before clients start).
pub const INITIAL: u64 = 0;

/// What a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Read,
    Write(u64),
    /// Set `new` if the register still holds `expect`.
    Cas {
        expect: u64,
        new: u64,
    },
}

/// What came back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A read's value.
    Read(u64),
    /// A write or compare-and-set took effect.
    Ok,
    /// A compare-and-set found another value (definitely no effect).
    CasFailed,
    /// No definite answer (timeout, connection lost, server error): it may
    /// have taken effect at any time after it was invoked, or never.
    Unknown,
}

/// One operation of one client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub client: usize,
    /// The member (id) the request went to.
    pub member: u64,
    pub op: Op,
    pub outcome: Outcome,
    /// Since the run's start, taken before the request was sent.
    pub invoked: Duration,
    /// Since the run's start, taken after the answer arrived; `None` when
    /// the outcome is unknown.
    pub completed: Option<Duration>,
}

impl Entry {
    /// The register after this operation, if it may take effect on `state`
    /// with the outcome the client saw; `None` if it cannot.
    pub fn apply(&self, state: u64) -> Option<u64> {
        match (self.op, self.outcome) {
            (Op::Read, Outcome::Read(v)) => (v == state).then_some(state),
            (Op::Write(v), Outcome::Ok | Outcome::Unknown) => Some(v),
            (Op::Cas { expect, new }, Outcome::Ok | Outcome::Unknown) => {
                (expect == state).then_some(new)
            }
            (Op::Cas { expect, .. }, Outcome::CasFailed) => (expect != state).then_some(state),
            _ => None,
        }
    }

    /// Whether the entry constrains the history at all: a read without an
    /// answer says nothing.
    pub fn informative(&self) -> bool {
        !(self.op == Op::Read && self.outcome == Outcome::Unknown)
    }
}

/// A value as `cCLIENT#SEQ` (how clients make them unique), or `initial`.
fn show(v: u64) -> String {
    match v {
        INITIAL => "initial".into(),
        v => format!("c{}#{}", (v >> 32).saturating_sub(1), v & 0xffff_ffff),
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            Op::Read => "read".to_string(),
            Op::Write(v) => format!("write {}", show(v)),
            Op::Cas { expect, new } => format!("cas {} → {}", show(expect), show(new)),
        };
        let outcome = match self.outcome {
            Outcome::Read(v) => show(v),
            Outcome::Ok => "ok".into(),
            Outcome::CasFailed => "refused".into(),
            Outcome::Unknown => "unknown".into(),
        };
        let done = match self.completed {
            Some(t) => format!("{:.3}s", t.as_secs_f64()),
            None => "never".into(),
        };
        write!(
            f,
            "client {} via member {}: {op} → {outcome} (invoked {:.3}s, completed {done})",
            self.client,
            self.member,
            self.invoked.as_secs_f64()
        )
    }
}
