//! Validated settings for one Raft member (no I/O here).

use std::time::Duration;

/// Settings of one member; `validate` before use.
#[derive(Debug, Clone)]
pub struct RaftConfig {
    /// This member's id (non-zero, unique in the cluster).
    pub id: u64,
    /// Wall-clock length of one tick when the node runs on a timer.
    pub tick_interval: Duration,
    /// Ticks without a heartbeat before a follower campaigns (randomised in
    /// `[election_ticks, 2 * election_ticks)` by raft-rs unless overridden).
    pub election_ticks: usize,
    /// Ticks between leader heartbeats.
    pub heartbeat_ticks: usize,
    /// Exact randomisation window for the election timeout, for deterministic
    /// tests: `Some((min, max))` draws from `[min, max)`.
    pub election_window: Option<(usize, usize)>,
    /// Create a snapshot and compact the log once this many entries have been
    /// applied since the last snapshot.
    pub snapshot_threshold: u64,
    /// Entries kept behind a snapshot so slightly lagging followers catch up
    /// from the log rather than from a full snapshot.
    pub compaction_margin: u64,
    /// Write snapshot files on a background thread (replication continues
    /// meanwhile); off in deterministic tests.
    pub background_snapshots: bool,
    /// Largest append message, in bytes.
    pub max_append_bytes: u64,
    /// Append messages in flight per follower.
    pub max_inflight: usize,
}

impl RaftConfig {
    /// Production defaults: 40 ms ticks, election after 10–20 ticks
    /// (0.4–0.8 s, etcd: 1–2 s), heartbeat every 2 ticks (80 ms), snapshot every 50,000 entries keeping 5,000
    /// behind it (etcd 3.4: 100,000 and 5,000).
    pub fn new(id: u64) -> Self {
        Self {
            id,
            tick_interval: Duration::from_millis(40),
            election_ticks: 10,
            heartbeat_ticks: 2,
            election_window: None,
            snapshot_threshold: 50_000,
            compaction_margin: 5_000,
            background_snapshots: true,
            max_append_bytes: 1 << 20,
            max_inflight: 256,
        }
    }

    /// Checks the settings against each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(ConfigError::ZeroId);
        }
        if self.heartbeat_ticks == 0 || self.election_ticks <= self.heartbeat_ticks {
            return Err(ConfigError::Ticks {
                election: self.election_ticks,
                heartbeat: self.heartbeat_ticks,
            });
        }
        if let Some((min, max)) = self.election_window
            && (min < self.election_ticks || max <= min)
        {
            return Err(ConfigError::ElectionWindow { min, max });
        }
        if self.snapshot_threshold == 0 {
            return Err(ConfigError::SnapshotThreshold);
        }
        if self.tick_interval.is_zero() {
            return Err(ConfigError::TickInterval);
        }
        Ok(())
    }

    pub(crate) fn to_raft(&self, applied: u64) -> raft::Config {
        let (min, max) = self.election_window.unwrap_or((0, 0));
        raft::Config {
            id: self.id,
            election_tick: self.election_ticks,
            heartbeat_tick: self.heartbeat_ticks,
            min_election_tick: min,
            max_election_tick: max,
            applied,
            max_size_per_msg: self.max_append_bytes,
            max_inflight_msgs: self.max_inflight,
            // A leader that cannot reach a quorum steps down, so a partitioned
            // stale leader stops accepting proposals.
            check_quorum: true,
            // A member rejoining after a partition does not disrupt the cluster.
            pre_vote: true,
            ..Default::default()
        }
    }
}

/// Invalid Raft settings.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// member id must not be 0
    #[error("member id must not be 0")]
    ZeroId,
    /// election ticks must exceed heartbeat ticks
    #[error(
        "election ticks ({election}) must exceed heartbeat ticks ({heartbeat}), which must be > 0"
    )]
    Ticks { election: usize, heartbeat: usize },
    /// bad election window
    #[error(
        "election window [{min}, {max}) must start at or above election ticks and be non-empty"
    )]
    ElectionWindow { min: usize, max: usize },
    /// zero snapshot threshold
    #[error("snapshot threshold must be > 0")]
    SnapshotThreshold,
    /// zero tick interval
    #[error("tick interval must be > 0")]
    TickInterval,
}
