//! Applying committed entries: commands to the state machine, conf changes to raft and the store.

use protobuf::Message as _;
use raft::StateRole;
use raft::prelude::{ConfChange, ConfChangeType, ConfChangeV2, Entry, EntryType};

use super::Core;
use crate::error::{NodeError, ProposeError};
use crate::state_machine::StateMachine;

impl<S: StateMachine> Core<S> {
    pub(super) fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<(), NodeError> {
        let applied_before = self.applied;
        let result = self.apply_each(entries);
        if self.applied > applied_before {
            self.sm.end_of_batch();
        }
        result
    }

    fn apply_each(&mut self, entries: Vec<Entry>) -> Result<(), NodeError> {
        for e in entries {
            let index = e.index;
            if index <= self.applied {
                // Replayed after a restart: the state machine already has it.
                continue;
            }
            let seq = self.own_seq(&e.context);
            match e.get_entry_type() {
                EntryType::EntryNormal if e.data.is_empty() => {
                    self.sm.apply_noop(index);
                    self.settle(index, seq, None);
                }
                EntryType::EntryNormal => {
                    let response = self.sm.apply(index, &e.data);
                    self.settle(index, seq, Some(response));
                }
                EntryType::EntryConfChange => {
                    let cc =
                        ConfChange::parse_from_bytes(&e.data).map_err(|err| NodeError::Apply {
                            index,
                            detail: format!("conf change undecodable: {err}"),
                        })?;
                    let ok = self.apply_conf_change(index, &cc)?;
                    self.sm.apply_noop(index);
                    self.settle_change(index, seq, ok);
                }
                EntryType::EntryConfChangeV2 => {
                    let cc = ConfChangeV2::parse_from_bytes(&e.data).map_err(|err| {
                        NodeError::Apply {
                            index,
                            detail: format!("conf change undecodable: {err}"),
                        }
                    })?;
                    match self.raw.apply_conf_change(&cc) {
                        Ok(cs) => self.raw.mut_store().set_conf_state(cs)?,
                        Err(err) => {
                            tracing::warn!(member = self.id, index, "conf change ignored: {err}")
                        }
                    }
                    self.sm.apply_noop(index);
                    self.settle(index, seq, None);
                }
            }
            self.applied = index;
        }
        Ok(())
    }

    fn settle_change(&mut self, index: u64, seq: Option<u64>, ok: bool) {
        if !ok && let Some(w) = seq.and_then(|s| self.pending.remove(&(index, s))) {
            w.fail(ProposeError::Dropped);
        }
        self.settle(index, seq, None);
    }

    /// Applies one committed membership change; false if raft refused it
    /// (deterministically, on every member alike).
    fn apply_conf_change(&mut self, index: u64, cc: &ConfChange) -> Result<bool, NodeError> {
        let cs = match self.raw.apply_conf_change(cc) {
            Ok(cs) => cs,
            Err(err) => {
                tracing::warn!(member = self.id, index, "conf change ignored: {err}");
                return Ok(false);
            }
        };
        self.raw.mut_store().set_conf_state(cs)?;
        let mut members = self.raw.store().members().clone();
        match cc.get_change_type() {
            ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                let addr = String::from_utf8_lossy(&cc.context).into_owned();
                members.insert(cc.node_id, addr);
            }
            ConfChangeType::RemoveNode => {
                members.remove(&cc.node_id);
                if cc.node_id == self.id {
                    self.removed = true;
                }
            }
        }
        self.raw.mut_store().set_members(members);
        self.members_version += 1;
        if self.removed && self.raw.raft.state == StateRole::Leader {
            self.hand_off_leadership();
        }
        Ok(true)
    }

    /// A removed leader hands over to its most up-to-date follower, so the
    /// cluster does not wait out an election timeout.
    fn hand_off_leadership(&mut self) {
        let me = self.id;
        let best = self
            .raw
            .raft
            .prs()
            .iter()
            .filter(|(id, _)| **id != me)
            .max_by_key(|(_, pr)| pr.matched)
            .map(|(id, _)| *id);
        if let Some(to) = best {
            tracing::info!(
                member = me,
                to,
                "removed while leader: transferring leadership"
            );
            self.raw.transfer_leader(to);
        }
    }
}
