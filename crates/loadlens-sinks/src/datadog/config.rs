//! Datadog settings: from the scenario's `datadog:` section, then flags and environment
//! variables (which override the file), with the keys only ever from the environment.
//!
//! | setting | flag / variable | default |
//! |---|---|---|
//! | on/off | `--datadog[=false]` / `LOADLENS_DATADOG` | on when a `datadog:` section exists or `DD_API_KEY` is set |
//! | API key | `DD_API_KEY` or `DATADOG_API_KEY` | — (events, API metrics, monitors) |
//! | application key | `DD_APP_KEY` or `DATADOG_APP_KEY` | — (monitors) |
//! | site | `--datadog-site` / `DD_SITE` | `datadoghq.com` |
//! | API base URL | `--datadog-url` / `LOADLENS_DATADOG_URL` (`user:password@` in it: basic auth) | `https://api.SITE` |
//! | metrics transport | `--datadog-metrics` / `LOADLENS_DATADOG_METRICS` | `auto`: DogStatsD when an agent host is set, else the API |
//! | agent | `--datadog-agent-host` / `DD_AGENT_HOST`, `--datadog-dogstatsd-port` / `DD_DOGSTATSD_PORT` | port 8125 |
//!
//! Keys are held in [`Secret`], whose `Debug` prints `***` and which has no `Display`: they
//! cannot reach a log line, a report or an error message by accident.

use std::time::Duration;

/// The `datadog:` section. API and application keys are never read from the file: they come
/// from `DD_API_KEY` / `DD_APP_KEY` (or `DATADOG_API_KEY` / `DATADOG_APP_KEY`).
#[derive(Debug, Clone, Default, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatadogSettings {
    /// Turn the integration on (true) or off (false); on by default when the section exists.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Refuse to run (exit 2) when Datadog rejects the keys or cannot be reached at the start.
    #[serde(default)]
    pub required: Option<bool>,
    /// Datadog site: `datadoghq.com` (default), `us3.datadoghq.com`, `datadoghq.eu`, …
    #[serde(default)]
    pub site: Option<String>,
    /// Base URL of the API instead of `https://api.SITE` (a proxy, a test stub).
    #[serde(default)]
    pub url: Option<String>,
    /// Metrics transport: `auto` (default), `api`, `dogstatsd` or `off`.
    #[serde(default)]
    pub metrics: Option<String>,
    /// Metric name prefix (default `loadlens.`).
    #[serde(default)]
    pub metric_prefix: Option<String>,
    /// How often metrics are sent (default 10s).
    #[serde(default, deserialize_with = "loadlens_core::scenario::opt_duration")]
    pub metric_interval: Option<Duration>,
    /// Request names tagged individually; the rest share one overflow tag (default 50).
    #[serde(default)]
    pub max_request_names: Option<usize>,
    /// Send run events (start, stop, breaches, monitor changes); default true.
    #[serde(default)]
    pub events: Option<bool>,
    /// Tags added to everything sent to Datadog, beyond the run's tags.
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// DogStatsD host (default `DD_AGENT_HOST`).
    #[serde(default)]
    pub agent_host: Option<String>,
    /// DogStatsD port (default `DD_DOGSTATSD_PORT`, else 8125).
    #[serde(default)]
    pub dogstatsd_port: Option<u16>,
    /// Monitors polled during the run, each with its action on Alert.
    #[serde(default)]
    pub monitors: Vec<DatadogMonitor>,
    /// How often monitors are polled (default 15s).
    #[serde(default, deserialize_with = "loadlens_core::scenario::opt_duration")]
    pub monitor_interval: Option<Duration>,
    /// Most time spent delivering what is left at the end of the run (default 5s).
    #[serde(default, deserialize_with = "loadlens_core::scenario::opt_duration")]
    pub timeout: Option<Duration>,
}

/// One Datadog monitor to watch.
#[derive(Debug, Clone, Default, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatadogMonitor {
    /// Monitor id (the number in its URL).
    pub id: u64,
    /// On Alert: `mark` (default: a timeline event), `abort` (stop the run, exit 3) or `fail`
    /// (the run fails at the end, exit 1).
    #[serde(default)]
    pub action: Option<String>,
}

/// Sites Datadog documents; others are accepted too (new sites appear), with the same URL shape.
pub const KNOWN_SITES: [&str; 7] = [
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "datadoghq.eu",
    "ddog-gov.com",
];

pub use crate::secret::Secret;

/// How metrics reach Datadog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsTransport {
    /// The HTTP API: `POST /api/v2/series` (gzip) and `POST /api/v1/distribution_points`.
    Api,
    /// A local Datadog agent over DogStatsD (UDP).
    DogStatsd,
    /// No metrics (events and monitors only).
    Off,
}

/// What happens when a watched monitor is seen in `Alert`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorAction {
    /// Only record it on the timeline (and as a Datadog event).
    Mark,
    /// Stop the run at once; it ends as aborted (exit code 3).
    Abort,
    /// Let the run go on, but fail it at the end (exit code 1).
    Fail,
    /// `disable_gate=GATE`: turn a feature gate off through the run's guard actions (once per
    /// gate per run; see `loadlens_core::actions`).
    DisableGate(String),
}

/// A `--datadog-monitor` entry that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MonitorError {
    /// An action other than mark, abort, fail.
    #[error("monitor action `{action}` is not one of mark, abort, fail")]
    Action {
        /// The action, trimmed and lowercased.
        action: String,
    },
    /// An id that is not a number.
    #[error("monitor `{monitor}`: expected ID or ID:ACTION, e.g. 12345:abort")]
    Id {
        /// The entry as given.
        monitor: String,
    },
}

impl std::str::FromStr for MonitorAction {
    type Err = MonitorError;
    fn from_str(s: &str) -> Result<Self, MonitorError> {
        // The gate's id keeps its case.
        if let Some(gate) = s.trim().strip_prefix("disable_gate=") {
            if !gate.trim().is_empty() {
                return Ok(MonitorAction::DisableGate(gate.trim().to_owned()));
            }
        }
        match s.trim().to_ascii_lowercase().as_str() {
            "mark" | "" => Ok(MonitorAction::Mark),
            "abort" => Ok(MonitorAction::Abort),
            "fail" => Ok(MonitorAction::Fail),
            other => Err(MonitorError::Action {
                action: other.to_owned(),
            }),
        }
    }
}

/// One monitor to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorSpec {
    /// Monitor id.
    pub id: u64,
    /// Action on Alert.
    pub action: MonitorAction,
}

impl std::str::FromStr for MonitorSpec {
    type Err = MonitorError;
    /// `12345` or `12345:abort`.
    fn from_str(s: &str) -> Result<Self, MonitorError> {
        let (id, action) = s.split_once(':').unwrap_or((s, "mark"));
        let id = id.trim().parse().map_err(|_| MonitorError::Id {
            monitor: s.to_owned(),
        })?;
        Ok(MonitorSpec {
            id,
            action: action.parse()?,
        })
    }
}

/// Values given on the command line (or their environment twins); `None` leaves the file's.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--datadog[=BOOL]`.
    pub enabled: Option<bool>,
    /// `--datadog-required`.
    pub required: bool,
    /// `--datadog-site`.
    pub site: Option<String>,
    /// `--datadog-url`.
    pub url: Option<String>,
    /// `--datadog-metrics` (`auto`, `api`, `dogstatsd`, `off`).
    pub metrics: Option<String>,
    /// `--datadog-metric-prefix`.
    pub metric_prefix: Option<String>,
    /// `--datadog-metric-interval`.
    pub metric_interval: Option<Duration>,
    /// `--datadog-monitor ID[:ACTION]` (replaces the file's list when given).
    pub monitors: Vec<String>,
    /// `--datadog-monitor-interval`.
    pub monitor_interval: Option<Duration>,
    /// `--datadog-agent-host`.
    pub agent_host: Option<String>,
    /// `--datadog-dogstatsd-port`.
    pub dogstatsd_port: Option<u16>,
}

/// Settings that cannot work together, found before the run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A value is malformed.
    #[error("datadog: {0}")]
    Invalid(String),
    /// Something needs a key that is not set.
    #[error("datadog: {0}")]
    MissingKey(String),
}

/// Everything the Datadog sink needs, resolved.
#[derive(Debug, Clone)]
pub struct Config {
    /// `DD_API_KEY`: events, API metrics, monitors.
    pub api_key: Option<Secret>,
    /// `DD_APP_KEY`: monitors.
    pub app_key: Option<Secret>,
    /// Site, for messages.
    pub site: String,
    /// API base URL without a trailing slash, e.g. `https://api.datadoghq.com`; never with a
    /// `user:password@` (see [`Config::basic_auth`]), so it can be shown.
    pub base_url: String,
    /// `Authorization: Basic …` from the `user:password@` of the API URL (a proxy in front of
    /// the API, a test double), sent with every call.
    pub basic_auth: Option<Secret>,
    /// Metrics transport.
    pub metrics: MetricsTransport,
    /// DogStatsD `host:port` (with [`MetricsTransport::DogStatsd`]).
    pub dogstatsd: Option<(String, u16)>,
    /// Metric name prefix, ending in `.` unless empty.
    pub prefix: String,
    /// Metrics are sent this often.
    pub metric_interval: Duration,
    /// Request names tagged individually; further names are tagged [`OVERFLOW_TAG`].
    pub max_request_names: usize,
    /// Latency values sent per request name and interval before sampling (see
    /// [`crate::datadog::encode`]).
    pub max_values: usize,
    /// Send events.
    pub events: bool,
    /// Extra `key:value` tags on everything.
    pub tags: Vec<(String, String)>,
    /// Monitors to watch.
    pub monitors: Vec<MonitorSpec>,
    /// Poll interval for monitors.
    pub monitor_interval: Duration,
    /// Bound on the delivery of what is left at the end of the run.
    pub timeout: Duration,
    /// Bound on one HTTP call.
    pub request_timeout: Duration,
    /// Jobs (event or one interval's metrics) waiting for delivery before new ones are dropped.
    pub queue: usize,
    /// Delivery attempts per job (429 and 5xx are retried, other 4xx are not).
    pub max_attempts: u32,
    /// First retry delay after a 5xx or a transport error; doubles each time.
    pub backoff: Duration,
    /// Longest wait for a rate limit to reset before giving up on a job.
    pub max_rate_limit_wait: Duration,
    /// Refuse to run when Datadog rejects the key or cannot be reached at the start.
    pub required: bool,
    /// Lines for the start event (target, load profile), set by the caller.
    pub details: Vec<String>,
}

/// The request tag shared by request names beyond [`Config::max_request_names`].
pub const OVERFLOW_TAG: &str = "request:__overflow__";

impl Config {
    /// A configuration with defaults, talking to `base_url` with `api_key` (tests, embedding).
    pub fn new(base_url: &str, api_key: Option<&str>, app_key: Option<&str>) -> Self {
        let (base_url, basic_auth) = loadlens_core::encoding::url_credentials(base_url);
        Config {
            api_key: api_key.map(Secret::new),
            app_key: app_key.map(Secret::new),
            site: "datadoghq.com".into(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            basic_auth: basic_auth.map(Secret::new),
            metrics: MetricsTransport::Api,
            dogstatsd: None,
            prefix: "loadlens.".into(),
            metric_interval: Duration::from_secs(10),
            max_request_names: 50,
            max_values: 1000,
            events: true,
            tags: Vec::new(),
            monitors: Vec::new(),
            monitor_interval: Duration::from_secs(15),
            timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            queue: 256,
            max_attempts: 4,
            backoff: Duration::from_millis(500),
            max_rate_limit_wait: Duration::from_secs(30),
            required: false,
            details: Vec::new(),
        }
    }

    /// Resolve the settings of the file (`datadog:`), the flags and the environment (`env`
    /// looks a variable up). `Ok(None)`: Datadog is not enabled.
    pub fn resolve(
        file: Option<&DatadogSettings>,
        flags: &Overrides,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Config>, ConfigError> {
        let env = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let def = DatadogSettings::default();
        let f = file.unwrap_or(&def);
        let api_key = env("DD_API_KEY").or_else(|| env("DATADOG_API_KEY"));
        let app_key = env("DD_APP_KEY").or_else(|| env("DATADOG_APP_KEY"));
        let flag_bool = |v: Option<String>| {
            v.map(|s| {
                !matches!(
                    s.to_ascii_lowercase().as_str(),
                    "0" | "false" | "no" | "off"
                )
            })
        };
        let enabled = flags
            .enabled
            .or_else(|| flag_bool(env("LOADLENS_DATADOG")))
            .or(f.enabled)
            .unwrap_or(file.is_some() || api_key.is_some());
        if !enabled {
            return Ok(None);
        }
        let required = flags.required
            || flag_bool(env("LOADLENS_DATADOG_REQUIRED")).unwrap_or(false)
            || f.required.unwrap_or(false);
        let site = flags
            .site
            .clone()
            .or_else(|| env("DD_SITE"))
            .or_else(|| f.site.clone())
            .unwrap_or_else(|| "datadoghq.com".into());
        let site = site
            .trim()
            .trim_start_matches("https://")
            .trim_start_matches("api.");
        let site = site.trim_end_matches('/').to_ascii_lowercase();
        if site.is_empty()
            || !site
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            return Err(ConfigError::Invalid(format!(
                "site `{site}` is not a host name (known sites: {})",
                KNOWN_SITES.join(", ")
            )));
        }
        let base_url = match flags
            .url
            .clone()
            .or_else(|| env("LOADLENS_DATADOG_URL"))
            .or_else(|| f.url.clone())
        {
            Some(u) => {
                let u = u.trim().trim_end_matches('/').to_owned();
                if !(u.starts_with("http://") || u.starts_with("https://"))
                    || u.parse::<http::Uri>().is_err()
                {
                    return Err(ConfigError::Invalid(format!(
                        "API URL `{}` must be an http:// or https:// URL",
                        loadlens_core::encoding::redact_url(&u)
                    )));
                }
                u
            }
            None => format!("https://api.{site}"),
        };
        let agent_host = flags
            .agent_host
            .clone()
            .or_else(|| env("DD_AGENT_HOST"))
            .or_else(|| f.agent_host.clone());
        let port = match flags.dogstatsd_port {
            Some(p) => p,
            None => match env("DD_DOGSTATSD_PORT") {
                Some(p) => p.trim().parse().map_err(|_| {
                    ConfigError::Invalid(format!("DD_DOGSTATSD_PORT `{p}` is not a port number"))
                })?,
                None => f.dogstatsd_port.unwrap_or(8125),
            },
        };
        let transport = flags
            .metrics
            .clone()
            .or_else(|| env("LOADLENS_DATADOG_METRICS"))
            .or_else(|| f.metrics.clone())
            .unwrap_or_else(|| "auto".into());
        let metrics = match transport.to_ascii_lowercase().as_str() {
            "auto" if agent_host.is_some() => MetricsTransport::DogStatsd,
            "auto" if api_key.is_some() => MetricsTransport::Api,
            "auto" | "off" | "none" => MetricsTransport::Off,
            "api" => MetricsTransport::Api,
            "dogstatsd" | "statsd" | "agent" => MetricsTransport::DogStatsd,
            other => {
                return Err(ConfigError::Invalid(format!(
                    "metrics transport `{other}` is not one of auto, api, dogstatsd, off"
                )))
            }
        };
        if metrics == MetricsTransport::Api && api_key.is_none() {
            return Err(ConfigError::MissingKey(
                "metrics over the API need an API key: set DD_API_KEY (or DATADOG_API_KEY), or use a local agent with DD_AGENT_HOST".into(),
            ));
        }
        let dogstatsd = match (metrics, agent_host) {
            (MetricsTransport::DogStatsd, Some(h)) => Some((h, port)),
            (MetricsTransport::DogStatsd, None) => Some(("127.0.0.1".to_owned(), port)),
            _ => None,
        };
        let monitors = if flags.monitors.is_empty() {
            let mut v = Vec::new();
            for (i, m) in f.monitors.iter().enumerate() {
                let action = m
                    .action
                    .as_deref()
                    .unwrap_or("mark")
                    .parse()
                    .map_err(|e| ConfigError::Invalid(format!("monitors[{i}]: {e}")))?;
                v.push(MonitorSpec { id: m.id, action });
            }
            v
        } else {
            flags
                .monitors
                .iter()
                .flat_map(|m| m.split(','))
                .filter(|m| !m.trim().is_empty())
                .map(|m| {
                    m.parse()
                        .map_err(|e: MonitorError| ConfigError::Invalid(e.to_string()))
                })
                .collect::<Result<Vec<MonitorSpec>, _>>()?
        };
        if !monitors.is_empty() && (api_key.is_none() || app_key.is_none()) {
            return Err(ConfigError::MissingKey(
                "watching monitors needs an API key and an application key: set DD_API_KEY and DD_APP_KEY (or DATADOG_API_KEY and DATADOG_APP_KEY)".into(),
            ));
        }
        if api_key.is_none() && metrics == MetricsTransport::Off {
            return Err(ConfigError::MissingKey(
                "nothing to send without an API key: set DD_API_KEY (or DATADOG_API_KEY), or DD_AGENT_HOST for DogStatsD metrics".into(),
            ));
        }
        let positive = |d: Option<Duration>, what: &str, default: u64| {
            let d = d.unwrap_or(Duration::from_secs(default));
            if d < Duration::from_millis(100) {
                Err(ConfigError::Invalid(format!(
                    "{what} must be at least 100ms, got {}",
                    humantime::format_duration(d)
                )))
            } else {
                Ok(d)
            }
        };
        let metric_interval = positive(
            flags.metric_interval.or(f.metric_interval),
            "metric interval",
            10,
        )?;
        let monitor_interval = positive(
            flags.monitor_interval.or(f.monitor_interval),
            "monitor interval",
            15,
        )?;
        let mut prefix = flags
            .metric_prefix
            .clone()
            .or_else(|| env("LOADLENS_DATADOG_METRIC_PREFIX"))
            .or_else(|| f.metric_prefix.clone())
            .unwrap_or_else(|| "loadlens.".into());
        if !prefix.is_empty() && !prefix.ends_with('.') {
            prefix.push('.');
        }
        if !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
            || prefix.starts_with(|c: char| !c.is_ascii_alphabetic()) && !prefix.is_empty()
        {
            return Err(ConfigError::Invalid(format!(
                "metric prefix `{prefix}` must start with a letter and hold only letters, digits, `_` and `.`"
            )));
        }
        let mut c = Config::new(&base_url, None, None);
        c.api_key = api_key.map(Secret::new);
        c.app_key = app_key.map(Secret::new);
        c.site = site;
        c.metrics = metrics;
        c.dogstatsd = dogstatsd;
        c.prefix = prefix;
        c.metric_interval = metric_interval;
        c.monitor_interval = monitor_interval;
        c.max_request_names = f.max_request_names.unwrap_or(c.max_request_names);
        c.events = f.events.unwrap_or(true) && c.api_key.is_some();
        c.tags = f.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        c.monitors = monitors;
        c.timeout = f.timeout.unwrap_or(c.timeout);
        c.required = required;
        Ok(Some(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn off_without_a_key_or_section() {
        assert!(Config::resolve(None, &Overrides::default(), env(&[]))
            .unwrap()
            .is_none());
    }

    #[test]
    fn sites_map_to_api_hosts_and_the_url_override_wins() {
        for site in KNOWN_SITES {
            let e: &'static [(&str, &str)] =
                Box::leak(Box::new([("DD_API_KEY", "k"), ("DD_SITE", site)]));
            let c = Config::resolve(None, &Overrides::default(), env(e))
                .unwrap()
                .unwrap();
            assert_eq!(c.base_url, format!("https://api.{site}"));
        }
        let c = Config::resolve(
            None,
            &Overrides {
                url: Some("http://127.0.0.1:9/".into()),
                ..Overrides::default()
            },
            env(&[("DATADOG_API_KEY", "k"), ("DD_SITE", "datadoghq.eu")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.base_url, "http://127.0.0.1:9");
        assert_eq!(c.site, "datadoghq.eu");
        assert_eq!(c.metrics, MetricsTransport::Api);
    }

    #[test]
    fn url_credentials_become_basic_auth_and_leave_the_url() {
        let c = Config::resolve(
            None,
            &Overrides {
                url: Some("http://dd:s3cret@127.0.0.1:9/".into()),
                ..Overrides::default()
            },
            env(&[("DD_API_KEY", "k")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.base_url, "http://127.0.0.1:9");
        assert_eq!(
            c.basic_auth.as_ref().map(Secret::expose),
            Some("Basic ZGQ6czNjcmV0")
        );
        assert!(!format!("{c:?}").contains("s3cret"));
        let e = Config::resolve(
            None,
            &Overrides {
                url: Some("ftp://dd:s3cret@h/".into()),
                ..Overrides::default()
            },
            env(&[("DD_API_KEY", "k")]),
        )
        .unwrap_err();
        assert!(e.to_string().contains("ftp://dd:***@h"), "{e}");
    }

    #[test]
    fn keys_never_print() {
        let c = Config::resolve(
            None,
            &Overrides::default(),
            env(&[("DD_API_KEY", "sekrit-api"), ("DD_APP_KEY", "sekrit-app")]),
        )
        .unwrap()
        .unwrap();
        let text = format!("{c:?}");
        assert!(!text.contains("sekrit"), "{text}");
    }

    #[test]
    fn agent_host_selects_dogstatsd_and_monitors_need_both_keys() {
        let c = Config::resolve(
            None,
            &Overrides {
                enabled: Some(true),
                ..Overrides::default()
            },
            env(&[("DD_AGENT_HOST", "agent"), ("DD_DOGSTATSD_PORT", "9125")]),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.metrics, MetricsTransport::DogStatsd);
        assert_eq!(c.dogstatsd, Some(("agent".into(), 9125)));
        assert!(!c.events, "events need the API key");
        let err = Config::resolve(
            None,
            &Overrides {
                monitors: vec!["12:abort".into()],
                ..Overrides::default()
            },
            env(&[("DD_API_KEY", "k")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("DD_APP_KEY"), "{err}");
    }

    #[test]
    fn file_settings_apply_and_flags_override_them() {
        let file = DatadogSettings {
            site: Some("us5.datadoghq.com".into()),
            metric_prefix: Some("perf".into()),
            monitors: vec![DatadogMonitor {
                id: 7,
                action: Some("fail".into()),
            }],
            ..DatadogSettings::default()
        };
        let e = env(&[("DD_API_KEY", "k"), ("DD_APP_KEY", "a")]);
        let c = Config::resolve(Some(&file), &Overrides::default(), &e)
            .unwrap()
            .unwrap();
        assert_eq!(c.base_url, "https://api.us5.datadoghq.com");
        assert_eq!(c.prefix, "perf.");
        assert_eq!(
            c.monitors,
            vec![MonitorSpec {
                id: 7,
                action: MonitorAction::Fail
            }]
        );
        let c = Config::resolve(
            Some(&file),
            &Overrides {
                monitors: vec!["1:abort,2".into()],
                site: Some("ap1.datadoghq.com".into()),
                ..Overrides::default()
            },
            &e,
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.base_url, "https://api.ap1.datadoghq.com");
        assert_eq!(c.monitors.len(), 2);
        assert_eq!(c.monitors[0].action, MonitorAction::Abort);
        assert_eq!(c.monitors[1].action, MonitorAction::Mark);
        let bad = DatadogSettings {
            monitors: vec![DatadogMonitor {
                id: 7,
                action: Some("explode".into()),
            }],
            ..DatadogSettings::default()
        };
        let err = Config::resolve(Some(&bad), &Overrides::default(), &e).unwrap_err();
        assert!(err.to_string().contains("mark, abort, fail"), "{err}");
    }

    #[test]
    fn monitor_entries_fail_with_a_variant_and_the_documented_message() {
        let e = "12x:abort".parse::<MonitorSpec>().unwrap_err();
        assert_eq!(
            e,
            MonitorError::Id {
                monitor: "12x:abort".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "monitor `12x:abort`: expected ID or ID:ACTION, e.g. 12345:abort"
        );
        assert_eq!(
            "12:Boom".parse::<MonitorSpec>().unwrap_err().to_string(),
            "monitor action `boom` is not one of mark, abort, fail"
        );
    }
}
