//! Samples the node every [`SAMPLE_PERIOD`]: reads each pod's container
//! cgroups, the node's `/proc` and the service counters (blocking reads on
//! the blocking pool), turns them into rates and keeps the last report for
//! the agent's HTTP endpoint to serve.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use drover_proto::Resource;
use drover_proto::types::Pod;
use drover_proto::types::metrics::AgentSummary;

use super::host;
use super::rates::Rates;
use super::summary::{ContainerUsage, PodUsage, summarize};
use crate::agent::informer::{self, PodCache};
use crate::agent::layout;
use crate::network::services::Activator;
use crate::network::services::activator::HoldCount;
use crate::runtime::container::cgroup;

/// How often the node is sampled (the rates' window).
pub const SAMPLE_PERIOD: Duration = Duration::from_secs(1);

/// The last report, shared with the HTTP endpoint.
#[derive(Debug, Clone, Default)]
pub struct Latest(Arc<RwLock<Option<AgentSummary>>>);

impl Latest {
    pub fn get(&self) -> Option<AgentSummary> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, s: AgentSummary) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Some(s);
    }
}

/// The newest attempt of `container` among a pod cgroup's child directory
/// names (`CONTAINER-ATTEMPT`), pure.
pub fn newest_attempt<'a>(dirs: impl IntoIterator<Item = &'a str>, container: &str) -> Option<i32> {
    let prefix = layout::safe(container);
    dirs.into_iter()
        .filter_map(|d| {
            let (name, attempt) = d.rsplit_once('-')?;
            (name == prefix).then(|| attempt.parse::<i32>().ok())?
        })
        .max()
}

/// One container's cumulative readings.
struct ContainerReading {
    cpu_ns: u64,
    memory_bytes: u64,
}

/// Everything one sample reads, before any arithmetic.
struct Readings {
    containers: BTreeMap<(String, String), ContainerReading>,
    node_cpu_ns: Option<u64>,
    node_memory: Option<u64>,
    counters: BTreeMap<String, u64>,
}

fn child_dirs(cgroup_path: &Path) -> Vec<String> {
    cgroup::existing_dirs(cgroup_path)
        .iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect()
}

fn read_all(pods: &[Pod], service_table: Option<&str>) -> Readings {
    let mut containers = BTreeMap::new();
    for pod in pods {
        let Some(uid) = pod.metadata.uid.as_deref() else {
            continue;
        };
        let dirs = child_dirs(&layout::pod_cgroup(uid));
        for c in &pod.spec.containers {
            let Some(attempt) = newest_attempt(dirs.iter().map(String::as_str), &c.name) else {
                continue;
            };
            let path = layout::container_cgroup(uid, &c.name, attempt);
            let (Some(cpu_ns), Some(memory_bytes)) = (
                cgroup::cpu_usage_ns(&path),
                cgroup::memory_working_set_bytes(&path),
            ) else {
                continue;
            };
            containers.insert(
                (uid.to_string(), c.name.clone()),
                ContainerReading {
                    cpu_ns,
                    memory_bytes,
                },
            );
        }
    }
    let counters = service_table
        .and_then(|t| crate::network::services::read_counters(t).ok())
        .unwrap_or_default()
        .into_iter()
        .map(|(name, v)| (name, v.packets))
        .collect();
    Readings {
        containers,
        node_cpu_ns: host::busy_cpu_ns(),
        node_memory: host::memory_in_use(),
        counters,
    }
}

/// The sampler's memory between samples.
#[derive(Default)]
struct State {
    cpu: Rates<(String, String)>,
    node_cpu: Rates<()>,
    counters: Rates<String>,
    last: Option<Duration>,
}

impl State {
    /// The report from `r`, read at `now` (monotonic) and `at` (wall);
    /// None for the first sample, which only sets the baseline.
    fn sample(
        &mut self,
        node: &str,
        pods: &[Pod],
        r: Readings,
        now: Duration,
        at: drover_proto::Time,
        holds: &BTreeMap<String, HoldCount>,
    ) -> Option<AgentSummary> {
        let cpu_readings = r
            .containers
            .iter()
            .map(|(k, v)| (k.clone(), v.cpu_ns))
            .collect();
        let cpu = self.cpu.update(now, cpu_readings);
        let node_cpu = self
            .node_cpu
            .update(now, r.node_cpu_ns.map(|n| ((), n)).into_iter().collect());
        let counters = self.counters.update(now, r.counters);
        let window = now.saturating_sub(self.last.replace(now)?);
        let pods = pods
            .iter()
            .filter_map(|p| {
                let uid = p.metadata.uid.as_deref()?;
                let containers: Vec<ContainerUsage> = p
                    .spec
                    .containers
                    .iter()
                    .filter_map(|c| {
                        let key = (uid.to_string(), c.name.clone());
                        Some(ContainerUsage {
                            name: c.name.clone(),
                            cpu_cores: cpu.get(&key)? / 1e9,
                            memory_bytes: r.containers.get(&key)?.memory_bytes,
                        })
                    })
                    .collect();
                (!containers.is_empty()).then(|| PodUsage {
                    namespace: p.namespace().to_string(),
                    name: p.name().to_string(),
                    labels: p.metadata.labels.clone(),
                    pod_ip: p.status.as_ref().and_then(|s| s.pod_ip.clone()),
                    containers,
                })
            })
            .collect();
        let node_usage = node_cpu
            .get(&())
            .zip(r.node_memory)
            .map(|(ns, mem)| (ns / 1e9, mem));
        Some(summarize(
            node, at, window, node_usage, pods, &counters, holds,
        ))
    }
}

/// Samples forever, publishing each report in `latest`.
/// `activator` (when there is one) adds the connections it holds.
pub async fn run(
    node: String,
    pods: PodCache,
    service_table: Option<String>,
    activator: Option<Activator>,
    latest: Latest,
) {
    let started = Instant::now();
    let mut state = State::default();
    let mut tick = tokio::time::interval(SAMPLE_PERIOD);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let snapshot = informer::snapshot(&pods);
        let (table, listed) = (service_table.clone(), snapshot.clone());
        let Ok(mut readings) =
            tokio::task::spawn_blocking(move || read_all(&listed, table.as_deref())).await
        else {
            continue;
        };
        let now = started.elapsed();
        let (holds, forwarded) = activator
            .as_ref()
            .map(|a| (a.counts(), a.endpoint_counters()))
            .unwrap_or_default();
        for (name, n) in forwarded {
            // Held connections forwarded went around the rules' counters
            // but are requests the endpoint served; both only grow.
            *readings.counters.entry(name).or_default() += n;
        }
        if let Some(report) =
            state.sample(&node, &snapshot, readings, now, chrono::Utc::now(), &holds)
        {
            latest.set(report);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_attempt_of_each_container() {
        let dirs = ["web-0", "web-2", "web-10", "side-1", "web-x", "webby-5"];
        assert_eq!(newest_attempt(dirs, "web"), Some(10));
        assert_eq!(newest_attempt(dirs, "side"), Some(1));
        assert_eq!(newest_attempt(dirs, "db"), None);
    }

    #[test]
    fn cpu_time_becomes_cores_after_a_baseline() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1", "namespace": "default", "uid": "u1"},
            "spec": {"containers": [{"name": "web", "image": "x"}]},
            "status": {"podIP": "10.88.1.2"}
        }))
        .expect("pod");
        let readings = |cpu_ns, packets| Readings {
            containers: BTreeMap::from([(
                ("u1".to_string(), "web".to_string()),
                ContainerReading {
                    cpu_ns,
                    memory_bytes: 1 << 20,
                },
            )]),
            node_cpu_ns: Some(cpu_ns * 2),
            node_memory: Some(1 << 30),
            counters: BTreeMap::from([("ep/default/web/http/10.88.1.2/8080".to_string(), packets)]),
        };
        let mut state = State::default();
        let at = chrono::Utc::now();
        let pods = [pod];
        assert!(
            state
                .sample(
                    "n",
                    &pods,
                    readings(0, 0),
                    Duration::ZERO,
                    at,
                    &BTreeMap::new()
                )
                .is_none()
        );
        // 0.5 s of CPU and 20 connections over 2 s.
        let s = state
            .sample(
                "n",
                &pods,
                readings(500_000_000, 20),
                Duration::from_secs(2),
                at,
                &BTreeMap::new(),
            )
            .expect("a report after the baseline");
        assert_eq!(s.node.window, "2s");
        let c = &s.pods[0].metrics.containers[0];
        assert_eq!(c.usage["cpu"].millis(), 250);
        assert_eq!(s.node.usage["cpu"].millis(), 500);
        assert_eq!(s.endpoints[0].per_second, 10.0);
        assert_eq!(s.pods[0].pod_ip.as_deref(), Some("10.88.1.2"));
    }
}
