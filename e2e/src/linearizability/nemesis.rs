//! The nemesis: a fault schedule drawn from a seed (so a failing run can be
//! replayed), then played against a control plane — one fault at a time,
//! each healed before the next: kill -9 and restart, SIGSTOP and SIGCONT,
//! or isolating a member's host and healing it.

use std::time::{Duration, Instant};

use crate::Lab;
use crate::control_plane::ControlPlane;
use crate::faults::Fault;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Kill,
    Pause,
    Isolate,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Whichever member leads when the fault starts.
    Leader,
    Member(u64),
}

/// One fault: applied at `start`, healed at `heal` (since the run began).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub start: Duration,
    pub heal: Duration,
    pub action: Action,
    pub target: Target,
}

/// Faults for a run of `run` against members `1..=members`, every one
/// healed a second before the run ends.
pub fn schedule(seed: u64, run: Duration, members: u64) -> Vec<Step> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let ms = |rng: &mut fastrand::Rng, lo: u64, hi: u64| Duration::from_millis(rng.u64(lo..hi));
    let end = run.saturating_sub(Duration::from_secs(1));
    let mut steps = Vec::new();
    let mut at = ms(&mut rng, 500, 1500);
    loop {
        let heal = at + ms(&mut rng, 500, 2500);
        if heal > end {
            return steps;
        }
        let action = match rng.u8(0..3) {
            0 => Action::Kill,
            1 => Action::Pause,
            _ => Action::Isolate,
        };
        let target = match rng.bool() {
            true => Target::Leader,
            false => Target::Member(rng.u64(1..=members.max(1))),
        };
        steps.push(Step {
            start: at,
            heal,
            action,
            target,
        });
        at = heal + ms(&mut rng, 200, 1200);
    }
}

/// Plays `plan` against `cp` (hosts of `lab`), timed from `clock`; returns
/// a line per fault saying what it hit.
pub fn play(cp: &mut ControlPlane, lab: &Lab, plan: &[Step], clock: Instant) -> Vec<String> {
    let mut log = Vec::new();
    for step in plan {
        sleep_until(clock, step.start);
        let id = match step.target {
            Target::Member(id) => id,
            Target::Leader => leader(cp).unwrap_or(1),
        };
        apply(cp, lab, id, step.action);
        sleep_until(clock, step.heal);
        heal(cp, id, step.action);
        log.push(format!(
            "{:?} member {id} ({:?}) {:.1}s–{:.1}s",
            step.action,
            step.target,
            step.start.as_secs_f64(),
            step.heal.as_secs_f64()
        ));
    }
    log
}

fn leader(cp: &ControlPlane) -> Option<u64> {
    cp.statuses()
        .into_iter()
        .find(|s| s.role == "Leader")
        .map(|s| s.id)
}

fn apply(cp: &mut ControlPlane, lab: &Lab, id: u64, action: Action) {
    let member = cp.member(id);
    match action {
        Action::Kill => member.kill9(),
        Action::Pause => {
            if let Some(p) = &member.process {
                p.pause();
            }
        }
        Action::Isolate => lab.inject(&member.host, &Fault::Isolated),
    }
}

fn heal(cp: &mut ControlPlane, id: u64, action: Action) {
    let member = cp.member(id);
    match action {
        Action::Kill => member.start(),
        Action::Pause => {
            if let Some(p) = &member.process {
                p.resume();
            }
        }
        Action::Isolate => member.host.heal(),
    }
}

fn sleep_until(clock: Instant, at: Duration) {
    if let Some(wait) = at.checked_sub(clock.elapsed()) {
        std::thread::sleep(wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_the_same_schedule_every_time() {
        let run = Duration::from_secs(20);
        assert_eq!(schedule(7, run, 3), schedule(7, run, 3));
        assert_ne!(schedule(7, run, 3), schedule(8, run, 3));
    }

    #[test]
    fn faults_do_not_overlap_and_end_before_the_run() {
        for seed in 0..200 {
            let run = Duration::from_secs(15);
            let plan = schedule(seed, run, 3);
            assert!(!plan.is_empty(), "seed {seed}: no faults");
            for pair in plan.windows(2) {
                assert!(pair[0].heal < pair[1].start, "seed {seed}: {pair:?}");
            }
            for s in &plan {
                assert!(s.start < s.heal && s.heal + Duration::from_secs(1) <= run);
                assert!(!matches!(s.target, Target::Member(0 | 4..)), "{s:?}");
            }
        }
    }
}
