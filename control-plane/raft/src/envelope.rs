//! The bytes inside a Raft snapshot: member addresses plus the state machine's own snapshot.
//!
//! Membership addresses travel with the snapshot so a member that joins through
//! a snapshot learns where its peers are without replaying the log.

use std::collections::BTreeMap;

const MAGIC: &[u8; 4] = b"DRSN";
const VERSION: u8 = 1;

/// Peer id → peer (Raft transport) address.
pub type Members = BTreeMap<u64, String>;

/// A snapshot's data decoded.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    pub members: Members,
    pub state: Vec<u8>,
}

/// Snapshot bytes that are not a Drover snapshot envelope.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed snapshot envelope: {0}")]
pub struct EnvelopeError(&'static str);

impl Envelope {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.state.len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&(self.members.len() as u32).to_be_bytes());
        for (id, addr) in &self.members {
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&(addr.len() as u32).to_be_bytes());
            out.extend_from_slice(addr.as_bytes());
        }
        out.extend_from_slice(&self.state);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let mut r = Reader(bytes);
        if r.take(4)? != MAGIC {
            return Err(EnvelopeError("bad magic"));
        }
        if r.take(1)? != [VERSION] {
            return Err(EnvelopeError("unsupported version"));
        }
        let count = r.u32()?;
        let mut members = Members::new();
        for _ in 0..count {
            let id = r.u64()?;
            let len = r.u32()? as usize;
            let addr = std::str::from_utf8(r.take(len)?)
                .map_err(|_| EnvelopeError("member address is not UTF-8"))?;
            members.insert(id, addr.to_owned());
        }
        Ok(Self {
            members,
            state: r.0.to_vec(),
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EnvelopeError> {
        if self.0.len() < n {
            return Err(EnvelopeError("truncated"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, EnvelopeError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(b))
    }
    fn u64(&mut self) -> Result<u64, EnvelopeError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_truncation() {
        let env = Envelope {
            members: [(1, "a:1".to_owned()), (7, "b:2".to_owned())].into(),
            state: b"state".to_vec(),
        };
        let bytes = env.encode();
        assert_eq!(Envelope::decode(&bytes), Ok(env));
        assert!(Envelope::decode(&bytes[..10]).is_err());
        assert!(Envelope::decode(b"nope").is_err());
    }
}
