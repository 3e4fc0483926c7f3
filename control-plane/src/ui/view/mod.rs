//! What the pages show, computed from typed objects: pure functions, no I/O.

use std::collections::HashMap;

use drover_proto::types::pod::{PodPhase, Runtime};
use drover_proto::types::{
    Deployment, Endpoints, Event, HorizontalPodAutoscaler, Node, Pod, ReplicaSet, Service,
};
use std::sync::Arc;

use drover_proto::{Object, Quantity, Resource, Time};

/// The objects one page render reads, decoded once.
#[derive(Default)]
pub struct Snapshot {
    /// Kept as stored, as pods are: only the page shown is decoded.
    pub nodes: Vec<Arc<Object>>,
    /// Kept as stored: tens of thousands are only counted and summed, and
    /// only the rows of the page shown are decoded.
    pub pods: Vec<Arc<Object>>,
    pub deployments: Vec<Deployment>,
    pub replica_sets: Vec<ReplicaSet>,
    pub services: Vec<Service>,
    pub endpoints: Vec<Endpoints>,
    pub hpas: Vec<HorizontalPodAutoscaler>,
    pub events: Vec<Event>,
}

/// Used and allocatable amounts of one resource on a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub used: i64,
    pub allocatable: i64,
}

impl Usage {
    /// Percent used, 0–100 (over-commit shows as 100).
    pub fn percent(&self) -> u32 {
        if self.allocatable <= 0 {
            return 0;
        }
        ((self.used.max(0) as f64 / self.allocatable as f64) * 100.0)
            .round()
            .min(100.0) as u32
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeRow {
    pub name: String,
    pub ready: String,
    pub schedulable: bool,
    pub cpu_millis: Usage,
    pub memory_bytes: Usage,
    pub pods: Usage,
    pub runtimes: Vec<String>,
    pub vm_engine: Option<String>,
    pub address: String,
    pub conditions: Vec<String>,
}

fn condition<'a>(conditions: &'a [drover_proto::meta::Condition], type_: &str) -> Option<&'a str> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// A pod's node and its effective cpu (millis) and memory (bytes) requests,
/// read from the stored JSON without decoding the whole pod; `None` for
/// unbound and finished pods, which hold nothing.
pub fn pod_usage(o: &Object) -> Option<(&str, i64, i64)> {
    let spec = o.body.get("spec")?;
    let node = spec.get("nodeName")?.as_str()?;
    let phase = o
        .body
        .get("status")
        .and_then(|s| s.get("phase"))
        .and_then(|p| p.as_str());
    if matches!(phase, Some("Succeeded" | "Failed")) {
        return None;
    }
    let (mut cpu, mut mem) = (0i64, 0i64);
    for c in spec.get("containers")?.as_array()? {
        let r = c.get("resources");
        let get = |name: &str| -> Option<Quantity> {
            let v = r
                .and_then(|r| r.get("requests"))
                .and_then(|q| q.get(name))
                .or_else(|| r.and_then(|r| r.get("limits")).and_then(|q| q.get(name)))?;
            match v {
                serde_json::Value::String(s) => Quantity::parse(s).ok(),
                serde_json::Value::Number(n) => Quantity::parse(&n.to_string()).ok(),
                _ => None,
            }
        };
        cpu = cpu.saturating_add(get("cpu").map_or(0, |q| q.millis()));
        mem = mem.saturating_add(get("memory").map_or(0, |q| q.units()));
    }
    Some((node, cpu, mem))
}

/// Whether a stored pod runs as a VM.
pub fn is_vm(o: &Object) -> bool {
    o.body
        .get("spec")
        .and_then(|s| s.get("runtime"))
        .and_then(|r| r.as_str())
        == Some("vm")
}

/// Whether a stored node's Ready condition is True.
pub fn node_ready(o: &Object) -> bool {
    o.body
        .get("status")
        .and_then(|s| s.get("conditions"))
        .and_then(|c| c.as_array())
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(|t| t.as_str()) == Some("Ready")
                    && c.get("status").and_then(|t| t.as_str()) == Some("True")
            })
        })
}

/// One row per node of `nodes` with what its bound, unfinished pods request.
pub fn node_rows(nodes: &[Node], pods: &[Arc<Object>]) -> Vec<NodeRow> {
    let mut requested: HashMap<&str, (i64, i64, i64)> = HashMap::new();
    for o in pods {
        if let Some((node, cpu, mem)) = pod_usage(o) {
            let e = requested.entry(node).or_default();
            e.0 += cpu;
            e.1 += mem;
            e.2 += 1;
        }
    }
    let mut rows: Vec<NodeRow> = nodes
        .iter()
        .map(|n| {
            let (cpu, mem, pods) = requested.get(n.name()).copied().unwrap_or_default();
            let status = n.status.clone().unwrap_or_default();
            let ready = match condition(&status.conditions, "Ready") {
                Some("True") => "Ready",
                Some("False") => "NotReady",
                _ => "Unknown",
            };
            NodeRow {
                name: n.name().to_string(),
                ready: ready.to_string(),
                schedulable: !n.spec.unschedulable,
                cpu_millis: Usage {
                    used: cpu,
                    allocatable: n.allocatable("cpu"),
                },
                memory_bytes: Usage {
                    used: mem,
                    allocatable: n.allocatable("memory"),
                },
                pods: Usage {
                    used: pods,
                    allocatable: n.allocatable("pods"),
                },
                runtimes: status.runtimes.clone(),
                vm_engine: status.vm_engine.clone(),
                address: status
                    .addresses
                    .iter()
                    .find(|a| a.type_ == "InternalIP")
                    .map(|a| a.address.clone())
                    .unwrap_or_default(),
                conditions: status
                    .conditions
                    .iter()
                    .filter(|c| c.type_ != "Ready" && c.status == "True")
                    .map(|c| c.type_.clone())
                    .collect(),
            }
        })
        .collect();
    rows.sort_by(|a, b| natural_key(&a.name).cmp(&natural_key(&b.name)));
    rows
}

/// Sorts `node-2` before `node-10`.
pub fn natural_key(name: &str) -> (&str, u64, &str) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (stem, num) = name.split_at(name.len() - digits);
    (stem, num.parse().unwrap_or(0), name)
}

#[derive(Debug, Clone, PartialEq)]
pub struct PodRow {
    pub namespace: String,
    pub name: String,
    pub status: String,
    pub ready: String,
    pub node: String,
    pub ip: String,
    pub restarts: i32,
    pub runtime: &'static str,
    pub created: Option<Time>,
}

/// kubectl's STATUS column: a waiting/terminated reason beats the phase.
pub fn pod_status(p: &Pod) -> String {
    if p.metadata.deletion_timestamp.is_some() {
        return "Terminating".into();
    }
    let Some(status) = &p.status else {
        return "Pending".into();
    };
    for c in &status.container_statuses {
        if let Some(state) = &c.state {
            if let Some(r) = state.waiting.as_ref().and_then(|w| w.reason.clone()) {
                return r;
            }
            if let Some(t) = &state.terminated
                && status.phase != PodPhase::Succeeded
            {
                return t.reason.clone().unwrap_or_else(|| "Error".into());
            }
        }
    }
    status.phase.as_str().to_string()
}

pub fn pod_row(p: &Pod) -> PodRow {
    let status = p.status.clone().unwrap_or_default();
    let ready = status.container_statuses.iter().filter(|c| c.ready).count();
    PodRow {
        namespace: p.namespace().to_string(),
        name: p.name().to_string(),
        status: pod_status(p),
        ready: format!("{ready}/{}", p.spec.containers.len()),
        node: p.spec.node_name.clone().unwrap_or_default(),
        ip: status.pod_ip.clone().unwrap_or_default(),
        restarts: status
            .container_statuses
            .iter()
            .map(|c| c.restart_count)
            .sum(),
        runtime: match p.spec.runtime {
            Runtime::Container => "container",
            Runtime::Vm => "vm",
        },
        created: p.metadata.creation_timestamp,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentRow {
    pub namespace: String,
    pub name: String,
    pub desired: i32,
    pub updated: i32,
    pub ready: i32,
    pub available: i32,
    /// Rollout progress: updated and available replicas over desired, 0–100.
    pub progress: u32,
    pub state: String,
    pub paused: bool,
}

pub fn deployment_row(d: &Deployment) -> DeploymentRow {
    let st = d.status.clone().unwrap_or_default();
    let desired = d.spec.replicas;
    let done = st.updated_replicas.min(st.available_replicas).max(0);
    let progress = if desired <= 0 {
        100
    } else {
        ((done as f64 / desired as f64) * 100.0).round().min(100.0) as u32
    };
    let progressing = st
        .conditions
        .iter()
        .find(|c| c.type_ == "Progressing")
        .and_then(|c| c.reason.clone());
    let state = if d.spec.paused {
        "Paused".to_string()
    } else if progressing.as_deref() == Some("ProgressDeadlineExceeded") {
        "Failed".to_string()
    } else if st.updated_replicas == desired
        && st.available_replicas == desired
        && st.replicas == desired
    {
        "Complete".to_string()
    } else {
        "Progressing".to_string()
    };
    DeploymentRow {
        namespace: d.namespace().to_string(),
        name: d.name().to_string(),
        desired,
        updated: st.updated_replicas,
        ready: st.ready_replicas,
        available: st.available_replicas,
        progress,
        state,
        paused: d.spec.paused,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRow {
    pub namespace: String,
    pub name: String,
    pub type_: String,
    pub cluster_ip: String,
    pub ports: String,
    pub ready: usize,
    pub total: usize,
    /// Requests per second through the service, all nodes (None: not
    /// measured yet).
    pub requests_per_second: Option<f64>,
}

pub fn service_rows(s: &Snapshot) -> Vec<ServiceRow> {
    let by_key: HashMap<(&str, &str), &Endpoints> = s
        .endpoints
        .iter()
        .map(|e| ((e.namespace(), e.name()), e))
        .collect();
    s.services
        .iter()
        .map(|svc| {
            let (ready, not_ready) = by_key
                .get(&(svc.namespace(), svc.name()))
                .map(|e| {
                    e.subsets.iter().fold((0, 0), |(r, n), sub| {
                        (r + sub.addresses.len(), n + sub.not_ready_addresses.len())
                    })
                })
                .unwrap_or_default();
            ServiceRow {
                namespace: svc.namespace().to_string(),
                name: svc.name().to_string(),
                type_: format!("{:?}", svc.spec.type_),
                cluster_ip: svc.spec.cluster_ip.clone().unwrap_or_default(),
                ports: svc
                    .spec
                    .ports
                    .iter()
                    .map(|p| match p.node_port {
                        Some(np) => format!("{}:{np}/{:?}", p.port, p.protocol),
                        None => format!("{}/{:?}", p.port, p.protocol),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
                    .to_uppercase(),
                ready,
                total: ready + not_ready,
                requests_per_second: None,
            }
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq)]
pub struct HpaRow {
    pub namespace: String,
    pub name: String,
    pub target: String,
    /// `current/target` per metric, as kubectl's TARGETS column.
    pub metrics: Vec<String>,
    pub min: i32,
    pub max: i32,
    pub current: i32,
    pub desired: i32,
}

pub fn hpa_row(h: &HorizontalPodAutoscaler) -> HpaRow {
    use drover_proto::types::hpa::MetricSourceType;
    let st = h.status.clone().unwrap_or_default();
    let metrics = h
        .spec
        .metrics
        .iter()
        .map(|m| {
            let (name, target) = match m.type_ {
                MetricSourceType::Resource => match &m.resource {
                    Some(r) => (
                        r.name.clone(),
                        r.target.average_utilization.map_or_else(
                            || {
                                r.target
                                    .average_value
                                    .as_ref()
                                    .map(|q| q.as_str().to_string())
                                    .unwrap_or_default()
                            },
                            |u| format!("{u}%"),
                        ),
                    ),
                    None => ("resource".to_string(), String::new()),
                },
                MetricSourceType::Pods => match &m.pods {
                    Some(p) => (
                        p.metric.name.clone(),
                        p.target
                            .average_value
                            .as_ref()
                            .map(|q| q.as_str().to_string())
                            .unwrap_or_default(),
                    ),
                    None => ("pods".to_string(), String::new()),
                },
                other => (format!("{other:?}"), String::new()),
            };
            let current = st
                .current_metrics
                .iter()
                .find_map(|c| {
                    let v = match (&c.resource, &c.pods) {
                        (Some(r), _) if r.name == name => &r.current,
                        (_, Some(p)) if p.metric.name == name => &p.current,
                        _ => return None,
                    };
                    Some(v.average_utilization.map_or_else(
                        || {
                            v.average_value
                                .as_ref()
                                .map(|q| q.as_str().to_string())
                                .unwrap_or_default()
                        },
                        |u| format!("{u}%"),
                    ))
                })
                .unwrap_or_else(|| "<unknown>".into());
            format!("{name}: {current}/{target}")
        })
        .collect();
    HpaRow {
        namespace: h.namespace().to_string(),
        name: h.name().to_string(),
        target: format!(
            "{}/{}",
            h.spec.scale_target_ref.kind, h.spec.scale_target_ref.name
        ),
        metrics,
        min: h.spec.min_replicas,
        max: h.spec.max_replicas,
        current: st.current_replicas,
        desired: st.desired_replicas,
    }
}

/// Events matching a filter: `type_` (Normal/Warning, empty: all) and a
/// case-insensitive text found in the reason, object or message. Newest first.
pub fn filter_events<'a>(events: &'a [Event], type_: &str, text: &str) -> Vec<&'a Event> {
    let text = text.to_lowercase();
    let mut out: Vec<&Event> = events
        .iter()
        .filter(|e| type_.is_empty() || e.type_ == type_)
        .filter(|e| {
            text.is_empty()
                || e.reason.to_lowercase().contains(&text)
                || e.message.to_lowercase().contains(&text)
                || e.involved_object.name.to_lowercase().contains(&text)
        })
        .collect();
    out.sort_by_key(|e| std::cmp::Reverse(e.last_timestamp));
    out
}

/// Rows `page` (from 0) of `per_page`, and the number of pages.
pub fn paginate<T>(items: &[T], page: usize, per_page: usize) -> (&[T], usize) {
    let per_page = per_page.max(1);
    let pages = items.len().div_ceil(per_page).max(1);
    let page = page.min(pages - 1);
    let start = page * per_page;
    (
        &items[start.min(items.len())..(start + per_page).min(items.len())],
        pages,
    )
}

/// "3m", "2h", "5d": kubectl's AGE.
pub fn age(since: Option<Time>, now: Time) -> String {
    let Some(t) = since else {
        return "-".into();
    };
    let s = (now - t).num_seconds().max(0);
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests;
