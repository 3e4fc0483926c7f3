//! Secret values stay off the terminal unless asked for: `get -o yaml|json`
//! shows each key with its size instead of its value (`--show-secrets`
//! prints them), and `describe` lists sizes as kubectl does.

use base64::Engine;
use drover_proto::{Kind, Object};
use serde_json::Value;

/// How many bytes a `data` value (base64) holds.
fn decoded_len(value: &Value) -> usize {
    let text = value.as_str().unwrap_or_default();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_or(text.len(), |b| b.len())
}

/// Replaces a Secret's `data` values with their sizes. The placeholder is
/// not base64, so applying a redacted copy back fails instead of storing it.
pub fn redact(object: &mut Object) {
    if object.kind() != Ok(Kind::Secret) {
        return;
    }
    if let Some(Value::Object(data)) = object.body.get_mut("data") {
        for value in data.values_mut() {
            *value = Value::String(format!("<redacted: {} bytes>", decoded_len(value)));
        }
    }
    // `apply`'s copy of the manifest holds the values too.
    for (key, value) in object.metadata.annotations.iter_mut() {
        if key.ends_with("/last-applied-configuration") {
            *value = "<redacted>".into();
        }
    }
}

/// `describe`'s lines for a Secret's data: `password:  16 bytes`.
pub fn sizes(object: &Object) -> Vec<(String, usize)> {
    match object.body.get("data") {
        Some(Value::Object(data)) => data
            .iter()
            .map(|(k, v)| (k.clone(), decoded_len(v)))
            .collect(),
        _ => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Object {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "db", "annotations": {
                "drover.io/last-applied-configuration": "{\"data\":{\"password\":\"aHVudGVyMg==\"}}"
            }},
            "type": "Opaque",
            "data": {"password": "aHVudGVyMg==", "user": "YWRtaW4="}
        }))
        .unwrap()
    }

    #[test]
    fn redaction_keeps_keys_and_sizes_but_no_values() {
        let mut s = secret();
        redact(&mut s);
        let text = String::from_utf8(s.to_json()).unwrap();
        assert!(!text.contains("aHVudGVyMg=="), "{text}");
        assert_eq!(s.body["data"]["password"], "<redacted: 7 bytes>");
        assert_eq!(s.body["data"]["user"], "<redacted: 5 bytes>");
        assert_eq!(s.body["type"], "Opaque");
    }

    #[test]
    fn other_kinds_are_untouched() {
        let mut cm = secret();
        cm.kind = "ConfigMap".into();
        let before = cm.clone();
        redact(&mut cm);
        assert_eq!(cm, before);
    }

    #[test]
    fn sizes_are_decoded_bytes() {
        assert_eq!(
            sizes(&secret()),
            vec![("password".to_string(), 7), ("user".to_string(), 5)]
        );
    }
}
