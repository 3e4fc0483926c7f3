//! The kind-agnostic object the store and the API carry, and the trait that
//! converts it to and from the typed kinds.

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::decode::{DecodeError, decode};
use crate::{Kind, ObjectMeta};

/// Any API object: type meta, metadata, and the kind's body (`spec`,
/// `status`, `data`, `subsets`...) kept as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Object {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(flatten)]
    pub body: Map<String, Value>,
}

impl Object {
    /// The kind, checked against `apiVersion`.
    pub fn kind(&self) -> Result<Kind, String> {
        Kind::from_type_meta(&self.api_version, &self.kind)
    }

    pub fn name(&self) -> &str {
        &self.metadata.name
    }

    /// `deployment/web`, as messages name objects.
    pub fn display_name(&self) -> String {
        format!("{}/{}", self.kind.to_ascii_lowercase(), self.metadata.name)
    }

    pub fn from_json(bytes: &[u8]) -> Result<Object, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serialising a Map-backed struct cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Everything but `status`: what `generation` tracks.
    pub fn spec_part(&self) -> Map<String, Value> {
        let mut m = self.body.clone();
        m.remove("status");
        m
    }
}

/// A typed kind.
pub trait Resource: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static {
    const KIND: Kind;
    fn metadata(&self) -> &ObjectMeta;
    fn metadata_mut(&mut self) -> &mut ObjectMeta;
    /// Sets `apiVersion` and `kind` to this kind's.
    fn set_type_meta(&mut self);

    fn name(&self) -> &str {
        &self.metadata().name
    }

    fn namespace(&self) -> &str {
        self.metadata().namespace_or_default()
    }

    fn to_object(&self) -> Object {
        let mut copy = self.clone();
        copy.set_type_meta();
        serde_json::to_value(&copy)
            .and_then(serde_json::from_value)
            .unwrap_or_default()
    }

    /// Decodes an object of this kind, ignoring (and dropping) unknown fields.
    fn from_object(object: &Object) -> Result<Self, DecodeError> {
        decode::<Self>(object.to_value()).map(|(v, _unknown)| v)
    }
}

/// Storage key of an object: `{Kind}/{namespace}/{name}` (namespace empty for
/// cluster-scoped kinds).
pub fn object_key(kind: Kind, namespace: &str, name: &str) -> String {
    let ns = if kind.namespaced() { namespace } else { "" };
    format!("{}/{}/{}", kind.name(), ns, name)
}
