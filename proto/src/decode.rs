//! Decoding JSON into typed kinds with the failing field's path in the error
//! and a list of unknown fields (warned about, not fatal, so Kubernetes
//! manifests apply).

use serde::de::DeserializeOwned;
use serde_json::Value;

/// A type error at a field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct DecodeError {
    pub path: String,
    pub message: String,
}

/// Decodes `value`, returning the paths of fields the type does not know.
pub fn decode<T: DeserializeOwned>(value: Value) -> Result<(T, Vec<String>), DecodeError> {
    let mut unknown = Vec::new();
    let mut record = |path: serde_ignored::Path<'_>| unknown.push(path.to_string());
    let de = serde_ignored::Deserializer::new(value, &mut record);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok((v, unknown)),
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." {
                "(root)".to_string()
            } else {
                path
            };
            Err(DecodeError {
                path,
                message: e.into_inner().to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Deployment;

    #[test]
    fn reports_path_of_type_errors_and_unknown_fields() {
        let v = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "colour": "blue"},
            "spec": {"replicas": "three"}
        });
        let err = decode::<Deployment>(v).unwrap_err();
        assert_eq!(err.path, "spec.replicas");
        assert!(err.message.contains("invalid type"), "{}", err.message);

        let v = serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "colour": "blue"},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "a", "image": "b", "volumeMounts": []}]}}}
        });
        let (d, unknown) = decode::<Deployment>(v).unwrap();
        assert_eq!(d.spec.replicas, 3);
        assert_eq!(
            unknown,
            vec![
                "metadata.colour",
                "spec.template.spec.containers.0.volumeMounts"
            ]
        );
    }
}
