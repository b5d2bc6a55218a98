//! Response inspection: checks (Locust's `catch_response` without code) and captures into VU
//! variables, compiled once from the scenario and evaluated on each response.

use std::time::Duration;

use http::header::HeaderName;
use regex_lite::Regex;
use serde_json::Value;

use crate::client::Response;
use crate::jsonpath::{to_text, JsonPath};
use crate::template::Slot;

/// Why a check failed: what was expected and what came. Values from the response are cut to
/// 60 characters so that one failure cannot flood the error catalogue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckFailure {
    /// A status outside every accepted range.
    #[error("status: expected {}, got {got}", ranges(.expected))]
    Status {
        /// The accepted inclusive ranges.
        expected: Vec<(u16, u16)>,
        /// The status that came.
        got: u16,
    },
    /// The body lacks the text.
    #[error("body: expected to contain `{}`", short(.text))]
    BodyContains {
        /// The text looked for.
        text: String,
    },
    /// The body does not match the pattern.
    #[error("body: expected to match /{pattern}/")]
    BodyMatches {
        /// The regular expression.
        pattern: String,
    },
    /// A JSONPath check on a body that is not JSON.
    #[error("{path}: the body is not JSON")]
    NotJson {
        /// The JSONPath.
        path: String,
    },
    /// `exists: true` and the value is missing.
    #[error("{what}: expected to exist, missing")]
    Absent {
        /// The JSONPath or `header NAME`.
        what: String,
    },
    /// `exists: false` and the value is there.
    #[error("{what}: expected to be absent, got {got}")]
    Present {
        /// The JSONPath or `header NAME`.
        what: String,
        /// The value found (cut).
        got: String,
    },
    /// A comparison with a value that is missing.
    #[error("{what}: missing")]
    Missing {
        /// The JSONPath or `header NAME`.
        what: String,
    },
    /// `equals:` with another value.
    #[error("{what}: expected {expected}, got {got}")]
    NotEqual {
        /// The JSONPath or `header NAME`.
        what: String,
        /// The expected value as JSON (cut).
        expected: String,
        /// The value found as JSON (cut).
        got: String,
    },
    /// `matches:` with a value that does not match.
    #[error("{what}: expected to match /{pattern}/, got {got}")]
    NoMatch {
        /// The JSONPath or `header NAME`.
        what: String,
        /// The regular expression.
        pattern: String,
        /// The value found (cut).
        got: String,
    },
    /// `max_duration:` exceeded.
    #[error("duration: expected at most {} ms, took more", .max.as_millis())]
    TooSlow {
        /// The limit.
        max: Duration,
    },
}

/// `200 or 201-204`, as a failed status check lists what it accepts.
fn ranges(r: &[(u16, u16)]) -> String {
    let want: Vec<String> = r
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    want.join(" or ")
}

/// A capture that found nothing and has no default.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("capture `{name}`: {from} not found in the response")]
pub struct NotCaptured {
    /// The variable it would have set.
    pub name: String,
    /// Where it looked: a JSONPath, `header NAME`, `/regex/`, `cookie NAME` or `status`.
    pub from: String,
}

/// A status spec that is neither a code, a class nor a range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid status `{spec}`: expected a code (200), a class (2xx) or a range (200-299)")]
pub struct BadStatus {
    /// The spec as written, trimmed.
    pub spec: String,
}

/// How a value is compared.
#[derive(Debug, Clone)]
pub enum Predicate {
    /// Present (or absent with `false`).
    Exists(bool),
    /// Equal to a JSON value (strings compare as text).
    Equals(Value),
    /// Matches a regular expression.
    Matches(Regex),
}

/// One compiled check.
#[derive(Debug, Clone)]
pub enum Check {
    /// Status in one of the inclusive ranges.
    Status(Vec<(u16, u16)>),
    /// Body contains the text.
    BodyContains(String),
    /// Body matches the regex.
    BodyMatches(Regex),
    /// A JSONPath value of the body satisfies the predicate.
    Json(JsonPath, Predicate),
    /// A response header satisfies the predicate.
    Header(HeaderName, Predicate),
    /// The request took at most this long.
    MaxDuration(Duration),
}

/// Where a capture reads from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A JSONPath into the body.
    Json(JsonPath),
    /// A response header.
    Header(HeaderName),
    /// A regex on the body; the group (0 = whole match).
    Regex(Regex, usize),
    /// A cookie of the VU's jar after the response.
    Cookie(String),
    /// The status code.
    Status,
}

/// One compiled capture.
#[derive(Debug, Clone)]
pub struct Capture {
    /// Variable name (for messages).
    pub name: String,
    /// Where the value goes.
    pub slot: Slot,
    /// Where it comes from.
    pub source: Source,
    /// Used when the source has no value.
    pub default: Option<String>,
}

/// The response body parsed as JSON at most once, on first need.
#[derive(Default)]
pub struct LazyJson {
    parsed: Option<Option<Value>>,
}

impl LazyJson {
    fn get(&mut self, body: &[u8]) -> Option<&Value> {
        self.parsed
            .get_or_insert_with(|| serde_json::from_slice(body).ok())
            .as_ref()
    }
}

fn short(s: &str) -> String {
    const MAX: usize = 60;
    if s.chars().count() <= MAX {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(MAX).collect::<String>())
    }
}

impl Predicate {
    fn test(&self, what: &str, value: Option<&Value>) -> Result<(), CheckFailure> {
        let what = || what.to_owned();
        match (self, value) {
            (Predicate::Exists(true), Some(_)) | (Predicate::Exists(false), None) => Ok(()),
            (Predicate::Exists(true), None) => Err(CheckFailure::Absent { what: what() }),
            (Predicate::Exists(false), Some(v)) => Err(CheckFailure::Present {
                what: what(),
                got: short(&v.to_string()),
            }),
            (_, None) => Err(CheckFailure::Missing { what: what() }),
            (Predicate::Equals(want), Some(got)) => {
                let ok = got == want
                    || match (want, got) {
                        (Value::String(w), g) => &to_text(g) == w,
                        (w, Value::String(g)) => &to_text(w) == g,
                        _ => false,
                    };
                if ok {
                    Ok(())
                } else {
                    Err(CheckFailure::NotEqual {
                        what: what(),
                        expected: short(&want.to_string()),
                        got: short(&got.to_string()),
                    })
                }
            }
            (Predicate::Matches(re), Some(got)) => {
                let text = to_text(got);
                if re.is_match(&text) {
                    Ok(())
                } else {
                    Err(CheckFailure::NoMatch {
                        what: what(),
                        pattern: re.as_str().to_owned(),
                        got: short(&text),
                    })
                }
            }
        }
    }
}

impl Check {
    /// True when the check reads the body.
    pub fn needs_body(&self) -> bool {
        matches!(
            self,
            Check::BodyContains(_) | Check::BodyMatches(_) | Check::Json(..)
        )
    }

    /// True when the check reads a response header.
    pub fn needs_headers(&self) -> bool {
        matches!(self, Check::Header(..))
    }

    /// Evaluate; `Err` carries a readable reason (what was expected, what came).
    pub fn eval(
        &self,
        resp: &Response,
        json: &mut LazyJson,
        took: Duration,
    ) -> Result<(), CheckFailure> {
        match self {
            Check::Status(ranges) => {
                let code = resp.status.as_u16();
                if ranges.iter().any(|(a, b)| (*a..=*b).contains(&code)) {
                    Ok(())
                } else {
                    Err(CheckFailure::Status {
                        expected: ranges.clone(),
                        got: code,
                    })
                }
            }
            Check::BodyContains(s) => {
                if memfind(&resp.body, s.as_bytes()) {
                    Ok(())
                } else {
                    Err(CheckFailure::BodyContains { text: s.clone() })
                }
            }
            Check::BodyMatches(re) => {
                if re.is_match(&String::from_utf8_lossy(&resp.body)) {
                    Ok(())
                } else {
                    Err(CheckFailure::BodyMatches {
                        pattern: re.as_str().to_owned(),
                    })
                }
            }
            Check::Json(path, pred) => {
                let Some(doc) = json.get(&resp.body) else {
                    return Err(CheckFailure::NotJson {
                        path: path.as_str().to_owned(),
                    });
                };
                pred.test(path.as_str(), path.find(doc))
            }
            Check::Header(name, pred) => {
                let v = resp
                    .headers
                    .get(name)
                    .map(|v| Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()));
                pred.test(&format!("header {name}"), v.as_ref())
            }
            Check::MaxDuration(max) => {
                if took <= *max {
                    Ok(())
                } else {
                    Err(CheckFailure::TooSlow { max: *max })
                }
            }
        }
    }
}

impl Capture {
    /// True when the capture reads the body.
    pub fn needs_body(&self) -> bool {
        matches!(self.source, Source::Json(_) | Source::Regex(..))
    }

    /// True when the capture reads a response header.
    pub fn needs_headers(&self) -> bool {
        matches!(self.source, Source::Header(_))
    }

    /// The captured value, or a readable reason why there is none.
    pub fn eval(
        &self,
        resp: &Response,
        json: &mut LazyJson,
        cookies: &crate::client::CookieJar,
    ) -> Result<String, NotCaptured> {
        let found = match &self.source {
            Source::Json(path) => json.get(&resp.body).and_then(|d| path.find(d)).map(to_text),
            Source::Header(h) => resp
                .headers
                .get(h)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            Source::Regex(re, group) => {
                let body = String::from_utf8_lossy(&resp.body);
                re.captures(&body)
                    .and_then(|c| c.get(*group))
                    .map(|m| m.as_str().to_owned())
            }
            Source::Cookie(name) => cookies.get(name).map(str::to_owned),
            Source::Status => Some(resp.status.as_u16().to_string()),
        };
        found.or_else(|| self.default.clone()).ok_or_else(|| {
            let from = match &self.source {
                Source::Json(p) => p.as_str().to_owned(),
                Source::Header(h) => format!("header {h}"),
                Source::Regex(re, _) => format!("/{}/", re.as_str()),
                Source::Cookie(c) => format!("cookie {c}"),
                Source::Status => "status".into(),
            };
            NotCaptured {
                name: self.name.clone(),
                from,
            }
        })
    }
}

fn memfind(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// Parse a status spec item: `200`, `"2xx"`, `"200-299"`.
pub fn status_range(s: &str) -> Result<(u16, u16), BadStatus> {
    let s = s.trim();
    let bad = || BadStatus { spec: s.to_owned() };
    if let Some(class) = s.strip_suffix("xx").or_else(|| s.strip_suffix("XX")) {
        let d: u16 = class.parse().map_err(|_| bad())?;
        if !(1..=5).contains(&d) {
            return Err(bad());
        }
        return Ok((d * 100, d * 100 + 99));
    }
    if let Some((a, b)) = s.split_once('-').or_else(|| s.split_once("..")) {
        let (a, b): (u16, u16) = (
            a.trim().parse().map_err(|_| bad())?,
            b.trim()
                .trim_start_matches('.')
                .parse()
                .map_err(|_| bad())?,
        );
        if a > b || !(100..=599).contains(&a) || !(100..=599).contains(&b) {
            return Err(bad());
        }
        return Ok((a, b));
    }
    let c: u16 = s.parse().map_err(|_| bad())?;
    if !(100..=599).contains(&c) {
        return Err(bad());
    }
    Ok((c, c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http::{HeaderMap, StatusCode, Version};

    fn resp(code: u16, body: &str) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "application/json".parse().unwrap());
        Response {
            status: StatusCode::from_u16(code).unwrap(),
            version: Version::HTTP_11,
            headers,
            body: Bytes::from(body.to_owned()),
            redirected: None,
        }
    }

    #[test]
    fn checks_pass_and_fail_with_reasons() {
        let r = resp(503, r#"{"token_type":"Bearer","n":3}"#);
        let mut j = LazyJson::default();
        let t = Duration::from_millis(10);
        let e = Check::Status(vec![(200, 200), (201, 201)])
            .eval(&r, &mut j, t)
            .unwrap_err();
        assert_eq!(e.to_string(), "status: expected 200 or 201, got 503");
        assert!(Check::Status(vec![status_range("5xx").unwrap()])
            .eval(&r, &mut j, t)
            .is_ok());
        assert!(Check::BodyContains("Bearer".into())
            .eval(&r, &mut j, t)
            .is_ok());
        let jp = |p: &str| JsonPath::compile(p).unwrap();
        assert!(Check::Json(
            jp("$.token_type"),
            Predicate::Equals(Value::String("Bearer".into()))
        )
        .eval(&r, &mut j, t)
        .is_ok());
        assert!(
            Check::Json(jp("$.n"), Predicate::Equals(Value::String("3".into())))
                .eval(&r, &mut j, t)
                .is_ok()
        );
        let e = Check::Json(
            jp("$.token_type"),
            Predicate::Equals(Value::String("Basic".into())),
        )
        .eval(&r, &mut j, t)
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"$.token_type: expected "Basic", got "Bearer""#
        );
        assert!(Check::Json(jp("$.missing"), Predicate::Exists(true))
            .eval(&r, &mut j, t)
            .unwrap_err()
            .to_string()
            .contains("missing"));
        let h = HeaderName::from_static("content-type");
        assert!(
            Check::Header(h.clone(), Predicate::Matches(Regex::new("json").unwrap()))
                .eval(&r, &mut j, t)
                .is_ok()
        );
        assert!(Check::MaxDuration(Duration::from_millis(5))
            .eval(&r, &mut j, t)
            .is_err());
        assert!(Check::Json(jp("$.a"), Predicate::Exists(true))
            .eval(&resp(200, "not json"), &mut LazyJson::default(), t)
            .unwrap_err()
            .to_string()
            .contains("not JSON"));
    }

    #[test]
    fn captures() {
        let r = resp(200, r#"{"access_token":"abc","id":42} order_77"#);
        let cookies = crate::client::CookieJar::default();
        let cap = |source, default: Option<&str>| Capture {
            name: "v".into(),
            slot: Slot::Vu(0),
            source,
            default: default.map(str::to_owned),
        };
        let mut j = LazyJson::default();
        let r2 = resp(200, r#"{"access_token":"abc","id":42}"#);
        assert_eq!(
            cap(
                Source::Json(JsonPath::compile("$.access_token").unwrap()),
                None
            )
            .eval(&r2, &mut j, &cookies)
            .unwrap(),
            "abc"
        );
        assert_eq!(
            cap(Source::Json(JsonPath::compile("$.id").unwrap()), None)
                .eval(&r2, &mut j, &cookies)
                .unwrap(),
            "42"
        );
        let mut j = LazyJson::default();
        assert_eq!(
            cap(Source::Regex(Regex::new(r"order_(\d+)").unwrap(), 1), None)
                .eval(&r, &mut j, &cookies)
                .unwrap(),
            "77"
        );
        assert_eq!(
            cap(Source::Status, None)
                .eval(&r, &mut j, &cookies)
                .unwrap(),
            "200"
        );
        assert_eq!(
            cap(Source::Header(HeaderName::from_static("x-none")), Some("d"))
                .eval(&r, &mut j, &cookies)
                .unwrap(),
            "d"
        );
        let e = cap(Source::Cookie("session".into()), None)
            .eval(&r, &mut j, &cookies)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "capture `v`: cookie session not found in the response"
        );
    }

    #[test]
    fn status_specs() {
        assert_eq!(status_range("2xx").unwrap(), (200, 299));
        assert_eq!(status_range("200-204").unwrap(), (200, 204));
        assert_eq!(status_range("404").unwrap(), (404, 404));
        assert!(status_range("7xx").is_err());
        assert!(status_range("abc").is_err());
    }
}
