//! Datadog wiring of `loadlens run` and `loadlens demo`: the `--datadog*` flags (each with an
//! environment twin), their resolution with the scenario's `datadog:` section and the `DD_*`
//! variables, and the start-time check that either prints one clear message and runs without
//! Datadog, or — with `--datadog-required` — refuses to run (exit code 2).

use clap::Args;
use loadlens_core::executor::LoadSettings;
use loadlens_core::scenario::Scenario;
use loadlens_core::sink::Sink;
use loadlens_sinks::datadog::{Config, DatadogSink, MetricsTransport, Overrides};

use crate::exit::{Exit, Failure};

/// Datadog flags. Keys come only from `DD_API_KEY` / `DD_APP_KEY` (or `DATADOG_*`).
#[derive(Args, Debug, Default, Clone)]
pub struct DatadogArgs {
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
    pub enabled: Option<bool>,
    /// Refuse to run (exit 2) when Datadog rejects the keys or cannot be reached.
    #[arg(
        id = "datadog-required",
        long = "datadog-required",
        env = "LOADLENS_DATADOG_REQUIRED"
    )]
    pub required: bool,
    /// Datadog site: datadoghq.com, us3.datadoghq.com, us5.datadoghq.com, ap1.datadoghq.com,
    /// ap2.datadoghq.com, datadoghq.eu, ddog-gov.com.
    #[arg(
        id = "datadog-site",
        long = "datadog-site",
        env = "DD_SITE",
        value_name = "SITE"
    )]
    pub site: Option<String>,
    /// API base URL instead of `https://api.SITE` (a proxy, a test stub).
    #[arg(
        id = "datadog-url",
        long = "datadog-url",
        env = "LOADLENS_DATADOG_URL",
        value_name = "URL"
    )]
    pub url: Option<String>,
    /// Metrics transport: auto (DogStatsD when an agent host is set, else the API), api,
    /// dogstatsd, off.
    #[arg(
        id = "datadog-metrics",
        long = "datadog-metrics",
        env = "LOADLENS_DATADOG_METRICS",
        value_name = "HOW"
    )]
    pub metrics: Option<String>,
    /// Metric name prefix (default `loadlens.`).
    #[arg(
        id = "datadog-metric-prefix",
        long = "datadog-metric-prefix",
        env = "LOADLENS_DATADOG_METRIC_PREFIX",
        value_name = "PREFIX"
    )]
    pub metric_prefix: Option<String>,
    /// How often metrics are sent (default 10s).
    #[arg(id = "datadog-metric-interval", long = "datadog-metric-interval", env = "LOADLENS_DATADOG_METRIC_INTERVAL", value_parser = duration)]
    pub metric_interval: Option<std::time::Duration>,
    /// Monitor to watch, `ID` or `ID:ACTION` with ACTION mark (default), abort (stop the run,
    /// exit 3) or fail (the run fails, exit 1); repeatable or comma-separated. Needs DD_APP_KEY.
    #[arg(
        id = "datadog-monitor",
        long = "datadog-monitor",
        env = "LOADLENS_DATADOG_MONITORS",
        value_delimiter = ',',
        value_name = "ID[:ACTION]"
    )]
    pub monitors: Vec<String>,
    /// How often monitors are polled (default 15s).
    #[arg(id = "datadog-monitor-interval", long = "datadog-monitor-interval", env = "LOADLENS_DATADOG_MONITOR_INTERVAL", value_parser = duration)]
    pub monitor_interval: Option<std::time::Duration>,
    /// DogStatsD host of a local Datadog agent.
    #[arg(
        id = "datadog-agent-host",
        long = "datadog-agent-host",
        env = "DD_AGENT_HOST",
        value_name = "HOST"
    )]
    pub agent_host: Option<String>,
    /// DogStatsD port (default 8125).
    #[arg(
        id = "datadog-dogstatsd-port",
        long = "datadog-dogstatsd-port",
        env = "DD_DOGSTATSD_PORT",
        value_name = "PORT"
    )]
    pub dogstatsd_port: Option<u16>,
}

fn duration(s: &str) -> Result<std::time::Duration, loadlens_core::duration::DurationError> {
    loadlens_core::duration::parse_duration(s)
}

/// The Datadog settings of this run, `None` when Datadog is off. Configuration errors are
/// invalid input (exit 2).
pub fn resolve(
    args: &DatadogArgs,
    scenario: Option<&Scenario>,
    host: &Option<String>,
    load: &LoadSettings,
) -> Result<Option<Config>, Failure> {
    let flags = Overrides {
        enabled: args.enabled,
        required: args.required,
        site: args.site.clone(),
        url: args.url.clone(),
        metrics: args.metrics.clone(),
        metric_prefix: args.metric_prefix.clone(),
        metric_interval: args.metric_interval,
        monitors: args.monitors.clone(),
        monitor_interval: args.monitor_interval,
        agent_host: args.agent_host.clone(),
        dogstatsd_port: args.dogstatsd_port,
    };
    let file = scenario.and_then(|s| s.datadog.as_ref());
    let mut cfg = match Config::resolve(file, &flags, |k| std::env::var(k).ok()) {
        Ok(Some(c)) => c,
        Ok(None) => return Ok(None),
        Err(e) => return Err(Failure::new(Exit::InvalidInput, e.to_string())),
    };
    if let Some(h) = host {
        cfg.details.push(format!("Target: {h}"));
    }
    cfg.details.push(format!("Load: {}", load.describe()));
    Ok(Some(cfg))
}

/// Check the keys, monitors and agent, and build the sink. A failed check prints one message
/// and returns `None` (the run goes on without Datadog), or fails with exit code 2 when Datadog
/// is required.
pub async fn start(cfg: Config) -> Result<Option<Box<dyn Sink>>, Failure> {
    let required = cfg.required;
    let what = describe(&cfg);
    match DatadogSink::connect(cfg).await {
        Ok(sink) => {
            say!("Datadog: {what}");
            Ok(Some(Box::new(sink)))
        }
        Err(e) if required => Err(Failure::new(
            Exit::InvalidInput,
            format!("{e} (--datadog-required: not running)"),
        )),
        Err(e) => {
            tell!("warning: {e}; the run goes on without Datadog (--datadog-required refuses to run instead)");
            Ok(None)
        }
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
