//! The scenario file: what to test. Parsed from YAML ([`crate::yaml`], which keeps every
//! node's position) with serde, strictly (unknown keys are
//! errors with a suggestion), and every error names file, line and column. Top-level keys that
//! are not the core's are the integrations' sections: set aside by name
//! ([`Scenario::sections`]), read by their owners ([`Source::parse_section`]), and refused when
//! nobody owns them ([`Scenario::check_sections`]).
//!
//! ```yaml
//! name: storefront
//! host: http://127.0.0.1:8080
//! headers: { User-Agent: loadlens-demo }
//! user_types:
//!   - name: shopper
//!     weight: 3
//!     wait: between(1, 3)
//!     tasks:
//!       - name: homepage
//!         weight: 3
//!         request: { method: GET, path: /, name: GET / }
//! load: { users: 10, spawn_rate: 5, run_time: 20s }
//! ```

mod error;
mod nesting;
mod sections;
mod values;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

pub use sections::opt_duration;
use serde::Deserialize;

pub use crate::yaml::NodePath;
pub use error::ScenarioError;
pub use values::WaitError;
pub use values::{Method, WaitTime};

/// A parsed scenario file.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name shown in reports (defaults to the file stem).
    #[serde(default)]
    pub name: Option<String>,
    /// Free text for reports.
    #[serde(default)]
    pub description: Option<String>,
    /// Base URL that relative request paths are joined to; `-H/--host` overrides it.
    #[serde(default)]
    pub host: Option<String>,
    /// Headers sent with every request.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Run-wide variables (`{{ name }}`), also the target of captures with `scope: global`.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// Data feeders: CSV files whose rows become variables (`{{ feeder.column }}`).
    #[serde(default)]
    pub data: BTreeMap<String, FeederSpec>,
    /// Kinds of virtual users.
    pub user_types: Vec<UserType>,
    /// Default load profile; CLI flags override each field.
    #[serde(default)]
    pub load: Load,
    /// HTTP client settings.
    #[serde(default)]
    pub client: ClientSettings,
    /// Run identity and tags.
    #[serde(default)]
    pub run: RunSettings,
    /// Pass/fail rules: `p95 < 300ms`, `error_rate < 1%`, … (see [`crate::thresholds`]).
    #[serde(default, deserialize_with = "crate::loadspec::thresholds")]
    pub thresholds: Vec<crate::loadspec::ThresholdSpec>,
    /// Planned actions: gate flips at a moment of the run, actions at the end of a failed run
    /// (see [`crate::action`]).
    #[serde(default)]
    pub actions: Vec<crate::action::Planned>,
    /// Named scenarios with their own load model and start offset, side by side
    /// (see [`crate::loadspec`]).
    #[serde(default)]
    pub scenarios: BTreeMap<String, crate::loadspec::ScenarioSpec>,
    /// The top-level keys that are not the core's, in order: the integrations' sections
    /// (`otel:`, `datadog:`, …), read by their owners with [`Source::parse_section`] and
    /// checked with [`Scenario::check_sections`].
    #[serde(skip)]
    pub sections: Vec<String>,
    /// Where the scenario came from (for located errors and relative file paths).
    #[serde(skip)]
    pub source: Source,
}

/// The file a scenario was read from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Source {
    /// File name as given.
    pub file: String,
    /// Text after environment substitution.
    pub text: String,
    /// Directory that relative paths (`body_file`, `data`) are resolved against.
    pub dir: std::path::PathBuf,
}

impl Source {
    /// An error located at the first occurrence of `needle`. Prefer [`Source::error_at`]: the
    /// first occurrence may belong to another node.
    pub fn error(&self, needle: &str, message: impl Into<String>) -> ScenarioError {
        ScenarioError::at_text(&self.file, &self.text, needle, message.into())
    }

    /// An error located at the value of the node at `at` (or at its deepest existing ancestor).
    pub fn error_at(&self, at: &NodePath, message: impl Into<String>) -> ScenarioError {
        self.located(at, false, message.into())
    }

    /// An error located at the key of the node at `at`, e.g. at `steps:` rather than its list.
    pub fn error_at_key(&self, at: &NodePath, message: impl Into<String>) -> ScenarioError {
        self.located(at, true, message.into())
    }

    fn located(&self, at: &NodePath, key: bool, message: String) -> ScenarioError {
        // The text parsed before (it is a scenario's), so it parses again.
        let pos = crate::yaml::load(&self.text)
            .map_or(crate::yaml::Pos { line: 1, column: 1 }, |doc| {
                doc.find(at, key)
            });
        ScenarioError::Invalid {
            file: self.file.clone(),
            line: pos.line,
            column: pos.column,
            message,
        }
    }
}

/// A CSV data feeder.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FeederSpec {
    /// CSV file (first line: column names), relative to the scenario file.
    pub file: String,
    /// `sequential` (default), `random` or `unique` (one row per user).
    #[serde(default = "default_mode")]
    pub mode: crate::feeder::Mode,
    /// `recycle` (default), `stop_vu` or `stop_run`.
    #[serde(default = "default_exhausted")]
    pub on_exhausted: crate::feeder::Exhausted,
}

fn default_mode() -> crate::feeder::Mode {
    crate::feeder::Mode::Sequential
}

fn default_exhausted() -> crate::feeder::Exhausted {
    crate::feeder::Exhausted::Recycle
}

/// A kind of virtual user.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserType {
    /// Name used in reports.
    pub name: String,
    /// Share of the users (relative to the other user types).
    #[serde(default = "one")]
    pub weight: u32,
    /// A fixed number of users of this type (Locust's `fixed_count`), started before the
    /// weighted ones.
    #[serde(default)]
    pub count: Option<u64>,
    /// Think time between tasks, Locust-style: `between(1, 3)`, `constant(2)`,
    /// `constant_pacing(5)`, `constant_throughput(2)`, `poisson(0.5)`.
    #[serde(default)]
    pub wait: WaitTime,
    /// Headers for this user type's requests (override the scenario's).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Steps run once when a user starts (e.g. logging in).
    #[serde(default)]
    pub on_start: Vec<Step>,
    /// Steps run once when a user stops gracefully.
    #[serde(default)]
    pub on_stop: Vec<Step>,
    /// What the user does repeatedly, picked by weight.
    pub tasks: Vec<Task>,
}

/// One task of a user type.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// Name for reports (defaults to the request's name).
    #[serde(default)]
    pub name: Option<String>,
    /// Relative frequency.
    #[serde(default = "one")]
    pub weight: u32,
    /// Tags for `-T/--tags` and `-E/--exclude-tags`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// A single-request task.
    #[serde(default)]
    pub request: Option<RequestSpec>,
    /// A flow: requests, loops and think times in order.
    #[serde(default)]
    pub steps: Option<Vec<Step>>,
}

impl Task {
    /// The task's steps, whichever way they were written.
    pub fn all_steps(&self) -> Vec<Step> {
        match (&self.request, &self.steps) {
            (Some(r), _) => vec![Step::request(r.clone())],
            (None, Some(s)) => s.clone(),
            (None, None) => Vec::new(),
        }
    }
}

/// One step of a flow: exactly one of `request`, `think`, or `for` + `in` + `steps`.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// Make a request.
    #[serde(default)]
    pub request: Option<RequestSpec>,
    /// Pause, e.g. `1s` or `between(0.5, 2)`.
    #[serde(default)]
    pub think: Option<WaitTime>,
    /// Loop variable name.
    #[serde(default, rename = "for")]
    pub for_each: Option<String>,
    /// Loop items: a list, or a variable holding a JSON array (`"{{ ids }}"`).
    #[serde(default, rename = "in")]
    pub items: Option<serde_json::Value>,
    /// Loop body.
    #[serde(default)]
    pub steps: Option<Vec<Step>>,
}

impl Step {
    /// A request step.
    pub fn request(r: RequestSpec) -> Step {
        Step {
            request: Some(r),
            ..Step::default()
        }
    }
}

/// A capture into a variable.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct CaptureSpec {
    /// Variable name.
    #[serde(rename = "as")]
    pub var: String,
    /// JSONPath into the body, e.g. `$.access_token`.
    #[serde(default)]
    pub json: Option<String>,
    /// Response header name.
    #[serde(default)]
    pub header: Option<String>,
    /// Regex on the body.
    #[serde(default)]
    pub regex: Option<String>,
    /// Regex group (default 1 if the regex has a group, else 0).
    #[serde(default)]
    pub group: Option<usize>,
    /// Cookie name (from the user's jar).
    #[serde(default)]
    pub cookie: Option<String>,
    /// Capture the status code.
    #[serde(default)]
    pub status: Option<bool>,
    /// Value when the source has none (otherwise the request fails).
    #[serde(default)]
    pub default: Option<String>,
    /// `vu` (default) or `global` (shared by every user).
    #[serde(default)]
    pub scope: Option<String>,
}

/// A check on the response. A failed check fails the request with a readable reason.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// Allowed statuses: `200`, `[200, 201]`, `2xx`, `200-299`.
    #[serde(default)]
    pub status: Option<serde_json::Value>,
    /// The body contains this text.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// The body matches this regex.
    #[serde(default)]
    pub body_matches: Option<String>,
    /// JSONPath of the value to test (with `exists`, `equals` or `matches`).
    #[serde(default)]
    pub json: Option<String>,
    /// Header to test (with `exists`, `equals` or `matches`).
    #[serde(default)]
    pub header: Option<String>,
    /// Present (true) or absent (false).
    #[serde(default)]
    pub exists: Option<bool>,
    /// Equal to this value.
    #[serde(default)]
    pub equals: Option<serde_json::Value>,
    /// Matches this regex.
    #[serde(default)]
    pub matches: Option<String>,
    /// The request took at most this long.
    #[serde(default, deserialize_with = "values::opt_duration")]
    pub max_duration: Option<Duration>,
}

/// One HTTP request.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RequestSpec {
    /// HTTP method (default GET).
    #[serde(default)]
    pub method: Method,
    /// Path joined to the host, or an absolute URL.
    pub path: String,
    /// Name for grouping in statistics (default: the path without its query).
    #[serde(default)]
    pub name: Option<String>,
    /// Query parameters appended to the path, in the order they are written (a server or a
    /// cache may key on the raw order; a sorted map would change it).
    #[serde(default, deserialize_with = "values::ordered_pairs")]
    pub query: Vec<(String, String)>,
    /// Headers (override user type and scenario headers).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON body (sets `Content-Type: application/json`).
    #[serde(default)]
    pub json: Option<serde_json::Value>,
    /// Raw text body (templates allowed).
    #[serde(default)]
    pub body: Option<String>,
    /// URL-encoded form body (sets `Content-Type: application/x-www-form-urlencoded`).
    #[serde(default)]
    pub form: BTreeMap<String, String>,
    /// Body read from a file (relative to the scenario file), sent as is.
    #[serde(default)]
    pub body_file: Option<String>,
    /// Captures into variables, evaluated in order after the response.
    #[serde(default)]
    pub capture: Vec<CaptureSpec>,
    /// Checks on the response.
    #[serde(default)]
    pub check: Vec<CheckSpec>,
    /// Per-request timeout.
    #[serde(default, deserialize_with = "values::opt_duration")]
    pub timeout: Option<Duration>,
}

/// The load profile written in the file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// Peak number of concurrent users.
    #[serde(default)]
    pub users: Option<u64>,
    /// Users started per second.
    #[serde(default)]
    pub spawn_rate: Option<f64>,
    /// How long to run.
    #[serde(default, deserialize_with = "values::opt_duration")]
    pub run_time: Option<Duration>,
    /// Stop after this many task iterations in total.
    #[serde(default)]
    pub iterations: Option<u64>,
    /// How long in-flight requests may take to finish once the run stops.
    #[serde(default, deserialize_with = "values::opt_duration")]
    pub stop_timeout: Option<Duration>,
    /// Ramp stages: `30s:100,5m:100,30s:0` or a list of `{ duration, target }`; targets are
    /// users, or arrival rates with `arrival_rate` (see [`crate::loadspec`]).
    #[serde(default)]
    pub stages: Option<crate::loadspec::StagesSpec>,
    /// Open model: iterations started per second (`200/s`, `1200/m`) at the start.
    #[serde(default)]
    pub arrival_rate: Option<crate::loadspec::Rate>,
    /// Open model: VUs started before the first arrival.
    #[serde(default)]
    pub pre_allocated_vus: Option<u64>,
    /// Open model: most VUs; arrivals finding none free beyond this are dropped iterations.
    #[serde(default)]
    pub max_vus: Option<u64>,
}

/// HTTP client settings written in the file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    /// Request timeout.
    #[serde(default, deserialize_with = "values::opt_duration")]
    pub timeout: Option<Duration>,
    /// Connect timeout.
    #[serde(default, deserialize_with = "values::opt_duration")]
    pub connect_timeout: Option<Duration>,
    /// Redirects to follow.
    #[serde(default)]
    pub max_redirects: Option<usize>,
    /// Skip TLS certificate verification.
    #[serde(default)]
    pub insecure: Option<bool>,
    /// `auto`, `http1` or `http2`.
    #[serde(default)]
    pub http_version: Option<String>,
    /// Share HTTP/2 connections between users, at most this many requests in flight on each
    /// (`--http2-streams`); implies `http_version: http2`.
    #[serde(default)]
    pub http2_streams: Option<u32>,
    /// Most bytes of a response body kept for checks and captures (`4MiB`, `512KiB`, bytes).
    #[serde(default, deserialize_with = "values::opt_byte_size")]
    pub max_body_size: Option<u64>,
}

/// Run identity settings written in the file.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    /// Tags added to every output (`--tag` adds more).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Header carrying the run id (default `X-Test-Run-Id`); `false` turns it off.
    #[serde(default)]
    pub run_id_header: Option<serde_json::Value>,
}

fn one() -> u32 {
    1
}

/// A zero timeout would fail every request before it is sent.
fn zero_timeout(what: &str) -> String {
    format!(
        "{what} is 0: every request would time out at once; give a positive duration such as `30s`"
    )
}

impl Scenario {
    /// Read and parse `path`, substituting `${VAR}` / `${VAR:-default}` from the environment.
    pub fn from_file(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::Read {
            file: path.display().to_string(),
            message: e.to_string(),
        })?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, &path.display().to_string(), dir, |k| {
            std::env::var(k).ok()
        })
    }

    /// Parse `text` without environment substitution; `file` names it in errors.
    pub fn from_str_named(text: &str, file: &str) -> Result<Scenario, ScenarioError> {
        Self::parse(text, file, std::path::PathBuf::new(), |_| None)
    }

    /// Parse `text` with `env` for `${VAR}` substitution; relative paths resolve against `dir`.
    pub fn parse(
        text: &str,
        file: &str,
        dir: std::path::PathBuf,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Scenario, ScenarioError> {
        // A byte-order mark is allowed at the start of a YAML stream (editors on Windows
        // write one); it is not part of the first key.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let text = if text.contains("${") {
            crate::template::substitute_env(text, env).map_err(|e| {
                let (pos, message) = (e.offset, e.to_string());
                let line = text[..pos].matches('\n').count() + 1;
                let column = pos - text[..pos].rfind('\n').map_or(0, |i| i + 1) + 1;
                ScenarioError::Invalid {
                    file: file.to_owned(),
                    line,
                    column,
                    message,
                }
            })?
        } else {
            text.to_owned()
        };
        if let Some(pos) = nesting::too_deep(&text) {
            let line = text[..pos].matches('\n').count() + 1;
            let column = text[..pos].chars().rev().take_while(|c| *c != '\n').count() + 1;
            return Err(ScenarioError::Invalid {
                file: file.to_owned(),
                line,
                column,
                message: format!(
                    "brackets nested more than {} levels deep: a scenario needs a few",
                    nesting::MAX_FLOW_DEPTH
                ),
            });
        }
        let root = NodePath::root();
        let (mut scenario, sections) = crate::yaml::load(&text)
            .and_then(|doc| sections::deserialize(crate::yaml::De::new(&doc, &root)))
            .map_err(|e| ScenarioError::from_yaml(file, &e))?;
        scenario.sections = sections;
        scenario.source = Source {
            file: file.to_owned(),
            text,
            dir,
        };
        scenario.validate()?;
        Ok(scenario)
    }

    /// Checks serde cannot express, located at the offending node by its path.
    fn validate(&self) -> Result<(), ScenarioError> {
        let src = &self.source;
        let types = NodePath::root().key("user_types");
        if self.user_types.is_empty() {
            return Err(src.error_at_key(&types, "`user_types` must list at least one user type"));
        }
        if self
            .user_types
            .iter()
            .all(|u| u.weight == 0 && u.count.is_none())
        {
            return Err(src.error_at(
                &types.index(0).key("weight"),
                "at least one user type needs a weight above 0 or a `count`",
            ));
        }
        for (i, u) in self.user_types.iter().enumerate() {
            let at = types.index(i);
            if u.tasks.is_empty() {
                return Err(src.error_at_key(
                    &at.key("tasks"),
                    format!(
                        "user type `{}` has no tasks: add at least one under `tasks:`",
                        u.name
                    ),
                ));
            }
            if u.tasks.iter().all(|t| t.weight == 0) {
                return Err(src.error_at_key(
                    &at.key("tasks"),
                    format!(
                        "user type `{}`: at least one task needs a weight above 0",
                        u.name
                    ),
                ));
            }
            for (j, t) in u.tasks.iter().enumerate() {
                let task = at.key("tasks").index(j);
                match (&t.request, &t.steps) {
                    (Some(_), Some(_)) => {
                        return Err(src.error_at_key(
                            &task.key("steps"),
                            format!(
                                "a task of `{}` has both `request` and `steps`: keep one",
                                u.name
                            ),
                        ))
                    }
                    (None, None) => {
                        return Err(src.error_at(
                            &task,
                            format!("a task of `{}` has neither `request` nor `steps`", u.name),
                        ))
                    }
                    (None, Some(s)) if s.is_empty() => {
                        return Err(src.error_at_key(
                            &task.key("steps"),
                            "`steps` is empty: add at least one step",
                        ))
                    }
                    // A single-request task is a mapping with `request:`, as a step is.
                    (Some(r), None) => self.validate_step(&Step::request(r.clone()), &task)?,
                    (None, Some(s)) => self.validate_steps(s, &task.key("steps"))?,
                }
            }
            self.validate_steps(&u.on_start, &at.key("on_start"))?;
            self.validate_steps(&u.on_stop, &at.key("on_stop"))?;
        }
        if let Some(h) = &self.host {
            if !(h.starts_with("http://") || h.starts_with("https://")) {
                return Err(src.error_at(
                    &NodePath::root().key("host"),
                    format!("host `{h}` must start with http:// or https://"),
                ));
            }
        }
        if let Some(v) = &self.client.http_version {
            if !matches!(v.as_str(), "auto" | "http1" | "http2") {
                return Err(src.error_at(
                    &NodePath::root().key("client").key("http_version"),
                    format!("client.http_version is `{v}`, expected auto, http1 or http2"),
                ));
            }
        }
        if let Some(n) = self.client.http2_streams {
            let at = NodePath::root().key("client").key("http2_streams");
            if n == 0 {
                return Err(src.error_at(
                    &at,
                    "client.http2_streams is 0: give the most requests in flight on one shared \
                     HTTP/2 connection, at least 1 (h2load's -m, oha's -p), or remove it for one \
                     connection per user"
                        .to_owned(),
                ));
            }
            if self.client.http_version.as_deref() == Some("http1") {
                return Err(src.error_at(
                    &at,
                    "client.http2_streams shares HTTP/2 connections, but client.http_version is \
                     http1: set http_version to http2 (or remove it)"
                        .to_owned(),
                ));
            }
        }
        for (key, t) in [
            ("timeout", self.client.timeout),
            ("connect_timeout", self.client.connect_timeout),
        ] {
            if t == Some(Duration::ZERO) {
                return Err(src.error_at_key(
                    &NodePath::root().key("client").key(key),
                    zero_timeout(&format!("client.{key}")),
                ));
            }
        }
        crate::loadspec::validate(self)
            .map_err(|(needle, message)| self.locate_load_error(&needle, message))?;
        Ok(())
    }

    /// Load checks name the node at fault by its text (`load`, a named scenario, a user type,
    /// a threshold): locate the node of that name by its path where there is one, since the
    /// text also appears elsewhere (`# loadlens demo runs this file` before `load:`). A
    /// threshold's own text is distinctive enough to be found as it is.
    fn locate_load_error(&self, needle: &str, message: String) -> ScenarioError {
        let src = &self.source;
        let root = NodePath::root();
        if needle == "load" {
            return src.error_at_key(&root.key("load"), message);
        }
        if self.scenarios.contains_key(needle) {
            return src.error_at_key(&root.key("scenarios").key(needle), message);
        }
        for (name, sc) in &self.scenarios {
            if let Some(k) = sc.user_types.iter().position(|u| u == needle) {
                let at = root.key("scenarios").key(name).key("user_types").index(k);
                return src.error_at(&at, message);
            }
        }
        src.error(needle, message)
    }

    /// Check the steps of the list at `at`.
    fn validate_steps(&self, steps: &[Step], at: &NodePath) -> Result<(), ScenarioError> {
        for (k, s) in steps.iter().enumerate() {
            self.validate_step(s, &at.index(k))?;
        }
        Ok(())
    }

    /// Check one step, the mapping at `at`.
    fn validate_step(&self, s: &Step, at: &NodePath) -> Result<(), ScenarioError> {
        let src = &self.source;
        let kinds = usize::from(s.request.is_some())
            + usize::from(s.think.is_some())
            + usize::from(s.for_each.is_some());
        if kinds != 1 {
            return Err(src.error_at(
                at,
                "each step needs exactly one of `request`, `think` or `for` (+ `in` and `steps`)",
            ));
        }
        if let Some(var) = &s.for_each {
            if s.items.is_none() || s.steps.as_ref().is_none_or(Vec::is_empty) {
                return Err(src.error_at(
                    &at.key("for"),
                    format!("loop `for: {var}` needs `in:` (a list) and non-empty `steps:`"),
                ));
            }
            self.validate_steps(s.steps.as_deref().unwrap_or_default(), &at.key("steps"))?;
        } else if s.items.is_some() || s.steps.is_some() {
            let key = if s.items.is_some() { "in" } else { "steps" };
            return Err(src.error_at_key(&at.key(key), "`in` and `steps` belong to a `for` loop"));
        }
        if let Some(r) = &s.request {
            let at = at.key("request");
            if r.timeout == Some(Duration::ZERO) {
                return Err(src.error_at_key(
                    &at.key("timeout"),
                    zero_timeout(&format!("the timeout of request `{}`", r.path)),
                ));
            }
            let bodies = usize::from(r.json.is_some())
                + usize::from(r.body.is_some())
                + usize::from(!r.form.is_empty())
                + usize::from(r.body_file.is_some());
            if bodies > 1 {
                return Err(src.error_at(
                    &at,
                    format!("request `{}` has more than one of `json`, `body`, `form`, `body_file`: keep one", r.path),
                ));
            }
            if !r.path.starts_with('/') && !r.path.contains("://") && !r.path.starts_with("{{") {
                return Err(src.error_at(
                    &at.key("path"),
                    format!(
                        "request path `{}` must start with `/` or be an absolute http(s) URL",
                        r.path
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod scale_tests;
#[cfg(test)]
mod tests;
