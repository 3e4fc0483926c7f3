//! The contract between the replication core and the replicated application state.

use std::error::Error as StdError;

/// Error type a state machine returns from `snapshot`/`restore`.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A deterministic state machine replicated by Raft.
///
/// Every replica applies the same committed commands in the same order, so each
/// method must depend only on the state and its arguments (no clocks, no
/// randomness: commands already carry uids and timestamps).
pub trait StateMachine: Send + 'static {
    /// What the proposer of a command gets back once the command is applied.
    type Response: Send + 'static;

    /// Applies one committed command (opaque bytes) at log `index`.
    ///
    /// Called exactly once per index in increasing order, except after a restart
    /// when indexes above `applied_index()` are replayed.
    fn apply(&mut self, index: u64, command: &[u8]) -> Self::Response;

    /// Records that `index` was committed without a command for the state machine
    /// (a leader's empty entry or a membership change), so `applied_index` can
    /// move past it. The default does nothing, which is correct for state
    /// machines that persist nothing: they simply replay a few more entries.
    fn apply_noop(&mut self, index: u64) {
        let _ = index;
    }

    /// Called after each run of applies (all the committed entries of one
    /// `Ready`): a state machine that persists what it applies writes them
    /// here as one batch rather than one write per entry. The default does
    /// nothing.
    fn end_of_batch(&mut self) {}

    /// Serialises the full state as of `applied_index()`; becomes a Raft snapshot.
    fn snapshot(&self) -> Result<Vec<u8>, BoxError>;

    /// Replaces the whole state with a snapshot taken at `index`.
    fn restore(&mut self, index: u64, data: &[u8]) -> Result<(), BoxError>;

    /// The last applied index, persisted by the state machine itself so that a
    /// restart does not re-apply what it already holds (0 for an in-memory one).
    fn applied_index(&self) -> u64;
}
