//! JSON Merge Patch (RFC 7396), as SQLite's `json_patch` applies it: for stores that
//! merge a metadata patch themselves.

use serde_json::{Map, Value};

/// Merges `patch` into `target`: object members are merged recursively, `null` removes
/// a member, anything else replaces.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(members) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(into) = target {
        for (key, value) in members {
            if value.is_null() {
                into.remove(key);
            } else {
                merge_patch(into.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_merge_nulls_remove_and_non_objects_replace() {
        let mut doc = json!({"title": "a", "keep": 1, "nested": {"x": 1, "y": 2}, "gone": true});
        merge_patch(
            &mut doc,
            &json!({"title": "b", "nested": {"y": null, "z": 3}, "gone": null, "new": [1]}),
        );
        assert_eq!(
            doc,
            json!({"title": "b", "keep": 1, "nested": {"x": 1, "z": 3}, "new": [1]})
        );
        let mut scalar = json!(5);
        merge_patch(&mut scalar, &json!({"a": 1}));
        assert_eq!(scalar, json!({"a": 1}));
    }
}
