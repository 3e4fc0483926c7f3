//! Table columns per kind, as kubectl prints them. Pure: objects in, rows out.

use comfy_table::{Table, presets};
use drover_proto::types::hpa::MetricSourceType;
use drover_proto::types::*;
use drover_proto::{Kind, Object, Resource};

use super::age;

/// Column headers for `kind`.
pub fn headers(kind: Kind, wide: bool) -> Vec<&'static str> {
    let mut h: Vec<&str> = match kind {
        Kind::Pod => vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        Kind::Deployment => vec!["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        Kind::ReplicaSet => vec!["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        Kind::Service => vec!["NAME", "TYPE", "CLUSTER-IP", "PORT(S)", "AGE"],
        Kind::Endpoints => vec!["NAME", "ENDPOINTS", "AGE"],
        Kind::Node => vec!["NAME", "STATUS", "RUNTIMES", "AGE", "VERSION"],
        Kind::Namespace => vec!["NAME", "STATUS", "AGE"],
        Kind::ConfigMap => vec!["NAME", "DATA", "AGE"],
        Kind::Secret => vec!["NAME", "TYPE", "DATA", "AGE"],
        Kind::Event => vec!["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        Kind::HorizontalPodAutoscaler => vec![
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE",
        ],
    };
    if wide {
        h.extend(match kind {
            Kind::Pod => vec!["IP", "NODE", "RUNTIME"],
            Kind::Deployment | Kind::ReplicaSet => vec!["CONTAINERS", "IMAGES", "SELECTOR"],
            Kind::Service => vec!["SELECTOR"],
            Kind::Node => vec!["INTERNAL-IP", "POD-CIDR", "KERNEL-VERSION"],
            _ => vec![],
        });
    }
    h
}

fn decode<T: Resource + Default>(o: &Object) -> T {
    T::from_object(o).unwrap_or_default()
}

/// The pod's STATUS column: Terminating, a container's waiting or
/// terminated reason, or the phase.
pub fn pod_status(p: &Pod) -> String {
    if p.metadata.deletion_timestamp.is_some() {
        return "Terminating".into();
    }
    let Some(s) = &p.status else {
        return "Pending".into();
    };
    for c in &s.container_statuses {
        if let Some(st) = &c.state {
            if let Some(r) = st.waiting.as_ref().and_then(|w| w.reason.clone()) {
                return r;
            }
            if let Some(t) = &st.terminated
                && s.phase != pod::PodPhase::Succeeded
            {
                return t
                    .reason
                    .clone()
                    .unwrap_or_else(|| format!("Error ({})", t.exit_code));
            }
        }
    }
    s.reason
        .clone()
        .unwrap_or_else(|| s.phase.as_str().to_string())
}

fn ports(s: &Service) -> String {
    let v: Vec<String> = s
        .spec
        .ports
        .iter()
        .map(|p| {
            let proto = serde_json::to_value(p.protocol)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            match p.node_port {
                Some(np) => format!("{}:{np}/{proto}", p.port),
                None => format!("{}/{proto}", p.port),
            }
        })
        .collect();
    if v.is_empty() {
        "<none>".into()
    } else {
        v.join(",")
    }
}

fn map_or_none(m: &std::collections::BTreeMap<String, String>) -> String {
    if m.is_empty() {
        return "<none>".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn template_columns(
    t: &pod::PodTemplateSpec,
    sel: &drover_proto::selector::LabelSelector,
) -> Vec<String> {
    vec![
        t.spec
            .containers
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
            .join(","),
        t.spec
            .containers
            .iter()
            .map(|c| c.image.clone())
            .collect::<Vec<_>>()
            .join(","),
        drover_proto::selector::Selector::from_label_selector(sel)
            .map(|s| s.to_string())
            .unwrap_or_default(),
    ]
}

/// One row for `o`.
pub fn row(kind: Kind, o: &Object, wide: bool) -> Vec<String> {
    let name = o.metadata.name.clone();
    let created = age(o.metadata.creation_timestamp);
    match kind {
        Kind::Pod => {
            let p: Pod = decode(o);
            let statuses = p
                .status
                .as_ref()
                .map(|s| s.container_statuses.as_slice())
                .unwrap_or(&[]);
            let ready = statuses.iter().filter(|c| c.ready).count();
            let restarts: i32 = statuses.iter().map(|c| c.restart_count).sum();
            let mut r = vec![
                name,
                format!("{ready}/{}", p.spec.containers.len()),
                pod_status(&p),
                restarts.to_string(),
                created,
            ];
            if wide {
                let s = p.status.clone().unwrap_or_default();
                r.push(s.pod_ip.unwrap_or_else(|| "<none>".into()));
                r.push(p.spec.node_name.clone().unwrap_or_else(|| "<none>".into()));
                r.push(p.spec.runtime.as_str().into());
            }
            r
        }
        Kind::Deployment => {
            let d: Deployment = decode(o);
            let s = d.status.clone().unwrap_or_default();
            let mut r = vec![
                name,
                format!("{}/{}", s.ready_replicas, d.spec.replicas),
                s.updated_replicas.to_string(),
                s.available_replicas.to_string(),
                created,
            ];
            if wide {
                r.extend(template_columns(&d.spec.template, &d.spec.selector));
            }
            r
        }
        Kind::ReplicaSet => {
            let rs: ReplicaSet = decode(o);
            let s = rs.status.clone().unwrap_or_default();
            let mut r = vec![
                name,
                rs.spec.replicas.to_string(),
                s.replicas.to_string(),
                s.ready_replicas.to_string(),
                created,
            ];
            if wide {
                r.extend(template_columns(&rs.spec.template, &rs.spec.selector));
            }
            r
        }
        Kind::Service => {
            let s: Service = decode(o);
            let type_ = serde_json::to_value(s.spec.type_)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let mut r = vec![
                name,
                type_,
                s.spec
                    .cluster_ip
                    .clone()
                    .unwrap_or_else(|| "<pending>".into()),
                ports(&s),
                created,
            ];
            if wide {
                r.push(map_or_none(&s.spec.selector));
            }
            r
        }
        Kind::Endpoints => {
            let e: Endpoints = decode(o);
            let eps: Vec<String> = e
                .subsets
                .iter()
                .flat_map(|s| {
                    s.addresses.iter().flat_map(move |a| {
                        s.ports.iter().map(move |p| format!("{}:{}", a.ip, p.port))
                    })
                })
                .collect();
            let shown = if eps.is_empty() {
                "<none>".to_string()
            } else if eps.len() > 3 {
                format!("{} + {} more...", eps[..3].join(","), eps.len() - 3)
            } else {
                eps.join(",")
            };
            vec![name, shown, created]
        }
        Kind::Node => {
            let n: Node = decode(o);
            let mut status = if n.is_ready() {
                "Ready".to_string()
            } else {
                "NotReady".to_string()
            };
            if n.spec.unschedulable {
                status.push_str(",SchedulingDisabled");
            }
            let s = n.status.clone().unwrap_or_default();
            let info = s.node_info.clone().unwrap_or_default();
            let runtimes = if s.runtimes.is_empty() {
                "<none>".into()
            } else {
                s.runtimes.join(",")
            };
            let mut r = vec![name, status, runtimes, created, info.agent_version.clone()];
            if wide {
                let ip = s
                    .addresses
                    .iter()
                    .find(|a| a.type_ == "InternalIP")
                    .map(|a| a.address.clone());
                r.push(ip.unwrap_or_else(|| "<none>".into()));
                r.push(n.spec.pod_cidr.clone().unwrap_or_else(|| "<none>".into()));
                r.push(info.kernel_version);
            }
            r
        }
        Kind::Namespace => {
            let status = if o.metadata.deletion_timestamp.is_some() {
                "Terminating"
            } else {
                "Active"
            };
            vec![name, status.into(), created]
        }
        Kind::ConfigMap => {
            let c: ConfigMap = decode(o);
            vec![
                name,
                (c.data.len() + c.binary_data.len()).to_string(),
                created,
            ]
        }
        Kind::Secret => {
            let s: Secret = decode(o);
            vec![
                name,
                s.type_.clone().unwrap_or_else(|| "Opaque".into()),
                s.data.len().to_string(),
                created,
            ]
        }
        Kind::Event => {
            let e: Event = decode(o);
            let obj = format!(
                "{}/{}",
                e.involved_object.kind.to_ascii_lowercase(),
                e.involved_object.name
            );
            vec![
                age(e.last_timestamp.or(e.metadata.creation_timestamp)),
                e.type_,
                e.reason,
                obj,
                e.message,
            ]
        }
        Kind::HorizontalPodAutoscaler => {
            let h: HorizontalPodAutoscaler = decode(o);
            let s = h.status.clone().unwrap_or_default();
            let targets = hpa_targets(&h);
            let reference = format!(
                "{}/{}",
                h.spec.scale_target_ref.kind, h.spec.scale_target_ref.name
            );
            let targets = if targets.is_empty() {
                "<none>".into()
            } else {
                targets.join(", ")
            };
            vec![
                name,
                reference,
                targets,
                h.spec.min_replicas.to_string(),
                h.spec.max_replicas.to_string(),
                s.current_replicas.to_string(),
                created,
            ]
        }
    }
}

/// Each metric of an HPA as kubectl shows it: `cpu: 45%/50%`,
/// `requests_per_second: 12/10` (`<unknown>` before a measurement).
pub fn hpa_targets(h: &HorizontalPodAutoscaler) -> Vec<String> {
    let s = h.status.clone().unwrap_or_default();
    h.spec
        .metrics
        .iter()
        .map(|m| {
            let current = s.current_metrics.iter().find(|c| c.type_ == m.type_);
            match m.type_ {
                MetricSourceType::Resource => {
                    let want = m
                        .resource
                        .as_ref()
                        .and_then(|r| r.target.average_utilization)
                        .map(|u| format!("{u}%"))
                        .unwrap_or_default();
                    let have = current
                        .and_then(|c| c.resource.as_ref())
                        .and_then(|r| r.current.average_utilization)
                        .map(|u| format!("{u}%"))
                        .unwrap_or_else(|| "<unknown>".into());
                    format!(
                        "{}: {have}/{want}",
                        m.resource.as_ref().map(|r| r.name.as_str()).unwrap_or("?")
                    )
                }
                _ => {
                    let want = m
                        .pods
                        .as_ref()
                        .and_then(|p| p.target.average_value.as_ref())
                        .map(|q| q.to_string())
                        .unwrap_or_default();
                    let have = current
                        .and_then(|c| c.pods.as_ref())
                        .and_then(|p| p.current.average_value.as_ref())
                        .map(|q| q.to_string())
                        .unwrap_or_else(|| "<unknown>".into());
                    format!(
                        "{}: {have}/{want}",
                        m.pods
                            .as_ref()
                            .map(|p| p.metric.name.as_str())
                            .unwrap_or("?")
                    )
                }
            }
        })
        .collect()
}

/// Renders rows as a borderless, aligned table like kubectl's.
pub fn render(headers: &[&str], rows: Vec<Vec<String>>, with_header: bool) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    if with_header {
        t.set_header(headers.iter().map(|h| h.to_string()));
    }
    for r in rows {
        t.add_row(r);
    }
    for c in t.column_iter_mut() {
        c.set_padding((0, 3));
    }
    let out = t.to_string();
    out.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A full table for `objects` of one kind.
pub fn table(kind: Kind, objects: &[Object], wide: bool, namespaces: bool) -> String {
    let mut h = headers(kind, wide);
    let show_ns = namespaces && kind.namespaced();
    if show_ns {
        h.insert(0, "NAMESPACE");
    }
    let rows = objects
        .iter()
        .map(|o| {
            let mut r = row(kind, o, wide);
            if show_ns {
                r.insert(0, o.metadata.namespace_or_default().to_string());
            }
            r
        })
        .collect();
    render(&h, rows, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_aligned_without_borders() {
        let out = render(
            &["NAME", "READY"],
            vec![
                vec!["a".into(), "1/1".into()],
                vec!["longer-name".into(), "0/1".into()],
            ],
            true,
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[0].starts_with("NAME"), "{out}");
        let col = lines[0].find("READY").unwrap();
        assert_eq!(lines[1].find("1/1"), Some(col), "{out}");
        assert_eq!(lines[2].find("0/1"), Some(col), "{out}");
        assert!(!out.contains('|') && !out.contains('+'), "{out}");
    }

    #[test]
    fn pod_status_prefers_reasons() {
        let mut p = Pod::default();
        assert_eq!(pod_status(&p), "Pending");
        p.status = Some(pod::PodStatus {
            phase: pod::PodPhase::Running,
            container_statuses: vec![pod::ContainerStatus {
                name: "c".into(),
                state: Some(pod::ContainerState {
                    waiting: Some(pod::ContainerStateWaiting {
                        reason: Some("CrashLoopBackOff".into()),
                        message: None,
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert_eq!(pod_status(&p), "CrashLoopBackOff");
        p.metadata.deletion_timestamp = Some(chrono::Utc::now());
        assert_eq!(pod_status(&p), "Terminating");
    }
}
