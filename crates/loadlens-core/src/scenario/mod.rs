//! The scenario file: what to test. Parsed from YAML with serde, strictly (unknown keys are
//! errors with a suggestion), and every error names file, line and column.
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
mod values;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

pub use error::ScenarioError;
pub use values::{parse_duration, Method, WaitTime};

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
    /// Think time between tasks, Locust-style: `between(1, 3)`, `constant(2)`.
    #[serde(default)]
    pub wait: WaitTime,
    /// Headers for this user type's requests (override the scenario's).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Requests made once when a user starts (e.g. logging in).
    #[serde(default)]
    pub on_start: Vec<RequestSpec>,
    /// Requests made once when a user stops gracefully.
    #[serde(default)]
    pub on_stop: Vec<RequestSpec>,
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
    /// The request this task makes.
    pub request: RequestSpec,
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
    /// Query parameters appended to the path.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Headers (override user type and scenario headers).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// JSON body (sets `Content-Type: application/json`).
    #[serde(default)]
    pub json: Option<serde_json::Value>,
    /// Raw text body.
    #[serde(default)]
    pub body: Option<String>,
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
    pub run_id_header: Option<serde_yaml::Value>,
}

fn one() -> u32 {
    1
}

impl Scenario {
    /// Read and parse `path`.
    pub fn from_file(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::Read {
            file: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::from_str_named(&text, &path.display().to_string())
    }

    /// Parse `text`; `file` names it in errors.
    pub fn from_str_named(text: &str, file: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario =
            serde_yaml::from_str(text).map_err(|e| ScenarioError::from_yaml(file, text, &e))?;
        scenario.validate(file, text)?;
        Ok(scenario)
    }

    /// Checks serde cannot express, located at the offending key when it can be found.
    fn validate(&self, file: &str, text: &str) -> Result<(), ScenarioError> {
        let err =
            |needle: &str, message: String| ScenarioError::at_text(file, text, needle, message);
        if self.user_types.is_empty() {
            return Err(err(
                "user_types",
                "`user_types` must list at least one user type".into(),
            ));
        }
        if self.user_types.iter().all(|u| u.weight == 0) {
            return Err(err(
                "weight",
                "at least one user type needs a weight above 0".into(),
            ));
        }
        for u in &self.user_types {
            if u.tasks.is_empty() {
                return Err(err(
                    &u.name,
                    format!(
                        "user type `{}` has no tasks: add at least one under `tasks:`",
                        u.name
                    ),
                ));
            }
            if u.tasks.iter().all(|t| t.weight == 0) {
                return Err(err(
                    &u.name,
                    format!(
                        "user type `{}`: at least one task needs a weight above 0",
                        u.name
                    ),
                ));
            }
            for r in u
                .tasks
                .iter()
                .map(|t| &t.request)
                .chain(&u.on_start)
                .chain(&u.on_stop)
            {
                if r.json.is_some() && r.body.is_some() {
                    return Err(err(
                        &r.path,
                        format!("request `{}` has both `json` and `body`: keep one", r.path),
                    ));
                }
                if !r.path.starts_with('/') && !r.path.contains("://") {
                    return Err(err(
                        &r.path,
                        format!(
                            "request path `{}` must start with `/` or be an absolute http(s) URL",
                            r.path
                        ),
                    ));
                }
            }
        }
        if let Some(h) = &self.host {
            if !(h.starts_with("http://") || h.starts_with("https://")) {
                return Err(err(
                    h,
                    format!("host `{h}` must start with http:// or https://"),
                ));
            }
        }
        if let Some(v) = &self.client.http_version {
            if !matches!(v.as_str(), "auto" | "http1" | "http2") {
                return Err(err(
                    v,
                    format!("client.http_version is `{v}`, expected auto, http1 or http2"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
