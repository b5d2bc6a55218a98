//! The plan: a scenario compiled for running. Request names are interned into [`NameId`]s,
//! variables resolved to slots, templates, checks and captures compiled, feeder files loaded,
//! headers merged (scenario < user type < request) and static bodies encoded once — so the
//! request path only renders what really varies and clones cheap handles for the rest.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Uri};

use crate::client::{self, Request};
use crate::encoding::encode_component;
use crate::feeder::Feeder;
use crate::inspect::{Capture, Check, Predicate, Source};
use crate::jsonpath::JsonPath;
use crate::sample::NameId;
use crate::scenario::{
    CaptureSpec, CheckSpec, NodePath, RequestSpec, Scenario, ScenarioError, Step, WaitTime,
};
use crate::template::{Names, Slot, Template};
use crate::thresholds::NameTags;

/// Interned `(method, name)` pairs.
#[derive(Debug, Clone, Default)]
pub struct NameTable {
    names: Vec<(String, String)>,
    /// Ids by pair: a generated scenario may have 100,000 names, and a linear search per
    /// request made compiling it quadratic.
    ids: HashMap<(String, String), NameId>,
}

impl NameTable {
    /// The id of `(method, name)`, interning it if new.
    pub fn intern(&mut self, method: &str, name: &str) -> NameId {
        let key = (method.to_owned(), name.to_owned());
        if let Some(id) = self.ids.get(&key) {
            return *id;
        }
        let id = NameId(self.names.len() as u32);
        self.names.push(key.clone());
        self.ids.insert(key, id);
        id
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

/// The parts of a request that vary per send.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    /// Full URL.
    pub url: Template,
    /// Headers whose values vary.
    pub headers: Vec<(HeaderName, Template)>,
    /// Body, when it varies.
    pub body: Option<Template>,
}

/// A compiled request.
#[derive(Debug, Clone)]
pub struct RequestPlan {
    /// Statistics name.
    pub name: NameId,
    /// The request; complete when `template` is `None`, else its static parts.
    pub request: Request,
    /// What has to be rendered per send.
    pub template: Option<RequestTemplate>,
    /// Checks, in order.
    pub checks: Vec<Check>,
    /// Captures, in order.
    pub captures: Vec<Capture>,
    /// A status check replaces the default rule (4xx/5xx fail).
    pub status_checked: bool,
}

/// Items of a loop.
#[derive(Debug, Clone)]
pub enum LoopItems {
    /// Literal items.
    List(Vec<String>),
    /// A variable holding a JSON array.
    Var(Slot, String),
}

/// One compiled step.
#[derive(Debug, Clone)]
pub enum StepPlan {
    /// Send a request.
    Request(Box<RequestPlan>),
    /// Pause.
    Think(WaitTime),
    /// Repeat `steps` with the VU variable `slot` set to each item.
    Loop {
        /// Loop variable slot.
        slot: usize,
        /// Items.
        items: LoopItems,
        /// Body.
        steps: Vec<StepPlan>,
    },
}

impl StepPlan {
    /// Every request plan in these steps, recursively.
    pub fn requests_mut<'a>(steps: &'a mut [StepPlan], out: &mut Vec<&'a mut RequestPlan>) {
        for s in steps {
            match s {
                StepPlan::Request(r) => out.push(r),
                StepPlan::Loop { steps, .. } => Self::requests_mut(steps, out),
                StepPlan::Think(_) => {}
            }
        }
    }
}

/// A task: what one iteration of a user does.
#[derive(Debug, Clone)]
pub struct TaskPlan {
    /// Name for reports.
    pub name: String,
    /// Relative frequency.
    pub weight: u32,
    /// Tags.
    pub tags: Vec<String>,
    /// Steps, in order.
    pub steps: Vec<StepPlan>,
}

/// A feeder as a user type sees it: which VU slots its columns fill.
#[derive(Debug, Clone)]
pub struct FeederUse {
    /// Index into [`Plan::feeders`].
    pub feeder: usize,
    /// VU slot per column.
    pub slots: Vec<usize>,
}

/// A user type, compiled.
#[derive(Debug, Clone)]
pub struct UserTypePlan {
    /// Name.
    pub name: String,
    /// Share of users.
    pub weight: u32,
    /// Fixed number of users, if any.
    pub count: Option<u64>,
    /// Think time.
    pub wait: WaitTime,
    /// Run once at user start.
    pub on_start: Vec<StepPlan>,
    /// Run once at graceful user stop.
    pub on_stop: Vec<StepPlan>,
    /// Tasks.
    pub tasks: Vec<TaskPlan>,
    /// Number of VU variable slots.
    pub vars: usize,
    /// Feeders and their slots.
    pub feeders: Vec<FeederUse>,
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

    /// The URL of the first task request whose URL does not vary (tasks in order, loops
    /// included): where an open-model VU connects while it waits for its first arrival.
    pub fn first_static_url(&self) -> Option<&Uri> {
        fn find(steps: &[StepPlan]) -> Option<&Uri> {
            steps.iter().find_map(|s| match s {
                StepPlan::Request(r) => r
                    .template
                    .as_ref()
                    .is_none_or(|t| t.url.static_text().is_some())
                    .then_some(&r.request.url),
                StepPlan::Loop { steps, .. } => find(steps),
                StepPlan::Think(_) => None,
            })
        }
        self.tasks.iter().find_map(|t| find(&t.steps))
    }

    /// Every request plan of this user type.
    pub fn requests_mut(&mut self) -> Vec<&mut RequestPlan> {
        let mut out = Vec::new();
        StepPlan::requests_mut(&mut self.on_start, &mut out);
        StepPlan::requests_mut(&mut self.on_stop, &mut out);
        for t in &mut self.tasks {
            StepPlan::requests_mut(&mut t.steps, &mut out);
        }
        out
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
    /// Loaded data feeders.
    pub feeders: Vec<Arc<Feeder>>,
    /// Run-wide variable names and initial values.
    pub globals: Vec<(String, Option<String>)>,
    /// Number of run-wide counters.
    pub counters: usize,
}

/// A plan that cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    /// A scenario error, located in the file.
    #[error("{0}")]
    Scenario(#[from] ScenarioError),
    /// A quick-mode URL that does not parse.
    #[error("invalid URL `{url}`: {reason}")]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
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
    /// Keep only tasks with one of these tags (empty: all).
    pub tags: Vec<String>,
    /// Drop tasks with one of these tags.
    pub exclude_tags: Vec<String>,
}

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
struct Scope<'a> {
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

    /// The user type of the `i`-th user (0-based): first the fixed counts in order, then the
    /// weighted types spread the way Locust does (deterministic, proportional at every prefix).
    pub fn user_type_for(&self, i: u64) -> usize {
        let mut i = i;
        for (k, u) in self.user_types.iter().enumerate() {
            if let Some(c) = u.count {
                if i < c {
                    return k;
                }
                i -= c;
            }
        }
        let weighted: Vec<usize> = (0..self.user_types.len())
            .filter(|&k| self.user_types[k].count.is_none() && self.user_types[k].weight > 0)
            .collect();
        if weighted.is_empty() {
            // Only fixed-count types: extra users cycle through them.
            return (i % self.user_types.len() as u64) as usize;
        }
        if weighted.len() == 1 {
            return weighted[0];
        }
        let total: i64 = weighted
            .iter()
            .map(|&k| i64::from(self.user_types[k].weight))
            .sum();
        // Smooth weighted round-robin, position i.
        let slot = i % total as u64;
        let mut current: Vec<i64> = vec![0; weighted.len()];
        let mut pick = 0;
        for _ in 0..=slot {
            for (c, &k) in current.iter_mut().zip(&weighted) {
                *c += i64::from(self.user_types[k].weight);
            }
            pick = (0..current.len())
                .max_by_key(|&k| (current[k], -(k as i64)))
                .unwrap_or(0);
            current[pick] -= total;
        }
        weighted[pick]
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
            Template::compile(text, scope).map_err(|m| err(node, m))
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
                    encode_component(k)
                ));
                t.push(tpl(v, &at.key("form").key(k), scope)?.encoded());
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
            let t = Template::compile(v, scope).map_err(|m| err(&header_at(), m))?;
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

/// A JSON value as a template: string values may contain `{{ }}`; a string that is exactly one
/// expression renders as raw JSON when its value is a number, boolean, null, object or array.
fn json_template(v: &serde_json::Value, scope: &mut Scope<'_>) -> Result<Template, String> {
    use serde_json::Value;
    let mut t = Template::default();
    match v {
        Value::String(s) if s.contains("{{") => {
            let inner = Template::compile(s, scope)?;
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

fn compile_check(c: &CheckSpec) -> Result<Check, String> {
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
            Value::Number(n) => crate::inspect::status_range(&n.to_string()),
            Value::String(s) => crate::inspect::status_range(s),
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
        Check::Json(JsonPath::compile(p)?, predicate(p)?)
    } else if let Some(h) = &c.header {
        let name = HeaderName::from_bytes(h.as_bytes())
            .map_err(|_| format!("invalid header name `{h}`"))?;
        Check::Header(name, predicate(h)?)
    } else {
        Check::MaxDuration(c.max_duration.unwrap_or(Duration::MAX))
    })
}

fn compile_capture(c: &CaptureSpec, scope: &mut Scope<'_>) -> Result<Capture, String> {
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
        Source::Json(JsonPath::compile(p)?)
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

fn all_captures(u: &crate::scenario::UserType) -> Vec<&CaptureSpec> {
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

fn loop_vars(u: &crate::scenario::UserType) -> Vec<String> {
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

// Built here, where plans are known, so that the thresholds need not import the plan (see the
// crate's layers).
impl NameTags {
    /// The tags of every request name sent by `plans` (the plans of one run share one name
    /// table; each may keep only some user types).
    pub fn of<'a>(plans: impl IntoIterator<Item = &'a Plan>) -> Self {
        let mut out = NameTags::default();
        for plan in plans {
            for (i, (m, n)) in plan.names.pairs().iter().enumerate() {
                out.set_label(i, format!("{m} {n}"));
            }
            for u in &plan.user_types {
                walk(&u.on_start, &[], &mut out);
                walk(&u.on_stop, &[], &mut out);
                for t in &u.tasks {
                    walk(&t.steps, &t.tags, &mut out);
                }
            }
        }
        out
    }
}

fn walk(steps: &[StepPlan], tags: &[String], out: &mut NameTags) {
    for s in steps {
        match s {
            StepPlan::Request(r) => out.see(r.name.0 as usize, tags),
            StepPlan::Loop { steps, .. } => walk(steps, tags, out),
            StepPlan::Think(_) => {}
        }
    }
}

/// Default stop timeout when neither file nor CLI sets one.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(text: &str) -> Scenario {
        Scenario::from_str_named(text, "t.yaml").unwrap()
    }

    fn req(s: &StepPlan) -> &RequestPlan {
        match s {
            StepPlan::Request(r) => r,
            other => panic!("not a request: {other:?}"),
        }
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
        let r0 = &req(&t[0].steps[0]).request;
        assert_eq!(
            r0.url.to_string(),
            "http://127.0.0.1:9/p?page=1&q=running%20shoes"
        );
        assert_eq!(r0.headers["x-a"], "scenario");
        assert_eq!(r0.headers["x-b"], "user");
        assert_eq!(r0.headers["x-c"], "req");
        assert_eq!(r0.headers["x-test-run-id"], "r1");
        let r1 = &req(&t[1].steps[0]).request;
        assert_eq!(&r1.body[..], br#"{"a":1}"#);
        assert_eq!(r1.headers["content-type"], "application/json");
        assert_eq!(plan.names.get(req(&t[1].steps[0]).name), ("POST", "create"));
        // `/p` and `/p?x=1` group under one name.
        assert_eq!(req(&t[0].steps[0]).name, req(&t[2].steps[0]).name);
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
    fn a_port_that_is_not_a_number_is_an_error_not_port_80() {
        // `http::Uri` accepts any port text and then reports no port at all.
        let s =
            scenario("user_types: [{ name: u, tasks: [{ request: { path: 'http://h:80x/a' } }] }]");
        let e = Plan::compile(&s, &PlanOptions::default()).unwrap_err();
        assert!(
            e.to_string()
                .contains("has the port `80x`: expected a number"),
            "{e}"
        );
        let e = Plan::single(
            "http://h:99999/",
            Method::GET,
            Bytes::new(),
            &PlanOptions::default(),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("the port `99999` is not a number"),
            "{e}"
        );
        for ok in [
            "http://h:8080/",
            "http://[::1]:8080/",
            "http://[::1]/",
            "https://h/",
        ] {
            let uri: Uri = ok.parse().unwrap();
            assert_eq!(client::invalid_port(&uri), None, "{ok}");
        }
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
