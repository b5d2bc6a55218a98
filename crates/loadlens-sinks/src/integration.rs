//! One outside system as the binary sees it: its flags, its scenario section, its resolution of
//! flag > environment > file, its start-up check and its sink — behind one trait, listed once
//! in [`crate::registry`].
//!
//! The binary adds every integration's [`Integration::args`] to `run` and `demo`, refuses a
//! top-level scenario key that no integration owns ([`check_sections`]), asks each one to
//! [`Integration::configure`] itself from an [`Input`] (exit 2 on an error), and before the run
//! [`Configured::start`]s what is on: a failed start refuses the run when the integration is
//! [`Configured::required`], and is otherwise one line on stderr while the run goes on without
//! it. `docs/integrations.md` walks through adding one.
//!
//! In a coordinated run ([`Role`]) each process sends its part of the telemetry once: the
//! workers what each request produces (request spans, the service's spans joined to them), the
//! coordinator what is about the whole run (start and stop events, feature-flag changes, the
//! run span, metrics from the merged snapshots, monitor guards). Each integration reads
//! [`RunFacts::role`] in [`Integration::configure`] and keeps to its part, or is off.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use clap::parser::ValueSource;
use loadlens_core::executor::ScenarioRun;
use loadlens_core::plan::Plan;
use loadlens_core::run::RunInfo;
use loadlens_core::sample::TraceSettings;
use loadlens_core::scenario::{NodePath, Scenario, ScenarioError, Source};
use loadlens_core::sink::Sink;

/// An outside system loadlens reports to or takes guards from.
pub trait Integration: Sync {
    /// The scenario section's key (`datadog`), and the label of its summary line.
    fn name(&self) -> &'static str;

    /// Its flags, each with its environment twin. Ids are unique across integrations.
    /// (A `#[derive(clap::Args)]` struct gives them: `X::augment_args(Command::new(""))`.)
    fn args(&self) -> Vec<clap::Arg>;

    /// flag > environment > scenario section, resolved into this run's configuration;
    /// `Ok(None)` when the integration is off for this run.
    fn configure(&self, input: &Input<'_>) -> Result<Option<Box<dyn Configured>>, ConfigError>;

    /// Check the scenario's section alone, for `loadlens validate` (no flags, no environment):
    /// by default nothing; an integration with a section parses it here.
    fn check(&self, _section: &Section<'_>) -> Result<(), ScenarioError> {
        Ok(())
    }
}

/// An integration resolved for this run, not started yet.
pub trait Configured: Send {
    /// One line for the start banner, e.g. `OTLP: spans + metrics to http://… (grpc)`; no secrets.
    fn describe(&self) -> String;

    /// When true, a failed start-up check refuses the run (exit 2); otherwise it prints one line
    /// and the run goes on without this integration.
    fn required(&self) -> bool;

    /// The trace context every request carries (`traceparent`, its sampled flag), when this
    /// integration exports spans. At most one integration of a run answers `Some`.
    fn tracing(&self) -> Option<TraceSettings> {
        None
    }

    /// True when its sink writes to standard output (`--jsonl -`): the live view then keeps to
    /// plain lines, so that neither the full-screen view nor an updating line mixes into what
    /// the sink writes.
    fn writes_stdout(&self) -> bool {
        false
    }

    /// The feature-gate switch this integration lends to guard actions and planned flips
    /// (`disable_gate`, `actions:`), if it has one. Asked before [`Configured::start`]; when
    /// the start-up check then fails, the actions that needed it fail with that error.
    fn gate_target(&self) -> Option<std::sync::Arc<dyn loadlens_core::actions::GateTarget>> {
        None
    }

    /// The start-up check (keys valid, port bindable, file writable, …), then the sink.
    fn start(self: Box<Self>) -> StartFuture;
}

/// What [`Configured::start`] returns.
pub type StartFuture = Pin<Box<dyn Future<Output = Result<Box<dyn Sink>, StartError>> + Send>>;

/// What an integration is configured from.
pub struct Input<'a> {
    /// Of `run` or `demo`, with every integration's args.
    pub matches: &'a clap::ArgMatches,
    /// The scenario's top-level `NAME:` section, if any.
    pub section: Option<Section<'a>>,
    /// The environment (`|k| std::env::var(k).ok()` in the binary), for variables that are not
    /// a flag's twin (`OTEL_*`, `DD_API_KEY`).
    pub env: &'a (dyn Fn(&str) -> Option<String> + Sync),
    /// What the run is: identity, target, load, plans.
    pub run: &'a RunFacts,
}

impl Input<'_> {
    /// The generic precedence, written once: the flag's value if given on the command line or by
    /// its environment twin, else the file's value, else the flag's default (if it has one).
    pub fn pick<T: Clone + Send + Sync + 'static>(&self, id: &str, file: Option<T>) -> Option<T> {
        let flag = || self.matches.try_get_one::<T>(id).ok().flatten().cloned();
        if self.given(id) {
            flag()
        } else {
            file.or_else(flag)
        }
    }

    /// [`Input::pick`] for a repeatable flag: its values if given, else the file's list.
    pub fn pick_list<T: Clone + Send + Sync + 'static>(&self, id: &str, file: Vec<T>) -> Vec<T> {
        if self.given(id) {
            if let Ok(Some(v)) = self.matches.try_get_many::<T>(id) {
                return v.cloned().collect();
            }
        }
        file
    }

    /// Whether the flag `id` was given on the command line or by its environment twin.
    pub fn given(&self, id: &str) -> bool {
        // `value_source` panics on an id the command does not define; `try_get_raw` does not.
        let source = self
            .matches
            .try_get_raw(id)
            .ok()
            .flatten()
            .and_then(|_| self.matches.value_source(id));
        matches!(
            source,
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    }

    /// An environment variable, trimmed; `None` when unset or empty.
    pub fn var(&self, name: &str) -> Option<String> {
        (self.env)(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }
}

/// What integrations know of the run when they are configured.
#[derive(Debug, Clone)]
pub struct RunFacts {
    /// Run id, scenario name and tags.
    pub run: RunInfo,
    /// The target, with any password as `***`.
    pub host: Option<String>,
    /// The load, described in one line (`10 users, spawn rate 5/s`).
    pub load: String,
    /// The compiled plan (request names, user types, tasks).
    pub plan: Arc<Plan>,
    /// The named scenarios of the run (empty: the plan alone runs).
    pub scenarios: Vec<ScenarioRun>,
    /// Which part of the run's telemetry this process sends.
    pub role: Role,
}

/// Which part of a run's telemetry a process sends.
///
/// A run of one process sends everything. A coordinated run is N workers and one
/// coordinator, and what would otherwise arrive N times is sent once: by the coordinator,
/// which sees the merged snapshots, the whole run's timeline and the merged summary. What only
/// exists where a request was sent (its span, the service spans joined to it) stays with the
/// worker that sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// A run of its own: every part.
    #[default]
    Whole,
    /// A worker of a coordinated run (`run --coordinator URL`): the request-level part only
    /// (request spans and what joins them); its snapshots go to the coordinator.
    Requests,
    /// The coordinator of a run (`loadlens coordinator`): the run-level part only — start and
    /// stop events, timeline events (feature-flag changes, breaches), the run span, metrics
    /// built from the merged snapshots, monitor guards. It sends no request itself.
    Run,
}

impl Role {
    /// Whether this process sends what each request produces (spans, joins).
    pub fn requests(self) -> bool {
        self != Role::Run
    }

    /// Whether this process sends what is about the whole run (events, flags, run span,
    /// metrics from snapshots, monitors).
    pub fn run_level(self) -> bool {
        self != Role::Requests
    }
}

/// A top-level section of the scenario, parsed and located by the integration itself.
#[derive(Debug, Clone, Copy)]
pub struct Section<'a> {
    source: &'a Source,
    name: &'a str,
}

impl<'a> Section<'a> {
    /// The section `name` of the scenario read from `source`.
    pub fn new(source: &'a Source, name: &'a str) -> Self {
        Section { source, name }
    }

    /// The section `name` of `scenario`, if it has one.
    pub fn of(scenario: &'a Scenario, name: &'a str) -> Option<Self> {
        scenario
            .sections
            .iter()
            .any(|s| s == name)
            .then(|| Section::new(&scenario.source, name))
    }

    /// The section's key.
    pub fn name(&self) -> &str {
        self.name
    }

    /// Deserialize the section; an error names file:line:col inside the section.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, ScenarioError> {
        self.source.parse_section(self.name)
    }

    /// An error located at a key under the section (for checks after parsing).
    pub fn error_at(&self, path: &[&str], message: impl Into<String>) -> ScenarioError {
        let at = path
            .iter()
            .fold(NodePath::root().key(self.name), |p, k| p.key(k));
        self.source.error_at_key(&at, message)
    }

    /// The path of the section's node, to build deeper paths for [`Section::error_at_node`]
    /// (`section.path().key("monitors").index(2).key("action")`).
    pub fn path(&self) -> NodePath {
        NodePath::root().key(self.name)
    }

    /// An error located at the node `at` (built from [`Section::path`]), at its key when it
    /// ends in one.
    pub fn error_at_node(&self, at: &NodePath, message: impl Into<String>) -> ScenarioError {
        self.source.error_at_key(at, message)
    }

    /// An error located at the item `index` of the list at `path` under the section.
    pub fn error_at_item(
        &self,
        path: &[&str],
        index: usize,
        message: impl Into<String>,
    ) -> ScenarioError {
        let at = path
            .iter()
            .fold(NodePath::root().key(self.name), |p, k| p.key(k));
        self.source.error_at(&at.index(index), message)
    }
}

/// An integration's settings cannot be used: the run does not start (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The scenario's section is wrong, at file:line:col.
    #[error(transparent)]
    Section(#[from] ScenarioError),
    /// A flag or environment variable has a value outside what it accepts; the message names
    /// it and what is accepted.
    #[error("{0}")]
    Invalid(String),
}

/// The start-up check failed (keys refused, endpoint unreachable, port taken, …). The message
/// says what and what the run does about it; it never holds a secret.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StartError {
    /// One line.
    pub message: String,
}

impl StartError {
    /// A start-up failure saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        StartError {
            message: message.into(),
        }
    }
}

/// Refuse a top-level key of `scenario` that is neither the core's nor a registered
/// integration's (at the key, naming the keys expected), then check each integration's section.
pub fn check_sections(
    scenario: &Scenario,
    registry: &[&'static dyn Integration],
) -> Result<(), ScenarioError> {
    let names: Vec<&str> = registry.iter().map(|i| i.name()).collect();
    scenario.check_sections(&names)?;
    for i in registry {
        if let Some(section) = Section::of(scenario, i.name()) {
            i.check(&section)?;
        }
    }
    Ok(())
}

/// Every integration's flags, in registry order, for a `run` or `demo` command.
pub fn args(registry: &[&'static dyn Integration]) -> Vec<clap::Arg> {
    registry.iter().flat_map(|i| i.args()).collect()
}

#[cfg(test)]
mod tests;
