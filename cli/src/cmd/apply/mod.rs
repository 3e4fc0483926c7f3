//! `drover apply -f` and `drover create -f`.

mod merge;

use anyhow::{Result, bail};
use clap::Args;
use drover_proto::client::{Client, ClientError};
use drover_proto::validation::admit;
use drover_proto::{Kind, Object};

use super::{about, connect, display};
use crate::files::read_manifests;

#[derive(Args)]
pub struct ApplyArgs {
    /// Manifest file, directory, or `-` for standard input (repeatable).
    #[arg(short = 'f', long = "filename", required = true)]
    files: Vec<String>,
    /// Namespace for objects that do not name one.
    #[arg(short = 'n', long)]
    namespace: Option<String>,
}

impl ApplyArgs {
    pub fn from_files(files: Vec<String>) -> ApplyArgs {
        ApplyArgs {
            files,
            namespace: None,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    Create,
}

/// What apply did to one object.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Configured,
    Unchanged,
}

pub async fn run(server: &str, args: ApplyArgs, mode: Mode) -> Result<()> {
    let manifests = read_manifests(&args.files)?;
    if manifests.is_empty() {
        bail!("no objects found in {}", args.files.join(", "));
    }
    // Validate everything locally first: a bad document applies nothing.
    let mut objects = Vec::new();
    for m in manifests {
        let mut o = m.object;
        if let (Some(ns), None) = (&args.namespace, &o.metadata.namespace) {
            o.metadata.namespace = Some(ns.clone());
        }
        let admitted =
            admit(o.clone()).map_err(|e| anyhow::anyhow!("{}: {e} ({})", display(&o), m.source))?;
        for w in &admitted.warnings {
            eprintln!("Warning: {}: {w}", display(&o));
        }
        objects.push((admitted.kind, o));
    }
    let client = connect(server).await?;
    let mut failed = 0;
    for (kind, o) in objects {
        let result = match mode {
            Mode::Apply => apply_one(&client, kind, &o).await,
            Mode::Create => client.create(&o).await.map(|_| Outcome::Created),
        };
        match result {
            Ok(outcome) => {
                let word = match outcome {
                    Outcome::Created => "created",
                    Outcome::Configured => "configured",
                    Outcome::Unchanged => "unchanged",
                };
                println!("{} {word}", display(&o));
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {}", about(&o, e));
            }
        }
    }
    if failed > 0 {
        bail!("{failed} object(s) failed");
    }
    Ok(())
}

/// Creates the object, or updates it when what the file says differs from
/// what the server has (compared after defaulting, so unchanged files stay
/// unchanged). Retries on concurrent modification.
pub async fn apply_one(
    client: &Client,
    kind: Kind,
    desired: &Object,
) -> Result<Outcome, ClientError> {
    let ns = desired.metadata.namespace_or_default().to_string();
    for _ in 0..5 {
        let existing = match client.get(kind, &ns, &desired.metadata.name).await {
            Ok(o) => o,
            Err(ClientError::NotFound(_)) => match client.create(&with_last_applied(desired)).await
            {
                Ok(_) => return Ok(Outcome::Created),
                Err(ClientError::AlreadyExists(_)) => continue,
                Err(e) => return Err(e),
            },
            Err(e) => return Err(e),
        };
        let merged = merge(&existing, desired).map_err(ClientError::Invalid)?;
        if same_intent(&existing, &merged) {
            return Ok(Outcome::Unchanged);
        }
        match client.update(&merged).await {
            Ok(_) => return Ok(Outcome::Configured),
            Err(ClientError::Conflict(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ClientError::Conflict(format!(
        "{} kept changing while applying; try again",
        desired.display_name()
    )))
}

/// `desired` carrying itself as the last-applied configuration.
fn with_last_applied(desired: &Object) -> Object {
    let mut o = desired.clone();
    let applied = merge::applied_part(&desired.to_value());
    o.metadata
        .annotations
        .insert(merge::LAST_APPLIED.into(), applied.to_string());
    o
}

/// The update to send: a three-way merge of the file, what was last
/// applied and what the server has (so fields others set, such as an
/// autoscaler's replicas, survive), defaulted, on top of the server's
/// identity and status.
fn merge(existing: &Object, desired: &Object) -> Result<Object, String> {
    let want = merge::applied_part(&desired.to_value());
    let last = existing
        .metadata
        .annotations
        .get(merge::LAST_APPLIED)
        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok());
    let live = merge::applied_part(&existing.to_value());
    let merged_part = merge::three_way(&live, last.as_ref(), &want);

    let mut candidate = existing.clone();
    let meta = |key: &str| -> std::collections::BTreeMap<String, String> {
        merged_part
            .pointer(&format!("/metadata/{key}"))
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    };
    candidate.metadata.labels = meta("labels");
    candidate.metadata.annotations = meta("annotations");
    candidate
        .metadata
        .annotations
        .insert(merge::LAST_APPLIED.into(), want.to_string());
    candidate.body = merged_part
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.as_str() != "metadata")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    if !desired.metadata.owner_references.is_empty() {
        candidate.metadata.owner_references = desired.metadata.owner_references.clone();
    }
    if !desired.metadata.finalizers.is_empty() {
        candidate.metadata.finalizers = desired.metadata.finalizers.clone();
    }
    // Default it as the server would, so an unchanged file compares equal.
    let admitted = admit(candidate).map_err(|e| e.to_string())?;
    let mut merged = admitted.object;
    merged.body = merged.spec_part();
    if let Some(s) = existing.body.get("status").cloned() {
        merged.body.insert("status".into(), s);
    }
    Ok(merged)
}

fn same_intent(existing: &Object, merged: &Object) -> bool {
    existing.metadata.labels == merged.metadata.labels
        && existing.metadata.annotations == merged.metadata.annotations
        && existing.metadata.owner_references == merged.metadata.owner_references
        && existing.metadata.finalizers == merged.metadata.finalizers
        && existing.spec_part() == merged.spec_part()
}
