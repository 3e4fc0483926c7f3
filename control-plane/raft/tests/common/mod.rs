//! Shared by the async tests and the benchmark: a list state machine whose
//! contents stay observable from outside the node thread, and cluster helpers.
#![allow(dead_code)] // each user takes a different subset

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_raft::{
    BoxError, LocalNetwork, Members, ProposeError, RaftConfig, RaftHandle, RaftNode, Startup,
    StateMachine,
};

/// Applied commands, shared with the test.
pub type Applied = Arc<Mutex<Vec<Vec<u8>>>>;

pub struct SharedList {
    pub items: Applied,
    applied: u64,
}

impl SharedList {
    pub fn new() -> (Self, Applied) {
        let items = Applied::default();
        (
            Self {
                items: items.clone(),
                applied: 0,
            },
            items,
        )
    }
}

impl StateMachine for SharedList {
    type Response = u64;

    fn apply(&mut self, index: u64, command: &[u8]) -> u64 {
        self.items.lock().unwrap().push(command.to_vec());
        self.applied = index;
        index
    }

    fn apply_noop(&mut self, index: u64) {
        self.applied = index;
    }

    fn snapshot(&self) -> Result<Vec<u8>, BoxError> {
        let items = self.items.lock().unwrap();
        let mut out = Vec::new();
        for c in items.iter() {
            out.extend_from_slice(&(c.len() as u32).to_be_bytes());
            out.extend_from_slice(c);
        }
        Ok(out)
    }

    fn restore(&mut self, index: u64, mut data: &[u8]) -> Result<(), BoxError> {
        let mut items = Vec::new();
        while !data.is_empty() {
            let n = u32::from_be_bytes(data.get(..4).ok_or("short")?.try_into()?) as usize;
            items.push(data.get(4..4 + n).ok_or("short")?.to_vec());
            data = &data[4 + n..];
        }
        *self.items.lock().unwrap() = items;
        self.applied = index;
        Ok(())
    }

    fn applied_index(&self) -> u64 {
        self.applied
    }
}

pub struct Member {
    pub handle: RaftHandle<u64>,
    pub applied: Applied,
    pub thread: Option<drover_raft::node::NodeThread>,
}

pub fn config(id: u64, tick: Duration) -> RaftConfig {
    let mut cfg = RaftConfig::new(id);
    cfg.tick_interval = tick;
    cfg
}

/// Starts member `id` on `net`, storing under `root/member-{id}`.
pub fn start_member(net: &LocalNetwork, root: &Path, cfg: RaftConfig, startup: Startup) -> Member {
    let id = cfg.id;
    let (sm, applied) = SharedList::new();
    let (handle, thread) = RaftNode::start(
        cfg,
        &root.join(format!("member-{id}")),
        sm,
        net.transport(id),
        startup,
    )
    .unwrap();
    net.register(handle.inbox());
    Member {
        handle,
        applied,
        thread: Some(thread),
    }
}

pub fn bootstrap_members(n: u64) -> Members {
    (1..=n).map(|id| (id, format!("local-{id}"))).collect()
}

/// Polls until some live member reports itself leader.
pub async fn wait_leader(members: &[&Member], deadline: Duration) -> u64 {
    let start = Instant::now();
    loop {
        for m in members {
            if m.handle.leadership().borrow().is_leader() {
                return m.handle.id();
            }
        }
        assert!(start.elapsed() < deadline, "no leader within {deadline:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Proposes through whichever member leads, following leader hints.
pub async fn propose_anywhere(
    members: &[&Member],
    cmd: Vec<u8>,
    deadline: Duration,
) -> Result<u64, ProposeError> {
    let start = Instant::now();
    let mut target = 0;
    loop {
        let m = members[target % members.len()];
        match m.handle.propose(cmd.clone()).await {
            Ok(i) => return Ok(i),
            Err(ProposeError::NotLeader { leader }) => {
                target = leader
                    .and_then(|l| members.iter().position(|m| m.handle.id() == l))
                    .unwrap_or(target + 1);
                if leader.is_none() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            Err(ProposeError::Stopped | ProposeError::Removed) => target += 1,
            Err(e) => return Err(e),
        }
        if start.elapsed() > deadline {
            return Err(ProposeError::Dropped);
        }
    }
}
