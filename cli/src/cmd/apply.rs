//! `drover apply -f` and `drover create -f`.

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
            Err(ClientError::NotFound(_)) => match client.create(desired).await {
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

/// The update to send: the file's labels, annotations and body (defaulted),
/// on top of the server's identity and status.
fn merge(existing: &Object, desired: &Object) -> Result<Object, String> {
    let admitted = admit(desired.clone()).map_err(|e| e.to_string())?;
    let mut merged = existing.clone();
    merged.metadata.labels = admitted.object.metadata.labels.clone();
    merged.metadata.annotations = admitted.object.metadata.annotations.clone();
    if !desired.metadata.owner_references.is_empty() {
        merged.metadata.owner_references = admitted.object.metadata.owner_references.clone();
    }
    if !desired.metadata.finalizers.is_empty() {
        merged.metadata.finalizers = admitted.object.metadata.finalizers.clone();
    }
    let status = existing.body.get("status").cloned();
    merged.body = admitted.object.spec_part();
    if let Some(s) = status {
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
