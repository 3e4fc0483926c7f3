//! The pod worker: one task per pod, so one pod is never reconciled twice
//! at once. It feeds each container's lifecycle machine what it observes
//! (pod changes, starts, exits, wake-ups), performs the effects the
//! machines return, writes the pod's status when it changed, and once a
//! deleted pod's containers have all stopped, cleans up and deletes it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use drover_proto::client::{Client, ClientError, DeleteOptions};
use drover_proto::types::Pod;
use drover_proto::types::pod::{PodStatus, Runtime};
use drover_proto::{Kind, Resource};
use tokio::sync::mpsc;

use super::container_status::container_status;
use super::events::{EventSink, EventType, reason as event};
use super::exec::ExecTarget;
use super::informer::{self, PodCache};
use super::layout;
use super::lifecycle::{Backoff, Effect, Exit, Machine, Observation, State};
use super::pod_status::{PodFacts, pod_status};
use super::probe::action::ProbeTarget;
use super::probe::prober::{Decision, Outcome, ProbeKind};
use super::probe::{Probes, netns_of};
use super::runner::{Runner, StartFailure};
use crate::runtime::container::{bundle, cgroup};
use crate::shim::state::now_ms;
use crate::shim::{ShimHandle, ShimState, Status};

/// What the agent shares with its pod workers.
#[derive(Debug)]
pub struct Shared {
    /// The API.
    pub client: Client,
    /// Pods bound to this node.
    pub cache: PodCache,
    /// Starts containers.
    pub runner: Arc<Runner>,
    /// Restart delays.
    pub backoff: Backoff,
    /// The node's address, reported as `hostIP`.
    pub host_ip: String,
    /// Where Events go.
    pub events: EventSink,
    /// The binary the exec helper runs as, and the arguments selecting
    /// the shim (`drover shim exec …`).
    pub exec_exe: PathBuf,
    /// For `drover`: `["shim"]`.
    pub exec_args: Vec<OsString>,
    /// Pod addresses this node's service rules send to: a terminating pod
    /// keeps running until it is out of them.
    pub serving: crate::network::services::Serving,
}

impl Shared {
    /// How to run commands in a running container.
    pub fn exec_target(&self, container_id: String) -> ExecTarget {
        ExecTarget {
            exe: self.exec_exe.clone(),
            shim_args: self.exec_args.clone(),
            runtime_root: self.runner.layout.runtime_root(),
            container_id,
        }
    }
}

/// What a worker hears.
#[derive(Debug)]
pub enum Msg {
    /// The pod changed (or went) in the cache.
    Changed,
    /// A start finished.
    Started {
        index: usize,
        result: Result<ShimHandle, StartFailure>,
    },
    /// A container ended.
    Exited { index: usize, exit: Exit },
    /// A probe of run `attempt` of a container finished.
    Probed {
        index: usize,
        attempt: i32,
        kind: ProbeKind,
        outcome: Outcome,
    },
    /// The terminating pod is out of every node's service rules.
    Drained,
}

struct Worker {
    shared: Arc<Shared>,
    key: String,
    uid: String,
    pod: Pod,
    machines: Vec<Machine>,
    handles: Vec<Option<ShimHandle>>,
    /// The attempt number each container's current (or last) run has.
    attempts: Vec<i32>,
    /// The probes of the running containers.
    probes: Probes,
    wake_at: Option<u64>,
    tx: mpsc::UnboundedSender<Msg>,
    /// The pod is gone from the API already (no final delete needed).
    gone: bool,
    /// Terminating: None until the pod is out of the service rules.
    drain: Option<Drain>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Drain {
    Waiting,
    Done,
}

/// The exit a shim reported.
pub fn exit_of(s: &ShimState) -> Exit {
    Exit {
        exit_code: s.exit_code.unwrap_or(128),
        signal: s.signal,
        reason: s.reason().unwrap_or("Error").to_string(),
        message: s.error.clone(),
        started_at_ms: s.started_at_ms,
        finished_at_ms: s.finished_at_ms.unwrap_or_else(now_ms),
    }
}

/// Waits (on a blocking thread) for the container to end, then reports.
fn watch_exit(tx: mpsc::UnboundedSender<Msg>, index: usize, handle: ShimHandle) {
    tokio::task::spawn_blocking(move || {
        let exit = loop {
            match handle.wait(Duration::from_secs(3600)) {
                Ok(s) => break exit_of(&s),
                Err(_) if handle.is_alive() => continue,
                // The shim died without a final word (killed): the container
                // went with its cgroup cleanup undone; report it as failed.
                Err(e) => {
                    break Exit {
                        exit_code: 128,
                        reason: "Error".into(),
                        message: Some(format!("shim lost: {e}")),
                        finished_at_ms: now_ms(),
                        ..Exit::default()
                    };
                }
            }
        };
        let _ = tx.send(Msg::Exited { index, exit });
    });
}

/// The highest attempt directory of a container, if any.
fn last_attempt(dir: &Path) -> Option<i32> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .max()
}

/// Runs the worker for `pod` until it is deleted and cleaned up; sends
/// its key on `finished` at the end.
pub fn spawn(
    shared: Arc<Shared>,
    pod: Pod,
    finished: mpsc::UnboundedSender<String>,
) -> mpsc::UnboundedSender<Msg> {
    let (tx, rx) = mpsc::unbounded_channel();
    let key = informer::pod_key(&pod);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let n = pod.spec.containers.len();
    let mut w = Worker {
        machines: vec![Machine::new(pod.spec.restart_policy, shared.backoff); n],
        handles: vec![None; n],
        attempts: vec![-1; n],
        probes: Probes::new(n),
        shared,
        key: key.clone(),
        uid,
        pod,
        wake_at: None,
        tx: tx.clone(),
        gone: false,
        drain: None,
    };
    tokio::spawn(async move {
        w.adopt();
        w.run(rx).await;
        let _ = finished.send(key);
    });
    tx
}

impl Worker {
    /// Takes over the runs an earlier agent process left: running ones are
    /// watched again, ended ones are observed as exits.
    fn adopt(&mut self) {
        let layout = self.shared.runner.layout.clone();
        for i in 0..self.machines.len() {
            let name = self.pod.spec.containers[i].name.clone();
            let Some(attempt) = last_attempt(&layout.container_attempts(&self.uid, &name)) else {
                continue;
            };
            self.attempts[i] = attempt;
            let dir = layout.container_dir(&self.uid, &name, attempt);
            let Ok(handle) = ShimHandle::adopt(&dir.shim_dir()) else {
                // Laid out but never launched: clean up and start afresh.
                let _ = bundle::remove(&dir);
                continue;
            };
            let state = handle.state().ok();
            let started = state
                .as_ref()
                .and_then(|s| s.started_at_ms)
                .unwrap_or_else(now_ms);
            self.machines[i] = Machine::adopted(
                self.pod.spec.restart_policy,
                self.shared.backoff,
                attempt,
                started,
            );
            match state {
                Some(s) if s.status == Status::Exited => {
                    self.observe(i, Observation::Exited(exit_of(&s)));
                }
                _ => {
                    tracing::info!("{}: adopted container {name} (attempt {attempt})", self.key);
                    let pid = state.as_ref().and_then(|s| s.container_pid);
                    self.start_probes(i, started, pid);
                    self.handles[i] = Some(handle.clone());
                    watch_exit(self.tx.clone(), i, handle);
                }
            }
        }
    }

    async fn run(&mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        self.on_changed();
        loop {
            if self.done() {
                self.finish().await;
                return;
            }
            self.run_probes();
            self.write_status().await;
            let wake = match (self.wake_at, self.probes.next_wake()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep = wake.map(|at| Duration::from_millis(at.saturating_sub(now_ms())));
            let msg = tokio::select! {
                m = rx.recv() => m,
                () = async {
                    match sleep {
                        Some(d) => tokio::time::sleep(d).await,
                        None => std::future::pending().await,
                    }
                } => {
                    if self.wake_at.is_some_and(|at| at <= now_ms()) {
                        self.wake_at = None;
                        self.tick();
                    }
                    continue;
                }
            };
            match msg {
                None => return,
                Some(Msg::Changed) => self.on_changed(),
                Some(Msg::Drained) => {
                    self.drain = Some(Drain::Done);
                    self.on_changed();
                }
                Some(Msg::Started { index, result }) => match result {
                    Ok(handle) => {
                        let state = handle.state().ok();
                        let started = state
                            .as_ref()
                            .and_then(|s| s.started_at_ms)
                            .unwrap_or_else(now_ms);
                        let name = self.pod.spec.containers[index].name.clone();
                        self.event(
                            index,
                            EventType::Normal,
                            event::CREATED,
                            format!("Created container {name}"),
                        );
                        self.event(
                            index,
                            EventType::Normal,
                            event::STARTED,
                            format!("Started container {name}"),
                        );
                        self.start_probes(index, started, state.and_then(|s| s.container_pid));
                        self.handles[index] = Some(handle.clone());
                        watch_exit(self.tx.clone(), index, handle);
                        self.observe(
                            index,
                            Observation::Started {
                                started_at_ms: started,
                            },
                        );
                    }
                    Err(f) => {
                        tracing::warn!(
                            "{}: starting {}: {}: {}",
                            self.key,
                            self.pod.spec.containers[index].name,
                            f.reason,
                            f.message
                        );
                        self.event(
                            index,
                            EventType::Warning,
                            event::FAILED,
                            format!("Error: {}: {}", f.reason, f.message),
                        );
                        self.observe(
                            index,
                            Observation::StartFailed {
                                now_ms: now_ms(),
                                reason: f.reason,
                                message: f.message,
                                pull: f.pull,
                            },
                        )
                    }
                },
                Some(Msg::Exited { index, exit }) => {
                    self.handles[index] = None;
                    self.probes.exited(index);
                    self.observe(index, Observation::Exited(exit));
                    self.tick();
                }
                Some(Msg::Probed {
                    index,
                    attempt,
                    kind,
                    outcome,
                }) => self.on_probed(index, attempt, kind, outcome),
            }
        }
    }

    fn event(&self, index: usize, type_: EventType, reason: &str, message: String) {
        let name = &self.pod.spec.containers[index].name;
        self.shared
            .events
            .container(&self.pod, name, type_, reason, message);
    }

    fn start_probes(&mut self, index: usize, started_at_ms: u64, pid: Option<i32>) {
        let attempt = self.attempts[index];
        let c = &self.pod.spec.containers[index];
        let id = layout::container_id(&self.uid, &c.name, attempt);
        let exec = self.shared.exec_target(id);
        // A VM is probed from the node at its pod IP (its loopback is the
        // guest's own); a container at 127.0.0.1 inside its namespace.
        let vm_ip = (self.pod.spec.runtime == Runtime::Vm)
            .then(|| self.shared.runner.network.as_ref()?.ip_of(&self.uid))
            .flatten();
        let (netns, host) = match vm_ip {
            Some(ip) => (None, ip.to_string()),
            None => (netns_of(pid), "127.0.0.1".to_string()),
        };
        let target = ProbeTarget {
            netns,
            default_host: host,
            exec: Some(exec),
        };
        self.probes
            .started(index, attempt, c, started_at_ms, target);
    }

    /// Starts the probes that are due, each on a blocking thread.
    fn run_probes(&mut self) {
        for job in self.probes.due(now_ms()) {
            let tx = self.tx.clone();
            tokio::task::spawn_blocking(move || {
                let outcome = job.run();
                let _ = tx.send(Msg::Probed {
                    index: job.index,
                    attempt: job.attempt,
                    kind: job.kind,
                    outcome,
                });
            });
        }
    }

    fn on_probed(&mut self, index: usize, attempt: i32, kind: ProbeKind, outcome: Outcome) {
        for decision in self.probes.record(index, attempt, kind, outcome, now_ms()) {
            match decision {
                Decision::Unhealthy { message, .. } => {
                    self.event(index, EventType::Warning, event::UNHEALTHY, message);
                }
                Decision::Kill { kind, .. } => {
                    let name = self.pod.spec.containers[index].name.clone();
                    let word = kind.word().to_lowercase();
                    self.event(
                        index,
                        EventType::Normal,
                        event::KILLING,
                        format!("Container {name} failed {word} probe, will be restarted"),
                    );
                    let grace = Duration::from_secs(
                        u64::try_from(self.pod.spec.termination_grace_period_seconds).unwrap_or(0),
                    );
                    // The exit then goes through the lifecycle as any
                    // other: restartPolicy decides, back-off applies.
                    if let Some(handle) = self.handles[index].clone() {
                        let key = self.key.clone();
                        tokio::task::spawn_blocking(move || {
                            if let Err(e) = handle.stop(grace) {
                                tracing::warn!("{key}: stopping {name}: {e}");
                            }
                        });
                    }
                }
                Decision::ReadyChanged(_) => {}
            }
        }
    }

    fn on_changed(&mut self) {
        let current = informer::cached(&self.shared.cache, &self.key)
            .filter(|p| p.metadata.uid.as_deref() == Some(self.uid.as_str()));
        match current {
            None => {
                // Removed without waiting for us (force delete): stop now.
                self.gone = true;
                self.delete_all(Duration::ZERO);
            }
            Some(pod) => {
                let deletion = pod.metadata.deletion_timestamp;
                let grace = pod.metadata.deletion_grace_period_seconds;
                self.pod = pod;
                if let Some(at) = deletion {
                    // Whatever is left until the deadline the server set.
                    let left = (at - chrono::Utc::now()).num_milliseconds().max(0);
                    if self.drain != Some(Drain::Done) {
                        self.start_drain(Duration::from_millis(u64::try_from(left).unwrap_or(0)));
                        self.tick();
                        return;
                    }
                    let grace = grace
                        .map_or(left, |g| g.saturating_mul(1000).min(left))
                        .max(0);
                    self.delete_all(Duration::from_millis(u64::try_from(grace).unwrap_or(0)));
                }
            }
        }
        self.tick();
    }

    /// Keeps a terminating pod serving until no node's service rules send
    /// to it (at most half of what is left of its grace period), then
    /// reports [`Msg::Drained`].
    fn start_drain(&mut self, left: Duration) {
        if self.drain.is_some() {
            return;
        }
        self.drain = Some(Drain::Waiting);
        let ip = self
            .pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .and_then(|ip| ip.parse().ok());
        let (serving, tx) = (self.shared.serving.clone(), self.tx.clone());
        tokio::spawn(async move {
            if let Some(ip) = ip {
                serving.drained(ip, left / 2).await;
            }
            let _ = tx.send(Msg::Drained);
        });
    }

    fn delete_all(&mut self, grace: Duration) {
        for i in 0..self.machines.len() {
            if !self.machines[i].deleting {
                self.observe(i, Observation::Delete { grace });
            }
        }
    }

    fn tick(&mut self) {
        let now = now_ms();
        for i in 0..self.machines.len() {
            self.observe(i, Observation::Tick { now_ms: now });
        }
    }

    fn observe(&mut self, index: usize, obs: Observation) {
        let effects = self.machines[index].next(obs);
        self.back_off_event(index, &effects);
        for effect in effects {
            self.perform(index, effect);
        }
    }

    /// A `BackOff` Event when an exit or a failed start left the container
    /// waiting for a later retry.
    fn back_off_event(&self, index: usize, effects: &[Effect]) {
        if !effects.contains(&Effect::Cleanup) {
            return;
        }
        let State::Waiting {
            reason,
            retry_at_ms,
            ..
        } = &self.machines[index].state
        else {
            return;
        };
        if *retry_at_ms <= now_ms() {
            return;
        }
        let c = &self.pod.spec.containers[index];
        let message = if reason == super::lifecycle::reason::CRASH_LOOP_BACK_OFF {
            format!(
                "Back-off restarting failed container {} in pod {}",
                c.name,
                self.pod.name()
            )
        } else if reason == super::lifecycle::reason::ERR_IMAGE_PULL {
            format!("Back-off pulling image {:?}", c.image)
        } else {
            format!("Back-off starting container {}", c.name)
        };
        self.event(index, EventType::Warning, event::BACK_OFF, message);
    }

    fn perform(&mut self, index: usize, effect: Effect) {
        let name = self.pod.spec.containers[index].name.clone();
        match effect {
            Effect::Start => {
                self.attempts[index] += 1;
                let attempt = self.attempts[index];
                let (runner, pod, tx, events) = (
                    Arc::clone(&self.shared.runner),
                    self.pod.clone(),
                    self.tx.clone(),
                    self.shared.events.clone(),
                );
                // Keep only the previous run's log (for `logs --previous`).
                let old = runner.layout.log_path(
                    pod.namespace(),
                    pod.name(),
                    &self.uid,
                    &name,
                    attempt - 1,
                );
                tokio::spawn(async move {
                    let _ = tokio::task::spawn_blocking(move || prune_logs_before(&old)).await;
                    let result = runner.start(&pod, index, attempt, &events).await;
                    let _ = tx.send(Msg::Started { index, result });
                });
            }
            Effect::Stop { grace } => {
                if let Some(handle) = self.handles[index].clone() {
                    self.event(
                        index,
                        EventType::Normal,
                        event::KILLING,
                        format!("Stopping container {name}"),
                    );
                    let key = self.key.clone();
                    tokio::task::spawn_blocking(move || {
                        if let Err(e) = handle.stop(grace) {
                            tracing::warn!("{key}: stopping {name}: {e}");
                        }
                    });
                }
            }
            Effect::Cleanup => {
                let dir =
                    self.shared
                        .runner
                        .layout
                        .container_dir(&self.uid, &name, self.attempts[index]);
                let key = self.key.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = bundle::remove(&dir) {
                        tracing::warn!("{key}: removing {}: {e}", dir.path().display());
                    }
                });
            }
            Effect::WakeAt { at_ms } => {
                self.wake_at = Some(self.wake_at.map_or(at_ms, |w| w.min(at_ms)));
            }
        }
    }

    fn done(&self) -> bool {
        let deleting = self.gone || self.pod.metadata.deletion_timestamp.is_some();
        deleting && self.machines.iter().all(Machine::is_finished)
    }

    fn status(&self) -> PodStatus {
        let containers = self
            .pod
            .spec
            .containers
            .iter()
            .zip(&self.machines)
            .zip(&self.attempts)
            .map(|((c, m), attempt)| {
                let id = (*attempt >= 0).then(|| {
                    format!(
                        "drover://{}",
                        layout::container_id(&self.uid, &c.name, *attempt)
                    )
                });
                (c, m, id)
            })
            .enumerate()
            .map(|(i, (c, m, id))| {
                let ready = matches!(m.state, State::Running { .. }) && self.probes.ready(i);
                container_status(&c.name, &c.image, id, m, ready)
            })
            .collect();
        let pod_ip = self
            .shared
            .runner
            .network
            .as_ref()
            .and_then(|n| n.ip_of(&self.uid))
            .map(|ip| ip.to_string());
        let facts = PodFacts {
            pod_ip,
            host_ip: Some(self.shared.host_ip.clone()),
            start_time: None,
        };
        pod_status(
            self.pod.spec.restart_policy,
            containers,
            &facts,
            self.pod.status.as_ref(),
            chrono::Utc::now(),
        )
    }

    async fn write_status(&mut self) {
        if self.gone {
            return;
        }
        let status = self.status();
        if self.pod.status.as_ref() == Some(&status) {
            return;
        }
        let mut pod = self.pod.clone();
        pod.metadata.resource_version = None;
        pod.status = Some(status.clone());
        match self.shared.client.update_status(&pod.to_object()).await {
            // Remember what was written so it is not written again before
            // the watch brings it back.
            Ok(_) => self.pod.status = Some(status),
            Err(ClientError::NotFound(_)) => {}
            Err(e) => {
                tracing::warn!("{}: writing status: {e}", self.key);
                self.wake_at = Some(now_ms() + 1000);
            }
        }
    }

    /// Every container has stopped: remove what is left of the pod on the
    /// node, then let the API forget it.
    async fn finish(&mut self) {
        let layout = self.shared.runner.layout.clone();
        let (uid, ns, name) = (
            self.uid.clone(),
            self.pod.namespace().to_string(),
            self.pod.name().to_string(),
        );
        let cleanup =
            tokio::task::spawn_blocking(move || remove_pod_files(&layout, &uid, &ns, &name));
        if let Ok(Err(e)) = cleanup.await {
            tracing::warn!("{}: cleaning up: {e}", self.key);
        }
        if let Some(net) = &self.shared.runner.network
            && let Err(e) = net.detach(&self.uid).await
        {
            tracing::warn!("{}: removing its network: {e}", self.key);
        }
        if self.gone {
            return;
        }
        // Report the final states before the pod goes.
        self.write_status().await;
        let opts = DeleteOptions {
            grace_period_seconds: Some(0),
            ..DeleteOptions::default()
        };
        match self
            .shared
            .client
            .delete(Kind::Pod, self.pod.namespace(), self.pod.name(), &opts)
            .await
        {
            Ok(_) | Err(ClientError::NotFound(_)) => {}
            Err(e) => tracing::warn!("{}: deleting: {e}", self.key),
        }
    }
}

/// Removes the log files (rotated ones too) of runs older than the one
/// `keep` belongs to (`DIR/<attempt>.log[.N]`).
fn prune_logs_before(keep: &Path) {
    let Some(keep_attempt) = keep
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".log"))
        .and_then(|n| n.parse::<i32>().ok())
    else {
        return;
    };
    let Some(dir) = keep.parent() else { return };
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name();
        let attempt = name
            .to_str()
            .and_then(|n| n.split_once(".log"))
            .and_then(|(a, _)| a.parse::<i32>().ok());
        if attempt.is_some_and(|a| a < keep_attempt) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Removes a pod's directories, logs and cgroup parents.
pub fn remove_pod_files(
    layout: &layout::Layout,
    uid: &str,
    namespace: &str,
    name: &str,
) -> std::io::Result<()> {
    let pod_dir = layout.pod_dir(uid);
    if let Ok(containers) = std::fs::read_dir(&pod_dir) {
        for c in containers.flatten() {
            for attempt in std::fs::read_dir(c.path()).into_iter().flatten().flatten() {
                let dir = crate::runtime::container::bundle::ContainerDir::new(attempt.path());
                bundle::remove(&dir).map_err(std::io::Error::other)?;
            }
        }
    }
    match std::fs::remove_dir_all(&pod_dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let _ = std::fs::remove_dir_all(layout.pod_logs(namespace, name, uid));
    // Deepest first: libcontainer made the parents, nobody else removes them.
    let mut dirs = cgroup::existing_dirs(&layout::pod_cgroup(uid));
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for d in dirs {
        let _ = std::fs::remove_dir(d);
    }
    Ok(())
}
