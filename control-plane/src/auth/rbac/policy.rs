//! The bindings file (`--authorization-policy-file`): Kubernetes-shaped
//! `rbac.authorization.k8s.io/v1` ClusterRoleBinding and RoleBinding
//! documents, so a binding reads as it would in Kubernetes.

use serde::Deserialize;

use super::{Binding, Subject};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BindingDoc {
    kind: String,
    #[serde(default)]
    metadata: Metadata,
    role_ref: RoleRef,
    #[serde(default)]
    subjects: Vec<SubjectDoc>,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default)]
    name: String,
    namespace: Option<String>,
}

#[derive(Deserialize)]
struct RoleRef {
    #[serde(default)]
    kind: String,
    name: String,
}

#[derive(Deserialize)]
struct SubjectDoc {
    kind: String,
    name: String,
}

/// Why the bindings file was refused; names the file and the document.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{file}: {message}")]
    Yaml { file: String, message: String },
    #[error("{file}#{doc}: {message}")]
    Binding {
        file: String,
        doc: usize,
        message: String,
    },
}

/// Parses the bindings in `text` (from `file`); `roles` are those a
/// `roleRef` may name.
pub fn parse_policy<'a>(
    text: &str,
    file: &str,
    roles: impl Iterator<Item = &'a str> + Clone,
) -> Result<Vec<Binding>, PolicyError> {
    let docs: Vec<Option<BindingDoc>> =
        serde_saphyr::from_multiple(text).map_err(|e| PolicyError::Yaml {
            file: file.to_string(),
            message: e.to_string(),
        })?;
    let mut out = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        let Some(doc) = doc else { continue };
        let fail = |message: String| PolicyError::Binding {
            file: file.to_string(),
            doc: i + 1,
            message,
        };
        let namespace = match (doc.kind.as_str(), doc.metadata.namespace) {
            ("ClusterRoleBinding", _) => None,
            ("RoleBinding", Some(ns)) if !ns.is_empty() => Some(ns),
            ("RoleBinding", _) => {
                return Err(fail("a RoleBinding needs metadata.namespace".into()));
            }
            (other, _) => {
                return Err(fail(format!(
                    "kind: {other:?} is not ClusterRoleBinding or RoleBinding"
                )));
            }
        };
        if !matches!(doc.role_ref.kind.as_str(), "" | "ClusterRole") {
            return Err(fail(format!(
                "roleRef.kind: {:?}: only the built-in ClusterRoles can be bound",
                doc.role_ref.kind
            )));
        }
        if !roles.clone().any(|r| r == doc.role_ref.name) {
            let known: Vec<&str> = roles.clone().collect();
            return Err(fail(format!(
                "roleRef.name: no role {:?} (known: {})",
                doc.role_ref.name,
                known.join(", ")
            )));
        }
        let mut subjects = Vec::new();
        for (j, s) in doc.subjects.into_iter().enumerate() {
            subjects.push(match s.kind.as_str() {
                "User" => Subject::User(s.name),
                "Group" => Subject::Group(s.name),
                other => {
                    return Err(fail(format!(
                        "subjects[{j}].kind: {other:?} is not User or Group"
                    )));
                }
            });
        }
        out.push(Binding {
            name: doc.metadata.name,
            namespace,
            role: doc.role_ref.name,
            subjects,
        });
    }
    Ok(out)
}
