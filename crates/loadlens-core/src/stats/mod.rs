//! Statistics: per-request-name HDR histograms and counters, recorded into per-thread shards
//! and aggregated once a second into [`Snapshot`]s.
//!
//! The request path calls [`Recorder::record`], which locks the shard of the current worker
//! thread (uncontended: one shard per thread, the aggregator touches it for a pointer swap once a
//! second) and folds the sample in. Nothing on that path allocates for a successful request or
//! waits on reporting. The [`Aggregator`] swaps every shard for an empty one, merges them into the
//! interval and cumulative sets, and appends a point to the bounded [`TimeSeries`].

mod histogram;
mod series;

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

pub use histogram::{DecodeError, LatencyHistogram, Percentiles};
pub use series::{SeriesPoint, TimeSeries};

use crate::sample::{ErrorKind, NameId, Sample};

/// What a response came to, for splitting durations the way OpenTelemetry's
/// `http.client.request.duration` is keyed (`http.response.status_code`, `error.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Outcome {
    /// Status code; 0 when no response came.
    pub status: u16,
    /// The transport error when no response came.
    pub error: Option<ErrorKind>,
}

/// Histograms and counters of one request name (or of the aggregate).
#[derive(Clone, Debug, Default)]
pub struct RequestStats {
    /// Requests completed (successful or not).
    pub count: u64,
    /// Requests that failed.
    pub failures: u64,
    /// Failures per status class of their response: 1xx to 5xx, then none (no response).
    pub failures_by_class: [u64; 6],
    /// Response times (from the intended start in the open model).
    pub latency: LatencyHistogram,
    /// Response times from the actual start (differs from `latency` only in the open model).
    pub latency_uncorrected: LatencyHistogram,
    /// DNS lookups.
    pub dns: LatencyHistogram,
    /// TCP connects.
    pub connect: LatencyHistogram,
    /// TLS handshakes.
    pub tls: LatencyHistogram,
    /// Time to first byte.
    pub ttfb: LatencyHistogram,
    /// Body download.
    pub download: LatencyHistogram,
    /// Wire bytes sent.
    pub bytes_sent: u64,
    /// Wire bytes received.
    pub bytes_received: u64,
    /// Sum of decoded body lengths.
    pub content_bytes: u64,
    /// Requests that opened a new connection.
    pub new_connections: u64,
    /// Checks passed.
    pub checks_passed: u64,
    /// Checks failed.
    pub checks_failed: u64,
    /// Responses per status code, sorted by code.
    pub status_codes: Vec<(u16, u64)>,
    /// Response times per outcome (a handful of entries: one per status code or error kind seen).
    pub by_outcome: Vec<(Outcome, LatencyHistogram)>,
}

/// The index of a status in [`RequestStats::failures_by_class`]: 0–4 for 1xx–5xx, 5 for no
/// response (or a status outside 100–599).
pub fn status_class(status: Option<u16>) -> usize {
    match status {
        Some(code @ 100..=599) => usize::from(code / 100 - 1),
        _ => 5,
    }
}

impl RequestStats {
    /// Fold one sample in.
    #[inline]
    pub fn record(&mut self, s: &Sample) {
        self.count += 1;
        if s.failure.is_some() {
            self.failures += 1;
            self.failures_by_class[status_class(s.status)] += 1;
        }
        // Requests that never got a response still count, with the time they took to fail.
        self.latency.record(s.total);
        if !s.schedule_delay.is_zero() {
            self.latency_uncorrected
                .record(s.total.saturating_sub(s.schedule_delay));
        }
        let p = &s.phases;
        if let Some(d) = p.dns {
            self.dns.record(d);
        }
        if let Some(d) = p.connect {
            self.connect.record(d);
        }
        if let Some(d) = p.tls {
            self.tls.record(d);
        }
        if let Some(d) = p.ttfb {
            self.ttfb.record(d);
        }
        if let Some(d) = p.download {
            self.download.record(d);
        }
        self.bytes_sent += s.bytes_sent;
        self.bytes_received += s.bytes_received;
        self.content_bytes += s.content_length;
        self.new_connections += u64::from(s.new_connection);
        self.checks_passed += u64::from(s.checks_passed);
        self.checks_failed += u64::from(s.checks_failed);
        let outcome = Outcome {
            status: s.status.unwrap_or(0),
            error: s
                .failure
                .as_ref()
                .map(|f| f.kind)
                .filter(|k| k.is_transport()),
        };
        match self.by_outcome.iter_mut().find(|(o, _)| *o == outcome) {
            Some((_, h)) => h.record(s.total),
            None => {
                let mut h = LatencyHistogram::new();
                h.record(s.total);
                self.by_outcome.push((outcome, h));
            }
        }
        if let Some(code) = s.status {
            match self.status_codes.binary_search_by_key(&code, |e| e.0) {
                Ok(i) => self.status_codes[i].1 += 1,
                Err(i) => self.status_codes.insert(i, (code, 1)),
            }
        }
    }

    /// Add everything of `other`.
    pub fn merge(&mut self, other: &RequestStats) {
        self.count += other.count;
        self.failures += other.failures;
        for (mine, theirs) in self
            .failures_by_class
            .iter_mut()
            .zip(other.failures_by_class)
        {
            *mine += theirs;
        }
        self.latency.merge(&other.latency);
        self.latency_uncorrected.merge(&other.latency_uncorrected);
        self.dns.merge(&other.dns);
        self.connect.merge(&other.connect);
        self.tls.merge(&other.tls);
        self.ttfb.merge(&other.ttfb);
        self.download.merge(&other.download);
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.content_bytes += other.content_bytes;
        self.new_connections += other.new_connections;
        self.checks_passed += other.checks_passed;
        self.checks_failed += other.checks_failed;
        for (o, h) in &other.by_outcome {
            match self.by_outcome.iter_mut().find(|(k, _)| k == o) {
                Some((_, mine)) => mine.merge(h),
                None => self.by_outcome.push((*o, h.clone())),
            }
        }
        for &(code, n) in &other.status_codes {
            match self.status_codes.binary_search_by_key(&code, |e| e.0) {
                Ok(i) => self.status_codes[i].1 += n,
                Err(i) => self.status_codes.insert(i, (code, n)),
            }
        }
    }

    /// Reset to empty, keeping allocations.
    pub fn clear(&mut self) {
        self.count = 0;
        self.failures = 0;
        self.failures_by_class = [0; 6];
        for h in [
            &mut self.latency,
            &mut self.latency_uncorrected,
            &mut self.dns,
            &mut self.connect,
            &mut self.tls,
            &mut self.ttfb,
            &mut self.download,
        ] {
            h.clear();
        }
        self.bytes_sent = 0;
        self.bytes_received = 0;
        self.content_bytes = 0;
        self.new_connections = 0;
        self.checks_passed = 0;
        self.checks_failed = 0;
        self.status_codes.clear();
        self.by_outcome.clear();
    }

    /// True when the open model delayed some request (uncorrected figures differ).
    pub fn has_schedule_delay(&self) -> bool {
        !self.latency_uncorrected.is_empty()
    }
}

/// One entry of the error catalogue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorEntry {
    /// Request the error happened on.
    pub name: NameId,
    /// Group of the error.
    pub kind: ErrorKind,
    /// Readable message.
    pub message: String,
    /// Occurrences.
    pub count: u64,
    /// When it was first and last seen (at the end of the failed request); unknown for
    /// entries read back from a result file.
    pub seen: Option<(SystemTime, SystemTime)>,
}

/// Failures grouped by request, kind and message, with a cap on distinct entries so that a
/// target returning unique error texts cannot grow memory without bound: at most
/// [`ErrorCatalogue::MAX_ENTRIES`] entries, each message at most
/// [`ErrorCatalogue::MAX_MESSAGE_BYTES`] long; failures beyond the cap are counted in one
/// overflow entry, still by kind.
#[derive(Clone, Debug, Default)]
pub struct ErrorCatalogue {
    entries: Vec<ErrorEntry>,
    /// Occurrences that did not fit under the cap.
    pub overflow: u64,
    /// The same occurrences by kind (at most one entry per kind), so that counts by kind stay
    /// exact past the cap.
    overflow_by_kind: Vec<(ErrorKind, u64)>,
}

impl ErrorCatalogue {
    /// Most distinct `(request, kind, message)` entries kept.
    pub const MAX_ENTRIES: usize = 500;
    /// Longest message kept, in bytes: longer ones are cut at a character boundary and end
    /// with `…`. A failure message can quote a templated URL or a response, and 500 entries of
    /// 100 KB each once made a 46 MB JSON result.
    pub const MAX_MESSAGE_BYTES: usize = crate::sample::Failure::MAX_MESSAGE_BYTES;

    #[cfg(test)]
    pub(crate) fn add(&mut self, name: NameId, kind: ErrorKind, message: &str, n: u64) {
        self.add_seen(name, kind, message, n, None);
    }

    /// Add `n` occurrences seen between `seen.0` and `seen.1`.
    pub(crate) fn add_seen(
        &mut self,
        name: NameId,
        kind: ErrorKind,
        message: &str,
        n: u64,
        seen: Option<(SystemTime, SystemTime)>,
    ) {
        let message = crate::sample::truncate_message(message);
        if let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| e.name == name && e.kind == kind && e.message == message)
        {
            e.count += n;
            e.seen = match (e.seen, seen) {
                (Some((f1, l1)), Some((f2, l2))) => Some((f1.min(f2), l1.max(l2))),
                (a, b) => a.or(b),
            };
        } else if self.entries.len() < Self::MAX_ENTRIES {
            self.entries.push(ErrorEntry {
                name,
                kind,
                message: message.into_owned(),
                count: n,
                seen,
            });
        } else {
            self.add_overflow(kind, n);
        }
    }

    pub(crate) fn add_overflow(&mut self, kind: ErrorKind, n: u64) {
        self.overflow += n;
        match self.overflow_by_kind.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, c)) => *c += n,
            None => self.overflow_by_kind.push((kind, n)),
        }
    }

    /// Add every entry of `other`.
    pub fn merge(&mut self, other: &ErrorCatalogue) {
        for e in &other.entries {
            self.add_seen(e.name, e.kind, &e.message, e.count, e.seen);
        }
        for &(kind, n) in &other.overflow_by_kind {
            self.add_overflow(kind, n);
        }
    }

    /// Entries, most frequent first.
    pub fn sorted(&self) -> Vec<ErrorEntry> {
        let mut v = self.entries.clone();
        v.sort_by(|a, b| b.count.cmp(&a.count).then(a.name.cmp(&b.name)));
        v
    }

    /// Number of failures per kind (those past the cap included), sorted by kind.
    pub fn by_kind(&self) -> Vec<(ErrorKind, u64)> {
        let mut out: Vec<(ErrorKind, u64)> = Vec::new();
        let entries = self.entries.iter().map(|e| (e.kind, e.count));
        for (kind, count) in entries.chain(self.overflow_by_kind.iter().copied()) {
            match out.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += count,
                None => out.push((kind, count)),
            }
        }
        out.sort();
        out
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.overflow = 0;
        self.overflow_by_kind.clear();
    }
}

/// Stats of every request name plus the error catalogue: what one shard, one interval or the
/// whole run holds.
#[derive(Clone, Debug, Default)]
pub struct StatsSet {
    /// Indexed by [`NameId`].
    pub requests: Vec<RequestStats>,
    /// Failures by request, kind and message.
    pub errors: ErrorCatalogue,
}

impl StatsSet {
    /// An empty set for `names` request names.
    pub fn new(names: usize) -> Self {
        StatsSet {
            requests: vec![RequestStats::default(); names],
            errors: ErrorCatalogue::default(),
        }
    }

    /// Fold one sample in.
    #[inline]
    pub fn record(&mut self, s: &Sample) {
        let i = s.name.0 as usize;
        if i >= self.requests.len() {
            self.requests.resize_with(i + 1, RequestStats::default);
        }
        self.requests[i].record(s);
        if let Some(f) = &s.failure {
            let at = s.started_at + s.total;
            self.errors
                .add_seen(s.name, f.kind, &f.message, 1, Some((at, at)));
        }
    }

    /// Add everything of `other`.
    pub fn merge(&mut self, other: &StatsSet) {
        if other.requests.len() > self.requests.len() {
            self.requests
                .resize_with(other.requests.len(), RequestStats::default);
        }
        for (a, b) in self.requests.iter_mut().zip(&other.requests) {
            if b.count > 0 {
                a.merge(b);
            }
        }
        self.errors.merge(&other.errors);
    }

    /// All request names merged into one.
    pub fn aggregate(&self) -> RequestStats {
        let mut total = RequestStats::default();
        for r in &self.requests {
            if r.count > 0 {
                total.merge(r);
            }
        }
        total
    }

    /// Reset to empty, keeping allocations.
    pub fn clear(&mut self) {
        for r in &mut self.requests {
            if r.count > 0 {
                r.clear();
            }
        }
        self.errors.clear();
    }
}

static NEXT_THREAD: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static THREAD_INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn thread_index() -> usize {
    THREAD_INDEX.with(|c| {
        let mut i = c.get();
        if i == usize::MAX {
            i = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
            c.set(i);
        }
        i
    })
}

/// The request path's entry to statistics: one shard per worker thread.
#[derive(Debug)]
pub struct Recorder {
    shards: Box<[Shard]>,
}

/// One shard, alone on its cache lines: shards sit side by side in one array, and without the
/// padding two threads recording into neighbouring shards would pass the line holding both
/// lock words back and forth on every request (false sharing), which grows with the cores.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(Mutex<StatsSet>);

impl Recorder {
    /// A recorder for `names` request names with enough shards for the machine's threads.
    pub fn new(names: usize) -> Arc<Self> {
        let threads = std::thread::available_parallelism().map_or(4, |n| n.get());
        let shards = (threads * 2).clamp(4, 64);
        Arc::new(Recorder {
            shards: (0..shards)
                .map(|_| Shard(Mutex::new(StatsSet::new(names))))
                .collect(),
        })
    }

    /// Record one sample into the current thread's shard.
    #[inline]
    pub fn record(&self, s: &Sample) {
        let shard = &self.shards[thread_index() % self.shards.len()].0;
        // A poisoned shard only means another thread panicked mid-record; the counts stay usable.
        let mut guard = shard.lock().unwrap_or_else(|p| p.into_inner());
        guard.record(s);
    }

    /// Move everything recorded since the last drain into `into`, leaving the shards empty.
    /// `spare` is swapped in to keep the lock hold time to a pointer swap.
    pub fn drain_into(&self, into: &mut StatsSet, spare: &mut StatsSet) {
        for shard in self.shards.iter() {
            spare.clear();
            {
                let mut g = shard.0.lock().unwrap_or_else(|p| p.into_inner());
                std::mem::swap(&mut *g, spare);
            }
            into.merge(spare);
        }
    }
}

/// Numbers of one request name (or the aggregate) at a point in time: what live views and
/// reports show. Latencies in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RequestSummary {
    /// HTTP method (empty for the aggregate).
    pub method: String,
    /// Request name (`Aggregated` for the aggregate).
    pub name: String,
    /// Requests completed.
    pub request_count: u64,
    /// Requests failed.
    pub failure_count: u64,
    /// Requests per second over the run so far.
    pub rps: f64,
    /// Failures per second over the run so far.
    pub failures_per_s: f64,
    /// Failure ratio 0..=1.
    pub error_rate: f64,
    /// Response time statistics.
    pub latency_ms: Percentiles,
    /// Response time statistics from the actual start (open model only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_uncorrected_ms: Option<Percentiles>,
    /// Connection phases.
    pub phases_ms: PhaseSummary,
    /// Mean decoded body length.
    pub avg_content_bytes: f64,
    /// Wire bytes sent.
    pub bytes_sent: u64,
    /// Wire bytes received.
    pub bytes_received: u64,
    /// Requests that opened a new connection.
    pub new_connections: u64,
    /// Checks passed.
    #[serde(default)]
    pub checks_passed: u64,
    /// Checks failed.
    #[serde(default)]
    pub checks_failed: u64,
    /// Responses per status code.
    pub status_codes: std::collections::BTreeMap<String, u64>,
    /// Percentile curve `[ms, quantile]` (see [`LatencyHistogram::percentile_curve`]); filled
    /// only in end-of-run results, empty (and not serialised) in live snapshots.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latency_curve: Vec<[f64; 2]>,
}

/// Per-phase statistics in milliseconds; a phase that never happened has `count == 0`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PhaseSummary {
    /// DNS lookups.
    pub dns: PhaseStats,
    /// TCP connects.
    pub connect: PhaseStats,
    /// TLS handshakes.
    pub tls: PhaseStats,
    /// Time to first byte.
    pub ttfb: PhaseStats,
    /// Body download.
    pub download: PhaseStats,
}

/// Statistics of one connection phase, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PhaseStats {
    /// How many requests went through this phase.
    pub count: u64,
    /// Mean.
    pub avg: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest value.
    pub max: f64,
}

impl PhaseStats {
    fn of(h: &LatencyHistogram) -> Self {
        PhaseStats {
            count: h.len(),
            avg: h.mean_ms(),
            p50: h.quantile_ms(0.5),
            p95: h.quantile_ms(0.95),
            p99: h.quantile_ms(0.99),
            max: h.max_ms(),
        }
    }
}

impl RequestSummary {
    /// Summarise `stats` over `elapsed`.
    pub fn of(method: &str, name: &str, stats: &RequestStats, elapsed: Duration) -> Self {
        let secs = elapsed.as_secs_f64().max(1e-9);
        RequestSummary {
            method: method.to_owned(),
            name: name.to_owned(),
            request_count: stats.count,
            failure_count: stats.failures,
            rps: stats.count as f64 / secs,
            failures_per_s: stats.failures as f64 / secs,
            error_rate: if stats.count == 0 {
                0.0
            } else {
                stats.failures as f64 / stats.count as f64
            },
            latency_ms: stats.latency.percentiles(),
            latency_uncorrected_ms: stats
                .has_schedule_delay()
                .then(|| stats.latency_uncorrected.percentiles()),
            phases_ms: PhaseSummary {
                dns: PhaseStats::of(&stats.dns),
                connect: PhaseStats::of(&stats.connect),
                tls: PhaseStats::of(&stats.tls),
                ttfb: PhaseStats::of(&stats.ttfb),
                download: PhaseStats::of(&stats.download),
            },
            avg_content_bytes: if stats.count == 0 {
                0.0
            } else {
                stats.content_bytes as f64 / stats.count as f64
            },
            bytes_sent: stats.bytes_sent,
            bytes_received: stats.bytes_received,
            new_connections: stats.new_connections,
            checks_passed: stats.checks_passed,
            checks_failed: stats.checks_failed,
            status_codes: stats
                .status_codes
                .iter()
                .map(|(c, n)| (c.to_string(), *n))
                .collect(),
            latency_curve: Vec::new(),
        }
    }

    /// The same summary with its percentile curve filled from `stats`.
    pub fn with_curve(mut self, stats: &RequestStats) -> Self {
        self.latency_curve = stats.latency.percentile_curve();
        self
    }
}

/// What the aggregator publishes every second (live views, sinks, workers to the master).
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// Wall-clock time of the snapshot.
    pub at: SystemTime,
    /// Time since the run started.
    pub elapsed: Duration,
    /// Active virtual users.
    pub users: u64,
    /// The newest point of the time series (the last interval).
    pub point: SeriesPoint,
    /// What happened in the last interval, per request name (histograms included, for exporters).
    pub interval: Arc<StatsSet>,
    /// Cumulative numbers per request name, in [`crate::plan::NameTable`] order, then the aggregate.
    pub requests: Vec<RequestSummary>,
    /// Cumulative aggregate.
    pub total: RequestSummary,
    /// Open model: arrivals so far that found no free VU, over every scenario (`None` when no
    /// scenario of the run uses the open model). Set by the executor.
    pub dropped_iterations: Option<u64>,
    /// Open model: arrivals issued per second over the last interval (started or dropped), over
    /// every scenario (`None` when no scenario uses the open model). Set by the executor.
    pub arrival_rate: Option<f64>,
    /// The generator's own resource use over the last interval. Set by the executor.
    pub health: HealthSample,
    /// Where the time went so far, per request name (joined service spans); `None` when no
    /// trace receiver runs. Set by the executor.
    pub breakdown: Option<Arc<crate::breakdown::Breakdown>>,
    /// What happened in the last interval in each named scenario, per request name (empty
    /// with a single unnamed profile). Set by the executor; a coordinated worker sends it so
    /// that the coordinator judges scenario-scoped thresholds live.
    pub scenarios: Vec<(String, Arc<StatsSet>)>,
}

/// The generator's own resource use over one interval, for JSON lines, OTLP, Datadog and
/// Prometheus. A figure the platform cannot give (no `/proc`) is `None`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HealthSample {
    /// CPU time of this process over the interval, percent of the CPUs it may use (0–100).
    pub process_cpu_pct: Option<f64>,
    /// CPU busy time of the whole machine over the interval, percent of all its CPUs (0–100).
    pub machine_cpu_pct: Option<f64>,
    /// Resident memory of this process at the end of the interval, bytes.
    pub rss_bytes: Option<u64>,
    /// HTTP connections open at the end of the interval.
    pub open_connections: Option<u64>,
    /// Network bytes sent per second over the interval (the network namespace's interfaces).
    pub net_sent_bytes_per_s: Option<f64>,
    /// Network bytes received per second over the interval.
    pub net_received_bytes_per_s: Option<f64>,
    /// How late the aggregator's tick fired, a measure of scheduling delay, milliseconds.
    pub sched_delay_ms: Option<f64>,
}

/// Builds snapshots from the recorder once per tick and keeps the cumulative state.
#[derive(Debug)]
pub struct Aggregator {
    recorder: Arc<Recorder>,
    names: Vec<(String, String)>,
    cumulative: StatsSet,
    spare: StatsSet,
    series: TimeSeries,
    last_tick: Duration,
}

impl Aggregator {
    /// An aggregator for `recorder`, with `(method, name)` pairs in `NameId` order.
    pub fn new(recorder: Arc<Recorder>, names: Vec<(String, String)>) -> Self {
        let n = names.len();
        Aggregator {
            recorder,
            names,
            cumulative: StatsSet::new(n),
            spare: StatsSet::new(n),
            series: TimeSeries::new(TimeSeries::DEFAULT_CAPACITY),
            last_tick: Duration::ZERO,
        }
    }

    /// Drain the recorder and build the snapshot at `elapsed` with `users` active.
    pub fn tick(&mut self, elapsed: Duration, users: u64) -> Snapshot {
        let mut interval = StatsSet::new(self.names.len());
        self.recorder.drain_into(&mut interval, &mut self.spare);
        self.tick_with(interval, elapsed, users)
    }

    /// Build the snapshot from an interval collected elsewhere (the executor merges the
    /// intervals of several scenarios, each with its own recorder, into the run's aggregate).
    pub fn tick_with(&mut self, interval: StatsSet, elapsed: Duration, users: u64) -> Snapshot {
        self.cumulative.merge(&interval);
        let span = elapsed.saturating_sub(self.last_tick);
        self.last_tick = elapsed;
        let agg = interval.aggregate();
        let mut point = SeriesPoint::of(elapsed, span, users, &agg);
        self.series.push_names(
            interval
                .requests
                .iter()
                .take(TimeSeries::MAX_NAMES)
                .map(|r| SeriesPoint::of(elapsed, span, users, r)),
        );
        let requests = self.summaries(elapsed);
        let total = RequestSummary::of("", "Aggregated", &self.cumulative.aggregate(), elapsed);
        point.total_p50_ms = total.latency_ms.p50;
        point.total_avg_content_bytes = total.avg_content_bytes;
        self.series.push(point.clone());
        Snapshot {
            at: SystemTime::now(),
            elapsed,
            users,
            point,
            interval: Arc::new(interval),
            requests,
            total,
            dropped_iterations: None,
            arrival_rate: None,
            health: HealthSample::default(),
            breakdown: None,
            scenarios: Vec::new(),
        }
    }

    fn summaries(&self, elapsed: Duration) -> Vec<RequestSummary> {
        self.names
            .iter()
            .zip(&self.cumulative.requests)
            .filter(|(_, s)| s.count > 0)
            .map(|((m, n), s)| RequestSummary::of(m, n, s, elapsed))
            .collect()
    }

    /// Cumulative stats so far.
    pub fn cumulative(&self) -> &StatsSet {
        &self.cumulative
    }

    /// The time series so far.
    pub fn series(&self) -> &TimeSeries {
        &self.series
    }

    /// `(method, name)` pairs in `NameId` order.
    pub fn names(&self) -> &[(String, String)] {
        &self.names
    }

    /// Give up the cumulative stats and series at the end of the run.
    pub fn into_parts(self) -> (StatsSet, TimeSeries) {
        (self.cumulative, self.series)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Failure, Phases};

    fn sample(name: u32, ms: u64, status: u16, fail: Option<&str>) -> Sample {
        Sample {
            name: NameId(name),
            started_at: SystemTime::now(),
            total: Duration::from_millis(ms),
            schedule_delay: Duration::ZERO,
            phases: Phases {
                ttfb: Some(Duration::from_millis(ms)),
                ..Phases::default()
            },
            status: Some(status),
            bytes_sent: 10,
            bytes_received: 20,
            content_length: 5,
            new_connection: false,
            failure: fail.map(|m| Failure::new(ErrorKind::Status, m)),
            checks_passed: 0,
            checks_failed: 0,
            trace: None,
            vu: 0,
            scenario: 0,
            user_type: 0,
            task: 0,
            url: None,
            protocol: None,
        }
    }

    #[test]
    fn recorder_shards_from_many_threads_sum_exactly() {
        let rec = Recorder::new(2);
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let rec = &rec;
                s.spawn(move || {
                    for i in 0..1000u64 {
                        let fail = (i % 10 == 0).then_some("HTTP 500");
                        rec.record(&sample((i % 2) as u32, 1 + (i + t) % 50, 200, fail));
                    }
                });
            }
        });
        let mut agg = Aggregator::new(
            rec,
            vec![("GET".into(), "/a".into()), ("GET".into(), "/b".into())],
        );
        let snap = agg.tick(Duration::from_secs(2), 8);
        assert_eq!(snap.total.request_count, 8000);
        assert_eq!(snap.total.failure_count, 800);
        assert_eq!(snap.requests.len(), 2);
        assert_eq!(snap.requests[0].request_count, 4000);
        assert!((snap.total.rps - 4000.0).abs() < 1e-6);
        assert_eq!(snap.point.requests, 8000);
        let errors = agg.cumulative().errors.sorted();
        assert_eq!(errors.iter().map(|e| e.count).sum::<u64>(), 800);
        // A second tick with nothing new keeps the cumulative counts and an empty interval.
        let snap2 = agg.tick(Duration::from_secs(3), 8);
        assert_eq!(snap2.total.request_count, 8000);
        assert_eq!(snap2.point.requests, 0);
    }

    #[test]
    fn error_catalogue_is_bounded() {
        let mut c = ErrorCatalogue::default();
        for i in 0..(ErrorCatalogue::MAX_ENTRIES + 10) {
            c.add(NameId(0), ErrorKind::Status, &format!("unique {i}"), 1);
        }
        assert_eq!(c.sorted().len(), ErrorCatalogue::MAX_ENTRIES);
        assert_eq!(c.overflow, 10);
    }

    #[test]
    fn error_catalogue_counts_by_kind_past_its_cap_and_cuts_long_messages() {
        let mut c = ErrorCatalogue::default();
        for i in 0..ErrorCatalogue::MAX_ENTRIES {
            c.add(NameId(0), ErrorKind::Status, &format!("unique {i}"), 1);
        }
        // A 100 KB templated URL in each message, unique per request.
        let long = "é".repeat(50_000);
        for i in 0..30 {
            c.add(NameId(0), ErrorKind::Request, &format!("{i} {long}"), 1);
        }
        let mut merged = ErrorCatalogue::default();
        merged.merge(&c);
        merged.merge(&c);
        assert_eq!(
            merged.by_kind(),
            vec![
                (ErrorKind::Status, 2 * ErrorCatalogue::MAX_ENTRIES as u64),
                (ErrorKind::Request, 60)
            ]
        );
        assert_eq!(merged.overflow, 60);

        let mut c = ErrorCatalogue::default();
        c.add(NameId(0), ErrorKind::Request, &long, 1);
        c.add(NameId(0), ErrorKind::Request, &format!("{long}x"), 1);
        let e = c.sorted();
        assert_eq!(e.len(), 1, "equal up to the cut: one entry");
        assert_eq!(e[0].count, 2);
        assert!(e[0].message.len() <= ErrorCatalogue::MAX_MESSAGE_BYTES);
        assert!(e[0].message.ends_with("é…"), "{}", e[0].message);
        assert_eq!(
            Failure::new(ErrorKind::Request, long.clone()).message,
            e[0].message
        );
    }

    #[test]
    fn status_codes_are_counted_and_sorted() {
        let mut r = RequestStats::default();
        for code in [500, 200, 200, 404] {
            r.record(&sample(0, 1, code, None));
        }
        assert_eq!(r.status_codes, vec![(200, 2), (404, 1), (500, 1)]);
        let outcomes: Vec<(u16, u64)> = r
            .by_outcome
            .iter()
            .map(|(o, h)| (o.status, h.len()))
            .collect();
        assert_eq!(outcomes, vec![(500, 1), (200, 2), (404, 1)]);
    }
}
