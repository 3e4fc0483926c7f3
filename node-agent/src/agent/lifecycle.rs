//! A container's lifecycle as a pure state machine:
//! `next(machine, observation) -> effects`. The pod worker performs the
//! effects (pull and launch, stop, clean up, wake later) and feeds back
//! what it observed; restart policy, back-off and graceful deletion are
//! decided here, with time passed in, so they are tested without a clock.

use std::time::Duration;

use drover_proto::types::pod::RestartPolicy;

/// Kubernetes' waiting reasons.
pub mod reason {
    /// The container is being created.
    pub const CONTAINER_CREATING: &str = "ContainerCreating";
    /// The last pull failed.
    pub const ERR_IMAGE_PULL: &str = "ErrImagePull";
    /// Waiting to retry a failed pull.
    pub const IMAGE_PULL_BACK_OFF: &str = "ImagePullBackOff";
    /// Waiting to restart a container that keeps failing.
    pub const CRASH_LOOP_BACK_OFF: &str = "CrashLoopBackOff";
}

/// Restart and retry delays (Kubernetes: 10 s doubling to 5 min, forgiven
/// after 10 min of running well).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The longest delay.
    pub max: Duration,
    /// Running this long resets the delay.
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

impl Backoff {
    /// The delay after `failures` consecutive failures (the first restart
    /// after a crash is immediate, as the kubelet's is).
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let factor = 1u32.checked_shl(failures - 1).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// How a container ended, as its shim reported it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exit {
    /// Exit code (128 + signal when killed).
    pub exit_code: i32,
    /// The signal that killed it.
    pub signal: Option<i32>,
    /// `Completed`, `Error`, `OOMKilled`, `StartError`.
    pub reason: String,
    /// Why it could not start, if so.
    pub message: Option<String>,
    /// When it started, ms since the epoch.
    pub started_at_ms: Option<u64>,
    /// When it ended, ms since the epoch.
    pub finished_at_ms: u64,
}

/// Where a container is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Not running; start at `retry_at_ms` (0: as soon as possible).
    Waiting {
        reason: String,
        message: Option<String>,
        retry_at_ms: u64,
    },
    /// Pull and launch in progress.
    Starting,
    /// Running since `started_at_ms`.
    Running { started_at_ms: u64 },
    /// Asked to stop; the exit is awaited.
    Stopping { started_at_ms: u64 },
    /// Ended, and will not be restarted.
    Terminated(Exit),
}

/// What the pod worker saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observation {
    /// Time passed (a wake-up, or the pod changed).
    Tick { now_ms: u64 },
    /// The shim runs the container.
    Started { started_at_ms: u64 },
    /// Pull or launch failed before anything ran; `pull` when the image
    /// could not be had.
    StartFailed {
        now_ms: u64,
        reason: String,
        message: String,
        pull: bool,
    },
    /// The container ended.
    Exited(Exit),
    /// The pod is being deleted: stop within `grace`.
    Delete { grace: Duration },
}

/// What the pod worker must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Pull the image, lay out the bundle, launch a shim (attempt number
    /// = the machine's `restart_count`).
    Start,
    /// Ask the shim to stop: SIGTERM, SIGKILL after `grace`.
    Stop { grace: Duration },
    /// Remove the ended attempt's directory (not its log).
    Cleanup,
    /// Tick again at this time.
    WakeAt { at_ms: u64 },
}

/// One container's lifecycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// Where it is.
    pub state: State,
    /// Restarts so far.
    pub restart_count: i32,
    /// Consecutive failures, for back-off.
    pub failures: u32,
    /// How the previous run ended.
    pub last_exit: Option<Exit>,
    /// The pod is being deleted.
    pub deleting: bool,
    /// `restartPolicy`.
    pub policy: RestartPolicy,
    /// Delays.
    pub backoff: Backoff,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl Machine {
    /// A container not started yet.
    pub fn new(policy: RestartPolicy, backoff: Backoff) -> Self {
        Machine {
            state: State::Waiting {
                reason: reason::CONTAINER_CREATING.into(),
                message: None,
                retry_at_ms: 0,
            },
            restart_count: 0,
            failures: 0,
            last_exit: None,
            deleting: false,
            policy,
            backoff,
        }
    }

    /// A container found running under its shim after an agent restart.
    pub fn adopted(
        policy: RestartPolicy,
        backoff: Backoff,
        attempt: i32,
        started_at_ms: u64,
    ) -> Self {
        Machine {
            state: State::Running { started_at_ms },
            restart_count: attempt,
            ..Machine::new(policy, backoff)
        }
    }

    /// Whether nothing runs and nothing will (the pod may go).
    pub fn is_finished(&self) -> bool {
        match self.state {
            State::Terminated(_) => true,
            State::Waiting { .. } => self.deleting,
            State::Starting | State::Running { .. } | State::Stopping { .. } => false,
        }
    }

    fn restarts(&self, exit: &Exit) -> bool {
        match self.policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => exit.exit_code != 0,
            RestartPolicy::Never => false,
        }
    }

    /// Applies an observation; returns the effects to perform.
    pub fn next(&mut self, obs: Observation) -> Vec<Effect> {
        use Observation as O;
        match (self.state.clone(), obs) {
            (_, O::Delete { grace }) => {
                self.deleting = true;
                match self.state {
                    State::Running { started_at_ms } => {
                        self.state = State::Stopping { started_at_ms };
                        vec![Effect::Stop { grace }]
                    }
                    // A start in flight is stopped once it reports.
                    _ => vec![],
                }
            }
            (
                State::Waiting {
                    reason,
                    message,
                    retry_at_ms,
                },
                O::Tick { now_ms },
            ) => {
                if self.deleting {
                    return vec![];
                }
                if now_ms >= retry_at_ms {
                    if self.last_exit.is_some() {
                        self.restart_count += 1;
                    }
                    self.state = State::Starting;
                    return vec![Effect::Start];
                }
                if reason == reason::ERR_IMAGE_PULL {
                    self.state = State::Waiting {
                        reason: reason::IMAGE_PULL_BACK_OFF.into(),
                        message,
                        retry_at_ms,
                    };
                }
                vec![Effect::WakeAt { at_ms: retry_at_ms }]
            }
            (State::Starting, O::Started { started_at_ms }) => {
                self.state = State::Running { started_at_ms };
                if self.deleting {
                    // Deleted while starting: stop at once.
                    self.state = State::Stopping { started_at_ms };
                    return vec![Effect::Stop {
                        grace: Duration::ZERO,
                    }];
                }
                vec![]
            }
            (
                State::Starting,
                O::StartFailed {
                    now_ms,
                    reason,
                    message,
                    pull,
                },
            ) => {
                self.failures = self.failures.saturating_add(1);
                let retry_at_ms = now_ms.saturating_add(ms(self.backoff.delay(self.failures)));
                if self.last_exit.is_some() {
                    // The restart did not happen after all.
                    self.restart_count = (self.restart_count - 1).max(0);
                }
                let _ = pull;
                self.state = State::Waiting {
                    reason,
                    message: Some(message),
                    retry_at_ms,
                };
                vec![Effect::Cleanup, Effect::WakeAt { at_ms: retry_at_ms }]
            }
            (
                State::Running { started_at_ms } | State::Stopping { started_at_ms },
                O::Exited(mut exit),
            ) => {
                exit.started_at_ms = exit.started_at_ms.or(Some(started_at_ms));
                let ran = exit.finished_at_ms.saturating_sub(started_at_ms);
                if ran >= ms(self.backoff.reset_after) {
                    self.failures = 0;
                }
                let mut effects = vec![Effect::Cleanup];
                if self.deleting || !self.restarts(&exit) {
                    self.state = State::Terminated(exit);
                    return effects;
                }
                let delay = self.backoff.delay(self.failures);
                self.failures = self.failures.saturating_add(1);
                let retry_at_ms = exit.finished_at_ms.saturating_add(ms(delay));
                let message = format!("back-off {}s restarting failed container", delay.as_secs());
                self.last_exit = Some(exit);
                self.state = State::Waiting {
                    reason: reason::CRASH_LOOP_BACK_OFF.into(),
                    message: Some(message),
                    retry_at_ms,
                };
                effects.push(Effect::WakeAt { at_ms: retry_at_ms });
                effects
            }
            // Anything else is stale (a tick while running, an exit already
            // seen): nothing to do.
            _ => vec![],
        }
    }
}

#[cfg(test)]
mod tests;
