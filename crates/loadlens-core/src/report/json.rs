//! The JSON result: a contract. Its shape is described by `schemas/result.schema.json`
//! (committed, checked by tests) and versioned by `format_version`.
//!
//! Compatibility: a newer loadlens that only *adds* fields keeps `format_version`, and readers
//! ignore the fields they do not know (no `deny_unknown_fields` on any type read back here), so
//! an older `loadlens report`/`compare` reads its results. A change that removes, renames or
//! changes the meaning of a field bumps `format_version`; a reader refuses a newer version with
//! a message that says to upgrade, rather than misreading it.

use std::collections::BTreeMap;
use std::path::Path;

use super::SinkReport;
use super::{Summary, Verdict};
use crate::breakdown::Breakdown;
use crate::health::GeneratorHealth;
use crate::load::{ArrivalReport, LoadSettings};
use crate::run::describe;
use crate::run::{rfc3339, TimelineEvent};
use crate::stats::{RequestSummary, SeriesPoint};
use crate::thresholds::ThresholdResult;

/// Version of the result format written by this build.
pub const FORMAT_VERSION: u32 = 1;

/// A result file that cannot be read back (`loadlens merge`, `report`, `compare`).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file cannot be read.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not JSON.
    #[error("{}: not JSON: {source}", .path.display())]
    NotJson {
        /// The file.
        path: std::path::PathBuf,
        /// Where the JSON breaks.
        source: serde_json::Error,
    },
    /// A result of another format version: a newer loadlens changed the format in a way this
    /// build cannot read.
    #[error("{}: format_version {version} is not supported (this build reads {FORMAT_VERSION}){}", .path.display(), if *.version > u64::from(FORMAT_VERSION) { "; it was written by a newer loadlens: read it with that version or later" } else { "" })]
    Version {
        /// The file.
        path: std::path::PathBuf,
        /// The version it declares.
        version: u64,
    },
    /// JSON that is not a loadlens result.
    #[error("{}: not a loadlens result (no format_version)", .path.display())]
    NotAResult {
        /// The file.
        path: std::path::PathBuf,
    },
    /// A result whose fields do not match this format version.
    #[error("{}: {source}", .path.display())]
    Shape {
        /// The file.
        path: std::path::PathBuf,
        /// The first field that does not match.
        source: serde_json::Error,
    },
}

/// The whole JSON result document.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ResultDoc {
    /// Format version ([`FORMAT_VERSION`]).
    pub format_version: u32,
    /// Producer.
    pub tool: ToolInfo,
    /// Identity, timing and outcome.
    pub run: RunSection,
    /// Load settings used.
    pub load: LoadSettings,
    /// Every request name together.
    pub aggregate: RequestSummary,
    /// Per request name.
    pub requests: Vec<RequestSummary>,
    /// Error catalogue, most frequent first.
    pub errors: Vec<ErrorRow>,
    /// Failures per error kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Failures not itemised because the catalogue was full.
    pub errors_overflow: u64,
    /// Time series.
    pub series: SeriesSection,
    /// Timeline of events.
    pub timeline: Vec<TimelineEvent>,
    /// What each sink delivered.
    pub sinks: Vec<SinkReport>,
    /// Raw samples dropped on the way to sinks that need every request.
    pub dropped_samples: u64,
    /// Threshold results, in the order they were given (empty: no thresholds).
    #[serde(default)]
    pub thresholds: Vec<ThresholdResult>,
    /// Open model: arrivals that found no free VU and were not run (0 in the closed model).
    #[serde(default)]
    pub dropped_iterations: u64,
    /// Open model figures: intended vs started arrivals, VUs, scheduling delay (null: closed).
    #[serde(default)]
    pub arrivals: Option<ArrivalReport>,
    /// The generator's own CPU and memory, and whether the results can be trusted.
    #[serde(default)]
    pub generator: GeneratorHealth,
    /// Per named scenario (empty for a single unnamed scenario).
    #[serde(default)]
    pub scenarios: Vec<ScenarioSection>,
    /// Why a guard failed the run (e.g. a Datadog monitor with the `fail` action went to
    /// Alert); empty when none did.
    #[serde(default)]
    pub failures: Vec<String>,
    /// Guard actions and planned flips, with their outcomes (absent: none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<crate::action::Record>,
    /// Before/after each planned flip, per request name (absent: no flip).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub comparison: Vec<super::flips::FlipComparison>,
    /// Where the time went, per request name, from the service's spans joined to the client
    /// spans (absent when no trace receiver ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<Breakdown>,
    /// Every counter and HDR histogram per request name, lossless, for `loadlens merge`
    /// (absent in results of older builds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histograms: Option<super::histograms::Histograms>,
    /// A merged result: one row per result file (segment) it was made of (absent otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workers: Vec<super::merge::WorkerRow>,
}

/// One named scenario of the run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ScenarioSection {
    /// Name.
    pub name: String,
    /// Seconds after the start of the run it began.
    pub start_time_s: f64,
    /// Its load model.
    pub load: LoadSettings,
    /// Every request of this scenario together (rates over the time it ran).
    pub aggregate: RequestSummary,
    /// Per request name.
    pub requests: Vec<RequestSummary>,
    /// Open model figures (null: closed model).
    pub arrivals: Option<ArrivalReport>,
}

/// Producer of the document.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ToolInfo {
    /// `loadlens`.
    pub name: String,
    /// Version.
    pub version: String,
}

/// Identity, timing and outcome of the run.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunSection {
    /// Run id.
    pub id: String,
    /// Scenario name.
    pub scenario: String,
    /// Target host, if one was set.
    pub host: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Start (RFC 3339).
    pub started_at: String,
    /// End (RFC 3339).
    pub ended_at: String,
    /// Seconds the load ran.
    pub duration_s: f64,
    /// Verdict.
    pub verdict: Verdict,
    /// Why the run stopped, readable.
    pub stop_reason: String,
    /// Whether users were stopped without waiting for in-flight requests.
    pub killed: bool,
    /// Hash of what the segments of one distributed run share (scenario file, requests, whole
    /// load, thresholds, host); `loadlens merge` refuses results whose hashes differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario_hash: Option<String>,
}

/// One error catalogue entry.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ErrorRow {
    /// Method.
    pub method: String,
    /// Request name.
    pub name: String,
    /// Error kind (`refused`, `reset`, `timeout`, `status`, …).
    pub kind: String,
    /// Message.
    pub message: String,
    /// Occurrences.
    pub count: u64,
    /// When it was first seen (RFC 3339, UTC); absent from older files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    /// When it was last seen (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
}

impl ErrorRow {
    /// When the error was first and last seen, if the file says.
    pub fn seen(&self) -> Option<(std::time::SystemTime, std::time::SystemTime)> {
        let at = |t: &Option<String>| humantime::parse_rfc3339_weak(t.as_deref()?).ok();
        Some((at(&self.first_seen)?, at(&self.last_seen)?))
    }
}

/// The time series.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SeriesSection {
    /// Seconds per point (doubles each time a long run is downsampled).
    pub resolution_s: u64,
    /// Points, oldest first.
    pub points: Vec<SeriesPoint>,
    /// Each request name's own series, coarser (see `TimeSeries::NAME_CAPACITY`), for the
    /// names that had requests, in the order of `requests`; absent from older results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<NameSeries>,
}

/// One request name's series.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NameSeries {
    /// HTTP method (empty for a non-HTTP name).
    pub method: String,
    /// Request name.
    pub name: String,
    /// Seconds per point.
    pub resolution_s: u64,
    /// Points, oldest first; `users` is the run's.
    pub points: Vec<SeriesPoint>,
}

impl SeriesSection {
    /// The section of `series`, whose per-name series are those of `names` (`NameId` order).
    pub fn of(series: &crate::stats::TimeSeries, names: &[(String, String)]) -> Self {
        SeriesSection {
            resolution_s: series.resolution() as u64,
            points: series.points(),
            requests: series
                .names()
                .iter()
                .zip(names)
                .map(|(s, (method, name))| NameSeries {
                    method: method.clone(),
                    name: name.clone(),
                    resolution_s: s.resolution() as u64,
                    points: s.points(),
                })
                .filter(|s| s.points.iter().any(|p| p.requests > 0))
                .collect(),
        }
    }
}

impl ResultDoc {
    /// Build the document of `summary`.
    pub fn of(summary: &Summary) -> Self {
        let errors = summary
            .errors()
            .into_iter()
            .map(|(method, name, e)| ErrorRow {
                method,
                name,
                kind: e.kind.to_string(),
                message: e.message,
                count: e.count,
                first_seen: e
                    .seen
                    .map(|(f, _)| humantime::format_rfc3339_millis(f).to_string()),
                last_seen: e
                    .seen
                    .map(|(_, l)| humantime::format_rfc3339_millis(l).to_string()),
            })
            .collect();
        ResultDoc {
            format_version: FORMAT_VERSION,
            tool: ToolInfo {
                name: "loadlens".into(),
                version: env!("CARGO_PKG_VERSION").into(),
            },
            run: RunSection {
                id: summary.run.id.clone(),
                scenario: summary.run.scenario.clone(),
                host: summary.host.clone(),
                tags: summary.run.tags.clone(),
                started_at: rfc3339(summary.started_at),
                ended_at: rfc3339(summary.ended_at),
                duration_s: summary.duration.as_secs_f64(),
                verdict: summary.verdict(),
                stop_reason: describe(&summary.stop_reason),
                killed: summary.killed,
                scenario_hash: summary.outcome.scenario_hash.clone(),
            },
            load: summary.load.clone(),
            aggregate: summary.total().with_curve(&summary.stats.aggregate()),
            // As `Summary::requests`, plus each name's percentile curve (for the HTML report).
            requests: summary
                .names
                .iter()
                .zip(&summary.stats.requests)
                .filter(|(_, s)| s.count > 0)
                .map(|((m, n), s)| RequestSummary::of(m, n, s, summary.duration).with_curve(s))
                .collect(),
            errors,
            errors_by_kind: summary
                .stats
                .errors
                .by_kind()
                .into_iter()
                .map(|(k, n)| (k.to_string(), n))
                .collect(),
            errors_overflow: summary.stats.errors.overflow,
            series: SeriesSection::of(&summary.series, &summary.names),
            timeline: summary.timeline.clone(),
            sinks: summary.sinks.clone(),
            dropped_samples: summary.dropped_samples,
            thresholds: summary.outcome.thresholds.clone(),
            dropped_iterations: summary.outcome.dropped_iterations,
            arrivals: summary.outcome.arrivals.clone(),
            generator: summary.outcome.generator.clone(),
            scenarios: summary
                .outcome
                .scenarios
                .iter()
                .zip(summary.scenario_totals())
                .map(|(s, (_, aggregate))| {
                    let ran = summary.duration.saturating_sub(s.start_time);
                    let ran = s.load.duration().map_or(ran, |d| ran.min(d));
                    ScenarioSection {
                        name: s.name.clone(),
                        start_time_s: s.start_time.as_secs_f64(),
                        load: s.load.clone(),
                        aggregate,
                        requests: summary
                            .names
                            .iter()
                            .zip(&s.stats.requests)
                            .filter(|(_, r)| r.count > 0)
                            .map(|((m, n), r)| RequestSummary::of(m, n, r, ran))
                            .collect(),
                        arrivals: s.arrivals.clone(),
                    }
                })
                .collect(),
            failures: summary.outcome.failures.clone(),
            actions: summary.outcome.actions.clone(),
            comparison: summary.comparison(),
            breakdown: summary.outcome.breakdown.as_deref().cloned(),
            histograms: Some(super::histograms::Histograms::of(
                &summary.names,
                &summary.stats,
                summary
                    .outcome
                    .scenarios
                    .iter()
                    .map(|s| (s.name.as_str(), &s.stats)),
            )),
            workers: summary.outcome.workers.clone(),
        }
    }

    /// Write pretty-printed JSON to `path`, whole or not at all ([`super::write_file`]).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        super::write_file(path, (text + "\n").as_bytes())
    }

    /// Read a result written by [`ResultDoc::write`].
    pub fn read(path: &Path) -> Result<Self, ReadError> {
        let path_buf = || path.to_path_buf();
        let text = std::fs::read_to_string(path).map_err(|source| ReadError::Io {
            path: path_buf(),
            source,
        })?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| ReadError::NotJson {
                path: path_buf(),
                source,
            })?;
        match v.get("format_version").and_then(|f| f.as_u64()) {
            Some(v) if v == u64::from(FORMAT_VERSION) => {}
            Some(version) => {
                return Err(ReadError::Version {
                    path: path_buf(),
                    version,
                })
            }
            None => return Err(ReadError::NotAResult { path: path_buf() }),
        }
        serde_json::from_value(v).map_err(|source| ReadError::Shape {
            path: path_buf(),
            source,
        })
    }
}
