//! A test state machine: an append-only list of (index, command).

use crate::state_machine::{BoxError, StateMachine};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ListSm {
    pub items: Vec<(u64, Vec<u8>)>,
    applied: u64,
}

impl ListSm {
    pub fn commands(&self) -> Vec<Vec<u8>> {
        self.items.iter().map(|(_, c)| c.clone()).collect()
    }
}

impl StateMachine for ListSm {
    /// The log index the command landed at.
    type Response = u64;

    fn apply(&mut self, index: u64, command: &[u8]) -> u64 {
        self.items.push((index, command.to_vec()));
        self.applied = index;
        index
    }

    fn apply_noop(&mut self, index: u64) {
        self.applied = index;
    }

    fn snapshot(&self) -> Result<Vec<u8>, BoxError> {
        let mut out = self.applied.to_be_bytes().to_vec();
        for (i, c) in &self.items {
            out.extend_from_slice(&i.to_be_bytes());
            out.extend_from_slice(&(c.len() as u32).to_be_bytes());
            out.extend_from_slice(c);
        }
        Ok(out)
    }

    fn restore(&mut self, index: u64, data: &[u8]) -> Result<(), BoxError> {
        let mut items = Vec::new();
        let mut rest = data.get(8..).ok_or("short snapshot")?;
        while !rest.is_empty() {
            let i = u64::from_be_bytes(rest.get(..8).ok_or("short")?.try_into()?);
            let n = u32::from_be_bytes(rest.get(8..12).ok_or("short")?.try_into()?) as usize;
            let c = rest.get(12..12 + n).ok_or("short")?.to_vec();
            items.push((i, c));
            rest = &rest[12 + n..];
        }
        self.items = items;
        self.applied = index;
        Ok(())
    }

    fn applied_index(&self) -> u64 {
        self.applied
    }
}
