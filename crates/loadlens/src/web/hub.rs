//! The dashboard's state: what the run has done so far, folded from the snapshot stream, and the
//! one SSE payload every connected page gets per snapshot.
//!
//! The hub is the only reader of the executor's snapshot channel on behalf of the pages: it
//! merges each snapshot's interval into its own cumulative set (for the error table and the
//! downloads), appends the snapshot's point to its own series, renders the charts with the HTML
//! report's own builder (`report::html::over_time`) *once* — and so the panel "Where the time
//! went" (`report::html::breakdown`) when a trace receiver feeds the snapshots a breakdown —
//! and publishes the resulting JSON on a `watch` channel. Page connections only copy that string, so ten open pages cost what one does, and a slow page
//! never delays the aggregator.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use loadlens_core::breakdown::Breakdown;
use loadlens_core::executor::{Controls, LoadSettings, StopReason};
use loadlens_core::report::html::{breakdown, over_time};
use loadlens_core::report::json::ResultDoc;
use loadlens_core::report::{self, Outcome, Summary};
use loadlens_core::run::{EventKind, RunInfo, TimelineEvent};
use loadlens_core::stats::{RequestSummary, SeriesPoint, Snapshot, StatsSet, TimeSeries};
use serde_json::{json, Value};
use tokio::sync::watch;

/// Where the run is in its life, as the page shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Waiting for a start from the page (not `--headless`).
    Waiting,
    /// Load is running.
    Running,
    /// A stop was asked for; in-flight requests are finishing.
    Stopping,
    /// The run ended; the downloads are the final reports.
    Finished,
}

/// What a run is, for the page's header and the downloads.
#[derive(Debug, Clone)]
pub struct RunMeta {
    /// Identity and tags.
    pub run: RunInfo,
    /// Load settings (after a start from the page, with its user count or rate).
    pub load: LoadSettings,
    /// Target host.
    pub host: Option<String>,
    /// `(method, name)` pairs in `NameId` order.
    pub names: Vec<(String, String)>,
    /// How long the load lasts by itself.
    pub run_time: Option<Duration>,
}

/// The final reports, rendered once when the run ends.
struct Finals {
    json: String,
    html: String,
    stats_csv: String,
    failures_csv: String,
    history_csv: String,
}

struct Inner {
    meta: RunMeta,
    phase: Phase,
    started_at: Option<SystemTime>,
    stats: StatsSet,
    series: TimeSeries,
    last: Option<Arc<Snapshot>>,
    /// Where the time went so far (the latest snapshot's, then the summary's); `None` without
    /// a trace receiver.
    breakdown: Option<Arc<Breakdown>>,
    controls: Option<Controls>,
    finals: Option<Finals>,
    /// The summary's figures once the run ended: the tiles and tables then show the run's own
    /// rates (requests / duration), as the summary does, not those of the last snapshot, whose
    /// interval may be a fraction of a second.
    ended: Option<Ended>,
}

/// What the summary says at the end of the run.
struct Ended {
    elapsed_s: f64,
    total: RequestSummary,
    requests: Vec<RequestSummary>,
}

/// Shared state of the dashboard (see the module docs).
pub struct Hub {
    inner: Mutex<Inner>,
    /// Timeline events, appended by the dashboard's sink before each snapshot is published.
    pub(super) events: Arc<Mutex<Vec<TimelineEvent>>>,
    payload: watch::Sender<Arc<str>>,
}

impl Hub {
    /// A hub for a run not started yet.
    pub fn new(meta: RunMeta, phase: Phase) -> Arc<Hub> {
        let n = meta.names.len();
        let hub = Arc::new(Hub {
            inner: Mutex::new(Inner {
                meta,
                phase,
                started_at: None,
                stats: StatsSet::new(n),
                series: TimeSeries::new(TimeSeries::DEFAULT_CAPACITY),
                last: None,
                breakdown: None,
                controls: None,
                finals: None,
                ended: None,
            }),
            events: Arc::default(),
            payload: watch::Sender::new(Arc::from("{}")),
        });
        hub.publish();
        hub
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver of the latest payload (one JSON object per change).
    pub fn subscribe(&self) -> watch::Receiver<Arc<str>> {
        self.payload.subscribe()
    }

    /// Pages connected to the event stream (for tests that wait for a browser).
    #[cfg(test)]
    pub(super) fn pages(&self) -> usize {
        self.payload.receiver_count()
    }

    /// The latest payload.
    pub fn payload(&self) -> Arc<str> {
        self.payload.borrow().clone()
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.lock().phase
    }

    /// The run's controls, once it runs.
    pub fn controls(&self) -> Option<Controls> {
        self.lock().controls.clone()
    }

    /// Is the run of the open model (arrival rate) rather than the closed one (users)?
    pub fn is_open_model(&self) -> bool {
        self.lock().meta.load.arrival.is_some()
    }

    /// The run starts with `load` (after the page's start, if any), stopped through `controls`.
    pub fn running(&self, load: LoadSettings, controls: Controls) {
        {
            let mut i = self.lock();
            i.meta.load = load;
            i.controls = Some(controls);
            i.phase = Phase::Running;
            i.started_at = Some(SystemTime::now());
        }
        self.publish();
    }

    /// A stop was asked for.
    pub fn stopping(&self) {
        {
            let mut i = self.lock();
            if i.phase != Phase::Running {
                return;
            }
            i.phase = Phase::Stopping;
        }
        self.publish();
    }

    /// Fold in one snapshot and publish.
    pub fn on_snapshot(&self, snap: Arc<Snapshot>) {
        {
            let mut i = self.lock();
            i.stats.merge(&snap.interval);
            i.series.push(snap.point.clone());
            let span = Duration::from_secs_f64(snap.point.span_s.max(0.0));
            i.series.push_names(
                snap.interval
                    .requests
                    .iter()
                    .take(TimeSeries::MAX_NAMES)
                    .map(|r| SeriesPoint::of(snap.elapsed, span, snap.users, r)),
            );
            if snap.breakdown.is_some() {
                i.breakdown = snap.breakdown.clone();
            }
            if i.phase == Phase::Running && i.controls.as_ref().is_some_and(|c| c.is_stopping()) {
                i.phase = Phase::Stopping;
            }
            i.last = Some(snap);
        }
        self.publish();
    }

    /// The run ended: the downloads become the final reports.
    pub fn finish(&self, summary: &Summary) {
        let doc = ResultDoc::of(summary);
        let finals = Finals {
            json: serde_json::to_string_pretty(&doc).unwrap_or_default(),
            html: report::html::render(&doc),
            stats_csv: report::csv::stats_csv(summary),
            failures_csv: report::csv::failures_csv(summary),
            history_csv: report::csv::history_csv(summary),
        };
        {
            let mut i = self.lock();
            i.finals = Some(finals);
            if summary.outcome.breakdown.is_some() {
                i.breakdown = summary.outcome.breakdown.clone();
            }
            i.ended = Some(Ended {
                elapsed_s: summary.duration.as_secs_f64(),
                total: summary.total(),
                requests: summary.requests(),
            });
            i.phase = Phase::Finished;
        }
        self.publish();
    }

    /// A download by file name: `(content type, body)`, or `None` for an unknown name. Before
    /// the end of the run they are built from the figures so far.
    pub fn download(&self, file: &str) -> Option<(&'static str, String)> {
        let i = self.lock();
        let kind = match file {
            "result.json" => "application/json",
            "report.html" => "text/html; charset=utf-8",
            "stats.csv" | "failures.csv" | "stats_history.csv" => "text/csv; charset=utf-8",
            _ => return None,
        };
        if let Some(f) = &i.finals {
            let body = match file {
                "result.json" => f.json.clone(),
                "report.html" => f.html.clone(),
                "stats.csv" => f.stats_csv.clone(),
                "failures.csv" => f.failures_csv.clone(),
                _ => f.history_csv.clone(),
            };
            return Some((kind, body));
        }
        let events = self
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let summary = current_summary(&i, events);
        let body = match file {
            "result.json" => {
                serde_json::to_string_pretty(&ResultDoc::of(&summary)).unwrap_or_default()
            }
            "report.html" => report::html::render(&ResultDoc::of(&summary)),
            "stats.csv" => report::csv::stats_csv(&summary),
            "failures.csv" => report::csv::failures_csv(&summary),
            _ => report::csv::history_csv(&summary),
        };
        Some((kind, body))
    }

    /// Rebuild the payload from the current state and hand it to every page.
    pub fn publish(&self) {
        let events = self
            .events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let payload = payload(&self.lock(), &events);
        self.payload.send_replace(Arc::from(payload.to_string()));
    }
}

/// A summary of the run so far, for downloads during the run.
fn current_summary(i: &Inner, timeline: Vec<TimelineEvent>) -> Summary {
    let elapsed = i.last.as_ref().map_or(Duration::ZERO, |s| s.elapsed);
    let started_at = i.started_at.unwrap_or_else(SystemTime::now);
    Summary {
        run: i.meta.run.clone(),
        load: i.meta.load.clone(),
        host: i.meta.host.clone(),
        started_at,
        ended_at: started_at + elapsed,
        duration: elapsed,
        // Not over yet: the verdict reads as the run would end now, at its run time.
        stop_reason: StopReason::RunTime,
        killed: false,
        names: i.meta.names.clone(),
        stats: i.stats.clone(),
        series: i.series.clone(),
        timeline,
        sinks: Vec::new(),
        dropped_samples: 0,
        outcome: Outcome {
            breakdown: i.breakdown.clone(),
            ..Outcome::default()
        },
    }
}

fn row(r: &RequestSummary) -> Value {
    let l = &r.latency_ms;
    json!({
        "method": r.method, "name": r.name, "requests": r.request_count,
        "failures": r.failure_count, "median": l.p50, "avg": l.avg, "min": l.min, "max": l.max,
        "p90": l.p90, "p95": l.p95, "p99": l.p99, "rps": r.rps,
        "failures_per_s": r.failures_per_s, "avg_size": r.avg_content_bytes,
    })
}

fn kind_name(k: EventKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The page's whole state as one JSON object.
fn payload(i: &Inner, events: &[TimelineEvent]) -> Value {
    let load = &i.meta.load;
    let target = i
        .controls
        .as_ref()
        .map(Controls::load_target)
        .unwrap_or_default();
    let open = load.arrival.is_some();
    let mut errors: Vec<Value> = i
        .stats
        .errors
        .sorted()
        .into_iter()
        .take(100)
        .map(|e| {
            let (m, n) = i
                .meta
                .names
                .get(e.name.0 as usize)
                .cloned()
                .unwrap_or_default();
            json!({"method": m, "name": n, "kind": e.kind.as_str(), "message": e.message, "count": e.count})
        })
        .collect();
    errors.truncate(100);
    let snap = i.last.as_deref();
    let ended = i.ended.as_ref();
    let (rps, failures_per_s, rps_label) = tile_rates(i);
    let (total, requests) = match (ended, snap) {
        (Some(e), _) => (Some(row(&e.total)), e.requests.iter().map(row).collect()),
        (None, Some(s)) => (Some(row(&s.total)), s.requests.iter().map(row).collect()),
        (None, None) => (None, Vec::new()),
    };
    json!({
        "phase": i.phase,
        "run_id": i.meta.run.id,
        "scenario": i.meta.run.scenario,
        "host": i.meta.host,
        "model": if open { "open" } else { "closed" },
        "profile": load.describe(),
        "users_target": target.users.unwrap_or(load.users),
        "rate_target": target.rate_per_s.or(load.arrival.as_ref().map(|a| a.rate_per_s)),
        "run_time_s": i.meta.run_time.map(|d| d.as_secs_f64()),
        "elapsed_s": ended.map_or_else(|| snap.map_or(0.0, |s| s.elapsed.as_secs_f64()), |e| e.elapsed_s),
        "users": snap.map_or(0, |s| s.users),
        "rps": rps,
        "failures_per_s": failures_per_s,
        "rps_label": rps_label,
        "p95_now": snap.map_or(0.0, |s| s.point.p95_ms),
        "total": total,
        "requests": requests,
        "errors": errors,
        "events": events.iter().map(|e| json!({"elapsed_s": e.elapsed_s, "kind": kind_name(e.kind), "message": e.message})).collect::<Vec<_>>(),
        "charts": charts(i, events),
        "breakdown": i.breakdown.as_deref().map(|b| breakdown::body(b, span_s(i), events)),
    })
}

/// The Req/s and failures/s tiles, and what they are: while load runs, the rates of the last
/// whole interval; once the run is stopping or over, the run's own rates (requests / elapsed,
/// as the summary computes them). The last snapshot of a run covers only the moment between
/// the last tick and the stop: 49 requests in 0.1 s read as 490 req/s on a run of 85 req/s, so
/// an interval shorter than [`WHOLE_INTERVAL_S`] never feeds a tile.
fn tile_rates(i: &Inner) -> (f64, f64, &'static str) {
    if let Some(e) = &i.ended {
        return (e.total.rps, e.total.failures_per_s, "Req/s, whole run");
    }
    let Some(snap) = i.last.as_deref() else {
        return (0.0, 0.0, "Req/s");
    };
    if i.phase != Phase::Running {
        return (
            snap.total.rps,
            snap.total.failures_per_s,
            "Req/s, whole run",
        );
    }
    let whole = i
        .series
        .points()
        .into_iter()
        .rev()
        .find(|p| p.span_s >= WHOLE_INTERVAL_S);
    match whole {
        Some(p) => (p.rps, p.failures_per_s, "Req/s, last second"),
        // Not one whole interval yet: the run's rate so far.
        None => (snap.total.rps, snap.total.failures_per_s, "Req/s, so far"),
    }
}

/// Shorter intervals are the stub at the end of a run (see [`tile_rates`]).
const WHOLE_INTERVAL_S: f64 = 0.5;

/// The time axis of the charts spans at least the planned run time, so that it does not
/// rescale every second.
fn span_s(i: &Inner) -> f64 {
    i.meta.run_time.map_or(0.0, |d| d.as_secs_f64())
}

/// The charts of the HTML report, from the report's own builder ([`over_time`]) and the live
/// series; the axis spans the planned run time so that it does not rescale every second.
fn charts(i: &Inner, events: &[TimelineEvent]) -> String {
    let points = i.series.points();
    let series = over_time::Series {
        points: &points,
        resolution_s: i.series.resolution() as u64,
        min_span_s: span_s(i),
        timeline: events,
        // The page is a script already: no fallback columns in its payload.
        fallback: false,
    };
    let mut out = over_time::charts(&series).unwrap_or_default();
    // Per request name, the same charts as the report's, for the busiest names only: the
    // payload is sent to every page once a second.
    let per_name: Vec<(String, u64, Vec<SeriesPoint>)> = i
        .series
        .names()
        .iter()
        .zip(&i.meta.names)
        .map(|(s, (method, name))| {
            let label = if method.is_empty() {
                name.clone()
            } else {
                format!("{method} {name}")
            };
            (label, s.resolution() as u64, s.points())
        })
        .filter(|(_, _, points)| points.iter().any(|p| p.requests > 0))
        .collect();
    let names: Vec<over_time::NameSeries<'_>> = per_name
        .iter()
        .map(|(label, resolution_s, points)| over_time::NameSeries {
            label,
            resolution_s: *resolution_s,
            points,
        })
        .collect();
    if let Some(by_name) = over_time::by_name(&names, &series, NAMES_ON_THE_PAGE) {
        out.push_str("<h3 id=\"over-time-by-name\">By request name</h3>");
        out.push_str(&by_name);
    }
    out
}

/// Request names with charts of their own on the page (the busiest; the report has them all).
const NAMES_ON_THE_PAGE: usize = 8;
