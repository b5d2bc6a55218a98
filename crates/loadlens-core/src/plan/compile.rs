//! Compiling a scenario into a [`Plan`]: names interned, variables given slots, steps,
//! requests and headers compiled, every error located in the scenario file.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri};

use crate::client::{self, Request};
use crate::encoding::encode_component;
use crate::feeder::Feeder;
use crate::inspect::{Capture, Check};
use crate::scenario::{NodePath, RequestSpec, Scenario, ScenarioError, Step, WaitTime};
use crate::template::{Names, Slot, Template};

use super::checks::{all_captures, compile_capture, compile_check, json_template, loop_vars};
use super::{
    FeederUse, LoopItems, NameTable, Plan, PlanError, PlanOptions, RequestPlan, RequestTemplate,
    StepPlan, TaskPlan, UserTypePlan,
};

/// Names in first-seen order, each with its index. Looked up by hash: a generated scenario
/// may define 100,000 variables, and a linear search per use made compiling it quadratic.
#[derive(Debug, Default)]
struct Index {
    names: Vec<String>,
    ids: HashMap<String, usize>,
}

impl Index {
    fn get(&self, name: &str) -> Option<usize> {
        self.ids.get(name).copied()
    }

    /// The index of `name`, added at the end if new.
    fn insert(&mut self, name: &str) -> usize {
        if let Some(i) = self.get(name) {
            return i;
        }
        self.names.push(name.to_owned());
        self.ids.insert(name.to_owned(), self.names.len() - 1);
        self.names.len() - 1
    }

    fn len(&self) -> usize {
        self.names.len()
    }
}

/// Names known while compiling one user type.
pub(super) struct Scope<'a> {
    vu: Index,
    global: &'a Index,
    counters: &'a mut Index,
}

impl Names for Scope<'_> {
    fn slot(&mut self, name: &str) -> Option<Slot> {
        if let Some(i) = self.vu.get(name) {
            return Some(Slot::Vu(i));
        }
        self.global.get(name).map(Slot::Global)
    }

    fn counter(&mut self, name: &str) -> usize {
        self.counters.insert(name)
    }
}

/// Compiler state for one scenario.
struct Compiler<'a> {
    scenario: &'a Scenario,
    opts: &'a PlanOptions,
    /// The host without its `user:password@`, which are sent as [`Compiler::host_auth`].
    host: Option<String>,
    /// `Authorization: Basic …` from the host's `user:password@`, on requests to the host.
    host_auth: Option<HeaderValue>,
    names: NameTable,
    /// Index of the user type being compiled (to locate its headers in errors).
    user_type: usize,
}

impl Plan {
    /// Compile `scenario`. Errors are located in the scenario file.
    pub fn compile(scenario: &Scenario, opts: &PlanOptions) -> Result<Plan, PlanError> {
        let src = &scenario.source;
        // Feeders first: their columns are variables.
        let mut feeders = Vec::new();
        for (name, spec) in &scenario.data {
            let at = NodePath::root().key("data").key(name).key("file");
            let path = src.dir.join(&spec.file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                src.error_at(
                    &at,
                    format!("data feeder `{name}`: cannot read {}: {e}", path.display()),
                )
            })?;
            let f = Feeder::parse(
                name,
                &path.display().to_string(),
                &text,
                spec.mode,
                spec.on_exhausted,
            )
            .map_err(|e| src.error_at(&at, format!("data feeder `{name}`: {e}")))?;
            feeders.push(Arc::new(f));
        }
        // Run-wide variables: `vars:` and captures with `scope: global`.
        let mut global_names = Index::default();
        let mut globals: Vec<(String, Option<String>)> = Vec::new();
        for (k, v) in &scenario.vars {
            global_names.insert(k);
            globals.push((k.clone(), Some(v.clone())));
        }
        for u in &scenario.user_types {
            for c in all_captures(u) {
                if c.scope.as_deref() == Some("global") && global_names.get(&c.var).is_none() {
                    global_names.insert(&c.var);
                    globals.push((c.var.clone(), None));
                }
            }
        }
        let mut counters = Index::default();
        let host = opts.host.clone().or_else(|| scenario.host.clone());
        let (host, host_auth) = match host {
            Some(h) => {
                let (bare, auth) = crate::encoding::url_credentials(&h);
                (Some(bare), auth.as_deref().and_then(basic_auth))
            }
            None => (None, None),
        };
        let mut c = Compiler {
            scenario,
            opts,
            host,
            host_auth,
            names: NameTable::default(),
            user_type: 0,
        };
        let mut user_types = Vec::new();
        for (i, u) in scenario.user_types.iter().enumerate() {
            let at = NodePath::root().key("user_types").index(i);
            // VU variables: feeder columns, loop variables, captures.
            let mut vu = Index::default();
            let mut uses = Vec::new();
            for (fi, f) in feeders.iter().enumerate() {
                let slots = f
                    .columns
                    .iter()
                    .map(|col| vu.insert(&format!("{}.{col}", f.name)))
                    .collect();
                uses.push(FeederUse { feeder: fi, slots });
            }
            for name in loop_vars(u).into_iter().chain(
                all_captures(u)
                    .into_iter()
                    .filter(|c| c.scope.as_deref() != Some("global"))
                    .map(|c| c.var.clone()),
            ) {
                vu.insert(&name);
            }
            let mut scope = Scope {
                vu,
                global: &global_names,
                counters: &mut counters,
            };
            let mut base = header_map(&scenario.headers, src, &NodePath::root().key("headers"))?;
            for (k, v) in header_map(&u.headers, src, &at.key("headers"))? {
                if let Some(k) = k {
                    base.insert(k, v);
                }
            }
            let base_raw: BTreeMap<String, String> = scenario
                .headers
                .iter()
                .chain(u.headers.iter())
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect();
            c.user_type = i;
            let on_start = c.steps(&u.on_start, &base_raw, &mut scope, &at.key("on_start"))?;
            let on_stop = c.steps(&u.on_stop, &base_raw, &mut scope, &at.key("on_stop"))?;
            let mut tasks = Vec::new();
            for (j, t) in u.tasks.iter().enumerate() {
                let keep = (opts.tags.is_empty() || t.tags.iter().any(|x| opts.tags.contains(x)))
                    && !t.tags.iter().any(|x| opts.exclude_tags.contains(x));
                if !keep {
                    continue;
                }
                let task = at.key("tasks").index(j);
                let steps = match (&t.request, &t.steps) {
                    (Some(r), _) => {
                        let r = c.request(r, &base_raw, &mut scope, &task.key("request"))?;
                        vec![StepPlan::Request(Box::new(r))]
                    }
                    (None, Some(s)) => c.steps(s, &base_raw, &mut scope, &task.key("steps"))?,
                    (None, None) => Vec::new(),
                };
                let name = t
                    .name
                    .clone()
                    .unwrap_or_else(|| first_request_name(&steps, &c.names));
                tasks.push(TaskPlan {
                    name,
                    weight: t.weight,
                    tags: t.tags.clone(),
                    steps,
                });
            }
            let _ = base;
            if tasks.is_empty() {
                continue;
            }
            let vars = scope.vu.len();
            user_types.push(UserTypePlan::new(
                u.name.clone(),
                u.weight,
                u.count,
                u.wait,
                on_start,
                on_stop,
                tasks,
                vars,
                uses,
            ));
        }
        if user_types.is_empty() {
            return Err(src
                .error(
                    "tags",
                    format!(
                        "no task is left after filtering by tags {:?} (excluded {:?})",
                        opts.tags, opts.exclude_tags
                    ),
                )
                .into());
        }
        Ok(Plan {
            name: scenario.name.clone().unwrap_or_else(|| {
                std::path::Path::new(&src.file)
                    .file_stem()
                    .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned())
            }),
            names: c.names,
            user_types,
            feeders,
            globals,
            counters: counters.len(),
        })
    }

    /// The plan of quick mode: one user type repeating one request with no wait.
    pub fn single(
        url: &str,
        method: Method,
        body: Bytes,
        opts: &PlanOptions,
    ) -> Result<Plan, PlanError> {
        // `user:password@` is sent as basic auth, and never shown: the plan's name is the URL
        // with the password as `***`.
        let shown = crate::encoding::redact_url(url);
        let (bare, auth) = crate::encoding::url_credentials(url);
        let url = bare.as_str();
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
        if let Some(port) = client::invalid_port(&uri) {
            return Err(PlanError::BadUrl {
                url: url.to_owned(),
                reason: format!("the port `{port}` is not a number from 0 to 65535"),
            });
        }
        let mut names = NameTable::default();
        let name = names.intern(method.as_str(), uri.path());
        let mut request = Request::new(method, uri);
        request.body = body;
        // Quick mode has no checks or captures: nothing reads a response header.
        request.keep_headers = false;
        if let Some(auth) = auth.as_deref().and_then(basic_auth) {
            request.headers.insert(http::header::AUTHORIZATION, auth);
        }
        apply_run_headers(&mut request.headers, opts);
        let step = StepPlan::Request(Box::new(RequestPlan {
            name,
            request,
            template: None,
            checks: Vec::new(),
            captures: Vec::new(),
            status_checked: false,
        }));
        let task = TaskPlan {
            name: names.get(name).1.to_owned(),
            weight: 1,
            tags: vec![],
            steps: vec![step],
        };
        Ok(Plan {
            name: shown,
            names,
            user_types: vec![UserTypePlan::new(
                "default".into(),
                1,
                None,
                WaitTime::None,
                vec![],
                vec![],
                vec![task],
                0,
                vec![],
            )],
            feeders: vec![],
            globals: vec![],
            counters: 0,
        })
    }
}

impl Compiler<'_> {
    fn steps(
        &mut self,
        steps: &[Step],
        base: &BTreeMap<String, String>,
        scope: &mut Scope<'_>,
        list: &NodePath,
    ) -> Result<Vec<StepPlan>, ScenarioError> {
        let src = &self.scenario.source;
        let mut out = Vec::new();
        for (k, s) in steps.iter().enumerate() {
            let at = list.index(k);
            if let Some(r) = &s.request {
                let r = self.request(r, base, scope, &at.key("request"))?;
                out.push(StepPlan::Request(Box::new(r)));
            } else if let Some(w) = s.think {
                out.push(StepPlan::Think(w));
            } else if let (Some(var), Some(items)) = (&s.for_each, &s.items) {
                let Some(Slot::Vu(slot)) = scope.slot(var) else {
                    return Err(src.error_at(
                        &at.key("for"),
                        format!("loop variable `{var}` clashes with a run-wide variable"),
                    ));
                };
                let items = match items {
                    serde_json::Value::Array(a) => {
                        LoopItems::List(a.iter().map(crate::jsonpath::to_text).collect())
                    }
                    serde_json::Value::String(t) => {
                        let name = t
                            .trim()
                            .trim_start_matches("{{")
                            .trim_end_matches("}}")
                            .trim()
                            .to_owned();
                        let slot = scope.slot(&name).filter(|_| t.trim().starts_with("{{")).ok_or_else(|| {
                            src.error_at(&at.key("in"), format!("loop `in: {t}`: expected a list or `{{{{ variable }}}}` holding a JSON array"))
                        })?;
                        LoopItems::Var(slot, name)
                    }
                    other => {
                        return Err(src.error_at(
                            &at.key("in"),
                            format!("loop `in:` must be a list, got {other}"),
                        ))
                    }
                };
                let body = self.steps(
                    s.steps.as_deref().unwrap_or_default(),
                    base,
                    scope,
                    &at.key("steps"),
                )?;
                out.push(StepPlan::Loop {
                    slot,
                    items,
                    steps: body,
                });
            }
        }
        Ok(out)
    }

    fn request(
        &mut self,
        r: &RequestSpec,
        base: &BTreeMap<String, String>,
        scope: &mut Scope<'_>,
        at: &NodePath,
    ) -> Result<RequestPlan, ScenarioError> {
        let src = &self.scenario.source;
        let err = |node: &NodePath, m: String| src.error_at(node, m);
        let tpl = |text: &str, node: &NodePath, scope: &mut Scope<'_>| {
            Template::compile(text, scope).map_err(|m| err(node, m.to_string()))
        };
        let path_at = at.key("path");

        // URL: host + path, then the query. An absolute URL's `user:password@` is sent as basic
        // auth and shown as `user:***@`, as the host's are.
        let absolute = r.path.contains("://") || r.path.starts_with("{{");
        let (path, path_auth) = match crate::encoding::url_credentials(&r.path) {
            (bare, Some(auth)) if absolute => (bare, basic_auth(&auth)),
            _ => (r.path.clone(), None),
        };
        let mut url = if absolute {
            tpl(&path, &path_at, scope)?
        } else {
            let host = self.host.as_deref().ok_or_else(|| {
                err(&path_at, format!("request `{}` is a relative path but no host is set: add `host:` to the scenario or pass -H/--host", r.path))
            })?;
            let mut t = Template::literal(host.trim_end_matches('/'));
            t.push(tpl(&r.path, &path_at, scope)?);
            t
        };
        let mut sep = if r.path.contains('?') { '&' } else { '?' };
        for (k, v) in &r.query {
            url.push_str(&format!("{sep}{}=", encode_component(k)));
            url.push(tpl(v, &at.key("query").key(k), scope)?.encoded());
            sep = '&';
        }
        let shown = crate::encoding::redact_url(&r.path);
        let default_name = shown.split('?').next().unwrap_or(&shown).to_owned();
        let name = self.names.intern(
            r.method.0.as_str(),
            r.name.as_deref().unwrap_or(&default_name),
        );

        // Headers: static ones in the request, varying ones in the template.
        let mut merged = base.clone();
        for (k, v) in &r.headers {
            merged.insert(k.to_ascii_lowercase(), v.clone());
        }
        let mut static_headers = HeaderMap::new();
        let mut var_headers = Vec::new();
        let mut body: Option<Template> = None;
        let mut static_body = Bytes::new();
        if let Some(json) = &r.json {
            let t = json_template(json, scope).map_err(|m| err(&at.key("json"), m))?;
            merged
                .entry("content-type".into())
                .or_insert_with(|| "application/json".into());
            body = Some(t);
        } else if let Some(b) = &r.body {
            body = Some(tpl(b, &at.key("body"), scope)?);
        } else if !r.form.is_empty() {
            let mut t = Template::default();
            for (i, (k, v)) in r.form.iter().enumerate() {
                t.push_str(&format!(
                    "{}{}=",
                    if i > 0 { "&" } else { "" },
                    crate::encoding::encode(k, crate::encoding::Set::Form)
                ));
                t.push(
                    tpl(v, &at.key("form").key(k), scope)?.encoded_as(crate::encoding::Set::Form),
                );
            }
            merged
                .entry("content-type".into())
                .or_insert_with(|| "application/x-www-form-urlencoded".into());
            body = Some(t);
        } else if let Some(f) = &r.body_file {
            let path = src.dir.join(f);
            static_body = std::fs::read(&path)
                .map_err(|e| {
                    err(
                        &at.key("body_file"),
                        format!("body_file: cannot read {}: {e}", path.display()),
                    )
                })?
                .into();
        }
        if let Some(b) = body.as_ref().and_then(Template::static_text) {
            static_body = Bytes::from(b);
            body = None;
        }
        for (k, v) in &merged {
            let header_at = || self.header_at(r, at, k);
            let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| {
                src.error_at_key(&header_at(), format!("invalid header name `{k}`"))
            })?;
            let t = Template::compile(v, scope).map_err(|m| err(&header_at(), m.to_string()))?;
            match t.static_text() {
                Some(text) => {
                    let value = HeaderValue::from_str(&text)
                        .map_err(|_| err(&header_at(), bad_header_value(k, &text)))?;
                    static_headers.insert(name, value);
                }
                None => var_headers.push((name, t)),
            }
        }
        // The host's credentials go to the host only, and a header given in the file wins.
        let auth = if absolute {
            path_auth.as_ref()
        } else {
            self.host_auth.as_ref()
        };
        if let Some(auth) = auth {
            if !merged.contains_key("authorization") {
                static_headers.insert(http::header::AUTHORIZATION, auth.clone());
            }
        }
        apply_run_headers(&mut static_headers, self.opts);

        let static_url = url.static_text();
        let uri: Uri = match &static_url {
            Some(u) => {
                let uri: Uri = u.parse().map_err(|e: http::uri::InvalidUri| {
                    err(&path_at, format!("invalid URL `{u}`: {e}"))
                })?;
                client::Origin::of(&uri).map_err(|f| err(&path_at, f.message))?;
                uri
            }
            None => Uri::from_static("http://template.invalid/"),
        };
        let mut request = Request::new(r.method.0.clone(), uri);
        request.headers = static_headers;
        request.body = static_body;
        request.timeout = r.timeout;
        let template =
            (static_url.is_none() || !var_headers.is_empty() || body.is_some()).then(|| {
                RequestTemplate {
                    url,
                    headers: var_headers,
                    body,
                }
            });

        let checks = r
            .check
            .iter()
            .enumerate()
            .map(|(n, c)| compile_check(c).map_err(|m| err(&at.key("check").index(n), m)))
            .collect::<Result<Vec<_>, _>>()?;
        let captures = r
            .capture
            .iter()
            .enumerate()
            .map(|(n, c)| {
                compile_capture(c, scope).map_err(|m| err(&at.key("capture").index(n), m))
            })
            .collect::<Result<Vec<_>, _>>()?;
        request.keep_body =
            checks.iter().any(Check::needs_body) || captures.iter().any(Capture::needs_body);
        request.keep_headers =
            checks.iter().any(Check::needs_headers) || captures.iter().any(Capture::needs_headers);
        let status_checked = checks.iter().any(|c| matches!(c, Check::Status(_)));
        Ok(RequestPlan {
            name,
            request,
            template,
            checks,
            captures,
            status_checked,
        })
    }
}

impl Compiler<'_> {
    /// Where the merged header `lower` (lower-cased) of the request at `at` was written: in the
    /// request, else in its user type, else in the scenario's `headers:`.
    fn header_at(&self, r: &RequestSpec, at: &NodePath, lower: &str) -> NodePath {
        let find = |map: &BTreeMap<String, String>| {
            map.keys().find(|k| k.eq_ignore_ascii_case(lower)).cloned()
        };
        if let Some(k) = find(&r.headers) {
            return at.key("headers").key(&k);
        }
        let u = NodePath::root().key("user_types").index(self.user_type);
        match self
            .scenario
            .user_types
            .get(self.user_type)
            .and_then(|t| find(&t.headers))
        {
            Some(k) => u.key("headers").key(&k),
            None => NodePath::root()
                .key("headers")
                .key(&find(&self.scenario.headers).unwrap_or_default()),
        }
    }
}

fn first_request_name(steps: &[StepPlan], names: &NameTable) -> String {
    for s in steps {
        match s {
            StepPlan::Request(r) => return names.get(r.name).1.to_owned(),
            StepPlan::Loop { steps, .. } => return first_request_name(steps, names),
            StepPlan::Think(_) => {}
        }
    }
    "task".into()
}

impl UserTypePlan {
    #[allow(clippy::too_many_arguments)]
    fn new(
        name: String,
        weight: u32,
        count: Option<u64>,
        wait: WaitTime,
        on_start: Vec<StepPlan>,
        on_stop: Vec<StepPlan>,
        tasks: Vec<TaskPlan>,
        vars: usize,
        feeders: Vec<FeederUse>,
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
            count,
            wait,
            on_start,
            on_stop,
            tasks,
            vars,
            feeders,
            cumulative,
        }
    }
}

/// The static headers of the `headers:` mapping at `at`.
fn header_map(
    map: &BTreeMap<String, String>,
    src: &crate::scenario::Source,
    at: &NodePath,
) -> Result<HeaderMap, ScenarioError> {
    let mut h = HeaderMap::new();
    for (k, v) in map {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| src.error_at_key(&at.key(k), format!("invalid header name `{k}`")))?;
        if v.contains("{{") {
            continue;
        }
        let value = HeaderValue::from_str(v)
            .map_err(|_| src.error_at(&at.key(k), bad_header_value(k, v)))?;
        h.insert(name, value);
    }
    Ok(h)
}

/// Why `value` cannot be sent as header `name`: a control character (a newline would start
/// another header) is named.
fn bad_header_value(name: &str, value: &str) -> String {
    match value.chars().find(|c| c.is_control() && *c != '\t') {
        Some(c) => {
            format!("invalid value for header `{name}`: it contains the control character {c:?}")
        }
        None => format!("invalid value for header `{name}`"),
    }
}

/// A basic-auth header value, marked sensitive (never shown by `Debug`, not HPACK-indexed).
fn basic_auth(value: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(value).ok()?;
    v.set_sensitive(true);
    Some(v)
}

fn apply_run_headers(h: &mut HeaderMap, opts: &PlanOptions) {
    for (k, v) in &opts.headers {
        h.insert(k.clone(), v.clone());
    }
    if let Some((k, v)) = &opts.run_id_header {
        h.insert(k.clone(), v.clone());
    }
}
