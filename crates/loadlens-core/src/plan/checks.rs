//! Compiling the parts of a request that look at or reuse its response: checks, captures,
//! JSON bodies as templates, and the variables a user type's captures and loops define.

use std::time::Duration;

use http::header::HeaderName;

use crate::inspect::{Capture, Check, Predicate, Source};
use crate::jsonpath::JsonPath;
use crate::scenario::{CaptureSpec, CheckSpec, Step};
use crate::template::{Names, Template};

use super::compile::Scope;

/// A JSON value as a template: string values may contain `{{ }}`; a string that is exactly one
/// expression renders as raw JSON when its value is a number, boolean, null, object or array.
pub(super) fn json_template(
    v: &serde_json::Value,
    scope: &mut Scope<'_>,
) -> Result<Template, String> {
    use serde_json::Value;
    let mut t = Template::default();
    match v {
        Value::String(s) if s.contains("{{") => {
            let inner = Template::compile(s, scope).map_err(|e| e.to_string())?;
            let whole = s.trim().starts_with("{{")
                && s.trim().ends_with("}}")
                && s.matches("{{").count() == 1;
            t.push(if whole { inner.smart() } else { inner.quoted() });
        }
        Value::Array(a) => {
            t.push_str("[");
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    t.push_str(",");
                }
                t.push(json_template(x, scope)?);
            }
            t.push_str("]");
        }
        Value::Object(o) => {
            t.push_str("{");
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    t.push_str(",");
                }
                t.push_str(&Value::String(k.clone()).to_string());
                t.push_str(":");
                t.push(json_template(x, scope)?);
            }
            t.push_str("}");
        }
        other => t.push_str(&other.to_string()),
    }
    Ok(t)
}

fn compile_regex(re: &str) -> Result<regex_lite::Regex, String> {
    regex_lite::Regex::new(re).map_err(|e| format!("invalid regex `{re}`: {e}"))
}

pub(super) fn compile_check(c: &CheckSpec) -> Result<Check, String> {
    let subjects = [
        c.status.is_some(),
        c.body_contains.is_some(),
        c.body_matches.is_some(),
        c.json.is_some(),
        c.header.is_some(),
        c.max_duration.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if subjects != 1 {
        return Err("each check needs exactly one of `status`, `body_contains`, `body_matches`, `json`, `header`, `max_duration`".into());
    }
    let predicate = |what: &str| -> Result<Predicate, String> {
        let n = usize::from(c.exists.is_some())
            + usize::from(c.equals.is_some())
            + usize::from(c.matches.is_some());
        if n != 1 {
            return Err(format!(
                "check `{what}` needs exactly one of `exists`, `equals`, `matches`"
            ));
        }
        Ok(if let Some(e) = c.exists {
            Predicate::Exists(e)
        } else if let Some(v) = &c.equals {
            Predicate::Equals(v.clone())
        } else {
            Predicate::Matches(compile_regex(c.matches.as_deref().unwrap_or_default())?)
        })
    };
    if c.json.is_none()
        && c.header.is_none()
        && (c.exists.is_some() || c.equals.is_some() || c.matches.is_some())
    {
        return Err("`exists`, `equals` and `matches` go with `json` or `header`".into());
    }
    Ok(if let Some(s) = &c.status {
        use serde_json::Value;
        let one = |v: &Value| match v {
            Value::Number(n) => {
                crate::inspect::status_range(&n.to_string()).map_err(|e| e.to_string())
            }
            Value::String(s) => crate::inspect::status_range(s).map_err(|e| e.to_string()),
            other => Err(format!("invalid status `{other}`")),
        };
        let ranges = match s {
            Value::Array(a) if !a.is_empty() => a.iter().map(one).collect::<Result<_, _>>()?,
            v => vec![one(v)?],
        };
        Check::Status(ranges)
    } else if let Some(t) = &c.body_contains {
        Check::BodyContains(t.clone())
    } else if let Some(re) = &c.body_matches {
        Check::BodyMatches(compile_regex(re)?)
    } else if let Some(p) = &c.json {
        Check::Json(
            JsonPath::compile(p).map_err(|e| e.to_string())?,
            predicate(p)?,
        )
    } else if let Some(h) = &c.header {
        let name = HeaderName::from_bytes(h.as_bytes())
            .map_err(|_| format!("invalid header name `{h}`"))?;
        Check::Header(name, predicate(h)?)
    } else {
        Check::MaxDuration(c.max_duration.unwrap_or(Duration::MAX))
    })
}

pub(super) fn compile_capture(c: &CaptureSpec, scope: &mut Scope<'_>) -> Result<Capture, String> {
    let n = usize::from(c.json.is_some())
        + usize::from(c.header.is_some())
        + usize::from(c.regex.is_some())
        + usize::from(c.cookie.is_some())
        + usize::from(c.status == Some(true));
    if n != 1 {
        return Err(format!(
            "capture `{}` needs exactly one of `json`, `header`, `regex`, `cookie`, `status: true`",
            c.var
        ));
    }
    if !matches!(c.scope.as_deref(), None | Some("vu") | Some("global")) {
        return Err(format!(
            "capture `{}`: scope must be `vu` or `global`",
            c.var
        ));
    }
    let source = if let Some(p) = &c.json {
        Source::Json(JsonPath::compile(p).map_err(|e| e.to_string())?)
    } else if let Some(h) = &c.header {
        Source::Header(
            HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| format!("invalid header name `{h}`"))?,
        )
    } else if let Some(re) = &c.regex {
        let re = compile_regex(re)?;
        let group = c.group.unwrap_or(usize::from(re.captures_len() > 1));
        if group >= re.captures_len() {
            return Err(format!(
                "capture `{}`: the regex has no group {group}",
                c.var
            ));
        }
        Source::Regex(re, group)
    } else if let Some(k) = &c.cookie {
        Source::Cookie(k.clone())
    } else {
        Source::Status
    };
    let slot = scope
        .slot(&c.var)
        .ok_or_else(|| format!("capture `{}` has no slot", c.var))?;
    Ok(Capture {
        name: c.var.clone(),
        slot,
        source,
        default: c.default.clone(),
    })
}

pub(super) fn all_captures(u: &crate::scenario::UserType) -> Vec<&CaptureSpec> {
    fn walk<'a>(steps: &'a [Step], out: &mut Vec<&'a CaptureSpec>) {
        for s in steps {
            if let Some(r) = &s.request {
                out.extend(r.capture.iter());
            }
            if let Some(inner) = &s.steps {
                walk(inner, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&u.on_start, &mut out);
    walk(&u.on_stop, &mut out);
    for t in &u.tasks {
        if let Some(r) = &t.request {
            out.extend(r.capture.iter());
        }
        if let Some(s) = &t.steps {
            walk(s, &mut out);
        }
    }
    out
}

pub(super) fn loop_vars(u: &crate::scenario::UserType) -> Vec<String> {
    fn walk(steps: &[Step], out: &mut Vec<String>) {
        for s in steps {
            if let Some(v) = &s.for_each {
                out.push(v.clone());
            }
            if let Some(inner) = &s.steps {
                walk(inner, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&u.on_start, &mut out);
    walk(&u.on_stop, &mut out);
    for t in &u.tasks {
        if let Some(s) = &t.steps {
            walk(s, &mut out);
        }
    }
    out
}
