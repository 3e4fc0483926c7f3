//! `kubectl apply`'s three-way merge: what the file says now, what it said
//! last time (kept in an annotation on the object), and what the server has.
//! Fields the file sets win; fields the file used to set but no longer does
//! are removed; fields others set (an autoscaler's `replicas`, defaults,
//! status) are left alone.

use serde_json::{Map, Value};

/// The annotation holding the manifest as it was last applied.
pub const LAST_APPLIED: &str = "drover.io/last-applied-configuration";

/// Merges `desired` onto `live`, deleting what `last` had and `desired`
/// dropped. Objects merge key by key; lists and scalars are replaced whole
/// (as JSON merge patch does); an explicit `null` deletes the field.
pub fn three_way(live: &Value, last: Option<&Value>, desired: &Value) -> Value {
    match (live, desired) {
        (Value::Object(live_map), Value::Object(desired_map)) => {
            let last_map = last.and_then(Value::as_object);
            Value::Object(merge_maps(live_map, last_map, desired_map))
        }
        _ => desired.clone(),
    }
}

fn merge_maps(
    live: &Map<String, Value>,
    last: Option<&Map<String, Value>>,
    desired: &Map<String, Value>,
) -> Map<String, Value> {
    let mut out = live.clone();
    for (key, want) in desired {
        if want.is_null() {
            out.remove(key);
            continue;
        }
        let merged = match live.get(key) {
            Some(have) => three_way(have, last.and_then(|l| l.get(key)), want),
            None => want.clone(),
        };
        out.insert(key.clone(), merged);
    }
    if let Some(last) = last {
        for key in last.keys() {
            if !desired.contains_key(key) {
                out.remove(key);
            }
        }
    }
    out
}

/// The part of a manifest that apply owns: labels, annotations and every
/// top-level field but status, in the shape of the object.
pub fn applied_part(manifest: &Value) -> Value {
    let mut out = Map::new();
    let mut meta = Map::new();
    for key in ["labels", "annotations"] {
        if let Some(v) = manifest.pointer(&format!("/metadata/{key}")) {
            let mut v = v.clone();
            if let Some(a) = v.as_object_mut() {
                a.remove(LAST_APPLIED);
            }
            meta.insert(key.into(), v);
        }
    }
    out.insert("metadata".into(), Value::Object(meta));
    if let Some(map) = manifest.as_object() {
        for (k, v) in map {
            if !matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status") {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_set_by_others_survive_and_dropped_fields_go() {
        let live = json!({"spec": {"replicas": 7, "paused": true, "template": {"x": 1}},
                          "metadata": {"labels": {"app": "web", "team": "a"}}});
        let last = json!({"spec": {"paused": true, "template": {"x": 1}},
                          "metadata": {"labels": {"app": "web", "team": "a"}}});
        let desired = json!({"spec": {"template": {"x": 2}},
                             "metadata": {"labels": {"app": "web"}}});
        let merged = three_way(&live, Some(&last), &desired);
        assert_eq!(
            merged["spec"]["replicas"], 7,
            "the autoscaler's replicas stay"
        );
        assert_eq!(
            merged["spec"]["template"]["x"], 2,
            "the file's change applies"
        );
        assert!(
            merged["spec"].get("paused").is_none(),
            "dropped from the file: removed"
        );
        assert!(merged["metadata"]["labels"].get("team").is_none());
        assert_eq!(merged["metadata"]["labels"]["app"], "web");
    }

    #[test]
    fn without_a_last_applied_nothing_is_deleted() {
        let live = json!({"spec": {"replicas": 3, "paused": true}});
        let desired = json!({"spec": {"replicas": 5}});
        let merged = three_way(&live, None, &desired);
        assert_eq!(merged, json!({"spec": {"replicas": 5, "paused": true}}));
    }

    #[test]
    fn lists_are_replaced_whole_and_null_deletes() {
        let live = json!({"spec": {"ports": [1, 2, 3], "x": 1}});
        let desired = json!({"spec": {"ports": [4], "x": null}});
        let merged = three_way(&live, None, &desired);
        assert_eq!(merged, json!({"spec": {"ports": [4]}}));
    }

    #[test]
    fn the_applied_part_leaves_out_identity_status_and_its_own_annotation() {
        let manifest = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "labels": {"a": "b"},
                         "annotations": {LAST_APPLIED: "{}", "note": "x"}},
            "spec": {"ports": []}, "status": {"x": 1}});
        assert_eq!(
            applied_part(&manifest),
            json!({"metadata": {"labels": {"a": "b"}, "annotations": {"note": "x"}},
                   "spec": {"ports": []}})
        );
    }
}
