//! Deterministic in-process network: seeded drops and delays, cuts, isolation, crashes.
//!
//! Time is logical: `tick()` advances every live member by one Raft tick, then
//! delivers every due message, in a fixed order, until the cluster is quiet.
//! Election timeouts are fixed per member (member 1 fires first), so a run is
//! a pure function of the seed and the test's actions.

mod chaos;
mod list_sm;
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use protobuf::Message as _;
use tokio::sync::oneshot;

pub use list_sm::ListSm;

use crate::config::RaftConfig;
use crate::core::{Core, MemberChange, Role};
use crate::envelope::Members;
use crate::error::{MembershipError, ProposeError};
use crate::storage::SledStorage;

pub type Reply = oneshot::Receiver<Result<u64, ProposeError>>;

struct InFlight {
    due: u64,
    seq: u64,
    from: u64,
    to: u64,
    bytes: Vec<u8>,
}

pub struct Sim {
    dir: tempfile::TempDir,
    pub nodes: BTreeMap<u64, Option<Core<ListSm>>>,
    configure: fn(&mut RaftConfig),
    rng: u64,
    now: u64,
    next_seq: u64,
    queue: Vec<InFlight>,
    pub drop_per_mille: u64,
    pub max_delay: u64,
    cut: BTreeSet<(u64, u64)>,
    isolated: BTreeSet<u64>,
    pub rejected: u64,
}

pub fn addr(id: u64) -> String {
    format!("sim-{id}:7000")
}

impl Sim {
    pub fn new(n: u64, seed: u64) -> Self {
        Self::with_config(n, seed, |_| {})
    }

    pub fn with_config(n: u64, seed: u64, configure: fn(&mut RaftConfig)) -> Self {
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => panic!("tempdir: {e}"),
        };
        let mut sim = Self {
            dir,
            nodes: BTreeMap::new(),
            configure,
            rng: seed ^ 0x9E37_79B9_7F4A_7C15,
            now: 0,
            next_seq: 0,
            queue: Vec::new(),
            drop_per_mille: 0,
            max_delay: 0,
            cut: BTreeSet::new(),
            isolated: BTreeSet::new(),
            rejected: 0,
        };
        let members: Members = (1..=n).map(|id| (id, addr(id))).collect();
        for id in 1..=n {
            sim.start(id, Some(members.clone()));
        }
        sim
    }

    pub fn config(&self, id: u64) -> RaftConfig {
        let mut cfg = RaftConfig::new(id);
        cfg.election_ticks = 10;
        cfg.heartbeat_ticks = 2;
        // Distinct fixed timeouts: deterministic, and no split votes.
        let min = 10 + 4 * (id as usize - 1);
        cfg.election_window = Some((min, min + 1));
        cfg.background_snapshots = false;
        (self.configure)(&mut cfg);
        cfg
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("member-{id}"))
    }

    /// Starts (or restarts) member `id` from its data dir with a fresh state
    /// machine, which recovers from the stored snapshot and log.
    pub fn start(&mut self, id: u64, bootstrap: Option<Members>) {
        let storage = match SledStorage::open(&self.path(id), id) {
            Ok(s) => s,
            Err(e) => panic!("open member {id}: {e}"),
        };
        let core = match Core::new(self.config(id), storage, ListSm::default(), bootstrap) {
            Ok(c) => c,
            Err(e) => panic!("start member {id}: {e}"),
        };
        self.nodes.insert(id, Some(core));
    }

    /// Stops member `id` abruptly: its in-flight messages are lost.
    pub fn crash(&mut self, id: u64) {
        self.nodes.insert(id, None);
        self.queue.retain(|m| m.to != id && m.from != id);
    }

    pub fn node(&self, id: u64) -> &Core<ListSm> {
        match self.nodes.get(&id) {
            Some(Some(c)) => c,
            _ => panic!("member {id} is not running"),
        }
    }

    pub fn node_mut(&mut self, id: u64) -> &mut Core<ListSm> {
        match self.nodes.get_mut(&id) {
            Some(Some(c)) => c,
            _ => panic!("member {id} is not running"),
        }
    }

    pub fn rand(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn isolate(&mut self, id: u64) {
        self.isolated.insert(id);
    }

    pub fn heal_all(&mut self) {
        self.isolated.clear();
        self.cut.clear();
    }

    /// Drops messages from `a` to `b` and from `b` to `a`.
    pub fn cut(&mut self, a: u64, b: u64) {
        self.cut.insert((a, b));
        self.cut.insert((b, a));
    }

    fn blocked(&self, from: u64, to: u64) -> bool {
        self.isolated.contains(&from)
            || self.isolated.contains(&to)
            || self.cut.contains(&(from, to))
    }

    /// One logical tick for every live member, then messages until quiet.
    pub fn tick(&mut self) {
        self.now += 1;
        for core in self.nodes.values_mut().flatten() {
            core.tick();
        }
        self.settle();
    }

    /// Drains readies and delivers due messages until nothing moves.
    pub fn settle(&mut self) {
        for _ in 0..1000 {
            self.drain_readies();
            let now = self.now;
            let mut due: Vec<InFlight> = Vec::new();
            let mut later = Vec::new();
            for m in self.queue.drain(..) {
                if m.due <= now {
                    due.push(m)
                } else {
                    later.push(m)
                }
            }
            self.queue = later;
            if due.is_empty() {
                return;
            }
            due.sort_by_key(|m| (m.due, m.seq));
            for m in due {
                if self.blocked(m.from, m.to) {
                    continue;
                }
                if let Some(Some(core)) = self.nodes.get_mut(&m.to)
                    && core.step_bytes(&m.bytes).is_err()
                {
                    self.rejected += 1;
                }
            }
        }
    }

    fn drain_readies(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            let mut out = Vec::new();
            if let Some(Some(core)) = self.nodes.get_mut(&id) {
                while core.has_ready() {
                    if let Err(e) = core.handle_ready(&mut |m| out.push(m)) {
                        panic!("member {id} failed: {e}");
                    }
                }
            }
            for m in out {
                self.enqueue(id, m);
            }
        }
    }

    fn enqueue(&mut self, from: u64, m: raft::prelude::Message) {
        if self.blocked(from, m.to) {
            return;
        }
        if self.drop_per_mille > 0 && self.rand() % 1000 < self.drop_per_mille {
            return;
        }
        let delay = if self.max_delay > 0 {
            self.rand() % (self.max_delay + 1)
        } else {
            0
        };
        let bytes = match m.write_to_bytes() {
            Ok(b) => b,
            Err(e) => panic!("encode: {e}"),
        };
        self.next_seq += 1;
        self.queue.push(InFlight {
            due: self.now + delay,
            seq: self.next_seq,
            from,
            to: m.to,
            bytes,
        });
    }

    /// Ticks until `cond` holds; false if it did not within `max_ticks`.
    pub fn run_until(&mut self, max_ticks: u64, mut cond: impl FnMut(&Self) -> bool) -> bool {
        for _ in 0..max_ticks {
            if cond(self) {
                return true;
            }
            self.tick();
        }
        cond(self)
    }

    pub fn run(&mut self, ticks: u64) {
        for _ in 0..ticks {
            self.tick();
        }
    }

    /// Live leaders, highest term first.
    pub fn leaders(&self) -> Vec<u64> {
        let mut ls: Vec<(u64, u64)> = self
            .nodes
            .iter()
            .filter_map(|(id, c)| c.as_ref().map(|c| (*id, c.leadership())))
            .filter(|(_, l)| l.role == Role::Leader)
            .map(|(id, l)| (l.term, id))
            .collect();
        ls.sort_unstable_by(|a, b| b.cmp(a));
        ls.into_iter().map(|(_, id)| id).collect()
    }

    /// Waits for a reachable leader that the other reachable members agree on.
    pub fn wait_leader(&mut self) -> u64 {
        let reachable =
            |s: &Self| -> Option<u64> { s.leaders().into_iter().find(|l| !s.isolated.contains(l)) };
        let ok = self.run_until(300, |s| {
            let Some(l) = reachable(s) else { return false };
            let term = s.node(l).leadership().term;
            s.nodes.iter().all(|(id, c)| match c {
                Some(c) if !s.isolated.contains(id) && c.leadership().role != Role::Removed => {
                    c.leadership().leader == Some(l) && c.leadership().term == term
                }
                _ => true,
            })
        });
        assert!(ok, "no leader elected");
        reachable(self).unwrap_or_default()
    }

    pub fn propose(&mut self, id: u64, cmd: &[u8]) -> Reply {
        let (tx, rx) = oneshot::channel();
        self.node_mut(id).propose(cmd.to_vec(), tx);
        self.settle();
        rx
    }

    /// Ticks until `rx` resolves (None if it did not within `max_ticks`).
    pub fn wait<T>(&mut self, rx: &mut oneshot::Receiver<T>, max_ticks: u64) -> Option<T> {
        for _ in 0..=max_ticks {
            match rx.try_recv() {
                Ok(v) => return Some(v),
                Err(oneshot::error::TryRecvError::Closed) => return None,
                Err(oneshot::error::TryRecvError::Empty) => self.tick(),
            }
        }
        None
    }

    /// Proposes on the current leader and waits for the applied index.
    pub fn write(&mut self, cmd: &[u8]) -> u64 {
        let leader = self.wait_leader();
        let mut rx = self.propose(leader, cmd);
        match self.wait(&mut rx, 100) {
            Some(Ok(index)) => index,
            other => panic!(
                "write {:?} on {leader} failed: {other:?}",
                String::from_utf8_lossy(cmd)
            ),
        }
    }

    pub fn change(&mut self, leader: u64, change: MemberChange) -> Result<(), MembershipError> {
        let (tx, mut rx) = oneshot::channel();
        self.node_mut(leader).change_membership(change, tx);
        self.settle();
        match self.wait(&mut rx, 200) {
            Some(r) => r,
            None => panic!("membership change never resolved"),
        }
    }

    /// The applied command lists of every live member.
    pub fn lists(&self) -> BTreeMap<u64, Vec<Vec<u8>>> {
        self.nodes
            .iter()
            .filter_map(|(id, c)| c.as_ref().map(|c| (*id, c.state_machine().commands())))
            .collect()
    }

    /// Waits until every live member has applied the same commands as `id`.
    pub fn wait_converged(&mut self, members: &[u64]) -> bool {
        self.run_until(500, |s| {
            let lists: Vec<_> = members
                .iter()
                .map(|id| s.node(*id).state_machine().items.clone())
                .collect();
            lists.windows(2).all(|w| w[0] == w[1])
        })
    }
}
