//! How objects are printed: aligned tables (kubectl's columns), YAML, JSON, names.

pub mod describe;
pub mod secrets;
pub mod table;

use anyhow::Result;
use drover_proto::Object;
use serde_json::{Value, json};

/// `-o` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Wide,
    Yaml,
    Json,
    Name,
}

impl Format {
    pub fn parse(s: Option<&str>) -> Result<Format> {
        Ok(match s {
            None | Some("") => Format::Table,
            Some("wide") => Format::Wide,
            Some("yaml") => Format::Yaml,
            Some("json") => Format::Json,
            Some("name") => Format::Name,
            Some(other) => {
                anyhow::bail!("unknown output format {other:?}: use wide, yaml, json or name")
            }
        })
    }
}

/// Objects as one document: the object itself, or a `List` of them.
pub fn document(objects: &[Object], single: bool) -> Value {
    if single && objects.len() == 1 {
        return objects[0].to_value();
    }
    json!({
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": ""},
        "items": objects.iter().map(Object::to_value).collect::<Vec<_>>(),
    })
}

pub fn to_yaml(v: &Value) -> Result<String> {
    Ok(serde_saphyr::to_string(v)?)
}

pub fn to_json(v: &Value) -> Result<String> {
    Ok(serde_json::to_string_pretty(v)?)
}

/// Human age like kubectl: `45s`, `12m`, `3h`, `5d`.
pub fn age(since: Option<drover_proto::Time>) -> String {
    let Some(t) = since else {
        return "<unknown>".into();
    };
    let secs = (chrono::Utc::now() - t).num_seconds().max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 2 => format!("{}m", s / 60),
        s if s < 86400 * 2 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}
