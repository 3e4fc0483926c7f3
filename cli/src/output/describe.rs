//! `describe` output: metadata, kind-specific details, and events at the bottom.

use std::fmt::Write;

use drover_proto::types::*;
use drover_proto::{Kind, Object, Resource};

use super::{age, table};

fn kv(out: &mut String, key: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{:<20}{value}", format!("{key}:"));
}

fn map_lines(m: &std::collections::BTreeMap<String, String>) -> String {
    if m.is_empty() {
        return "<none>".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(&format!("\n{:<20}", ""))
}

fn conditions(out: &mut String, conds: &[drover_proto::meta::Condition]) {
    if conds.is_empty() {
        return;
    }
    let _ = writeln!(out, "Conditions:");
    let rows = conds
        .iter()
        .map(|c| {
            vec![
                format!("  {}", c.type_),
                c.status.clone(),
                c.reason.clone().unwrap_or_default(),
                c.message.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let _ = writeln!(
        out,
        "{}",
        table::render(&["  Type", "Status", "Reason", "Message"], rows, true)
    );
}

fn hpa_details(out: &mut String, h: &HorizontalPodAutoscaler) {
    let s = h.status.clone().unwrap_or_default();
    let target = &h.spec.scale_target_ref;
    kv(out, "Reference", format!("{}/{}", target.kind, target.name));
    let _ = writeln!(out, "Metrics:            ( current / target )");
    for t in table::hpa_targets(h) {
        let _ = writeln!(out, "  {t}");
    }
    kv(out, "Min replicas", h.spec.min_replicas);
    kv(out, "Max replicas", h.spec.max_replicas);
    kv(
        out,
        format!("{} pods", target.kind).as_str(),
        format!(
            "{} current / {} desired",
            s.current_replicas, s.desired_replicas
        ),
    );
    if let Some(t) = s.last_scale_time {
        kv(out, "Last scale", t.to_rfc3339());
    }
    conditions(out, &s.conditions);
}

fn pod_details(out: &mut String, p: &Pod) {
    let s = p.status.clone().unwrap_or_default();
    kv(out, "Runtime", p.spec.runtime.as_str());
    kv(out, "Node", p.spec.node_name.as_deref().unwrap_or("<none>"));
    kv(out, "Status", table::pod_status(p));
    kv(out, "IP", s.pod_ip.as_deref().unwrap_or("<none>"));
    kv(
        out,
        "Restart Policy",
        format!("{:?}", p.spec.restart_policy),
    );
    let _ = writeln!(out, "Containers:");
    for c in &p.spec.containers {
        let _ = writeln!(out, "  {}:", c.name);
        let _ = writeln!(out, "    Image:      {}", c.image);
        if !c.command.is_empty() {
            let _ = writeln!(out, "    Command:    {}", c.command.join(" "));
        }
        if !c.args.is_empty() {
            let _ = writeln!(out, "    Args:       {}", c.args.join(" "));
        }
        for port in &c.ports {
            let _ = writeln!(
                out,
                "    Port:       {}/{:?}",
                port.container_port, port.protocol
            );
        }
        for (which, m) in [
            ("Requests", &c.resources.requests),
            ("Limits", &c.resources.limits),
        ] {
            if !m.is_empty() {
                let v: Vec<String> = m.iter().map(|(k, q)| format!("{k}={q}")).collect();
                let _ = writeln!(
                    out,
                    "    {which}:{}{}",
                    " ".repeat(12 - which.len() - 1),
                    v.join(", ")
                );
            }
        }
        if let Some(cs) = s.container_statuses.iter().find(|cs| cs.name == c.name) {
            let state = match &cs.state {
                Some(st) if st.running.is_some() => "Running".to_string(),
                Some(st) if st.waiting.is_some() => format!(
                    "Waiting ({})",
                    st.waiting
                        .as_ref()
                        .and_then(|w| w.reason.clone())
                        .unwrap_or_default()
                ),
                Some(st) if st.terminated.is_some() => {
                    let t = st.terminated.clone().unwrap_or_default();
                    format!(
                        "Terminated ({}, exit code {})",
                        t.reason.unwrap_or_default(),
                        t.exit_code
                    )
                }
                _ => "Unknown".into(),
            };
            let _ = writeln!(out, "    State:      {state}");
            let _ = writeln!(out, "    Ready:      {}", cs.ready);
            let _ = writeln!(out, "    Restarts:   {}", cs.restart_count);
        }
    }
    conditions(out, &s.conditions);
}

fn body_yaml(out: &mut String, o: &Object) {
    for (k, v) in &o.body {
        let text = super::to_yaml(v).unwrap_or_default();
        let _ = writeln!(out, "{}:", capitalize(k));
        for line in text.lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
}

/// Type and the size of each value, never the values (as kubectl).
fn secret_details(out: &mut String, o: &Object) {
    let type_ = o.body.get("type").and_then(|t| t.as_str());
    kv(out, "Type", type_.unwrap_or("Opaque"));
    let _ = writeln!(out, "\nData\n====");
    for (key, len) in super::secrets::sizes(o) {
        let _ = writeln!(out, "{key}:  {len} bytes");
    }
    let _ = writeln!(out);
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// The full description of `o` with `events` about it.
pub fn describe(kind: Kind, o: &Object, events: &[Object]) -> String {
    let mut out = String::new();
    let m = &o.metadata;
    kv(&mut out, "Name", &m.name);
    if kind.namespaced() {
        kv(&mut out, "Namespace", m.namespace_or_default());
    }
    kv(&mut out, "Kind", kind.name());
    kv(&mut out, "Labels", map_lines(&m.labels));
    kv(&mut out, "Annotations", map_lines(&m.annotations));
    kv(&mut out, "UID", m.uid.as_deref().unwrap_or(""));
    kv(
        &mut out,
        "Resource Version",
        m.resource_version.as_deref().unwrap_or(""),
    );
    if let Some(g) = m.generation {
        kv(&mut out, "Generation", g);
    }
    if let Some(t) = m.creation_timestamp {
        kv(
            &mut out,
            "Created",
            format!("{} ({} ago)", t.to_rfc3339(), age(Some(t))),
        );
    }
    if let Some(t) = m.deletion_timestamp {
        kv(&mut out, "Terminating Since", t.to_rfc3339());
    }
    if let Some(c) = m.controller_ref() {
        kv(&mut out, "Controlled By", format!("{}/{}", c.kind, c.name));
    }
    if !m.finalizers.is_empty() {
        kv(&mut out, "Finalizers", m.finalizers.join(", "));
    }
    match kind {
        Kind::Pod => pod_details(&mut out, &Pod::from_object(o).unwrap_or_default()),
        Kind::Node => {
            let n = Node::from_object(o).unwrap_or_default();
            kv(&mut out, "Unschedulable", n.spec.unschedulable);
            body_yaml(&mut out, o);
        }
        Kind::HorizontalPodAutoscaler => hpa_details(
            &mut out,
            &HorizontalPodAutoscaler::from_object(o).unwrap_or_default(),
        ),
        Kind::Secret => secret_details(&mut out, o),
        _ => body_yaml(&mut out, o),
    }
    let _ = writeln!(out, "Events:");
    if events.is_empty() {
        let _ = writeln!(out, "  <none>");
    } else {
        let mut evs: Vec<Event> = events
            .iter()
            .filter_map(|e| Event::from_object(e).ok())
            .collect();
        evs.sort_by_key(|e| e.last_timestamp.or(e.metadata.creation_timestamp));
        let rows = evs
            .iter()
            .map(|e| {
                let seen = age(e.last_timestamp.or(e.metadata.creation_timestamp));
                let seen = if e.count > 1 {
                    format!("{seen} (x{})", e.count)
                } else {
                    seen
                };
                vec![
                    format!("  {}", e.type_),
                    e.reason.clone(),
                    seen,
                    e.source.component.clone(),
                    e.message.clone(),
                ]
            })
            .collect();
        let _ = writeln!(
            out,
            "{}",
            table::render(&["  Type", "Reason", "Age", "From", "Message"], rows, true)
        );
    }
    out
}
