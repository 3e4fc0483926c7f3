//! One container's probes as pure state: which probe is due when, and
//! what its results mean (Kubernetes semantics: `initialDelaySeconds`
//! from the container's start, one probe every `periodSeconds`,
//! `successThreshold` / `failureThreshold` consecutive results; the
//! startup probe holds the others back until it passes). Time is passed in.

use drover_proto::types::pod::{Container, Probe};

/// Which probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// Holds the others back until the application has started.
    Startup,
    /// Failure kills the container.
    Liveness,
    /// Drives `ready`.
    Readiness,
}

impl ProbeKind {
    /// The word Kubernetes uses in messages ("Liveness probe failed: …").
    pub fn word(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }
}

/// One probe's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It passed.
    Success,
    /// It failed, saying why.
    Failure(String),
}

/// What a result means for the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A probe failed (an `Unhealthy` Event).
    Unhealthy { kind: ProbeKind, message: String },
    /// Liveness or startup failed `failureThreshold` times in a row:
    /// kill the container (restartPolicy decides what follows).
    Kill { kind: ProbeKind, message: String },
    /// The container's readiness changed.
    ReadyChanged(bool),
}

#[derive(Clone, Debug)]
struct Slot {
    kind: ProbeKind,
    probe: Probe,
    next_at_ms: u64,
    in_flight: bool,
    successes: u32,
    failures: u32,
}

fn secs_ms(s: i32) -> u64 {
    u64::try_from(s.max(0)).unwrap_or(0).saturating_mul(1000)
}

fn at_least_one(n: i32) -> u32 {
    u32::try_from(n.max(1)).unwrap_or(1)
}

/// The probes of one run of a container.
#[derive(Clone, Debug)]
pub struct Prober {
    slots: Vec<Slot>,
    started: bool,
    ready: bool,
    /// Killed for failing a probe: no more probing of this run.
    killed: bool,
}

impl Prober {
    /// The probes of `c`, for a run that started at `started_at_ms`.
    pub fn new(c: &Container, started_at_ms: u64) -> Self {
        let slots: Vec<Slot> = [
            (ProbeKind::Startup, &c.startup_probe),
            (ProbeKind::Liveness, &c.liveness_probe),
            (ProbeKind::Readiness, &c.readiness_probe),
        ]
        .into_iter()
        .filter_map(|(kind, p)| {
            let probe = p.clone()?;
            Some(Slot {
                kind,
                next_at_ms: started_at_ms.saturating_add(secs_ms(probe.initial_delay_seconds)),
                probe,
                in_flight: false,
                successes: 0,
                failures: 0,
            })
        })
        .collect();
        let started = !slots.iter().any(|s| s.kind == ProbeKind::Startup);
        let has_readiness = slots.iter().any(|s| s.kind == ProbeKind::Readiness);
        Prober {
            slots,
            started,
            // Without a readiness probe a started container is ready.
            ready: started && !has_readiness,
            killed: false,
        }
    }

    /// Whether the container counts as ready.
    pub fn ready(&self) -> bool {
        self.ready && !self.killed
    }

    /// Whether the startup probe passed (or there is none).
    pub fn started(&self) -> bool {
        self.started
    }

    fn active(&self, kind: ProbeKind) -> bool {
        !self.killed && (kind == ProbeKind::Startup) != self.started
    }

    /// The probes to run now, with their specs; each is then in flight
    /// until its result is recorded.
    pub fn due(&mut self, now_ms: u64) -> Vec<(ProbeKind, Probe)> {
        let active: Vec<bool> = self.slots.iter().map(|s| self.active(s.kind)).collect();
        self.slots
            .iter_mut()
            .zip(active)
            .filter(|(s, active)| *active && !s.in_flight && now_ms >= s.next_at_ms)
            .map(|(s, _)| {
                s.in_flight = true;
                (s.kind, s.probe.clone())
            })
            .collect()
    }

    /// When a probe is next due (none while all are in flight or done).
    pub fn next_wake(&self) -> Option<u64> {
        self.slots
            .iter()
            .filter(|s| self.active(s.kind) && !s.in_flight)
            .map(|s| s.next_at_ms)
            .min()
    }

    /// Records a result of probe `kind` that finished at `now_ms`.
    pub fn record(&mut self, kind: ProbeKind, outcome: Outcome, now_ms: u64) -> Vec<Decision> {
        let was_ready = self.ready();
        let Some(slot) = self.slots.iter_mut().find(|s| s.kind == kind) else {
            return vec![];
        };
        slot.in_flight = false;
        slot.next_at_ms = now_ms.saturating_add(secs_ms(slot.probe.period_seconds.max(1)));
        if self.killed {
            return vec![];
        }
        let mut decisions = vec![];
        match outcome {
            Outcome::Success => {
                slot.failures = 0;
                slot.successes = slot.successes.saturating_add(1);
                // Only readiness may ask for more than one success.
                let needed = match kind {
                    ProbeKind::Readiness => at_least_one(slot.probe.success_threshold),
                    _ => 1,
                };
                if slot.successes >= needed {
                    match kind {
                        ProbeKind::Startup => {
                            self.started = true;
                            // The others start their periods now.
                            for s in &mut self.slots {
                                if s.kind != ProbeKind::Startup {
                                    s.next_at_ms = s.next_at_ms.max(now_ms);
                                }
                            }
                            let has_readiness =
                                self.slots.iter().any(|s| s.kind == ProbeKind::Readiness);
                            self.ready = !has_readiness;
                        }
                        ProbeKind::Readiness => self.ready = true,
                        ProbeKind::Liveness => {}
                    }
                }
            }
            Outcome::Failure(message) => {
                slot.successes = 0;
                slot.failures = slot.failures.saturating_add(1);
                let threshold = at_least_one(slot.probe.failure_threshold);
                let message = format!("{} probe failed: {message}", kind.word());
                decisions.push(Decision::Unhealthy {
                    kind,
                    message: message.clone(),
                });
                if slot.failures >= threshold {
                    match kind {
                        ProbeKind::Readiness => self.ready = false,
                        ProbeKind::Liveness | ProbeKind::Startup => {
                            self.killed = true;
                            decisions.push(Decision::Kill { kind, message });
                        }
                    }
                }
            }
        }
        if self.ready() != was_ready {
            decisions.push(Decision::ReadyChanged(self.ready()));
        }
        decisions
    }
}

#[cfg(test)]
mod tests;
