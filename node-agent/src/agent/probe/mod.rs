//! Container probes (startup, liveness, readiness; exec, httpGet,
//! tcpSocket): the pure [`prober`] decides what is due and what results
//! mean; [`action`] runs one probe; [`Probes`] keeps one prober per
//! running container of a pod for its worker.

pub mod action;
pub mod prober;

use std::path::PathBuf;

use drover_proto::types::pod::{Container, Probe};

use self::action::ProbeTarget;
use self::prober::{Decision, Outcome, ProbeKind, Prober};

/// A probe to run now.
#[derive(Clone, Debug)]
pub struct ProbeJob {
    /// Which container.
    pub index: usize,
    /// Which run of it (results of an earlier run are dropped).
    pub attempt: i32,
    /// Which probe.
    pub kind: ProbeKind,
    /// Its spec.
    pub probe: Probe,
    /// The container.
    pub container: Container,
    /// Where to run it.
    pub target: ProbeTarget,
}

impl ProbeJob {
    /// Runs it (blocking).
    pub fn run(&self) -> Outcome {
        action::run_probe(&self.probe, &self.container, &self.target)
    }
}

#[derive(Clone, Debug)]
struct Running {
    attempt: i32,
    container: Container,
    prober: Prober,
    target: ProbeTarget,
}

/// The probers of one pod's running containers.
#[derive(Clone, Debug, Default)]
pub struct Probes {
    running: Vec<Option<Running>>,
}

/// Where a container's network namespace is: its init's (pure).
pub fn netns_of(container_pid: Option<i32>) -> Option<PathBuf> {
    container_pid
        .filter(|p| *p > 0)
        .map(|p| PathBuf::from(format!("/proc/{p}/ns/net")))
}

impl Probes {
    /// For `n` containers, none running.
    pub fn new(n: usize) -> Self {
        Probes {
            running: vec![None; n],
        }
    }

    /// Run `attempt` of container `index` started at `started_at_ms`.
    pub fn started(
        &mut self,
        index: usize,
        attempt: i32,
        container: &Container,
        started_at_ms: u64,
        target: ProbeTarget,
    ) {
        if let Some(slot) = self.running.get_mut(index) {
            *slot = Some(Running {
                attempt,
                container: container.clone(),
                prober: Prober::new(container, started_at_ms),
                target,
            });
        }
    }

    /// Container `index` stopped running.
    pub fn exited(&mut self, index: usize) {
        if let Some(slot) = self.running.get_mut(index) {
            *slot = None;
        }
    }

    /// Whether container `index` counts as ready (running, started, and
    /// passing its readiness probe when it has one).
    pub fn ready(&self, index: usize) -> bool {
        self.running
            .get(index)
            .and_then(Option::as_ref)
            .is_some_and(|r| r.prober.ready())
    }

    /// The probes due at `now_ms`.
    pub fn due(&mut self, now_ms: u64) -> Vec<ProbeJob> {
        let mut jobs = vec![];
        for (index, r) in self.running.iter_mut().enumerate() {
            let Some(r) = r else { continue };
            for (kind, probe) in r.prober.due(now_ms) {
                jobs.push(ProbeJob {
                    index,
                    attempt: r.attempt,
                    kind,
                    probe,
                    container: r.container.clone(),
                    target: r.target.clone(),
                });
            }
        }
        jobs
    }

    /// When the next probe is due.
    pub fn next_wake(&self) -> Option<u64> {
        self.running
            .iter()
            .flatten()
            .filter_map(|r| r.prober.next_wake())
            .min()
    }

    /// A result of run `attempt` of container `index`.
    pub fn record(
        &mut self,
        index: usize,
        attempt: i32,
        kind: ProbeKind,
        outcome: Outcome,
        now_ms: u64,
    ) -> Vec<Decision> {
        match self.running.get_mut(index).and_then(Option::as_mut) {
            Some(r) if r.attempt == attempt => r.prober.record(kind, outcome, now_ms),
            _ => vec![],
        }
    }
}
