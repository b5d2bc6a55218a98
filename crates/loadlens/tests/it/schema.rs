//! A small JSON Schema checker for the subset `schemas/result.schema.json` uses (type, const,
//! enum, properties, required, additionalProperties, items, $ref, minimum/maximum), so the
//! committed schema and the written JSON cannot drift apart.

use serde_json::Value;

pub fn schema() -> Value {
    let text = include_str!("../../../../schemas/result.schema.json");
    serde_json::from_str(text).unwrap()
}

/// Errors of `v` against `s` (empty: valid).
pub fn validate(root: &Value, s: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        // `#/$defs/x` or `#/definitions/x`.
        let target = r
            .trim_start_matches("#/")
            .split('/')
            .fold(root, |node, key| &node[key]);
        return validate(root, target, v, path, errors);
    }
    if let Some(c) = s.get("const") {
        if c != v {
            errors.push(format!("{path}: expected {c}, got {v}"));
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            errors.push(format!("{path}: {v} not in {e:?}"));
        }
    }
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "number" => v.is_number(),
            "integer" => v.is_u64() || v.is_i64(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => false,
        });
        if !ok {
            errors.push(format!("{path}: expected {types:?}, got {v}"));
            return;
        }
    }
    if let (Some(min), Some(x)) = (s.get("minimum").and_then(Value::as_f64), v.as_f64()) {
        if x < min {
            errors.push(format!("{path}: {x} < {min}"));
        }
    }
    if let (Some(max), Some(x)) = (s.get("maximum").and_then(Value::as_f64), v.as_f64()) {
        if x > max {
            errors.push(format!("{path}: {x} > {max}"));
        }
    }
    if let Some(obj) = v.as_object() {
        let props = s.get("properties").and_then(Value::as_object);
        if let Some(req) = s.get("required").and_then(Value::as_array) {
            for r in req.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    errors.push(format!("{path}: missing required `{r}`"));
                }
            }
        }
        for (k, val) in obj {
            let p = format!("{path}.{k}");
            match props.and_then(|p| p.get(k)) {
                Some(ps) => validate(root, ps, val, &p, errors),
                None => match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => errors.push(format!("{p}: not in the schema")),
                    Some(ap @ Value::Object(_)) => validate(root, ap, val, &p, errors),
                    _ => {}
                },
            }
        }
    }
    if let (Some(arr), Some(items)) = (v.as_array(), s.get("items")) {
        for (i, item) in arr.iter().enumerate() {
            validate(root, items, item, &format!("{path}[{i}]"), errors);
        }
    }
}

pub fn assert_valid(v: &Value) {
    let root = schema();
    let mut errors = Vec::new();
    validate(&root, &root, v, "$", &mut errors);
    assert!(
        errors.is_empty(),
        "result does not match schemas/result.schema.json:\n{}",
        errors.join("\n")
    );
}

#[test]
fn the_checker_catches_drift() {
    let root = schema();
    let mut errors = Vec::new();
    validate(
        &root,
        &root,
        &serde_json::json!({"format_version": 2, "extra": 1}),
        "$",
        &mut errors,
    );
    assert!(errors.iter().any(|e| e.contains("expected 1")));
    assert!(errors
        .iter()
        .any(|e| e.contains("$.extra: not in the schema")));
    assert!(errors.iter().any(|e| e.contains("missing required `run`")));
}
