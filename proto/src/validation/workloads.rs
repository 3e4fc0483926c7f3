//! Checks for Deployments, ReplicaSets, Services, Endpoints, ConfigMaps,
//! Secrets and HorizontalPodAutoscalers.

use std::collections::BTreeSet;

use base64::Engine;

use super::Errors;
use super::pod::{check_int_or_port_name, validate_pod_spec};
use crate::meta::IntOrString;
use crate::selector::{LabelSelector, Selector};
use crate::types::hpa::{MetricSourceType, MetricTargetType};
use crate::types::pod::PodTemplateSpec;
use crate::types::service::ServiceType;
use crate::types::*;

fn validate_selector_and_template(
    selector: &LabelSelector,
    template: &mut PodTemplateSpec,
    at: &str,
    e: &mut Errors,
) {
    if selector.match_labels.is_empty() && selector.match_expressions.is_empty() {
        e.add(
            format!("{at}.selector"),
            "required: an empty selector would match every pod",
        );
        return;
    }
    match Selector::from_label_selector(selector) {
        Err(err) => e.add(format!("{at}.selector"), err.reason),
        Ok(sel) => {
            if !sel.matches(&template.metadata.labels) {
                e.add(
                    format!("{at}.template.metadata.labels"),
                    format!("`selector` ({sel}) does not match template labels"),
                );
            }
        }
    }
    validate_pod_spec(&mut template.spec, &format!("{at}.template.spec"), e);
}

fn check_percent_or_int(v: &IntOrString) -> Result<(), String> {
    match v {
        IntOrString::Int(n) if *n < 0 => Err("must be >= 0".into()),
        IntOrString::Int(_) => Ok(()),
        IntOrString::String(_) => v.scaled_value(100, true).map(|_| ()),
    }
}

pub(super) fn validate_deployment(d: &mut Deployment, e: &mut Errors) {
    let s = &mut d.spec;
    if s.replicas < 0 {
        e.add("spec.replicas", "must be >= 0");
    }
    if s.revision_history_limit < 0 {
        e.add("spec.revisionHistoryLimit", "must be >= 0");
    }
    if s.min_ready_seconds < 0 {
        e.add("spec.minReadySeconds", "must be >= 0");
    }
    if s.progress_deadline_seconds <= s.min_ready_seconds {
        e.add(
            "spec.progressDeadlineSeconds",
            "must be greater than minReadySeconds",
        );
    }
    if let Some(ru) = &s.strategy.rolling_update {
        e.check(
            "spec.strategy.rollingUpdate.maxSurge",
            check_percent_or_int(&ru.max_surge),
        );
        e.check(
            "spec.strategy.rollingUpdate.maxUnavailable",
            check_percent_or_int(&ru.max_unavailable),
        );
        let zero = |v: &IntOrString| v.scaled_value(100, true).is_ok_and(|n| n == 0);
        if zero(&ru.max_surge) && zero(&ru.max_unavailable) {
            e.add(
                "spec.strategy.rollingUpdate.maxUnavailable",
                "may not be 0 when maxSurge is 0",
            );
        }
    }
    validate_selector_and_template(&s.selector, &mut s.template, "spec", e);
}

pub(super) fn validate_replicaset(rs: &mut ReplicaSet, e: &mut Errors) {
    if rs.spec.replicas < 0 {
        e.add("spec.replicas", "must be >= 0");
    }
    validate_selector_and_template(&rs.spec.selector, &mut rs.spec.template, "spec", e);
}

pub(super) fn validate_service(svc: &mut Service, e: &mut Errors) {
    let spec = &mut svc.spec;
    let headless = spec.cluster_ip.as_deref() == Some("None");
    if spec.ports.is_empty() && !headless {
        e.add("spec.ports", "at least one port is required");
    }
    if let Some(ip) = spec
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")
        && ip.parse::<std::net::Ipv4Addr>().is_err()
    {
        e.add("spec.clusterIP", format!("{ip:?} is not an IPv4 address"));
    }
    let mut names = BTreeSet::new();
    let multi = spec.ports.len() > 1;
    for (i, p) in spec.ports.iter_mut().enumerate() {
        let at = format!("spec.ports[{i}]");
        if !(1..=65535).contains(&p.port) {
            e.add(
                format!("{at}.port"),
                format!("{} must be between 1 and 65535", p.port),
            );
        }
        match &p.name {
            None if multi => e.add(
                format!("{at}.name"),
                "required when a service has several ports",
            ),
            Some(n) if !names.insert(n.clone()) => {
                e.add(format!("{at}.name"), format!("duplicate {n:?}"))
            }
            _ => {}
        }
        match &p.target_port {
            None => p.target_port = Some(IntOrString::Int(p.port)),
            Some(tp) => e.check(format!("{at}.targetPort"), check_int_or_port_name(tp)),
        }
        if let Some(np) = p.node_port {
            if spec.type_ == ServiceType::ClusterIP {
                e.add(
                    format!("{at}.nodePort"),
                    "may only be set when type is NodePort or LoadBalancer",
                );
            } else if !(30000..=32767).contains(&np) {
                e.add(
                    format!("{at}.nodePort"),
                    format!("{np} must be within 30000-32767"),
                );
            }
        }
    }
    for (k, v) in &spec.selector {
        e.check(
            format!("spec.selector[{k}]"),
            crate::selector::check_label_key(k),
        );
        e.check(
            format!("spec.selector[{k}]"),
            crate::selector::check_label_value(v),
        );
    }
}

pub(super) fn validate_endpoints(ep: &mut Endpoints, e: &mut Errors) {
    for (i, s) in ep.subsets.iter().enumerate() {
        for (j, a) in s.addresses.iter().chain(&s.not_ready_addresses).enumerate() {
            if a.ip.parse::<std::net::IpAddr>().is_err() {
                e.add(
                    format!("subsets[{i}].addresses[{j}].ip"),
                    format!("{:?} is not an IP address", a.ip),
                );
            }
        }
    }
}

fn check_data_key(k: &str) -> Result<(), String> {
    let ok = !k.is_empty()
        && k.len() <= 253
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{k:?} must consist of alphanumerics, '-', '_' or '.'"
        ))
    }
}

pub(super) fn validate_configmap(cm: &mut ConfigMap, e: &mut Errors) {
    for k in cm.data.keys() {
        e.check(format!("data[{k}]"), check_data_key(k));
        if cm.binary_data.contains_key(k) {
            e.add(format!("binaryData[{k}]"), "duplicate of a key in data");
        }
    }
    for (k, v) in &cm.binary_data {
        e.check(format!("binaryData[{k}]"), check_data_key(k));
        if base64::engine::general_purpose::STANDARD.decode(v).is_err() {
            e.add(format!("binaryData[{k}]"), "must be base64");
        }
    }
}

pub(super) fn validate_secret(s: &mut Secret, e: &mut Errors) {
    let b64 = base64::engine::general_purpose::STANDARD;
    for (k, v) in std::mem::take(&mut s.string_data) {
        s.data.insert(k, b64.encode(v));
    }
    for (k, v) in &s.data {
        e.check(format!("data[{k}]"), check_data_key(k));
        if b64.decode(v).is_err() {
            e.add(
                format!("data[{k}]"),
                "must be base64 (use stringData for plain text)",
            );
        }
    }
}

pub(super) fn validate_hpa(h: &mut HorizontalPodAutoscaler, e: &mut Errors) {
    let s = &h.spec;
    if s.scale_target_ref.name.is_empty() {
        e.add("spec.scaleTargetRef.name", "required");
    }
    if !matches!(
        s.scale_target_ref.kind.as_str(),
        "Deployment" | "ReplicaSet"
    ) {
        e.add(
            "spec.scaleTargetRef.kind",
            "must be Deployment or ReplicaSet",
        );
    }
    if s.min_replicas < 0 {
        e.add("spec.minReplicas", "must be >= 0");
    }
    if s.max_replicas < 1 {
        e.add("spec.maxReplicas", "must be >= 1");
    }
    if s.max_replicas < s.min_replicas {
        e.add(
            "spec.maxReplicas",
            "must be greater than or equal to minReplicas",
        );
    }
    for (i, m) in s.metrics.iter().enumerate() {
        let at = format!("spec.metrics[{i}]");
        match m.type_ {
            MetricSourceType::Resource => match &m.resource {
                None => e.add(format!("{at}.resource"), "required when type is Resource"),
                Some(r) => {
                    if !matches!(r.name.as_str(), "cpu" | "memory") {
                        e.add(format!("{at}.resource.name"), "must be cpu or memory");
                    }
                    match r.target.type_ {
                        MetricTargetType::Utilization
                            if r.target.average_utilization.is_none_or(|u| u <= 0) =>
                        {
                            e.add(
                                format!("{at}.resource.target.averageUtilization"),
                                "must be > 0",
                            );
                        }
                        MetricTargetType::AverageValue if r.target.average_value.is_none() => {
                            e.add(format!("{at}.resource.target.averageValue"), "required");
                        }
                        MetricTargetType::Value => {
                            e.add(
                                format!("{at}.resource.target.type"),
                                "must be Utilization or AverageValue",
                            );
                        }
                        _ => {}
                    }
                }
            },
            MetricSourceType::Pods => match &m.pods {
                None => e.add(format!("{at}.pods"), "required when type is Pods"),
                Some(p) => {
                    if p.metric.name.is_empty() {
                        e.add(format!("{at}.pods.metric.name"), "required");
                    }
                    if p.target.type_ != MetricTargetType::AverageValue
                        || p.target.average_value.is_none()
                    {
                        e.add(
                            format!("{at}.pods.target"),
                            "type AverageValue with averageValue is required",
                        );
                    }
                }
            },
            other => e.add(
                format!("{at}.type"),
                format!("{other:?} metrics are not supported; use Resource or Pods"),
            ),
        }
    }
}
