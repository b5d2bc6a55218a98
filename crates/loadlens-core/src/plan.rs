//! The plan: a scenario compiled for running. Request names are interned into [`NameId`]s,
//! URLs resolved against the host, headers merged (scenario < user type < request) and bodies
//! encoded once, so the request path only clones cheap handles.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri};

use crate::client::{self, Request};
use crate::sample::NameId;
use crate::scenario::{RequestSpec, Scenario, WaitTime};

/// Interned `(method, name)` pairs.
#[derive(Debug, Clone, Default)]
pub struct NameTable {
    names: Vec<(String, String)>,
}

impl NameTable {
    /// The id of `(method, name)`, interning it if new.
    pub fn intern(&mut self, method: &str, name: &str) -> NameId {
        if let Some(i) = self
            .names
            .iter()
            .position(|(m, n)| m == method && n == name)
        {
            return NameId(i as u32);
        }
        self.names.push((method.to_owned(), name.to_owned()));
        NameId((self.names.len() - 1) as u32)
    }

    /// `(method, name)` of an id.
    pub fn get(&self, id: NameId) -> (&str, &str) {
        let (m, n) = &self.names[id.0 as usize];
        (m, n)
    }

    /// All pairs in id order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.names
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// A request ready to be cloned into a [`Request`].
#[derive(Debug, Clone)]
pub struct RequestPlan {
    /// Statistics name.
    pub name: NameId,
    /// The prepared request.
    pub request: Request,
}

/// A task: what one iteration of a user does.
#[derive(Debug, Clone)]
pub struct TaskPlan {
    /// Name for reports.
    pub name: String,
    /// Relative frequency.
    pub weight: u32,
    /// Requests, in order.
    pub steps: Vec<RequestPlan>,
}

/// A user type, compiled.
#[derive(Debug, Clone)]
pub struct UserTypePlan {
    /// Name.
    pub name: String,
    /// Share of users.
    pub weight: u32,
    /// Think time.
    pub wait: WaitTime,
    /// Run once at user start.
    pub on_start: Vec<RequestPlan>,
    /// Run once at graceful user stop.
    pub on_stop: Vec<RequestPlan>,
    /// Tasks.
    pub tasks: Vec<TaskPlan>,
    cumulative: Vec<u32>,
}

impl UserTypePlan {
    /// Pick a task by weight.
    #[inline]
    pub fn pick(&self, rng: &mut fastrand::Rng) -> &TaskPlan {
        let total = *self.cumulative.last().unwrap_or(&0);
        if total == 0 || self.tasks.len() == 1 {
            return &self.tasks[0];
        }
        let r = rng.u32(0..total);
        let i = self.cumulative.partition_point(|&c| c <= r);
        &self.tasks[i]
    }
}

/// A compiled scenario.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Scenario name.
    pub name: String,
    /// Request names.
    pub names: NameTable,
    /// User types.
    pub user_types: Vec<UserTypePlan>,
}

/// A plan that cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// A relative path without a host.
    #[error("request `{0}` is a relative path but no host is set: add `host:` to the scenario or pass -H/--host")]
    NoHost(String),
    /// A URL that does not parse.
    #[error("invalid URL `{url}`: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A header that is not valid HTTP.
    #[error("invalid header `{0}`")]
    BadHeader(String),
}

/// Options applied while compiling.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Overrides the scenario's host.
    pub host: Option<String>,
    /// Header carrying the run id and its value, added to every request.
    pub run_id_header: Option<(HeaderName, HeaderValue)>,
    /// Extra headers for every request (CLI `--header`), applied last.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Plan {
    /// Compile `scenario`.
    pub fn compile(scenario: &Scenario, opts: &PlanOptions) -> Result<Plan, PlanError> {
        let host = opts.host.clone().or_else(|| scenario.host.clone());
        let mut names = NameTable::default();
        let mut user_types = Vec::new();
        for u in &scenario.user_types {
            let mut base = headers(&scenario.headers)?;
            for (k, v) in headers(&u.headers)? {
                if let Some(k) = k {
                    base.insert(k, v);
                }
            }
            let compile = |r: &RequestSpec, names: &mut NameTable| {
                compile_request(r, host.as_deref(), &base, opts, names)
            };
            let on_start = u
                .on_start
                .iter()
                .map(|r| compile(r, &mut names))
                .collect::<Result<_, _>>()?;
            let on_stop = u
                .on_stop
                .iter()
                .map(|r| compile(r, &mut names))
                .collect::<Result<_, _>>()?;
            let mut tasks = Vec::new();
            for t in &u.tasks {
                let step = compile(&t.request, &mut names)?;
                let name = t
                    .name
                    .clone()
                    .unwrap_or_else(|| names.get(step.name).1.to_owned());
                tasks.push(TaskPlan {
                    name,
                    weight: t.weight,
                    steps: vec![step],
                });
            }
            user_types.push(UserTypePlan::new(
                u.name.clone(),
                u.weight,
                u.wait,
                on_start,
                on_stop,
                tasks,
            ));
        }
        Ok(Plan {
            name: scenario.name.clone().unwrap_or_else(|| "scenario".into()),
            names,
            user_types,
        })
    }

    /// The plan of quick mode: one user type repeating one request with no wait.
    pub fn single(
        url: &str,
        method: Method,
        body: Bytes,
        opts: &PlanOptions,
    ) -> Result<Plan, PlanError> {
        let uri: Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| PlanError::BadUrl {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(PlanError::BadUrl {
                url: url.to_owned(),
                reason: "expected an absolute http:// or https:// URL".into(),
            });
        }
        let mut names = NameTable::default();
        let name = names.intern(method.as_str(), uri.path());
        let mut request = Request::new(method, uri);
        request.body = body;
        apply_run_headers(&mut request.headers, opts);
        let task = TaskPlan {
            name: names.get(name).1.to_owned(),
            weight: 1,
            steps: vec![RequestPlan { name, request }],
        };
        Ok(Plan {
            name: url.to_owned(),
            names,
            user_types: vec![UserTypePlan::new(
                "default".into(),
                1,
                WaitTime::None,
                vec![],
                vec![],
                vec![task],
            )],
        })
    }

    /// The user type of the `i`-th user (0-based), spreading users over types by weight the way
    /// Locust does: deterministic, proportional at every prefix.
    pub fn user_type_for(&self, i: u64) -> usize {
        let total: u64 = self.user_types.iter().map(|u| u64::from(u.weight)).sum();
        if total == 0 || self.user_types.len() == 1 {
            return 0;
        }
        // Smooth weighted round-robin position i.
        let slot = i % total;
        let mut current: Vec<i64> = vec![0; self.user_types.len()];
        let mut pick = 0;
        for _ in 0..=slot {
            for (c, u) in current.iter_mut().zip(&self.user_types) {
                *c += i64::from(u.weight);
            }
            pick = (0..current.len())
                .max_by_key(|&k| (current[k], -(k as i64)))
                .unwrap_or(0);
            current[pick] -= total as i64;
        }
        pick
    }
}

impl UserTypePlan {
    fn new(
        name: String,
        weight: u32,
        wait: WaitTime,
        on_start: Vec<RequestPlan>,
        on_stop: Vec<RequestPlan>,
        tasks: Vec<TaskPlan>,
    ) -> Self {
        let mut acc = 0;
        let cumulative = tasks
            .iter()
            .map(|t| {
                acc += t.weight;
                acc
            })
            .collect();
        UserTypePlan {
            name,
            weight,
            wait,
            on_start,
            on_stop,
            tasks,
            cumulative,
        }
    }
}

fn headers(map: &std::collections::BTreeMap<String, String>) -> Result<HeaderMap, PlanError> {
    let mut h = HeaderMap::new();
    for (k, v) in map {
        let name =
            HeaderName::from_bytes(k.as_bytes()).map_err(|_| PlanError::BadHeader(k.clone()))?;
        let value =
            HeaderValue::from_str(v).map_err(|_| PlanError::BadHeader(format!("{k}: {v}")))?;
        h.insert(name, value);
    }
    Ok(h)
}

fn apply_run_headers(h: &mut HeaderMap, opts: &PlanOptions) {
    for (k, v) in &opts.headers {
        h.insert(k.clone(), v.clone());
    }
    if let Some((k, v)) = &opts.run_id_header {
        h.insert(k.clone(), v.clone());
    }
}

fn compile_request(
    r: &RequestSpec,
    host: Option<&str>,
    base: &HeaderMap,
    opts: &PlanOptions,
    names: &mut NameTable,
) -> Result<RequestPlan, PlanError> {
    let mut target = if r.path.contains("://") {
        r.path.clone()
    } else {
        let host = host.ok_or_else(|| PlanError::NoHost(r.path.clone()))?;
        format!("{}{}", host.trim_end_matches('/'), r.path)
    };
    if !r.query.is_empty() {
        target.push(if target.contains('?') { '&' } else { '?' });
        let q: Vec<String> = r
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", encode_component(k), encode_component(v)))
            .collect();
        target.push_str(&q.join("&"));
    }
    let url: Uri = target
        .parse()
        .map_err(|e: http::uri::InvalidUri| PlanError::BadUrl {
            url: target.clone(),
            reason: e.to_string(),
        })?;
    client::Origin::of(&url).map_err(|f| PlanError::BadUrl {
        url: target.clone(),
        reason: f.message,
    })?;
    let default_name = r.path.split('?').next().unwrap_or(&r.path).to_owned();
    let name = names.intern(
        r.method.0.as_str(),
        r.name.as_deref().unwrap_or(&default_name),
    );
    let mut request = Request::new(r.method.0.clone(), url);
    request.headers = base.clone();
    for (k, v) in headers(&r.headers)? {
        if let Some(k) = k {
            request.headers.insert(k, v);
        }
    }
    if let Some(json) = &r.json {
        request.body = Bytes::from(serde_json::to_vec(json).unwrap_or_default());
        request
            .headers
            .entry(http::header::CONTENT_TYPE)
            .or_insert(HeaderValue::from_static("application/json"));
    } else if let Some(body) = &r.body {
        request.body = Bytes::from(body.clone());
    }
    request.timeout = r.timeout;
    apply_run_headers(&mut request.headers, opts);
    Ok(RequestPlan { name, request })
}

/// Percent-encode a query component (RFC 3986 unreserved characters kept).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push_str("%20"),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Shared handle to a plan.
pub type SharedPlan = Arc<Plan>;

/// Default stop timeout when neither file nor CLI sets one.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(text: &str) -> Scenario {
        Scenario::from_str_named(text, "t.yaml").unwrap()
    }

    #[test]
    fn compiles_urls_names_headers_and_bodies() {
        let s = scenario(
            r#"
host: http://127.0.0.1:9/
headers: { X-A: scenario, X-B: scenario }
user_types:
  - name: u
    headers: { X-B: user }
    tasks:
      - request: { path: /p, query: { q: running shoes, page: "1" }, headers: { X-C: req } }
      - request: { method: POST, path: /o, json: { a: 1 }, name: create }
      - request: { path: /p?x=1 }
"#,
        );
        let opts = PlanOptions {
            run_id_header: Some((
                HeaderName::from_static("x-test-run-id"),
                HeaderValue::from_static("r1"),
            )),
            ..PlanOptions::default()
        };
        let plan = Plan::compile(&s, &opts).unwrap();
        let t = &plan.user_types[0].tasks;
        let r0 = &t[0].steps[0].request;
        assert_eq!(
            r0.url.to_string(),
            "http://127.0.0.1:9/p?page=1&q=running%20shoes"
        );
        assert_eq!(r0.headers["x-a"], "scenario");
        assert_eq!(r0.headers["x-b"], "user");
        assert_eq!(r0.headers["x-c"], "req");
        assert_eq!(r0.headers["x-test-run-id"], "r1");
        let r1 = &t[1].steps[0].request;
        assert_eq!(&r1.body[..], br#"{"a":1}"#);
        assert_eq!(r1.headers["content-type"], "application/json");
        assert_eq!(plan.names.get(t[1].steps[0].name), ("POST", "create"));
        // `/p` and `/p?x=1` group under one name.
        assert_eq!(t[0].steps[0].name, t[2].steps[0].name);
        assert_eq!(plan.names.len(), 2);
    }

    #[test]
    fn relative_path_without_host_is_an_error() {
        let s = scenario("user_types: [{ name: u, tasks: [{ request: { path: /x } }] }]");
        let e = Plan::compile(&s, &PlanOptions::default()).unwrap_err();
        assert!(e.to_string().contains("no host is set"), "{e}");
        let ok = Plan::compile(
            &s,
            &PlanOptions {
                host: Some("http://h:1".into()),
                ..Default::default()
            },
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn users_are_spread_over_types_by_weight() {
        let s = scenario(
            "user_types: [{ name: a, weight: 3, tasks: [{ request: { path: 'http://h/a' } }] }, { name: b, weight: 1, tasks: [{ request: { path: 'http://h/b' } }] }]",
        );
        let plan = Plan::compile(&s, &PlanOptions::default()).unwrap();
        let picks: Vec<usize> = (0..8).map(|i| plan.user_type_for(i)).collect();
        assert_eq!(picks.iter().filter(|&&p| p == 0).count(), 6);
        // Proportional at every prefix: the first four users already include a `b`.
        assert!(picks[..4].contains(&1));
    }

    #[test]
    fn tasks_are_picked_by_weight() {
        let s = scenario(
            "user_types: [{ name: a, tasks: [{ weight: 9, request: { path: 'http://h/a' } }, { weight: 1, request: { path: 'http://h/b' } }] }]",
        );
        let plan = Plan::compile(&s, &PlanOptions::default()).unwrap();
        let mut rng = fastrand::Rng::with_seed(3);
        let n = (0..10_000)
            .filter(|_| plan.user_types[0].pick(&mut rng).weight == 9)
            .count();
        assert!((8_800..9_200).contains(&n), "{n}");
    }

    #[test]
    fn quick_mode_rejects_bad_urls() {
        assert!(Plan::single(
            "localhost:8080",
            Method::GET,
            Bytes::new(),
            &PlanOptions::default()
        )
        .is_err());
        assert!(Plan::single(
            "ftp://x/",
            Method::GET,
            Bytes::new(),
            &PlanOptions::default()
        )
        .is_err());
        assert!(Plan::single(
            "http://127.0.0.1:1/x",
            Method::GET,
            Bytes::new(),
            &PlanOptions::default()
        )
        .is_ok());
    }
}
