//! The end of a run: the [`Summary`] and the reports written from it — the JSON result (a
//! contract with a committed schema), Locust-compatible CSV files, the text summary table, and
//! the self-contained HTML report (built from the JSON result alone).

pub mod csv;
pub mod flips;
pub mod histograms;
pub mod html;
pub mod json;
pub mod junit;
pub mod markdown;
pub mod merge;
pub mod text;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::health::GeneratorHealth;
use crate::load::{ArrivalReport, LoadSettings};
use crate::run::{RunInfo, StopReason, TimelineEvent};
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

/// What a sink did, for the summary.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SinkReport {
    /// Sink name (`otlp`, `datadog`, …).
    pub name: String,
    /// Items delivered (spans, points, events).
    pub delivered: u64,
    /// Items that could not be delivered after retries.
    pub failed: u64,
    /// Items dropped because a queue was full.
    pub dropped: u64,
    /// Distinct error messages (secrets never included).
    pub errors: Vec<String>,
}

/// What one named scenario produced.
#[derive(Debug)]
pub struct ScenarioOutput {
    /// Name.
    pub name: String,
    /// Start offset.
    pub start_time: Duration,
    /// Load model.
    pub load: LoadSettings,
    /// Its cumulative statistics.
    pub stats: StatsSet,
    /// Open model figures.
    pub arrivals: Option<ArrivalReport>,
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
    /// Why a guard failed the run ([`crate::run::Controls::fail`]; e.g. a Datadog monitor
    /// with the `fail` action went to Alert).
    pub failures: Vec<String>,
    /// The run cut at its planned flips, for the before/after comparison (empty without
    /// flips).
    pub segments: Vec<Segment>,
    /// Guard actions and planned flips, with their outcomes.
    pub actions: Vec<crate::action::Record>,
    /// Where the time went, per request name (joined service spans); `None` when no trace
    /// receiver ran.
    pub breakdown: Option<std::sync::Arc<crate::breakdown::Breakdown>>,
    /// The hash of what the segments of a distributed run must share (set by the binary);
    /// `loadlens merge` refuses results whose hashes differ.
    pub scenario_hash: Option<String>,
    /// A merged result: the result files it was made of, one per segment.
    pub workers: Vec<merge::WorkerRow>,
}

/// A part of the run between two planned flips, with its own cumulative statistics.
#[derive(Debug, Clone)]
pub struct Segment {
    /// When it began, from the start of the run.
    pub start: Duration,
    /// When it ended (its last tick).
    pub end: Duration,
    /// The flip that began it (empty for the first).
    pub cause: String,
    /// Its statistics, per request name in `NameId` order.
    pub stats: StatsSet,
}

impl Summary {
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
            breakdown: self.outcome.breakdown.as_deref(),
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

/// Write a report file whole or not at all: the text goes to a temporary file beside `path`,
/// which then replaces `path` in one rename. On a full disk the write fails and `path` keeps
/// what it had (or does not exist); a truncated, invalid report is never left behind. Parent
/// directories are created. A path that is not a regular file (`/dev/null`, `/dev/stdout`, a
/// named pipe) is written into as it is, never replaced.
pub fn write_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    if is_special(path) {
        return std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut f| f.write_all(contents));
    }
    replace_with(path, |f| {
        f.write_all(contents)?;
        // ENOSPC may only show when the data reaches the disk.
        f.sync_all()
    })
}

/// A path that exists and is neither a regular file nor a directory: a device such as
/// `/dev/null`, a named pipe, a socket.
fn is_special(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// [`write_file`] with the writing step given, so that its failure can be tested.
fn replace_with(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let tmp = beside(path, "tmp")?;
    let written = std::fs::File::create(&tmp).and_then(|mut f| fill(&mut f));
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
}

/// A hidden file name beside `path` (its parent directories created), unique to this process.
fn beside(path: &Path, what: &str) -> std::io::Result<PathBuf> {
    let Some(name) = path.file_name() else {
        return Err(std::io::Error::other("not a file name"));
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("cannot create the directory {}: {e}", dir.display()),
            )
        })?;
    }
    let name = format!(".{}.{}.{what}", name.to_string_lossy(), std::process::id());
    Ok(path.with_file_name(name))
}

/// Check, before a run, that a report can be written to `path`: it is not a directory, its
/// directory exists or can be created, and a file can be created there. The error says why not
/// (the OS error), so that a run is refused before it sends any load rather than losing its
/// report at the end.
pub fn check_writable(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        return Err(std::io::Error::other("it is a directory"));
    }
    if is_special(path) {
        // Written into as it is (no file is made beside it, in `/dev` for instance).
        return Ok(());
    }
    let probe = beside(path, "probe")?;
    std::fs::File::create(&probe)?;
    std::fs::remove_file(&probe)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("loadlens-report-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_report_replaces_the_old_one_whole_and_leaves_nothing_beside_it() {
        let dir = scratch("replace");
        let path = dir.join("sub/result.json");
        write_file(&path, b"{\"old\": true}\n").unwrap();
        write_file(&path, b"{\"new\": true}\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"new\": true}\n");
        assert_eq!(names(&dir.join("sub")), ["result.json"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_write_that_fails_halfway_leaves_the_old_report_and_no_truncated_one() {
        let dir = scratch("halfway");
        let path = dir.join("result.json");
        write_file(&path, b"{\"complete\": true}\n").unwrap();
        // As on a full disk: part of the text is written, then ENOSPC.
        let err = replace_with(&path, |f| {
            f.write_all(b"{\"trunc")?;
            Err(std::io::Error::from_raw_os_error(28))
        })
        .unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"complete\": true}\n"
        );
        assert_eq!(names(&dir), ["result.json"]);
        // Without an earlier report, there is no file at all rather than a truncated one.
        let fresh = dir.join("fresh.json");
        replace_with(&fresh, |f| {
            f.write_all(b"{")?;
            Err(std::io::Error::from_raw_os_error(28))
        })
        .unwrap_err();
        assert_eq!(names(&dir), ["result.json"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_named_pipe_or_device_is_written_into_never_replaced() {
        use std::os::unix::fs::FileTypeExt;

        let dir = scratch("fifo");
        let fifo = dir.join("result.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        check_writable(&fifo).unwrap();
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
        };
        write_file(&fifo, b"{\"run\": 1}\n").unwrap();
        assert_eq!(reader.join().unwrap(), "{\"run\": 1}\n");
        // Still the pipe, with nothing made beside it (as `--json /dev/null` must leave
        // /dev/null a device).
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
        assert_eq!(names(&dir), ["result.json"]);
        // The device itself: written into, still a character device afterwards.
        write_file(Path::new("/dev/null"), b"nothing").unwrap();
        check_writable(Path::new("/dev/null")).unwrap();
        assert!(std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unwritable_report_path_is_found_with_the_reason() {
        let dir = scratch("check");
        // A missing directory is created, and the check leaves no file behind.
        check_writable(&dir.join("new/dir/result.json")).unwrap();
        assert_eq!(names(&dir.join("new/dir")), Vec::<String>::new());
        // A directory as the path.
        let e = check_writable(&dir).unwrap_err();
        assert_eq!(e.to_string(), "it is a directory");
        // A directory that cannot be created: a file is in the way.
        std::fs::write(dir.join("file"), "x").unwrap();
        let e = check_writable(&dir.join("file/result.json")).unwrap_err();
        assert!(
            e.to_string().starts_with("cannot create the directory "),
            "{e}"
        );
        assert!(
            e.to_string().ends_with("(os error 17)"),
            "the OS error: {e}"
        );
        // A directory nobody can write to, even root.
        let e = check_writable(Path::new("/proc/result.json")).unwrap_err();
        assert!(e.raw_os_error().is_some(), "the OS error: {e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
