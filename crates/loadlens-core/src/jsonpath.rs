//! A compiled subset of JSONPath for captures and checks: `$`, `.name`, `['name']`, `[index]`
//! (negative counts from the end), `[*]` / `.*` (every element; the first match is used), and
//! `..name` (first match at any depth).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(i64),
    Wildcard,
    Descend(String),
}

/// A JSONPath that does not compile; each variant carries the path as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonPathError {
    /// The path does not start with `$`.
    #[error("invalid JSONPath `{path}`: must start with `$` (e.g. `$.items[0].id`)")]
    NoRoot {
        /// The path as written.
        path: String,
    },
    /// `..` with no name after it.
    #[error("invalid JSONPath `{path}`: `..` must be followed by a name (e.g. `$.items[0].id`)")]
    EmptyDescend {
        /// The path as written.
        path: String,
    },
    /// `.` with no name after it.
    #[error("invalid JSONPath `{path}`: empty name after `.` (e.g. `$.items[0].id`)")]
    EmptyName {
        /// The path as written.
        path: String,
    },
    /// `[` without its `]`.
    #[error("invalid JSONPath `{path}`: missing `]` (e.g. `$.items[0].id`)")]
    Unclosed {
        /// The path as written.
        path: String,
    },
    /// Brackets holding something other than an index, `*` or a quoted name.
    #[error("invalid JSONPath `{path}`: expected an index, `*` or a quoted name in `[]` (e.g. `$.items[0].id`)")]
    BadIndex {
        /// The path as written.
        path: String,
    },
    /// A character where `.`, `..` or `[` must come.
    #[error("invalid JSONPath `{path}`: expected `.`, `..` or `[` (e.g. `$.items[0].id`)")]
    Unexpected {
        /// The path as written.
        path: String,
    },
}

/// A compiled path.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    text: String,
    segs: Vec<Seg>,
}

impl JsonPath {
    /// Compile `text` (must start with `$`).
    pub fn compile(text: &str) -> Result<JsonPath, JsonPathError> {
        let path = || text.to_owned();
        let mut rest = text
            .trim()
            .strip_prefix('$')
            .ok_or_else(|| JsonPathError::NoRoot { path: path() })?;
        let mut segs = Vec::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix("..") {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                if end == 0 {
                    return Err(JsonPathError::EmptyDescend { path: path() });
                }
                segs.push(Seg::Descend(r[..end].to_owned()));
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                match &r[..end] {
                    "" => return Err(JsonPathError::EmptyName { path: path() }),
                    "*" => segs.push(Seg::Wildcard),
                    name => segs.push(Seg::Key(name.to_owned())),
                }
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let end = r
                    .find(']')
                    .ok_or_else(|| JsonPathError::Unclosed { path: path() })?;
                let inner = r[..end].trim();
                if inner == "*" {
                    segs.push(Seg::Wildcard);
                } else if let Some(q) = inner
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                {
                    segs.push(Seg::Key(q.to_owned()));
                } else {
                    let i = inner
                        .parse::<i64>()
                        .map_err(|_| JsonPathError::BadIndex { path: path() })?;
                    segs.push(Seg::Index(i));
                }
                rest = &r[end + 1..];
            } else {
                return Err(JsonPathError::Unexpected { path: path() });
            }
        }
        Ok(JsonPath {
            text: text.to_owned(),
            segs,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first value the path selects.
    pub fn find<'a>(&self, v: &'a Value) -> Option<&'a Value> {
        find(&self.segs, v)
    }
}

fn find<'a>(segs: &[Seg], v: &'a Value) -> Option<&'a Value> {
    let Some((first, rest)) = segs.split_first() else {
        return Some(v);
    };
    match first {
        Seg::Key(k) => find(rest, v.get(k)?),
        Seg::Index(i) => {
            let arr = v.as_array()?;
            let idx = if *i < 0 { arr.len() as i64 + i } else { *i };
            find(rest, arr.get(usize::try_from(idx).ok()?)?)
        }
        Seg::Wildcard => match v {
            Value::Array(a) => a.iter().find_map(|x| find(rest, x)),
            Value::Object(o) => o.values().find_map(|x| find(rest, x)),
            _ => None,
        },
        Seg::Descend(k) => {
            if let Some(found) = v.get(k).and_then(|x| find(rest, x)) {
                return Some(found);
            }
            match v {
                Value::Array(a) => a.iter().find_map(|x| find(segs, x)),
                Value::Object(o) => o.values().find_map(|x| find(segs, x)),
                _ => None,
            }
        }
    }
}

/// A value as text for variables: strings without quotes, everything else as compact JSON.
pub fn to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let v: Value = serde_json::from_str(
            r#"{"access_token":"t1","items":[{"id":1,"sku":"a"},{"id":2,"sku":"b"}],"meta":{"page":{"n":3}},"odd key":true}"#,
        )
        .unwrap();
        let get = |p: &str| JsonPath::compile(p).unwrap().find(&v).map(to_text);
        assert_eq!(get("$.access_token").as_deref(), Some("t1"));
        assert_eq!(get("$.items[1].sku").as_deref(), Some("b"));
        assert_eq!(get("$.items[-1].id").as_deref(), Some("2"));
        assert_eq!(get("$.items[*].id").as_deref(), Some("1"));
        assert_eq!(get("$..n").as_deref(), Some("3"));
        assert_eq!(get("$['odd key']").as_deref(), Some("true"));
        assert_eq!(get("$.items[0]").as_deref(), Some(r#"{"id":1,"sku":"a"}"#));
        assert_eq!(get("$.nope"), None);
        assert_eq!(get("$").map(|s| s.len() > 10), Some(true));
    }

    #[test]
    fn bad_paths() {
        assert!(JsonPath::compile("access_token")
            .unwrap_err()
            .to_string()
            .contains("must start with `$`"));
        assert!(JsonPath::compile("$.a[")
            .unwrap_err()
            .to_string()
            .contains("missing `]`"));
        assert!(JsonPath::compile("$.a[x]")
            .unwrap_err()
            .to_string()
            .contains("expected an index"));
    }
}
