//! `v1` Event: what happened to an object, shown by `drover describe`.

use serde::{Deserialize, Serialize};

use super::config::specless_resource;
use crate::meta::{ObjectReference, Time};
use crate::{Kind, ObjectMeta};

/// A report of something that happened to `involvedObject`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub involved_object: ObjectReference,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub source: EventSource,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_timestamp: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_timestamp: Option<Time>,
    #[serde(default = "one")]
    pub count: i32,
    /// `Normal` or `Warning`.
    #[serde(rename = "type", default = "normal")]
    pub type_: String,
}

fn one() -> i32 {
    1
}
fn normal() -> String {
    "Normal".into()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventSource {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub component: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

specless_resource!(Event, Kind::Event);
