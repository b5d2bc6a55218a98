//! Statsig as an [`Integration`]: the `--statsig*` flags (each with an environment twin), the
//! scenario's `statsig:` section ([`StatsigSettings`]) and `STATSIG_CONSOLE_API_KEY`; the
//! start-up check (a read call) that either prints one clear line and lets the run go on
//! without Statsig, or — with `--statsig-required` — refuses to run (exit code 2).

use std::time::Duration;

use clap::{Args, Command};
use loadlens_core::scenario::ScenarioError;
use loadlens_core::sink::Sink;

use super::config::{check_url, ids, Config, StatsigSettings, DEFAULT_INTERVAL, KEY_VAR};
use super::StatsigSink;
use crate::integration::{
    ConfigError, Configured, Input, Integration, Section, StartError, StartFuture,
};

/// The Statsig integration (`statsig`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Statsig;

/// Statsig flags. The Console API key comes only from `STATSIG_CONSOLE_API_KEY`.
#[derive(Args, Debug, Default, Clone)]
struct Flags {
    /// Statsig: record the state of the watched gates and configs at the start and every
    /// config change of the audit log during the run on the timeline (on with a `statsig:`
    /// section or a --statsig-gate/--statsig-config; needs STATSIG_CONSOLE_API_KEY).
    #[arg(
        id = "statsig", long = "statsig",
        env = "LOADLENS_STATSIG",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    enabled: Option<bool>,
    /// Refuse to run (exit 2) when the key is missing or refused, or Statsig cannot be read.
    #[arg(
        id = "statsig-required",
        long = "statsig-required",
        env = "LOADLENS_STATSIG_REQUIRED"
    )]
    required: bool,
    /// Console API base URL instead of https://statsigapi.net (a proxy, a test stub).
    #[arg(
        id = "statsig-url",
        long = "statsig-url",
        env = "LOADLENS_STATSIG_URL",
        value_name = "URL"
    )]
    url: Option<String>,
    /// Feature gate to watch; repeatable or comma-separated.
    #[arg(
        id = "statsig-gate",
        long = "statsig-gate",
        env = "LOADLENS_STATSIG_GATES",
        value_delimiter = ',',
        value_name = "ID"
    )]
    gates: Vec<String>,
    /// Dynamic config to watch; repeatable or comma-separated.
    #[arg(
        id = "statsig-config",
        long = "statsig-config",
        env = "LOADLENS_STATSIG_CONFIGS",
        value_delimiter = ',',
        value_name = "ID"
    )]
    configs: Vec<String>,
    /// How often the audit log is polled (default 10s).
    #[arg(id = "statsig-interval", long = "statsig-interval", env = "LOADLENS_STATSIG_INTERVAL", value_parser = duration)]
    interval: Option<Duration>,
}

fn duration(s: &str) -> Result<Duration, loadlens_core::duration::DurationError> {
    loadlens_core::duration::parse_duration(s)
}

impl Integration for Statsig {
    fn name(&self) -> &'static str {
        "statsig"
    }

    fn args(&self) -> Vec<clap::Arg> {
        Flags::augment_args(Command::new(""))
            .get_arguments()
            .cloned()
            .collect()
    }

    fn configure(&self, input: &Input<'_>) -> Result<Option<Box<dyn Configured>>, ConfigError> {
        let file: StatsigSettings = match &input.section {
            Some(s) => parse(s)?,
            None => StatsigSettings::default(),
        };
        let gates = ids(&input.pick_list("statsig-gate", file.gates.clone()));
        let configs = ids(&input.pick_list("statsig-config", file.configs.clone()));
        // A section turns it on unless it says `enabled: false`; so does a gate or config to
        // watch given as a flag; `--statsig=false` turns it off whatever else says.
        let from_file = input.section.as_ref().map(|_| file.enabled != Some(false));
        let watched_by_flag = input.given("statsig-gate") || input.given("statsig-config");
        let on = match input.pick("statsig", from_file) {
            Some(false) if input.given("statsig") => false,
            Some(on) => on || watched_by_flag,
            None => watched_by_flag,
        };
        if !on {
            return Ok(None);
        }
        let url = match input.pick("statsig-url", file.url.clone()) {
            Some(u) => check_url(&u).map_err(ConfigError::Invalid)?,
            None => super::api::DEFAULT_BASE_URL.to_owned(),
        };
        let interval = input
            .pick("statsig-interval", file.interval)
            .unwrap_or(DEFAULT_INTERVAL);
        if interval < Duration::from_millis(100) {
            return Err(ConfigError::Invalid(format!(
                "statsig: --statsig-interval {} is too short (at least 100ms; Statsig limits request rates)",
                humantime::format_duration(interval)
            )));
        }
        let key = input.var(KEY_VAR);
        let mut cfg = Config::new(&url, key.as_deref());
        cfg.required = input
            .pick("statsig-required", file.required)
            .unwrap_or(false);
        cfg.gates = gates;
        cfg.configs = configs;
        cfg.interval = interval;
        // The flags' timeline and the gates' switch, run-level: in a coordinated run, the coordinator's ([`Role`]).
        if !input.run.role.run_level() {
            return Ok(None);
        }
        Ok(Some(Box::new(Ready(cfg))))
    }

    fn check(&self, section: &Section<'_>) -> Result<(), ScenarioError> {
        parse(section).map(drop)
    }
}

/// The `statsig:` section, its URL checked at its key.
fn parse(section: &Section<'_>) -> Result<StatsigSettings, ScenarioError> {
    let file: StatsigSettings = section.parse()?;
    if let Some(Err(e)) = file.url.as_deref().map(check_url) {
        return Err(section.error_at(&["url"], e));
    }
    Ok(file)
}

/// Resolved, key not checked yet.
struct Ready(Config);

impl Configured for Ready {
    fn describe(&self) -> String {
        let c = &self.0;
        let mut watched: Vec<String> = c.gates.iter().map(|g| format!("gate {g}")).collect();
        watched.extend(c.configs.iter().map(|g| format!("config {g}")));
        let watched = if watched.is_empty() {
            "every change".to_owned()
        } else {
            watched.join(", ")
        };
        format!(
            "Statsig: {watched}, audit log every {} → {}",
            humantime::format_duration(c.interval),
            c.base_url()
        )
    }

    fn required(&self) -> bool {
        self.0.required
    }

    /// The Console API client, lent to guard actions and planned flips (`disable_gate`).
    fn gate_target(&self) -> Option<std::sync::Arc<dyn loadlens_core::actions::GateTarget>> {
        let console = super::Console::new(self.0.console.clone()?).ok()?;
        Some(std::sync::Arc::new(super::gates::Gates::new(console)))
    }

    /// Check the key with read calls, and build the sink.
    fn start(self: Box<Self>) -> StartFuture {
        let cfg = self.0;
        Box::pin(async move {
            let required = cfg.required;
            match StatsigSink::connect(cfg).await {
                Ok(sink) => Ok(Box::new(sink) as Box<dyn Sink>),
                Err(e) if required => Err(StartError::new(format!(
                    "statsig: {e} (--statsig-required: not running)"
                ))),
                Err(e) => Err(StartError::new(format!(
                    "statsig: {e}; the run goes on without Statsig (--statsig-required refuses to run instead)"
                ))),
            }
        })
    }
}
