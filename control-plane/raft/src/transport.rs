//! How raft messages leave and enter a member: the `Transport` trait, the `Inbox`, and an in-process network.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use protobuf::Message as _;
use raft::prelude::Message;
use tokio::sync::mpsc;

use crate::envelope::Members;
use crate::error::StepError;

/// Outbound path: delivers raft-encoded messages (opaque bytes) to peers.
pub trait Transport: Send + 'static {
    /// Sends `msg` to member `to`. Must not block; may drop the message when
    /// the peer is slow or unreachable (raft retransmits).
    fn send(&mut self, to: u64, msg: Vec<u8>);

    /// The member address book changed (added, removed or learnt from a snapshot).
    fn set_members(&mut self, members: &Members) {
        let _ = members;
    }

    /// Peers a send could not reach since the last call. Raft then probes
    /// them gently instead of streaming appends into the void.
    fn take_unreachable(&mut self) -> Vec<u64> {
        Vec::new()
    }
}

/// Which senders a member accepts; `None` while the member has no
/// configuration yet (it must hear from the leader that is adding it).
pub(crate) type KnownPeers = Arc<RwLock<Option<HashSet<u64>>>>;

/// Inbound path: where a transport server hands the bytes it received.
#[derive(Clone)]
pub struct Inbox {
    id: u64,
    tx: mpsc::Sender<Message>,
    known: KnownPeers,
}

impl Inbox {
    pub(crate) fn new(id: u64, tx: mpsc::Sender<Message>, known: KnownPeers) -> Self {
        Self { id, tx, known }
    }

    /// The member this inbox belongs to.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Decodes a message and queues it for the node. Garbage, messages for
    /// another member and messages from unknown peers are rejected here, on
    /// the caller's thread. A full queue drops the message: raft retransmits.
    pub fn deliver(&self, bytes: &[u8]) -> Result<(), StepError> {
        self.deliver_from(bytes, None)
    }

    /// Delivers a message that must come from `proven`, the member the
    /// sender's certificate names (when the transport uses TLS).
    pub fn deliver_from(&self, bytes: &[u8], proven: Option<u64>) -> Result<(), StepError> {
        let msg = Message::parse_from_bytes(bytes)?;
        if let Some(proven) = proven
            && msg.from != proven
        {
            return Err(StepError::Impersonation {
                claimed: msg.from,
                proven,
            });
        }
        if msg.to != self.id {
            return Err(StepError::WrongRecipient {
                to: msg.to,
                me: self.id,
            });
        }
        let known = match self.known.read() {
            Ok(g) => g.as_ref().is_none_or(|k| k.contains(&msg.from)),
            Err(poisoned) => poisoned
                .get_ref()
                .as_ref()
                .is_none_or(|k| k.contains(&msg.from)),
        };
        if !known {
            return Err(StepError::UnknownPeer { from: msg.from });
        }
        match self.tx.try_send(msg) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(StepError::Stopped),
        }
    }
}

#[derive(Default)]
struct LocalInner {
    inboxes: HashMap<u64, Inbox>,
    isolated: HashSet<u64>,
}

/// An in-process network of members, for tests and benchmarks: every member
/// registers its inbox; isolating a member drops everything to and from it.
#[derive(Clone, Default)]
pub struct LocalNetwork {
    inner: Arc<Mutex<LocalInner>>,
}

impl LocalNetwork {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut LocalInner) -> T) -> T {
        match self.inner.lock() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    pub fn register(&self, inbox: Inbox) {
        self.with(|n| n.inboxes.insert(inbox.id(), inbox));
    }

    pub fn unregister(&self, id: u64) {
        self.with(|n| n.inboxes.remove(&id));
    }

    /// Drops all traffic to and from `id` until `heal`.
    pub fn isolate(&self, id: u64) {
        self.with(|n| n.isolated.insert(id));
    }

    pub fn heal(&self, id: u64) {
        self.with(|n| n.isolated.remove(&id));
    }

    /// The transport member `id` sends through.
    pub fn transport(&self, id: u64) -> LocalTransport {
        LocalTransport {
            id,
            net: self.clone(),
        }
    }
}

/// One member's end of a [`LocalNetwork`].
pub struct LocalTransport {
    id: u64,
    net: LocalNetwork,
}

impl Transport for LocalTransport {
    fn send(&mut self, to: u64, msg: Vec<u8>) {
        let from = self.id;
        let inbox = self.net.with(|n| {
            if n.isolated.contains(&from) || n.isolated.contains(&to) {
                None
            } else {
                n.inboxes.get(&to).cloned()
            }
        });
        if let Some(inbox) = inbox
            && let Err(e) = inbox.deliver(&msg)
        {
            tracing::debug!(from, to, "local delivery refused: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_proven_by_certificate_cannot_speak_for_another_member() {
        let (tx, mut rx) = mpsc::channel(4);
        let known: KnownPeers = Arc::new(RwLock::new(Some([2, 3].into_iter().collect())));
        let inbox = Inbox::new(1, tx, known);
        let m = Message {
            to: 1,
            from: 3,
            ..Default::default()
        };
        let bytes = m.write_to_bytes().expect("encode");
        assert!(matches!(
            inbox.deliver_from(&bytes, Some(2)),
            Err(StepError::Impersonation {
                claimed: 3,
                proven: 2
            })
        ));
        assert!(rx.try_recv().is_err(), "nothing reached the node");
        inbox
            .deliver_from(&bytes, Some(3))
            .expect("its own messages pass");
        assert_eq!(rx.try_recv().map(|m| m.from).ok(), Some(3));
    }
}
