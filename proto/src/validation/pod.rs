//! Pod spec checks, shared by Pods and the templates of Deployments and ReplicaSets.

use std::collections::BTreeSet;

use super::Errors;
use super::names::check_dns_label;
use crate::meta::IntOrString;
use crate::types::pod::*;

pub(super) fn validate_pod(pod: &mut Pod, e: &mut Errors) {
    validate_pod_spec(&mut pod.spec, "spec", e);
}

fn check_port(port: i32) -> Result<(), String> {
    if (1..=65535).contains(&port) {
        Ok(())
    } else {
        Err(format!("{port} must be between 1 and 65535"))
    }
}

pub(super) fn check_int_or_port_name(p: &IntOrString) -> Result<(), String> {
    match p {
        IntOrString::Int(n) => check_port(*n),
        IntOrString::String(name) => {
            if name.is_empty() || name.len() > 15 || !name.chars().any(|c| c.is_ascii_alphabetic())
            {
                Err(format!(
                    "{name:?} must be a port number or a port name (1-15 characters, at least one letter)"
                ))
            } else {
                Ok(())
            }
        }
    }
}

/// Checks and completes defaults that depend on other fields.
pub(super) fn validate_pod_spec(spec: &mut PodSpec, at: &str, e: &mut Errors) {
    if spec.containers.is_empty() {
        e.add(
            format!("{at}.containers"),
            "at least one container is required",
        );
    }
    if spec.termination_grace_period_seconds < 0 {
        e.add(
            format!("{at}.terminationGracePeriodSeconds"),
            "must be >= 0",
        );
    }
    if spec.runtime == Runtime::Vm && spec.containers.len() > 1 {
        e.add(
            format!("{at}.containers"),
            "a pod with runtime: vm runs exactly one container (its image is the VM's root filesystem)",
        );
    }
    if let Some(snapshot) = &spec.vm_snapshot {
        let at = format!("{at}.vmSnapshot");
        if spec.runtime != Runtime::Vm {
            e.add(at, "a snapshot restores a VM: it needs runtime: vm");
        } else {
            e.check(at, check_dns_label(snapshot));
        }
    }
    let mut names = BTreeSet::new();
    for (i, c) in spec.containers.iter_mut().enumerate() {
        let at = format!("{at}.containers[{i}]");
        if c.name.is_empty() {
            e.add(format!("{at}.name"), "required");
        } else {
            e.check(format!("{at}.name"), check_dns_label(&c.name));
            if !names.insert(c.name.clone()) {
                e.add(
                    format!("{at}.name"),
                    format!("duplicate container name {:?}", c.name),
                );
            }
        }
        if c.image.trim().is_empty() {
            e.add(format!("{at}.image"), "required");
        } else if c.image_pull_policy.is_none() {
            c.image_pull_policy = Some(default_pull_policy(&c.image));
        }
        validate_container(c, &at, e);
    }
    for (i, t) in spec.tolerations.iter().enumerate() {
        if t.operator == TolerationOperator::Exists
            && t.value.as_deref().is_some_and(|v| !v.is_empty())
        {
            e.add(
                format!("{at}.tolerations[{i}].value"),
                "must be empty when operator is Exists",
            );
        }
        if t.key.is_none() && t.operator != TolerationOperator::Exists {
            e.add(
                format!("{at}.tolerations[{i}].operator"),
                "must be Exists when key is empty",
            );
        }
    }
    for (i, c) in spec.topology_spread_constraints.iter().enumerate() {
        if c.max_skew < 1 {
            e.add(
                format!("{at}.topologySpreadConstraints[{i}].maxSkew"),
                "must be >= 1",
            );
        }
        if c.topology_key.is_empty() {
            e.add(
                format!("{at}.topologySpreadConstraints[{i}].topologyKey"),
                "required",
            );
        }
    }
    if let Some(aff) = &spec.affinity {
        for (name, pa) in [
            ("podAffinity", &aff.pod_affinity),
            ("podAntiAffinity", &aff.pod_anti_affinity),
        ] {
            for (i, t) in pa
                .iter()
                .flat_map(|p| &p.required_during_scheduling_ignored_during_execution)
                .enumerate()
            {
                if t.topology_key.is_empty() {
                    e.add(
                        format!("{at}.affinity.{name}.requiredDuringSchedulingIgnoredDuringExecution[{i}].topologyKey"),
                        "required",
                    );
                }
            }
        }
        if let Some(na) = &aff.node_affinity {
            for (i, p) in na
                .preferred_during_scheduling_ignored_during_execution
                .iter()
                .enumerate()
            {
                if !(1..=100).contains(&p.weight) {
                    e.add(
                        format!("{at}.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[{i}].weight"),
                        "must be between 1 and 100",
                    );
                }
            }
        }
    }
}

/// `Always` for `:latest` or untagged images, `IfNotPresent` otherwise, as Kubernetes defaults it.
pub fn default_pull_policy(image: &str) -> PullPolicy {
    if image.contains('@') {
        return PullPolicy::IfNotPresent;
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, tag)) if tag != "latest" => PullPolicy::IfNotPresent,
        _ => PullPolicy::Always,
    }
}

fn validate_container(c: &Container, at: &str, e: &mut Errors) {
    let mut port_names = BTreeSet::new();
    for (i, p) in c.ports.iter().enumerate() {
        e.check(
            format!("{at}.ports[{i}].containerPort"),
            check_port(p.container_port),
        );
        if let Some(hp) = p.host_port {
            e.check(format!("{at}.ports[{i}].hostPort"), check_port(hp));
        }
        if let Some(n) = &p.name {
            e.check(
                format!("{at}.ports[{i}].name"),
                check_int_or_port_name(&IntOrString::String(n.clone())),
            );
            if !port_names.insert(n.clone()) {
                e.add(
                    format!("{at}.ports[{i}].name"),
                    format!("duplicate port name {n:?}"),
                );
            }
        }
    }
    for (i, env) in c.env.iter().enumerate() {
        if env.name.is_empty() || env.name.contains('=') {
            e.add(
                format!("{at}.env[{i}].name"),
                "must be non-empty and contain no '='",
            );
        }
        if let Some(src) = &env.value_from {
            if env.value.is_some() {
                e.add(
                    format!("{at}.env[{i}].valueFrom"),
                    "may not be set together with value",
                );
            }
            let n = [
                src.config_map_key_ref.is_some(),
                src.secret_key_ref.is_some(),
                src.field_ref.is_some(),
            ]
            .iter()
            .filter(|b| **b)
            .count();
            if n != 1 {
                e.add(
                    format!("{at}.env[{i}].valueFrom"),
                    "exactly one of configMapKeyRef, secretKeyRef or fieldRef is required",
                );
            }
        }
    }
    for (which, map) in [
        ("requests", &c.resources.requests),
        ("limits", &c.resources.limits),
    ] {
        for (name, q) in map {
            if q.as_f64() < 0.0 {
                e.add(format!("{at}.resources.{which}.{name}"), "must be >= 0");
            }
        }
    }
    for (name, req) in &c.resources.requests {
        if let Some(limit) = c.resources.limits.get(name)
            && req > limit
        {
            e.add(
                format!("{at}.resources.requests.{name}"),
                format!("{req} must be less than or equal to the {name} limit {limit}"),
            );
        }
    }
    for (which, probe) in [
        ("livenessProbe", &c.liveness_probe),
        ("readinessProbe", &c.readiness_probe),
        ("startupProbe", &c.startup_probe),
    ] {
        if let Some(p) = probe {
            validate_probe(p, &format!("{at}.{which}"), e);
        }
    }
}

fn validate_probe(p: &Probe, at: &str, e: &mut Errors) {
    let handlers = [
        p.exec.is_some(),
        p.http_get.is_some(),
        p.tcp_socket.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if handlers != 1 {
        e.add(at, "exactly one of exec, httpGet or tcpSocket is required");
    }
    if let Some(x) = &p.exec
        && x.command.is_empty()
    {
        e.add(format!("{at}.exec.command"), "required");
    }
    if let Some(h) = &p.http_get {
        e.check(
            format!("{at}.httpGet.port"),
            check_int_or_port_name(&h.port),
        );
    }
    if let Some(t) = &p.tcp_socket {
        e.check(
            format!("{at}.tcpSocket.port"),
            check_int_or_port_name(&t.port),
        );
    }
    for (name, v, min) in [
        ("initialDelaySeconds", p.initial_delay_seconds, 0),
        ("periodSeconds", p.period_seconds, 1),
        ("timeoutSeconds", p.timeout_seconds, 1),
        ("successThreshold", p.success_threshold, 1),
        ("failureThreshold", p.failure_threshold, 1),
    ] {
        if v < min {
            e.add(format!("{at}.{name}"), format!("must be >= {min}"));
        }
    }
}
