//! Handling one `Ready` in the order raft-rs documents, with one fsync per `Ready`.

use raft::StateRole;
use raft::prelude::{Message, Snapshot};

use super::{Core, Waiter};
use crate::error::{NodeError, ProposeError, ReadError};
use crate::state_machine::StateMachine;

impl<S: StateMachine> Core<S> {
    /// Persists, applies and emits everything raft has ready. `out` receives
    /// each outgoing message once it is safe to send: leader appends at once
    /// (followers fsync in parallel with us), everything else after our fsync.
    /// Proposal replies are sent only after apply, and apply only sees entries
    /// that are durable here and on a quorum.
    pub fn handle_ready(&mut self, out: &mut dyn FnMut(Message)) -> Result<(), NodeError> {
        if !self.raw.has_ready() {
            return Ok(());
        }
        let mut rd = self.raw.ready();
        for m in rd.take_messages() {
            out(m);
        }
        if !rd.snapshot().is_empty() {
            let snap = rd.snapshot().clone();
            self.install_snapshot(&snap)?;
        }
        self.apply_entries(rd.take_committed_entries())?;
        self.raw.mut_store().append(rd.entries())?;
        if let Some(hs) = rd.hs() {
            self.raw.mut_store().set_hard_state(hs.clone())?;
        }
        // Group commit: every entry and vote of this Ready in one batch, one
        // fsync; a Ready that only moves the commit index needs no fsync.
        let sync = rd.must_sync();
        self.raw.mut_store().write_staged(sync)?;
        for m in rd.take_persisted_messages() {
            out(m);
        }
        let read_states = rd.take_read_states();
        let mut light = self.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit)?;
        }
        for m in light.take_messages() {
            out(m);
        }
        self.apply_entries(light.take_committed_entries())?;
        self.raw.advance_apply();
        self.on_read_states(read_states);
        self.after_apply()
    }

    fn install_snapshot(&mut self, snap: &Snapshot) -> Result<(), NodeError> {
        let index = snap.get_metadata().index;
        let env = self.raw.mut_store().apply_snapshot(snap)?;
        // Durable before the state machine moves, so a crash cannot leave the
        // state machine ahead of the log.
        self.raw.mut_store().persist()?;
        self.sm
            .restore(index, &env.state)
            .map_err(|e| NodeError::Apply {
                index,
                detail: format!("snapshot restore: {e}"),
            })?;
        self.applied = index;
        // Whatever we proposed up to here is folded into the snapshot; we
        // cannot tell whether it made it.
        let later = self.pending.split_off(&(index + 1, 0));
        for (_, w) in std::mem::replace(&mut self.pending, later) {
            w.fail(ProposeError::Indeterminate);
        }
        self.members_version += 1;
        Ok(())
    }

    fn on_read_states(&mut self, states: Vec<raft::ReadState>) {
        for rs in states {
            let Some(seq) = self.own_seq(&rs.request_ctx) else {
                continue;
            };
            if let Some(r) = self.reads_inflight.remove(&seq) {
                self.reads_ready.entry(rs.index).or_default().push(r.reply);
            }
        }
    }

    fn after_apply(&mut self) -> Result<(), NodeError> {
        let later = self.reads_ready.split_off(&(self.applied + 1));
        for (_, waiters) in std::mem::replace(&mut self.reads_ready, later) {
            for tx in waiters {
                drop(tx.send(Ok(())));
            }
        }
        let term = self.raw.raft.term;
        if term != self.last_term
            || self.raw.raft.state == StateRole::Follower && self.leader_hint().is_none()
        {
            // A read barrier in flight across a leadership change may never
            // get its index; let the caller retry.
            self.last_term = term;
            for (_, r) in self.reads_inflight.drain() {
                drop(r.reply.send(Err(ReadError::LeadershipChanged)));
            }
        }
        self.reissue_reads(false);
        self.maybe_compact()
    }

    fn maybe_compact(&mut self) -> Result<(), NodeError> {
        if let Some(job) = self.snapshot_job.take() {
            if !job.is_finished() {
                self.snapshot_job = Some(job);
                return Ok(());
            }
            self.raw
                .mut_store()
                .finish_snapshot(job, self.cfg.compaction_margin)?;
            self.raw.mut_store().persist()?;
            tracing::debug!(member = self.id, "snapshot written, log compacted");
        }
        let store = self.raw.store();
        let snap_index = store.snapshot_index();
        let requested = store.take_snapshot_request();
        let due = self.applied >= snap_index + self.cfg.snapshot_threshold;
        if !(due || requested) || self.applied <= snap_index {
            return Ok(());
        }
        // Serialising must see exactly the applied state, so it happens here;
        // encoding and writing the file happen on the writer thread.
        let state = self.sm.snapshot().map_err(|e| NodeError::Apply {
            index: self.applied,
            detail: format!("state machine snapshot: {e}"),
        })?;
        let cs = self.raw.store().conf_state().clone();
        let job = self.raw.store().begin_snapshot(self.applied, cs, state)?;
        if self.cfg.background_snapshots {
            self.snapshot_job = Some(job);
        } else {
            self.raw
                .mut_store()
                .finish_snapshot(job, self.cfg.compaction_margin)?;
            self.raw.mut_store().persist()?;
        }
        Ok(())
    }

    /// The proposal seq in `ctx` if this incarnation of this member made it.
    pub(super) fn own_seq(&self, ctx: &[u8]) -> Option<u64> {
        let (inc, seq) = ctx.split_at_checked(8)?;
        if inc != self.incarnation.to_be_bytes() {
            return None;
        }
        Some(u64::from_be_bytes(seq.try_into().ok()?))
    }

    pub(super) fn settle(&mut self, index: u64, seq: Option<u64>, response: Option<S::Response>) {
        if let Some(w) = seq.and_then(|s| self.pending.remove(&(index, s))) {
            match (w, response) {
                (Waiter::Command(tx), Some(r)) => drop(tx.send(Ok(r))),
                (Waiter::Change(tx), _) => drop(tx.send(Ok(()))),
                (w @ Waiter::Command(_), None) => w.fail(ProposeError::Dropped),
            }
        }
        // Anything else proposed at or below this index lost its slot to
        // another leader's entry: definitely not committed.
        while let Some(e) = self.pending.first_entry() {
            if e.key().0 > index {
                break;
            }
            e.remove().fail(ProposeError::Dropped);
        }
    }
}
