//! `loadlens merge`: the JSON results of a run's segments (`run --segment I/N` on N machines)
//! combined into the [`Summary`] of the whole run, from which every report is written as after
//! a single-process run.
//!
//! Exact where the files allow it: counts, failures, bytes, checks, status codes and the error
//! catalogue add up; every histogram (response time, connection phases) is decoded from the
//! files' `histograms` section and added, so the merged percentiles are those of the union of
//! all samples. The per-interval series is aligned on each file's own start (second `k` of
//! every segment adds up): its counts and rates add up, its per-interval percentiles are the
//! count-weighted mean of the segments' (the files keep no per-interval histograms), and its
//! min/max are exact. Open-model scheduling delays are the worst segment's. Thresholds are
//! evaluated again on the merged figures by the caller ([`Merged::thresholds`]).
//!
//! Where the time went (the trace receiver's breakdown) merges the same way: each file's
//! `breakdown.histograms` is added up by [`crate::breakdown::merge`] (the code the coordinator
//! runs live), so its counts, percentiles and coverage are those of one join over every
//! segment's requests; only its per-interval series' p95 is a count-weighted mean.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::json::{ResultDoc, ScenarioSection};
use super::{Outcome, ScenarioOutput, SinkReport, Summary, Verdict};
use crate::health::GeneratorHealth;
use crate::load::{ArrivalReport, LoadSettings, Segment};
use crate::run::{RunInfo, StopReason, TimelineEvent};
use crate::sample::{ErrorKind, NameId};
use crate::stats::{DecodeError, RequestStats, SeriesPoint, StatsSet, TimeSeries};
use crate::thresholds::{self, NameTags, Threshold};

/// One result file of a merged run, as the merged result lists it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WorkerRow {
    /// The segment it ran (`2/3`), `1/1` for a whole run.
    pub segment: String,
    /// The file it was read from.
    pub file: String,
    /// Its run id.
    pub run_id: String,
    /// Its start (RFC 3339).
    pub started_at: String,
    /// Seconds its load ran.
    pub duration_s: f64,
    /// Its own verdict.
    pub verdict: Verdict,
    /// Why it stopped.
    pub stop_reason: String,
    /// Requests it completed.
    pub request_count: u64,
    /// Requests that failed.
    pub failure_count: u64,
    /// Its own 95th percentile response time, ms.
    pub p95_ms: f64,
    /// Open model: arrivals it dropped.
    pub dropped_iterations: u64,
    /// Its generator's health (a saturated worker skews the merged figures).
    pub generator: GeneratorHealth,
}

/// Result files that cannot be merged.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// Nothing given.
    #[error("no result files to merge")]
    NoFiles,
    /// A file of an older build, or written without histograms.
    #[error("{}: no `histograms` section: write the results with this version of loadlens (`run --json`); percentiles cannot be merged exactly without them", .0.display())]
    NoHistograms(PathBuf),
    /// A file without a scenario hash.
    #[error("{}: no scenario hash (`run.scenario_hash`): write the results with this version of loadlens", .0.display())]
    NoHash(PathBuf),
    /// Files of different scenarios or load settings.
    #[error("{} ran another scenario than {} (scenario hash {} vs {}): merge only the segments of one run, started with the same file and flags", .path.display(), .first.display(), .hash, .first_hash)]
    DifferentScenario {
        /// The odd file.
        path: PathBuf,
        /// Its hash.
        hash: String,
        /// The first file.
        first: PathBuf,
        /// The first file's hash.
        first_hash: String,
    },
    /// Segments of different splits (`1/2` with `1/3`).
    #[error("{} is segment {} but {} is segment {}: every file must come from the same number of segments", .path.display(), .segment, .first.display(), .first_segment)]
    DifferentSplits {
        /// The odd file.
        path: PathBuf,
        /// Its segment.
        segment: Segment,
        /// The first file.
        first: PathBuf,
        /// The first file's segment.
        first_segment: Segment,
    },
    /// The same segment twice.
    #[error("{} and {} both ran segment {}: each segment once", .first.display(), .path.display(), .segment)]
    SegmentTwice {
        /// The second file.
        path: PathBuf,
        /// The first file with it.
        first: PathBuf,
        /// The segment.
        segment: Segment,
    },
    /// A histogram or count that does not decode.
    #[error("{}: {source}", .path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        source: DecodeError,
    },
}

/// The merged run.
#[derive(Debug)]
pub struct Merged {
    /// The whole run's summary; evaluate [`Merged::thresholds`] on it before writing reports.
    pub summary: Summary,
    /// The thresholds the segments evaluated, to evaluate again on the merged figures.
    pub thresholds: Vec<Threshold>,
    /// What the caller should say (missing segments, thresholds that cannot be read back).
    pub notes: Vec<String>,
}

/// Merge the results `docs` read from their paths.
pub fn merge(docs: &[(PathBuf, ResultDoc)]) -> Result<Merged, MergeError> {
    let Some((_, first)) = docs.first() else {
        return Err(MergeError::NoFiles);
    };
    check(docs)?;
    let mut notes = Vec::new();
    let count = first.load.segment.count();
    let present: Vec<u64> = docs.iter().map(|(_, d)| d.load.segment.index()).collect();
    let missing: Vec<String> = (0..count)
        .filter(|i| !present.contains(i))
        .map(|i| format!("{}/{count}", i + 1))
        .collect();
    if !missing.is_empty() {
        notes.push(format!(
            "segment(s) {} missing: the merged result covers {} of {count} segments",
            missing.join(", "),
            docs.len()
        ));
    }

    // Request names in the order they are first seen.
    let mut names: Vec<(String, String)> = Vec::new();
    let index = |m: &str, n: &str, names: &mut Vec<(String, String)>| -> usize {
        match names.iter().position(|(a, b)| a == m && b == n) {
            Some(i) => i,
            None => {
                names.push((m.to_owned(), n.to_owned()));
                names.len() - 1
            }
        }
    };
    let mut stats = StatsSet::default();
    let mut scenario_stats: Vec<(String, StatsSet)> = Vec::new();
    for (path, doc) in docs {
        let h = doc.histograms.as_ref().expect("checked");
        let decode = |e: DecodeError| MergeError::Decode {
            path: path.clone(),
            source: e,
        };
        let mut set = StatsSet::default();
        for r in &h.requests {
            let i = index(&r.method, &r.name, &mut names);
            put(&mut set, i, r.stats().map_err(decode)?);
        }
        for e in &doc.errors {
            let i = index(&e.method, &e.name, &mut names);
            let kind = ErrorKind::from_name(&e.kind).unwrap_or(ErrorKind::Other);
            set.errors
                .add_seen(NameId(i as u32), kind, &e.message, e.count, e.seen());
        }
        // Failures past the catalogue's cap: by kind, what the entries do not account for.
        let mut listed: BTreeMap<&str, u64> = BTreeMap::new();
        for e in &doc.errors {
            *listed.entry(e.kind.as_str()).or_default() += e.count;
        }
        for (kind, n) in &doc.errors_by_kind {
            let over = n.saturating_sub(listed.get(kind.as_str()).copied().unwrap_or(0));
            if over > 0 {
                let kind = ErrorKind::from_name(kind).unwrap_or(ErrorKind::Other);
                set.errors.add_overflow(kind, over);
            }
        }
        stats.merge(&set);
        for sc in &h.scenarios {
            let mut set = StatsSet::default();
            for r in &sc.requests {
                let i = index(&r.method, &r.name, &mut names);
                put(&mut set, i, r.stats().map_err(decode)?);
            }
            match scenario_stats.iter_mut().find(|(n, _)| *n == sc.name) {
                Some((_, s)) => s.merge(&set),
                None => scenario_stats.push((sc.name.clone(), set)),
            }
        }
    }
    stats
        .requests
        .resize_with(names.len(), RequestStats::default);

    let started: Vec<SystemTime> = docs.iter().map(|(_, d)| time(&d.run.started_at)).collect();
    let ended: Vec<SystemTime> = docs.iter().map(|(_, d)| time(&d.run.ended_at)).collect();
    let started_at = started
        .iter()
        .min()
        .copied()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let ended_at = ended.iter().max().copied().unwrap_or(started_at);
    let duration = docs
        .iter()
        .map(|(_, d)| Duration::try_from_secs_f64(d.run.duration_s).unwrap_or_default())
        .max()
        .unwrap_or_default();
    let whole = |l: &LoadSettings| LoadSettings {
        segment: Segment::WHOLE,
        ..l.clone()
    };
    let several = docs.len() > 1;
    let mut timeline: Vec<TimelineEvent> = docs
        .iter()
        .flat_map(|(_, d)| {
            let seg = d.load.segment;
            d.timeline.iter().cloned().map(move |mut e| {
                if several {
                    e.message = format!("[segment {seg}] {}", e.message);
                }
                e
            })
        })
        .collect();
    timeline.sort_by(|a, b| a.elapsed_s.total_cmp(&b.elapsed_s));

    let mut thresholds = Vec::new();
    for t in &first.thresholds {
        match thresholds::parse(&t.expression) {
            Ok(mut parsed) => {
                parsed.abort_on_fail |= t.abort_on_fail;
                thresholds.push(parsed);
            }
            Err(e) => notes.push(format!(
                "threshold `{}` is not evaluated again: {e}",
                t.expression
            )),
        }
    }
    let mut name_tags = NameTags::default();
    for t in docs.iter().flat_map(|(_, d)| &d.thresholds) {
        if let Some(tag) = t.scope.strip_prefix("tag:") {
            for label in &t.requests {
                if let Some(i) = names.iter().position(|(m, n)| format!("{m} {n}") == *label) {
                    name_tags.set_label(i, label.clone());
                    name_tags.see(i, &[tag.to_owned()]);
                }
            }
        }
    }
    for (i, (m, n)) in names.iter().enumerate() {
        name_tags.set_label(i, format!("{m} {n}"));
    }

    let scenarios = first
        .scenarios
        .iter()
        .map(|s| ScenarioOutput {
            name: s.name.clone(),
            start_time: Duration::try_from_secs_f64(s.start_time_s).unwrap_or_default(),
            load: whole(&s.load),
            stats: scenario_stats
                .iter()
                .find(|(n, _)| *n == s.name)
                .map(|(_, st)| {
                    let mut st = st.clone();
                    st.requests.resize_with(names.len(), RequestStats::default);
                    st
                })
                .unwrap_or_else(|| StatsSet::new(names.len())),
            arrivals: add_arrivals(docs.iter().filter_map(|(_, d)| {
                d.scenarios
                    .iter()
                    .find(|x: &&ScenarioSection| x.name == s.name)
                    .and_then(|x| x.arrivals.as_ref())
            })),
        })
        .collect();

    let breakdown = breakdown(docs, &names, &mut notes)?;
    let summary = Summary {
        run: RunInfo {
            id: common(docs.iter().map(|(_, d)| &d.run.id)).unwrap_or_else(|| first.run.id.clone()),
            scenario: first.run.scenario.clone(),
            tags: first
                .run
                .tags
                .iter()
                .filter(|(k, v)| docs.iter().all(|(_, d)| d.run.tags.get(*k) == Some(*v)))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        },
        load: whole(&first.load),
        host: first.run.host.clone(),
        started_at,
        ended_at,
        duration,
        stop_reason: stop_reason(docs),
        killed: docs.iter().any(|(_, d)| d.run.killed),
        series: series(docs, &names),
        names,
        stats,
        timeline,
        sinks: sinks(docs),
        dropped_samples: docs.iter().map(|(_, d)| d.dropped_samples).sum(),
        outcome: Outcome {
            dropped_iterations: docs.iter().map(|(_, d)| d.dropped_iterations).sum(),
            arrivals: add_arrivals(docs.iter().filter_map(|(_, d)| d.arrivals.as_ref())),
            generator: generator(docs),
            scenarios,
            name_tags,
            failures: docs
                .iter()
                .flat_map(|(_, d)| {
                    let seg = d.load.segment;
                    d.failures
                        .iter()
                        .map(move |f| format!("segment {seg}: {f}"))
                })
                .collect(),
            scenario_hash: first.run.scenario_hash.clone(),
            workers: docs.iter().map(|(p, d)| worker(p, d)).collect(),
            breakdown: breakdown.map(std::sync::Arc::new),
            ..Outcome::default()
        },
    };
    Ok(Merged {
        summary,
        thresholds,
        notes,
    })
}

/// Where the time went over every file that has a breakdown, merged exactly from their
/// `breakdown.histograms`; `None` when none has one. Files without one are named in `notes`.
fn breakdown(
    docs: &[(PathBuf, ResultDoc)],
    names: &[(String, String)],
    notes: &mut Vec<String>,
) -> Result<Option<crate::breakdown::Breakdown>, MergeError> {
    let mut parts = Vec::new();
    let mut without = Vec::new();
    let mut older = Vec::new();
    for (path, d) in docs {
        match d.breakdown.as_ref().map(|b| b.histograms.as_deref()) {
            Some(Some(h)) => parts.push((path, h)),
            Some(None) => older.push(path.display().to_string()),
            None => without.push(path.display().to_string()),
        }
    }
    if parts.is_empty() {
        if !older.is_empty() {
            notes.push(format!(
                "{}: the breakdown has no `histograms` (an older build): where the time went is left out of the merged result",
                older.join(", ")
            ));
        }
        return Ok(None);
    }
    if !older.is_empty() {
        notes.push(format!(
            "{}: the breakdown has no `histograms` (an older build): where the time went covers the other files only",
            older.join(", ")
        ));
    }
    if !without.is_empty() {
        notes.push(format!(
            "{}: no breakdown (no trace receiver ran): where the time went covers the other files only",
            without.join(", ")
        ));
    }
    match crate::breakdown::merge::merge(parts.iter().map(|(_, h)| *h), names) {
        Ok(b) => Ok(Some(b)),
        Err(_) => {
            // Name the file whose histograms do not decode.
            for (path, h) in &parts {
                if let Err(source) = crate::breakdown::merge::merge([*h], names) {
                    return Err(MergeError::Decode {
                        path: (*path).clone(),
                        source,
                    });
                }
            }
            Ok(None)
        }
    }
}

/// After [`Summary::evaluate_thresholds`] on the merged figures: a threshold seen failing
/// during the run in any segment keeps the earliest such moment, and one that aborted a
/// segment says so.
pub fn keep_breaches(summary: &mut Summary, docs: &[(PathBuf, ResultDoc)]) {
    for t in &mut summary.outcome.thresholds {
        let same = docs
            .iter()
            .flat_map(|(_, d)| &d.thresholds)
            .filter(|r| r.expression == t.expression && r.scope == t.scope && r.metric == t.metric);
        for r in same {
            t.first_breach_s = match (t.first_breach_s, r.first_breach_s) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            t.aborted |= r.aborted;
        }
    }
}

fn check(docs: &[(PathBuf, ResultDoc)]) -> Result<(), MergeError> {
    let (first_path, first) = &docs[0];
    let mut seen: Vec<(Segment, &Path)> = Vec::new();
    for (path, doc) in docs {
        if doc.histograms.is_none() {
            return Err(MergeError::NoHistograms(path.clone()));
        }
        let (Some(hash), Some(first_hash)) = (&doc.run.scenario_hash, &first.run.scenario_hash)
        else {
            let odd = if first.run.scenario_hash.is_none() {
                first_path
            } else {
                path
            };
            return Err(MergeError::NoHash(odd.clone()));
        };
        if hash != first_hash {
            return Err(MergeError::DifferentScenario {
                path: path.clone(),
                hash: hash.clone(),
                first: first_path.clone(),
                first_hash: first_hash.clone(),
            });
        }
        let segment = doc.load.segment;
        if segment.count() != first.load.segment.count() {
            return Err(MergeError::DifferentSplits {
                path: path.clone(),
                segment,
                first: first_path.clone(),
                first_segment: first.load.segment,
            });
        }
        if let Some((_, other)) = seen.iter().find(|(s, _)| *s == segment) {
            return Err(MergeError::SegmentTwice {
                path: path.clone(),
                first: other.to_path_buf(),
                segment,
            });
        }
        seen.push((segment, path));
    }
    Ok(())
}

fn put(set: &mut StatsSet, i: usize, stats: RequestStats) {
    if set.requests.len() <= i {
        set.requests.resize_with(i + 1, RequestStats::default);
    }
    set.requests[i].merge(&stats);
}

fn time(rfc3339: &str) -> SystemTime {
    humantime::parse_rfc3339_weak(rfc3339).unwrap_or(SystemTime::UNIX_EPOCH)
}

fn common<'a>(mut values: impl Iterator<Item = &'a String>) -> Option<String> {
    let first = values.next()?;
    values.all(|v| v == first).then(|| first.clone())
}

/// The first abort, else the first interruption, else the first file's reason.
/// Why a run of these segments stopped: the first aborted one's reason, an interruption, or
/// the first one's own (`docs` must not be empty).
pub fn stop_reason(docs: &[(PathBuf, ResultDoc)]) -> StopReason {
    let with = |v: Verdict| docs.iter().find(|(_, d)| d.run.verdict == v);
    if let Some((_, d)) = with(Verdict::Aborted) {
        let why = d.run.stop_reason.trim_start_matches("aborted: ");
        return StopReason::Aborted(format!("segment {}: {why}", d.load.segment));
    }
    if with(Verdict::Interrupted).is_some() {
        return StopReason::Interrupted;
    }
    let r = &docs[0].1.run.stop_reason;
    match r.as_str() {
        "run time elapsed" => StopReason::RunTime,
        "all iterations done" => StopReason::Iterations,
        "every user finished" => StopReason::UsersFinished,
        other => {
            let feeder = other
                .strip_prefix("data feeder `")
                .and_then(|f| f.split('`').next());
            match feeder {
                Some(f) => StopReason::DataExhausted(f.to_owned()),
                None => StopReason::RunTime,
            }
        }
    }
}

/// The segments' series, second `k` of each added up (each aligned on its own start), and so
/// each request name's series, in the order of `names`.
fn series(docs: &[(PathBuf, ResultDoc)], names: &[(String, String)]) -> TimeSeries {
    let mut out = added_up(
        docs.iter()
            .map(|(_, d)| (d.series.resolution_s, d.series.points.as_slice())),
        TimeSeries::DEFAULT_CAPACITY,
    );
    for (method, name) in names.iter().take(TimeSeries::MAX_NAMES) {
        let parts = docs.iter().flat_map(|(_, d)| {
            d.series
                .requests
                .iter()
                .filter(|s| s.method == *method && s.name == *name)
                .map(|s| (s.resolution_s, s.points.as_slice()))
        });
        out.push_name_series(added_up(parts, TimeSeries::NAME_CAPACITY));
    }
    out
}

/// Series of `(resolution_s, points)` added up, second `k` of each (each aligned on its own
/// start), into a series of at most `capacity` points.
fn added_up<'a>(
    parts: impl Iterator<Item = (u64, &'a [SeriesPoint])> + Clone,
    capacity: usize,
) -> TimeSeries {
    let res = parts.clone().map(|(r, _)| r.max(1)).max().unwrap_or(1) as f64;
    // Per bucket, per file: the file's points in it folded together.
    let mut buckets: BTreeMap<u64, Vec<SeriesPoint>> = BTreeMap::new();
    for (_, points) in parts {
        let mut mine: BTreeMap<u64, SeriesPoint> = BTreeMap::new();
        for p in points {
            let k = (p.elapsed_s / res).round().max(1.0) as u64;
            match mine.get_mut(&k) {
                Some(acc) => fold_in_time(acc, p),
                None => {
                    mine.insert(k, p.clone());
                }
            }
        }
        for (k, p) in mine {
            buckets.entry(k).or_default().push(p);
        }
    }
    let mut out = TimeSeries::new(capacity);
    for (_, points) in buckets {
        out.push(side_by_side(&points));
    }
    out
}

/// `later` of the same file after `acc`: one longer interval.
fn fold_in_time(acc: &mut SeriesPoint, later: &SeriesPoint) {
    let (a, b) = (acc.requests as f64, later.requests as f64);
    let w = |x: f64, y: f64| {
        if a + b > 0.0 {
            (x * a + y * b) / (a + b)
        } else {
            0.0
        }
    };
    acc.avg_ms = w(acc.avg_ms, later.avg_ms);
    acc.p50_ms = w(acc.p50_ms, later.p50_ms);
    acc.p95_ms = w(acc.p95_ms, later.p95_ms);
    acc.p99_ms = w(acc.p99_ms, later.p99_ms);
    acc.mix_extra_percentiles(later, w, later.total_p50_ms);
    acc.total_avg_content_bytes = later.total_avg_content_bytes;
    acc.min_ms = min_of(acc, later);
    acc.max_ms = acc.max_ms.max(later.max_ms);
    acc.requests += later.requests;
    acc.failures += later.failures;
    acc.span_s += later.span_s;
    acc.elapsed_s = later.elapsed_s;
    acc.users = later.users;
    let per_s = |n: u64| {
        if acc.span_s > 0.0 {
            n as f64 / acc.span_s
        } else {
            0.0
        }
    };
    acc.rps = per_s(acc.requests);
    acc.failures_per_s = per_s(acc.failures);
}

fn min_of(a: &SeriesPoint, b: &SeriesPoint) -> f64 {
    match (a.requests > 0, b.requests > 0) {
        (true, true) => a.min_ms.min(b.min_ms),
        (true, false) => a.min_ms,
        (false, true) => b.min_ms,
        (false, false) => 0.0,
    }
}

/// The same interval of several segments: counts, users and rates add up.
fn side_by_side(points: &[SeriesPoint]) -> SeriesPoint {
    let mut out = points[0].clone();
    for p in &points[1..] {
        let (a, b) = (out.requests as f64, p.requests as f64);
        let w = |x: f64, y: f64| {
            if a + b > 0.0 {
                (x * a + y * b) / (a + b)
            } else {
                0.0
            }
        };
        out.avg_ms = w(out.avg_ms, p.avg_ms);
        out.p50_ms = w(out.p50_ms, p.p50_ms);
        out.p95_ms = w(out.p95_ms, p.p95_ms);
        out.p99_ms = w(out.p99_ms, p.p99_ms);
        // The segments' total medians, weighted by this interval's requests (approximate).
        let total = w(out.total_p50_ms, p.total_p50_ms);
        out.mix_extra_percentiles(p, w, total);
        out.min_ms = min_of(&out, p);
        out.max_ms = out.max_ms.max(p.max_ms);
        out.requests += p.requests;
        out.failures += p.failures;
        out.users += p.users;
        out.rps += p.rps;
        out.failures_per_s += p.failures_per_s;
        out.elapsed_s = out.elapsed_s.max(p.elapsed_s);
        out.span_s = out.span_s.max(p.span_s);
    }
    out
}

/// Sinks of the same name add up.
fn sinks(docs: &[(PathBuf, ResultDoc)]) -> Vec<SinkReport> {
    let mut out: Vec<SinkReport> = Vec::new();
    for s in docs.iter().flat_map(|(_, d)| &d.sinks) {
        match out.iter_mut().find(|o| o.name == s.name) {
            Some(o) => {
                o.delivered += s.delivered;
                o.failed += s.failed;
                o.dropped += s.dropped;
                for e in &s.errors {
                    if !o.errors.contains(e) {
                        o.errors.push(e.clone());
                    }
                }
            }
            None => out.push(s.clone()),
        }
    }
    out
}

/// Open-model figures add up; the scheduling delay is the worst segment's.
fn add_arrivals<'a>(parts: impl Iterator<Item = &'a ArrivalReport>) -> Option<ArrivalReport> {
    let mut out: Option<ArrivalReport> = None;
    for a in parts {
        let o = out.get_or_insert_with(ArrivalReport::default);
        o.intended += a.intended;
        o.started += a.started;
        o.dropped_iterations += a.dropped_iterations;
        o.vus_allocated += a.vus_allocated;
        o.max_vus += a.max_vus;
        let (d, w) = (&mut o.schedule_delay_ms, &a.schedule_delay_ms);
        for (mine, theirs) in [
            (&mut d.min, w.min),
            (&mut d.avg, w.avg),
            (&mut d.p50, w.p50),
            (&mut d.p66, w.p66),
            (&mut d.p75, w.p75),
            (&mut d.p80, w.p80),
            (&mut d.p90, w.p90),
            (&mut d.p95, w.p95),
            (&mut d.p98, w.p98),
            (&mut d.p99, w.p99),
            (&mut d.p99_9, w.p99_9),
            (&mut d.p99_99, w.p99_99),
            (&mut d.max, w.max),
        ] {
            *mine = mine.max(theirs);
        }
    }
    if let Some(o) = &mut out {
        o.achieved_pct = if o.intended == 0 {
            100.0
        } else {
            o.started as f64 * 100.0 / o.intended as f64
        };
    }
    out
}

/// Healthy only if every segment's generator was; the reasons say which was not.
fn generator(docs: &[(PathBuf, ResultDoc)]) -> GeneratorHealth {
    let mut out = docs[0].1.generator.clone();
    out.healthy = docs.iter().all(|(_, d)| d.generator.healthy);
    out.reasons = docs
        .iter()
        .flat_map(|(_, d)| {
            let seg = d.load.segment;
            d.generator
                .reasons
                .iter()
                .map(move |r| format!("segment {seg}: {r}"))
        })
        .collect();
    out.cpu_cores = docs.iter().map(|(_, d)| d.generator.cpu_cores).sum();
    out.cpu_seconds = docs
        .iter()
        .map(|(_, d)| d.generator.cpu_seconds)
        .sum::<Option<f64>>();
    out
}

fn worker(path: &Path, d: &ResultDoc) -> WorkerRow {
    WorkerRow {
        segment: d.load.segment.to_string(),
        file: path.display().to_string(),
        run_id: d.run.id.clone(),
        started_at: d.run.started_at.clone(),
        duration_s: d.run.duration_s,
        verdict: d.run.verdict,
        stop_reason: d.run.stop_reason.clone(),
        request_count: d.aggregate.request_count,
        failure_count: d.aggregate.failure_count,
        p95_ms: d.aggregate.latency_ms.p95,
        dropped_iterations: d.dropped_iterations,
        generator: d.generator.clone(),
    }
}

#[cfg(test)]
mod tests;
