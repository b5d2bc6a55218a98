//! The `statsig:` section and the resolution of flags > environment > file into a [`Config`].
//! The Console API key is never read from the file: only from `STATSIG_CONSOLE_API_KEY`.

use std::time::Duration;

use super::api::{ConsoleConfig, Secret, DEFAULT_BASE_URL};

/// The environment variable holding the Console API key.
pub const KEY_VAR: &str = "STATSIG_CONSOLE_API_KEY";

/// Default time between two audit-log polls.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// `statsig: { gates: [...], configs: [...], interval: 10s, required: false, url: ... }`.
#[derive(Debug, Clone, Default, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StatsigSettings {
    /// Turn the integration on (true) or off (false); on by default when the section exists.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Refuse to run (exit 2) when the key is missing or refused, or Statsig cannot be read.
    #[serde(default)]
    pub required: Option<bool>,
    /// Base URL of the Console API instead of `https://statsigapi.net` (a proxy, a test stub).
    #[serde(default)]
    pub url: Option<String>,
    /// Feature gates whose state is recorded at the start and whose changes are watched.
    #[serde(default)]
    pub gates: Vec<String>,
    /// Dynamic configs, likewise.
    #[serde(default)]
    pub configs: Vec<String>,
    /// Time between two audit-log polls (default 10s).
    #[serde(default, deserialize_with = "loadlens_core::scenario::opt_duration")]
    pub interval: Option<Duration>,
}

/// Everything the integration needs for one run.
#[derive(Debug, Clone)]
pub struct Config {
    /// The Console API client's settings; `None` when no key was given.
    pub console: Option<ConsoleConfig>,
    /// Refuse to run when the start-up check fails.
    pub required: bool,
    /// Gates watched.
    pub gates: Vec<String>,
    /// Dynamic configs watched.
    pub configs: Vec<String>,
    /// Time between two polls.
    pub interval: Duration,
    /// Most audit-log pages read per poll (what a project changes in one interval fits in
    /// far fewer; the bound keeps one poll's cost fixed).
    pub max_pages: u32,
    /// Bound on the start-up check.
    pub check_timeout: Duration,
}

impl Config {
    /// A configuration for `base_url` with `key` (tests, and the resolution below).
    pub fn new(base_url: &str, key: Option<&str>) -> Self {
        Config {
            console: key.map(|k| ConsoleConfig::new(base_url, Secret::new(k))),
            required: false,
            gates: Vec::new(),
            configs: Vec::new(),
            interval: DEFAULT_INTERVAL,
            max_pages: 20,
            check_timeout: Duration::from_secs(30),
        }
    }

    /// The base URL requests go to.
    pub fn base_url(&self) -> &str {
        self.console
            .as_ref()
            .map_or(DEFAULT_BASE_URL, |c| c.base_url.as_str())
    }
}

/// Validate a base URL: `http(s)://host[:port][/path]`, without credentials.
pub fn check_url(url: &str) -> Result<String, String> {
    let u = url.trim().trim_end_matches('/');
    let uri: http::Uri = u
        .parse()
        .map_err(|_| format!("statsig: `{u}` is not a URL (expected https://host[:port])"))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        _ => {
            return Err(format!(
                "statsig: `{u}` is not an http(s) URL (expected https://host[:port])"
            ))
        }
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("statsig: the URL must not hold credentials; the key comes from STATSIG_CONSOLE_API_KEY".into());
    }
    Ok(u.to_owned())
}

/// Ids given as a list and/or comma-separated, trimmed, empty ones and repeats dropped.
pub fn ids(list: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in list.iter().flat_map(|s| s.split(',')).map(str::trim) {
        if !id.is_empty() && !out.iter().any(|o| o == id) {
            out.push(id.to_owned());
        }
    }
    out
}
