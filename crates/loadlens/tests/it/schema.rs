//! A small JSON Schema checker for the subset the committed schemas use (type, const, enum,
//! properties, required, additionalProperties, items, minItems, $ref, minimum/maximum,
//! exclusiveMinimum, pattern, oneOf, anyOf), so the committed schemas and the written JSON (and
//! the scenarios loadlens accepts) cannot drift apart.

use serde_json::Value;

pub fn schema() -> Value {
    let text = include_str!("../../../../schemas/result.schema.json");
    serde_json::from_str(text).unwrap()
}

/// The schema of one JSON line (`--jsonl`).
pub fn jsonl_schema() -> Value {
    let text = include_str!("../../../../schemas/jsonl.schema.json");
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
    if let Some(branches) = s.get("oneOf").and_then(Value::as_array) {
        let results: Vec<Vec<String>> = branches
            .iter()
            .map(|b| {
                let mut e = Vec::new();
                validate(root, b, v, path, &mut e);
                e
            })
            .collect();
        let matched = results.iter().filter(|e| e.is_empty()).count();
        if matched != 1 {
            errors.push(format!(
                "{path}: matches {matched} of the oneOf branches, not 1"
            ));
            // The errors of the closest branch say what is wrong.
            if let Some(closest) = results.into_iter().min_by_key(Vec::len) {
                errors.extend(closest);
            }
        }
    }
    if let Some(branches) = s.get("anyOf").and_then(Value::as_array) {
        let results: Vec<Vec<String>> = branches
            .iter()
            .map(|b| {
                let mut e = Vec::new();
                validate(root, b, v, path, &mut e);
                e
            })
            .collect();
        if !results.iter().any(Vec::is_empty) {
            errors.push(format!("{path}: matches none of the anyOf branches"));
            if let Some(closest) = results.into_iter().min_by_key(Vec::len) {
                errors.extend(closest);
            }
        }
    }
    if let (Some(p), Some(text)) = (s.get("pattern").and_then(Value::as_str), v.as_str()) {
        // The schemas' patterns use the part of ECMA-262 regular expressions that regex-lite
        // reads the same way.
        let re = regex_lite::Regex::new(p).unwrap_or_else(|e| panic!("pattern {p}: {e}"));
        if !re.is_match(text) {
            errors.push(format!("{path}: {text:?} does not match /{p}/"));
        }
    }
    if let (Some(min), Some(x)) = (
        s.get("exclusiveMinimum").and_then(Value::as_f64),
        v.as_f64(),
    ) {
        if x <= min {
            errors.push(format!("{path}: {x} <= {min}"));
        }
    }
    if let (Some(min), Some(arr)) = (s.get("minItems").and_then(Value::as_u64), v.as_array()) {
        if (arr.len() as u64) < min {
            errors.push(format!("{path}: fewer than {min} items"));
        }
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

/// Every line of `text` is a JSON object valid against `schemas/jsonl.schema.json`; returns
/// them parsed.
#[track_caller]
pub fn assert_valid_lines(text: &str) -> Vec<Value> {
    let root = jsonl_schema();
    let mut lines = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("line {}: not JSON ({e}): {line}", i + 1));
        let mut errors = Vec::new();
        validate(&root, &root, &v, "$", &mut errors);
        assert!(
            errors.is_empty(),
            "line {} does not match schemas/jsonl.schema.json:\n{}\n{line}",
            i + 1,
            errors.join("\n")
        );
        lines.push(v);
    }
    lines
}

#[test]
fn the_line_checker_catches_drift() {
    let root = jsonl_schema();
    let check = |v: Value| {
        let mut errors = Vec::new();
        validate(&root, &root, &v, "$", &mut errors);
        errors
    };
    let ok = serde_json::json!({
        "ts": "2026-12-03T04:05:06.789Z", "run_id": "r", "tags": {}, "event": "stop_requested",
        "elapsed_s": 1.5, "message": "interrupted"
    });
    assert_eq!(check(ok.clone()), Vec::<String>::new());
    let mut extra = ok.clone();
    extra["extra"] = 1.into();
    assert!(check(extra)
        .iter()
        .any(|e| e.contains("$.extra: not in the schema")));
    let mut unknown = ok.clone();
    unknown["event"] = "stopped".into();
    assert!(check(unknown)
        .iter()
        .any(|e| e.contains("matches 0 of the oneOf")));
    let mut missing = ok;
    missing.as_object_mut().unwrap().remove("run_id");
    assert!(check(missing)
        .iter()
        .any(|e| e.contains("missing required `run_id`")));
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
