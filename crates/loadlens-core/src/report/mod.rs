//! The end of a run: the [`Summary`] and the reports written from it — the JSON result (a
//! contract with a committed schema), Locust-compatible CSV files, and the text summary table.

pub mod csv;
pub mod json;
pub mod text;

use std::time::{Duration, SystemTime};

use crate::executor::{LoadSettings, RunOutput, StopReason};
use crate::run::{RunInfo, TimelineEvent};
use crate::sink::SinkReport;
use crate::stats::{ErrorEntry, RequestSummary, StatsSet, TimeSeries};

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
        }
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

    /// The verdict (thresholds arrive with the thresholds feature; until then a run that ended
    /// normally passes).
    pub fn verdict(&self) -> Verdict {
        match self.stop_reason {
            StopReason::Aborted(_) => Verdict::Aborted,
            StopReason::Interrupted => Verdict::Interrupted,
            _ => Verdict::Passed,
        }
    }
}
