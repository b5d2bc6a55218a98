//! The end of a run: the [`Summary`] and the reports written from it — the JSON result (a
//! contract with a committed schema), Locust-compatible CSV files, the text summary table, and
//! the self-contained HTML report (built from the JSON result alone).

pub mod csv;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod text;

use std::time::{Duration, SystemTime};

use crate::executor::{
    ArrivalReport, GeneratorHealth, LoadSettings, RunOutput, ScenarioOutput, StopReason,
};
use crate::run::{RunInfo, TimelineEvent};
use crate::sink::SinkReport;
use crate::stats::{ErrorEntry, RequestSummary, StatsSet, TimeSeries};
use crate::thresholds::{Breach, NameTags, Observed, Threshold, ThresholdResult};

/// How the run ended, for exit codes and verdicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Ran to its end and every threshold passed.
    Passed,
    /// Ran to its end, a threshold failed.
    Failed,
    /// A guard aborted it.
    Aborted,
    /// Interrupted by the user (Ctrl-C).
    Interrupted,
}

/// Everything known at the end of a run.
#[derive(Debug)]
pub struct Summary {
    /// Identity and tags.
    pub run: RunInfo,
    /// Load settings used.
    pub load: LoadSettings,
    /// Target host (for the header of reports).
    pub host: Option<String>,
    /// Wall-clock start.
    pub started_at: SystemTime,
    /// Wall-clock end.
    pub ended_at: SystemTime,
    /// Time the load ran.
    pub duration: Duration,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// Whether users were stopped without waiting for in-flight requests.
    pub killed: bool,
    /// `(method, name)` in `NameId` order.
    pub names: Vec<(String, String)>,
    /// Cumulative statistics.
    pub stats: StatsSet,
    /// Time series.
    pub series: TimeSeries,
    /// Timeline.
    pub timeline: Vec<TimelineEvent>,
    /// What each sink did (filled after sinks finish).
    pub sinks: Vec<SinkReport>,
    /// Samples dropped by sample taps.
    pub dropped_samples: u64,
    /// Load-model figures, generator health and threshold results.
    pub outcome: Outcome,
}

/// What the load model, the generator and the thresholds say about the run.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Open model: arrivals that found no free VU.
    pub dropped_iterations: u64,
    /// Open-model figures over every open-model scenario (`None`: closed model only).
    pub arrivals: Option<ArrivalReport>,
    /// The generator's own CPU and memory, and whether the results can be trusted.
    pub generator: GeneratorHealth,
    /// Thresholds seen failing during the run.
    pub breaches: Vec<Breach>,
    /// Per named scenario (empty for a plain run).
    pub scenarios: Vec<ScenarioOutput>,
    /// Threshold results (filled by [`Summary::evaluate_thresholds`]).
    pub thresholds: Vec<ThresholdResult>,
    /// The task tags of each request name, for thresholds scoped by tag.
    pub name_tags: NameTags,
    /// Why a guard failed the run ([`crate::executor::Controls::fail`]; e.g. a Datadog monitor
    /// with the `fail` action went to Alert).
    pub failures: Vec<String>,
}

impl Summary {
    /// Build from the executor's output (sinks are finished separately).
    pub fn new(
        run: RunInfo,
        load: LoadSettings,
        host: Option<String>,
        out: &mut RunOutput,
    ) -> Self {
        Summary {
            run,
            load,
            host,
            started_at: out.started_at,
            ended_at: out.ended_at,
            duration: out.duration,
            stop_reason: out.stop_reason.clone(),
            killed: out.killed,
            names: out.names.clone(),
            stats: std::mem::take(&mut out.stats),
            series: std::mem::replace(&mut out.series, TimeSeries::new(2)),
            timeline: std::mem::take(&mut out.timeline),
            sinks: Vec::new(),
            dropped_samples: out.dropped_samples,
            outcome: Outcome {
                dropped_iterations: out.dropped_iterations,
                arrivals: out.arrivals.take(),
                generator: out.generator.clone(),
                breaches: std::mem::take(&mut out.breaches),
                scenarios: std::mem::take(&mut out.scenarios),
                thresholds: Vec::new(),
                name_tags: std::mem::take(&mut out.name_tags),
                failures: std::mem::take(&mut out.failures),
            },
        }
    }

    /// Each named scenario's aggregate, over the time it ran.
    pub fn scenario_totals(&self) -> Vec<(String, RequestSummary)> {
        self.outcome
            .scenarios
            .iter()
            .map(|s| {
                let ran = self.duration.saturating_sub(s.start_time);
                let ran = s.load.duration().map_or(ran, |d| ran.min(d));
                let total = RequestSummary::of("", &s.name, &s.stats.aggregate(), ran);
                (s.name.clone(), total)
            })
            .collect()
    }

    /// Evaluate `thresholds` on the final figures (and the breaches seen during the run); the
    /// results feed [`Summary::verdict`] and every report.
    pub fn evaluate_thresholds(&mut self, thresholds: &[Threshold]) {
        let total = self.total();
        let requests = self.requests();
        let scenarios = self.scenario_totals();
        let tags = self
            .outcome
            .name_tags
            .summaries(thresholds, &self.stats, self.duration);
        let observed = Observed {
            aggregate: &total,
            requests: &requests,
            scenarios: &scenarios,
            tags: &tags,
            dropped_iterations: self.outcome.dropped_iterations,
            generator: Some(&self.outcome.generator),
        };
        self.outcome.thresholds =
            crate::thresholds::evaluate(thresholds, &observed, &self.outcome.breaches);
    }

    /// Per-request summaries in `NameId` order (names with no request omitted).
    pub fn requests(&self) -> Vec<RequestSummary> {
        self.names
            .iter()
            .zip(&self.stats.requests)
            .filter(|(_, s)| s.count > 0)
            .map(|((m, n), s)| RequestSummary::of(m, n, s, self.duration))
            .collect()
    }

    /// The aggregate over every request name.
    pub fn total(&self) -> RequestSummary {
        RequestSummary::of("", "Aggregated", &self.stats.aggregate(), self.duration)
    }

    /// The error catalogue, most frequent first, with method and name resolved.
    pub fn errors(&self) -> Vec<(String, String, ErrorEntry)> {
        self.stats
            .errors
            .sorted()
            .into_iter()
            .map(|e| {
                let (m, n) = self
                    .names
                    .get(e.name.0 as usize)
                    .cloned()
                    .unwrap_or_default();
                (m, n, e)
            })
            .collect()
    }

    /// The verdict: aborted by a guard, interrupted, failed when a threshold failed or a guard
    /// failed the run, else passed.
    pub fn verdict(&self) -> Verdict {
        match self.stop_reason {
            StopReason::Aborted(_) => Verdict::Aborted,
            StopReason::Interrupted => Verdict::Interrupted,
            _ if self.outcome.thresholds.iter().any(|t| !t.passed) => Verdict::Failed,
            _ if !self.outcome.failures.is_empty() => Verdict::Failed,
            _ => Verdict::Passed,
        }
    }
}

/// A threshold's scope as reports show it: `aggregate`, `name:REQUEST`, `scenario:NAME`, or
/// `tag:TAG (GET /a, POST /b)` with the request names a tag covered (at most `max`, then how
/// many more).
pub(crate) fn scope_label(t: &ThresholdResult, max: usize) -> String {
    if t.requests.is_empty() {
        return t.scope.clone();
    }
    let mut names = t.requests.iter().take(max).cloned().collect::<Vec<_>>();
    if t.requests.len() > max {
        names.push(format!("{} more", t.requests.len() - max));
    }
    format!("{} ({})", t.scope, names.join(", "))
}
