//! Admission: decode an object into its kind (defaulting it), check every
//! field, and re-encode it. Errors name the field, e.g.
//! `spec.replicas: must be >= 0`.

pub mod names;
mod pod;
mod workloads;

use std::fmt;

use serde_json::Value;

use crate::decode::{DecodeError, decode};
use crate::types::*;
use crate::{Kind, Object, Resource};

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// Why an object was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    /// apiVersion/kind: {0}
    #[error("apiVersion/kind: {0}")]
    TypeMeta(String),
    #[error("{0}")]
    Decode(#[from] DecodeError),
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
}

/// An admitted object plus warnings for the client (unknown fields dropped).
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    pub object: Object,
    pub kind: Kind,
    pub warnings: Vec<String>,
}

/// Collects field errors while walking an object.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    /// Adds `result`'s error, if any, at `field`.
    pub fn check(&mut self, field: impl Into<String>, result: Result<(), String>) {
        if let Err(m) = result {
            self.add(field, m);
        }
    }
}

/// Decodes, defaults and validates `object`.
pub fn admit(object: Object) -> Result<Admitted, AdmitError> {
    let kind = object.kind().map_err(AdmitError::TypeMeta)?;
    let value = object.to_value();
    let (object, warnings) = match kind {
        Kind::Pod => admit_as::<Pod>(value, pod::validate_pod)?,
        Kind::Deployment => admit_as::<Deployment>(value, workloads::validate_deployment)?,
        Kind::ReplicaSet => admit_as::<ReplicaSet>(value, workloads::validate_replicaset)?,
        Kind::Service => admit_as::<Service>(value, workloads::validate_service)?,
        Kind::Endpoints => admit_as::<Endpoints>(value, workloads::validate_endpoints)?,
        Kind::Node => admit_as::<Node>(value, |_, _| {})?,
        Kind::Namespace => admit_as::<Namespace>(value, |n: &mut Namespace, e: &mut Errors| {
            e.check("metadata.name", names::check_dns_label(&n.metadata.name));
        })?,
        Kind::ConfigMap => admit_as::<ConfigMap>(value, workloads::validate_configmap)?,
        Kind::Secret => admit_as::<Secret>(value, workloads::validate_secret)?,
        Kind::Event => admit_as::<Event>(value, |_, _| {})?,
        Kind::HorizontalPodAutoscaler => {
            admit_as::<HorizontalPodAutoscaler>(value, workloads::validate_hpa)?
        }
    };
    Ok(Admitted {
        object,
        kind,
        warnings,
    })
}

fn admit_as<T: Resource>(
    value: Value,
    validate: impl FnOnce(&mut T, &mut Errors),
) -> Result<(Object, Vec<String>), AdmitError> {
    let (mut typed, unknown) = decode::<T>(value)?;
    let mut errors = Errors::default();
    validate_meta(T::KIND, typed.metadata(), &mut errors);
    validate(&mut typed, &mut errors);
    if !errors.0.is_empty() {
        return Err(AdmitError::Invalid(errors.0));
    }
    let warnings = unknown
        .into_iter()
        .map(|path| format!("unknown field \"{path}\" ignored"))
        .collect();
    Ok((typed.to_object(), warnings))
}

fn validate_meta(kind: Kind, meta: &crate::ObjectMeta, e: &mut Errors) {
    if meta.name.is_empty() {
        e.add("metadata.name", "required");
    } else {
        let check = match kind {
            // Pod and Service names become host names and DNS labels.
            Kind::Pod | Kind::Service | Kind::Namespace => names::check_dns_label(&meta.name),
            _ => names::check_dns_subdomain(&meta.name),
        };
        e.check("metadata.name", check);
    }
    if let Some(ns) = &meta.namespace
        && kind.namespaced()
    {
        e.check("metadata.namespace", names::check_dns_label(ns));
    }
    for (k, v) in &meta.labels {
        e.check(
            format!("metadata.labels[{k}]"),
            crate::selector::check_label_key(k),
        );
        e.check(
            format!("metadata.labels[{k}]"),
            crate::selector::check_label_value(v),
        );
    }
    for k in meta.annotations.keys() {
        e.check(
            format!("metadata.annotations[{k}]"),
            crate::selector::check_label_key(k),
        );
    }
    for (i, o) in meta.owner_references.iter().enumerate() {
        if o.uid.is_empty() || o.name.is_empty() || o.kind.is_empty() {
            e.add(
                format!("metadata.ownerReferences[{i}]"),
                "kind, name and uid are required",
            );
        }
    }
}

#[cfg(test)]
mod tests;
