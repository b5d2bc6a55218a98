//! Prometheus as an [`Integration`]: `--prometheus [ADDR]` (`LOADLENS_PROMETHEUS`),
//! `--prometheus-remote-write URL` (`LOADLENS_PROMETHEUS_REMOTE_WRITE`), `--prometheus-linger
//! DURATION` (`LOADLENS_PROMETHEUS_LINGER`) and the scenario's `prometheus:` section under them.
//! The start-up check binds the scrape endpoint: a port in use refuses the run (exit 2).

use clap::{Args, Command};
use loadlens_core::scenario::ScenarioError;
use loadlens_core::sink::Sink;

use super::config::{check_remote_write, parse_listen};
use super::{Config, FileSettings, PrometheusSink};
use crate::integration::{
    ConfigError, Configured, Input, Integration, Section, StartError, StartFuture,
};

/// The Prometheus integration (`prometheus`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Prometheus;

/// The flags of Prometheus.
#[derive(Args, Debug, Default, Clone)]
struct Flags {
    /// Prometheus: serve the run's metrics on http://ADDR/metrics (OpenMetrics) while it lasts
    /// [default ADDR: 127.0.0.1:9646; a port alone means 127.0.0.1; `off` turns it off]. Also `prometheus:` in the
    /// scenario.
    #[arg(
        id = "prometheus",
        long = "prometheus",
        env = "LOADLENS_PROMETHEUS",
        value_name = "ADDR",
        num_args = 0..=1,
        default_missing_value = super::DEFAULT_LISTEN
    )]
    prometheus: Option<String>,
    /// Prometheus remote write: push the same series every second and at the end to this URL
    /// (Prometheus with --web.enable-remote-write-receiver, Mimir, Thanos);
    /// `user:password@` in it becomes basic auth.
    #[arg(
        id = "prometheus-remote-write",
        long = "prometheus-remote-write",
        env = "LOADLENS_PROMETHEUS_REMOTE_WRITE",
        value_name = "URL"
    )]
    prometheus_remote_write: Option<String>,
    /// At the end of a run that was scraped, keep serving /metrics until one scrape has read
    /// the final values, at most this long [default: 5s; 0s: stop at once].
    #[arg(
        id = "prometheus-linger",
        long = "prometheus-linger",
        env = "LOADLENS_PROMETHEUS_LINGER",
        value_name = "DURATION"
    )]
    prometheus_linger: Option<String>,
}

impl Integration for Prometheus {
    fn name(&self) -> &'static str {
        "prometheus"
    }

    fn args(&self) -> Vec<clap::Arg> {
        Flags::augment_args(Command::new(""))
            .get_arguments()
            .cloned()
            .collect()
    }

    fn configure(&self, input: &Input<'_>) -> Result<Option<Box<dyn Configured>>, ConfigError> {
        let file = match &input.section {
            Some(s) => parse(s)?,
            None => FileSettings::default(),
        };
        let invalid = |flag: &str, e: String| ConfigError::Invalid(format!("{flag}: {e}"));
        let listen = input
            .pick("prometheus", file.listen.clone())
            .map(|a| parse_listen(&a).map_err(|e| invalid("--prometheus", e)))
            .transpose()?
            .flatten();
        let remote_write = input.pick("prometheus-remote-write", file.remote_write.clone());
        if let Some(url) = &remote_write {
            check_remote_write(url).map_err(|e| invalid("--prometheus-remote-write", e))?;
        }
        if listen.is_none() && remote_write.is_none() {
            return Ok(None);
        }
        let linger = match input.pick::<String>("prometheus-linger", None) {
            Some(s) => loadlens_core::duration::parse_duration(&s)
                .map_err(|e| invalid("--prometheus-linger", e.to_string()))?,
            None => file.linger.unwrap_or(super::DEFAULT_LINGER),
        };
        // Figures of the snapshots, run-level: in a coordinated run, the coordinator's ([`Role`]).
        if !input.run.role.run_level() {
            return Ok(None);
        }
        Ok(Some(Box::new(Ready(Config {
            listen,
            remote_write,
            linger,
            ..Config::default()
        }))))
    }

    fn check(&self, section: &Section<'_>) -> Result<(), ScenarioError> {
        parse(section).map(drop)
    }
}

/// The `prometheus:` section, its address and URL checked at their keys.
fn parse(section: &Section<'_>) -> Result<FileSettings, ScenarioError> {
    let file: FileSettings = section.parse()?;
    if let Some(Err(e)) = file.listen.as_deref().map(parse_listen) {
        return Err(section.error_at(&["listen"], format!("prometheus.listen: {e}")));
    }
    if let Some(Err(e)) = file.remote_write.as_deref().map(check_remote_write) {
        return Err(section.error_at(&["remote_write"], format!("prometheus.remote_write: {e}")));
    }
    Ok(file)
}

/// Configured, not started: [`Configured::start`] binds the endpoint.
struct Ready(Config);

impl Configured for Ready {
    fn describe(&self) -> String {
        format!("prometheus: {}", self.0.describe())
    }

    /// A scrape endpoint that cannot listen is a configuration error, not a degraded run.
    fn required(&self) -> bool {
        true
    }

    fn start(self: Box<Self>) -> StartFuture {
        Box::pin(async move {
            let sink = PrometheusSink::start(self.0).map_err(|e| StartError::new(e.to_string()))?;
            Ok(Box::new(sink) as Box<dyn Sink>)
        })
    }
}
