//! Datadog as an [`Integration`]: the `--datadog*` flags (each with an environment twin), the
//! scenario's `datadog:` section ([`DatadogSettings`]) and the `DD_*` variables, resolved by
//! [`Config::resolve`]; the start-up check that either prints one clear line and lets the run go
//! on without Datadog, or — with `--datadog-required` — refuses to run (exit code 2).

use std::time::Duration;

use clap::{Args, Command};
use loadlens_core::scenario::ScenarioError;
use loadlens_core::sink::Sink;

use super::config::DatadogSettings;
use super::{Config, DatadogSink, MetricsTransport, MonitorAction, Overrides};
use crate::integration::{
    ConfigError, Configured, Input, Integration, Section, StartError, StartFuture,
};

/// The Datadog integration (`datadog`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Datadog;

/// Datadog flags. Keys come only from `DD_API_KEY` / `DD_APP_KEY` (or `DATADOG_*`).
#[derive(Args, Debug, Default, Clone)]
struct Flags {
    /// Datadog events, metrics and monitor guards (on by default when `DD_API_KEY` is set or the
    /// scenario has a `datadog:` section; `--datadog=false` turns it off).
    #[arg(
        id = "datadog", long = "datadog",
        env = "LOADLENS_DATADOG",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    enabled: Option<bool>,
    /// Refuse to run (exit 2) when Datadog rejects the keys or cannot be reached.
    #[arg(
        id = "datadog-required",
        long = "datadog-required",
        env = "LOADLENS_DATADOG_REQUIRED"
    )]
    required: bool,
    /// Datadog site: datadoghq.com, us3.datadoghq.com, us5.datadoghq.com, ap1.datadoghq.com,
    /// ap2.datadoghq.com, datadoghq.eu, ddog-gov.com.
    #[arg(
        id = "datadog-site",
        long = "datadog-site",
        env = "DD_SITE",
        value_name = "SITE"
    )]
    site: Option<String>,
    /// API base URL instead of `https://api.SITE` (a proxy, a test stub).
    #[arg(
        id = "datadog-url",
        long = "datadog-url",
        env = "LOADLENS_DATADOG_URL",
        value_name = "URL"
    )]
    url: Option<String>,
    /// Metrics transport: auto (DogStatsD when an agent host is set, else the API), api,
    /// dogstatsd, off.
    #[arg(
        id = "datadog-metrics",
        long = "datadog-metrics",
        env = "LOADLENS_DATADOG_METRICS",
        value_name = "HOW"
    )]
    metrics: Option<String>,
    /// Metric name prefix (default `loadlens.`).
    #[arg(
        id = "datadog-metric-prefix",
        long = "datadog-metric-prefix",
        env = "LOADLENS_DATADOG_METRIC_PREFIX",
        value_name = "PREFIX"
    )]
    metric_prefix: Option<String>,
    /// How often metrics are sent (default 10s).
    #[arg(id = "datadog-metric-interval", long = "datadog-metric-interval", env = "LOADLENS_DATADOG_METRIC_INTERVAL", value_parser = duration)]
    metric_interval: Option<Duration>,
    /// Monitor to watch, `ID` or `ID:ACTION` with ACTION mark (default), abort (stop the run,
    /// exit 3) or fail (the run fails, exit 1); repeatable or comma-separated. Needs DD_APP_KEY.
    #[arg(
        id = "datadog-monitor",
        long = "datadog-monitor",
        env = "LOADLENS_DATADOG_MONITORS",
        value_delimiter = ',',
        value_name = "ID[:ACTION]"
    )]
    monitors: Vec<String>,
    /// How often monitors are polled (default 15s).
    #[arg(id = "datadog-monitor-interval", long = "datadog-monitor-interval", env = "LOADLENS_DATADOG_MONITOR_INTERVAL", value_parser = duration)]
    monitor_interval: Option<Duration>,
    /// DogStatsD host of a local Datadog agent.
    #[arg(
        id = "datadog-agent-host",
        long = "datadog-agent-host",
        env = "DD_AGENT_HOST",
        value_name = "HOST"
    )]
    agent_host: Option<String>,
    /// DogStatsD port (default 8125).
    #[arg(
        id = "datadog-dogstatsd-port",
        long = "datadog-dogstatsd-port",
        env = "DD_DOGSTATSD_PORT",
        value_name = "PORT"
    )]
    dogstatsd_port: Option<u16>,
}

fn duration(s: &str) -> Result<Duration, loadlens_core::duration::DurationError> {
    loadlens_core::duration::parse_duration(s)
}

impl Integration for Datadog {
    fn name(&self) -> &'static str {
        "datadog"
    }

    fn args(&self) -> Vec<clap::Arg> {
        Flags::augment_args(Command::new(""))
            .get_arguments()
            .cloned()
            .collect()
    }

    fn configure(&self, input: &Input<'_>) -> Result<Option<Box<dyn Configured>>, ConfigError> {
        let file = match &input.section {
            Some(s) => Some(parse(s)?),
            None => None,
        };
        let f = file.clone().unwrap_or_default();
        // flag > environment twin > file, key by key ([`Input::pick`]); what only the
        // environment or only the file sets (the keys, `tags`, `events`, …) and the monitors
        // (`ID[:ACTION]` flags replace the file's list) are merged in `Config::resolve`.
        let flags = Overrides {
            enabled: input.pick("datadog", f.enabled),
            required: input.pick("datadog-required", f.required).unwrap_or(false),
            site: input.pick("datadog-site", f.site),
            url: input.pick("datadog-url", f.url),
            metrics: input.pick("datadog-metrics", f.metrics),
            metric_prefix: input.pick("datadog-metric-prefix", f.metric_prefix),
            metric_interval: input.pick("datadog-metric-interval", f.metric_interval),
            monitors: input.pick_list("datadog-monitor", Vec::new()),
            monitor_interval: input.pick("datadog-monitor-interval", f.monitor_interval),
            agent_host: input.pick("datadog-agent-host", f.agent_host),
            dogstatsd_port: input.pick("datadog-dogstatsd-port", f.dogstatsd_port),
        };
        let mut cfg = match Config::resolve(file.as_ref(), &flags, |k| (input.env)(k)) {
            Ok(Some(c)) => c,
            Ok(None) => return Ok(None),
            Err(e) => return Err(ConfigError::Invalid(e.to_string())),
        };
        if let Some(h) = &input.run.host {
            cfg.details.push(format!("Target: {h}"));
        }
        cfg.details.push(format!("Load: {}", input.run.load));
        // Events, metrics of the snapshots and monitor guards, run-level: in a coordinated run, the coordinator's ([`Role`]).
        if !input.run.role.run_level() {
            return Ok(None);
        }
        Ok(Some(Box::new(Ready(cfg))))
    }

    fn check(&self, section: &Section<'_>) -> Result<(), ScenarioError> {
        parse(section).map(drop)
    }
}

/// The `datadog:` section, with what only the file can get wrong (a monitor's action) checked
/// at its key; the rest is checked with the flags and the environment, in [`Config::resolve`].
fn parse(section: &Section<'_>) -> Result<DatadogSettings, ScenarioError> {
    let file: DatadogSettings = section.parse()?;
    for (i, m) in file.monitors.iter().enumerate() {
        if let Some(Err(e)) = m.action.as_deref().map(str::parse::<MonitorAction>) {
            let at = section.path().key("monitors").index(i).key("action");
            return Err(section.error_at_node(&at, format!("datadog.monitors[{i}].action: {e}")));
        }
    }
    Ok(file)
}

/// Resolved, keys not checked yet.
struct Ready(Config);

impl Configured for Ready {
    fn describe(&self) -> String {
        format!("Datadog: {}", describe(&self.0))
    }

    fn required(&self) -> bool {
        self.0.required
    }

    /// Check the keys, monitors and agent, and build the sink.
    fn start(self: Box<Self>) -> StartFuture {
        let cfg = self.0;
        Box::pin(async move {
            let required = cfg.required;
            match DatadogSink::connect(cfg).await {
                Ok(sink) => Ok(Box::new(sink) as Box<dyn Sink>),
                Err(e) if required => Err(StartError::new(format!(
                    "{e} (--datadog-required: not running)"
                ))),
                Err(e) => Err(StartError::new(format!(
                    "{e}; the run goes on without Datadog (--datadog-required refuses to run instead)"
                ))),
            }
        })
    }
}

/// One line: what goes where.
fn describe(cfg: &Config) -> String {
    let mut parts = Vec::new();
    if cfg.events {
        parts.push("events".to_owned());
    }
    match (&cfg.metrics, &cfg.dogstatsd) {
        (MetricsTransport::Api, _) => parts.push(format!(
            "metrics every {} (API)",
            humantime::format_duration(cfg.metric_interval)
        )),
        (MetricsTransport::DogStatsd, Some((h, p))) => parts.push(format!(
            "metrics every {} (DogStatsD {h}:{p})",
            humantime::format_duration(cfg.metric_interval)
        )),
        _ => {}
    }
    if !cfg.monitors.is_empty() {
        let m: Vec<String> = cfg
            .monitors
            .iter()
            .map(|m| format!("{}:{}", m.id, format!("{:?}", m.action).to_lowercase()))
            .collect();
        parts.push(format!("monitors {}", m.join(", ")));
    }
    format!("{} → {}", parts.join(", "), cfg.base_url)
}
