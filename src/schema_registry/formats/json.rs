//! JSON Schema: a schema must be valid against its draft's meta-schema (checked by the
//! `jsonschema` crate) and is stored as compact JSON with sorted keys, one form for equal
//! schemas. Compatibility follows the rules of Confluent's `JsonSchemaDiff` for the common
//! cases, as "can every document the writer's schema accepts be accepted by the reader's":
//! types narrowed or widened (`integer` widens to `number`), properties added or removed
//! in open and closed content models, `required` added, `additionalProperties` closed,
//! enums narrowed, string and array lengths and number bounds tightened, and the same
//! recursively through properties, items and `oneOf`/`anyOf` branches. `$ref`s are compared
//! as written, not resolved.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// A parsed JSON schema.
pub struct JsonSchema {
    schema: Value,
}

pub fn parse(text: &str) -> Result<(JsonSchema, String), String> {
    let schema: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if !schema.is_object() && !schema.is_boolean() {
        return Err("a JSON schema is an object or a boolean".into());
    }
    jsonschema::meta::validate(&schema).map_err(|e| e.to_string())?;
    let stored = schema.to_string();
    Ok((JsonSchema { schema }, stored))
}

pub fn incompatibilities(reader: &JsonSchema, writer: &JsonSchema) -> Vec<String> {
    let mut found = Vec::new();
    check(&reader.schema, &writer.schema, "#", &mut found);
    found
}

fn report(found: &mut Vec<String>, error_type: &str, path: &str, description: &str) {
    found.push(format!(
        "{{errorType:'{error_type}', description:'{description} at path '{path}'', path:'{path}'}}"
    ));
}

/// Whether a schema accepts every document (`true`, or an object without constraints).
fn accepts_all(schema: &Value) -> bool {
    match schema {
        Value::Bool(b) => *b,
        Value::Object(o) => o.keys().all(|k| {
            matches!(
                k.as_str(),
                "title" | "description" | "$comment" | "default" | "examples" | "$schema" | "$id"
            )
        }),
        _ => false,
    }
}

/// The types a schema allows; `None` when it does not restrict them.
fn types(schema: &Map<String, Value>) -> Option<BTreeSet<String>> {
    match schema.get("type")? {
        Value::String(t) => Some(BTreeSet::from([t.clone()])),
        Value::Array(ts) => Some(
            ts.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect(),
        ),
        _ => None,
    }
}

fn number(schema: &Map<String, Value>, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64)
}

fn required(schema: &Map<String, Value>) -> BTreeSet<String> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn branches(schema: &Map<String, Value>) -> Option<&Vec<Value>> {
    schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))
        .and_then(Value::as_array)
}

/// Records every way `reader` rejects a document `writer` accepts, at `path`.
fn check(reader: &Value, writer: &Value, path: &str, found: &mut Vec<String>) {
    if accepts_all(reader) || writer == &Value::Bool(false) || reader == writer {
        return;
    }
    let (Value::Object(r), Value::Object(w)) = (reader, writer) else {
        return report(
            found,
            "TYPE_NARROWED",
            path,
            "The new schema accepts fewer documents",
        );
    };
    // A writer with branches: each must be readable. A reader with branches: what the
    // writer writes must be readable by one of them.
    if let Some(wb) = branches(w) {
        for (i, branch) in wb.iter().enumerate() {
            check(reader, branch, &format!("{path}/oneOf/{i}"), found);
        }
        return;
    }
    if let Some(rb) = branches(r) {
        if !rb.iter().any(|branch| {
            let mut probe = Vec::new();
            check(branch, writer, path, &mut probe);
            probe.is_empty()
        }) {
            report(
                found,
                "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
                path,
                "No branch of the new schema accepts what the old one did",
            );
        }
        return;
    }
    if r.get("$ref") != w.get("$ref") {
        report(
            found,
            "REFERENCE_CHANGED",
            path,
            "The referenced schema changed",
        );
    }
    if let Some(rt) = types(r) {
        let covered = |t: &String| rt.contains(t) || (t == "integer" && rt.contains("number"));
        match types(w) {
            Some(wt) if wt.iter().all(covered) => {}
            _ => report(
                found,
                "TYPE_NARROWED",
                path,
                "The type of the new schema is narrower",
            ),
        }
    }
    if let Some(Value::Array(re)) = r.get("enum") {
        let narrowed = match w.get("enum") {
            Some(Value::Array(we)) => we.iter().any(|v| !re.contains(v)),
            _ => true,
        };
        if narrowed {
            report(
                found,
                "ENUM_ARRAY_NARROWED",
                path,
                "The new schema allows fewer enum values",
            );
        }
    }
    bounds(r, w, path, found);
    object(r, w, path, found);
    if let Some(ri) = r.get("items") {
        let wi = w.get("items").unwrap_or(&Value::Bool(true));
        check(ri, wi, &format!("{path}/items"), found);
    }
}

/// Lengths, sizes and number bounds: the reader may not be tighter than the writer.
fn bounds(r: &Map<String, Value>, w: &Map<String, Value>, path: &str, found: &mut Vec<String>) {
    for (key, upper, error) in [
        ("maxLength", true, "MAX_LENGTH"),
        ("minLength", false, "MIN_LENGTH"),
        ("maxItems", true, "MAX_ITEMS"),
        ("minItems", false, "MIN_ITEMS"),
        ("maxProperties", true, "MAX_PROPERTIES"),
        ("minProperties", false, "MIN_PROPERTIES"),
        ("maximum", true, "MAXIMUM"),
        ("minimum", false, "MINIMUM"),
        ("exclusiveMaximum", true, "EXCLUSIVE_MAXIMUM"),
        ("exclusiveMinimum", false, "EXCLUSIVE_MINIMUM"),
    ] {
        let Some(rv) = number(r, key) else { continue };
        match number(w, key) {
            None => report(
                found,
                &format!("{error}_ADDED"),
                path,
                &format!("{key} was added"),
            ),
            Some(wv) if (upper && rv < wv) || (!upper && rv > wv) => {
                let moved = if upper { "DECREASED" } else { "INCREASED" };
                report(
                    found,
                    &format!("{error}_{moved}"),
                    path,
                    &format!("{key} was tightened"),
                );
            }
            Some(_) => {}
        }
    }
    if let Some(rp) = r.get("pattern") {
        if w.get("pattern") != Some(rp) {
            report(
                found,
                "PATTERN_ADDED",
                path,
                "A pattern was added or changed",
            );
        }
    }
    if r.get("uniqueItems") == Some(&Value::Bool(true))
        && w.get("uniqueItems") != Some(&Value::Bool(true))
    {
        report(found, "UNIQUE_ITEMS_ADDED", path, "uniqueItems was added");
    }
}

/// Properties, `required` and `additionalProperties` (an open content model lets a writer
/// put any property anywhere).
fn object(r: &Map<String, Value>, w: &Map<String, Value>, path: &str, found: &mut Vec<String>) {
    let empty = Map::new();
    let rp = r
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let wp = w
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let open = Value::Bool(true);
    let r_extra = r.get("additionalProperties").unwrap_or(&open);
    let w_extra = w.get("additionalProperties").unwrap_or(&open);
    let w_open = w_extra != &Value::Bool(false);
    let w_required = required(w);
    for (name, rs) in rp {
        let at = format!("{path}/properties/{name}");
        match wp.get(name) {
            Some(ws) => check(rs, ws, &at, found),
            // The old schema let writers put anything under this name.
            None if w_open && !accepts_all(rs) => {
                let mut probe = Vec::new();
                check(rs, w_extra, &at, &mut probe);
                if !probe.is_empty() {
                    report(
                        found,
                        "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL",
                        &at,
                        &format!("The property '{name}' was added to an open content model"),
                    );
                }
            }
            None => {}
        }
    }
    for name in required(r) {
        let has_default = rp
            .get(&name)
            .and_then(Value::as_object)
            .is_some_and(|p| p.contains_key("default"));
        if !w_required.contains(&name) && !has_default {
            let error = if wp.contains_key(&name) || w_open {
                "REQUIRED_ATTRIBUTE_ADDED"
            } else {
                "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"
            };
            report(
                found,
                error,
                path,
                &format!("The property '{name}' became required"),
            );
        }
    }
    for (name, ws) in wp {
        if rp.contains_key(name) {
            continue;
        }
        let at = format!("{path}/properties/{name}");
        if r_extra == &Value::Bool(false) {
            report(
                found,
                "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                &at,
                &format!("The property '{name}' was removed from a closed content model"),
            );
        } else {
            check(r_extra, ws, &at, found);
        }
    }
    if r_extra != &open {
        if r_extra == &Value::Bool(false) {
            if w_open {
                report(
                    found,
                    "ADDITIONAL_PROPERTIES_REMOVED",
                    path,
                    "additionalProperties was closed",
                );
            }
        } else if w_open {
            check(
                r_extra,
                w_extra,
                &format!("{path}/additionalProperties"),
                found,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn can_read(reader: &str, writer: &str) -> bool {
        let (r, _) = parse(reader).unwrap();
        let (w, _) = parse(writer).unwrap();
        incompatibilities(&r, &w).is_empty()
    }

    const OPEN: &str = r#"{"type":"object","properties":{"a":{"type":"string"}}}"#;
    const CLOSED: &str =
        r#"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}"#;

    #[test]
    fn a_schema_must_be_valid() {
        assert!(parse(r#"{"type":"object"}"#).is_ok());
        assert!(parse(r#"{"type":12}"#).is_err());
        assert!(parse("not json").is_err());
        assert_eq!(
            parse(r#"{ "type" : "string", "maxLength": 3 }"#).unwrap().1,
            r#"{"maxLength":3,"type":"string"}"#
        );
    }

    #[test]
    fn types_widen_but_do_not_narrow() {
        assert!(can_read(r#"{"type":"number"}"#, r#"{"type":"integer"}"#));
        assert!(!can_read(r#"{"type":"integer"}"#, r#"{"type":"number"}"#));
        assert!(can_read(
            r#"{"type":["string","null"]}"#,
            r#"{"type":"string"}"#
        ));
        assert!(!can_read(
            r#"{"type":"string"}"#,
            r#"{"type":["string","null"]}"#
        ));
    }

    #[test]
    fn properties_in_open_and_closed_models() {
        let open_added =
            r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}}}"#;
        let closed_added = r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},"additionalProperties":false}"#;
        // A property added to an open model: old writers may have put anything there.
        assert!(!can_read(open_added, OPEN));
        // Added to a closed model: old writers never wrote it.
        assert!(can_read(closed_added, CLOSED));
        // Removed from an open model: the reader takes it as an extra.
        assert!(can_read(OPEN, open_added));
        // Removed from a closed model: the reader refuses it.
        assert!(!can_read(CLOSED, closed_added));
        // Closing an open model refuses what old writers added.
        assert!(!can_read(CLOSED, OPEN));
        assert!(can_read(OPEN, CLOSED));
    }

    #[test]
    fn required_and_bounds() {
        let required = r#"{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}"#;
        assert!(!can_read(required, OPEN));
        assert!(can_read(OPEN, required));
        assert!(!can_read(
            r#"{"type":"string","maxLength":3}"#,
            r#"{"type":"string","maxLength":5}"#
        ));
        assert!(can_read(
            r#"{"type":"string","maxLength":5}"#,
            r#"{"type":"string","maxLength":3}"#
        ));
        assert!(!can_read(r#"{"enum":["a"]}"#, r#"{"enum":["a","b"]}"#));
        assert!(can_read(r#"{"enum":["a","b"]}"#, r#"{"enum":["a"]}"#));
    }

    #[test]
    fn nested_items_and_branches() {
        let ints = r#"{"type":"array","items":{"type":"integer"}}"#;
        let nums = r#"{"type":"array","items":{"type":"number"}}"#;
        assert!(can_read(nums, ints));
        assert!(!can_read(ints, nums));
        let either = r#"{"oneOf":[{"type":"string"},{"type":"integer"}]}"#;
        assert!(can_read(either, r#"{"type":"string"}"#));
        assert!(!can_read(r#"{"type":"string"}"#, either));
    }
}
