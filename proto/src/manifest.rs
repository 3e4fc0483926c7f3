//! Reading manifests: multi-document YAML (or JSON) into objects, with the
//! file and document named in every error.

use serde_json::Value;

use crate::Object;

/// One document of a manifest file.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Where it came from, e.g. `web.yaml#2` (1-based document number).
    pub source: String,
    pub object: Object,
}

/// Why a manifest could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("{file}: invalid YAML: {message}")]
    Yaml { file: String, message: String },
    #[error("{file}: {message}")]
    Shape { file: String, message: String },
}

/// Parses every non-empty document. `kind: List` documents are flattened.
pub fn parse_manifests(text: &str, source: &str) -> Result<Vec<Manifest>, ManifestError> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).map_err(|e| ManifestError::Yaml {
        file: source.to_string(),
        message: e.to_string(),
    })?;
    let mut out = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        let here = format!("{source}#{}", i + 1);
        match doc {
            Value::Null => continue,
            Value::Object(ref m) if m.get("kind").and_then(Value::as_str) == Some("List") => {
                let items = m
                    .get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for (j, item) in items.into_iter().enumerate() {
                    out.push(to_manifest(item, format!("{here}.items[{j}]"))?);
                }
            }
            other => out.push(to_manifest(other, here)?),
        }
    }
    Ok(out)
}

fn to_manifest(doc: Value, source: String) -> Result<Manifest, ManifestError> {
    let shape = |message: String| ManifestError::Shape {
        file: source.clone(),
        message,
    };
    if !doc.is_object() {
        return Err(shape(
            "expected a mapping with apiVersion, kind and metadata".into(),
        ));
    }
    for field in ["apiVersion", "kind"] {
        if !doc.get(field).is_some_and(Value::is_string) {
            return Err(shape(format!("{field}: required")));
        }
    }
    let object: Object = serde_path_to_error::deserialize(doc)
        .map_err(|e| shape(format!("{}: {}", e.path(), e.inner())))?;
    Ok(Manifest { source, object })
}

/// What `drover apply -f` and the server make of a manifest's bytes:
/// parsed, then each object admitted (decoded, defaulted, validated).
/// For the fuzz target and its stable regression test; must never panic.
#[doc(hidden)]
pub fn fuzz_manifest(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(manifests) = parse_manifests(text, "fuzz.yaml") {
        for m in manifests {
            let _ = crate::validation::admit(m.object);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_and_lists() {
        let text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\nkind: List\napiVersion: v1\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: c}, data: {k: v}}\n";
        let m = parse_manifests(text, "f.yaml").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].object.kind, "ConfigMap");
        assert_eq!(m[1].source, "f.yaml#2.items[0]");
    }

    #[test]
    fn errors_name_the_source() {
        let e = parse_manifests("kind: [unclosed", "bad.yaml").unwrap_err();
        assert!(e.to_string().starts_with("bad.yaml: invalid YAML"), "{e}");
        let e = parse_manifests("metadata: {name: x}\n", "f.yaml").unwrap_err();
        assert_eq!(e.to_string(), "f.yaml#1: apiVersion: required");
        let e = parse_manifests("- 1\n- 2\n", "f.yaml").unwrap_err();
        assert!(e.to_string().contains("expected a mapping"), "{e}");
        let e = parse_manifests(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: [1]}\n",
            "f.yaml",
        )
        .unwrap_err();
        assert!(e.to_string().contains("metadata.name"), "{e}");
    }

    #[test]
    fn json_is_yaml() {
        let m = parse_manifests(
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"x"}}"#,
            "j",
        )
        .unwrap();
        assert_eq!(m[0].object.metadata.name, "x");
    }
}
