//! The run's metrics as Prometheus sees them: cumulative state folded from each snapshot
//! ([`Metrics::update`]), turned into metric families ([`Metrics::families`]) that the scrape
//! endpoint renders as text ([`render`]) and remote write encodes as protobuf.
//!
//! Everything is cumulative since the start of the run (counters and the latency histogram), or
//! the latest interval's value (gauges), so a scraper that misses an interval loses nothing.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use loadlens_core::run::RunInfo;
use loadlens_core::stats::{HealthSample, LatencyHistogram, Snapshot};

/// Upper bounds of the latency histogram's buckets, in seconds (`le`), then `+Inf`. Fixed, so
/// that series of different runs aggregate; from 1 ms (a fast local service) to 30 s (a request
/// timeout).
pub const BUCKETS_S: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0,
];

/// Status classes, as the `status_class` label spells them; `none` is a request that got no
/// response (refused, reset, timed out).
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// The text format a scraper asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0 (`application/openmetrics-text; version=1.0.0`).
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4 (`text/plain; version=0.0.4`).
    Text,
}

impl Format {
    /// The format for a request's `Accept` header: OpenMetrics when the scraper accepts it.
    pub fn negotiate(accept: Option<&str>) -> Format {
        match accept {
            Some(a) if a.contains("application/openmetrics-text") => Format::OpenMetrics,
            _ => Format::Text,
        }
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

/// Cumulative figures of one request name.
#[derive(Debug, Clone, Default)]
struct NameSeries {
    method: String,
    name: String,
    /// Requests per status class, in [`CLASSES`] order.
    classes: [u64; 6],
    /// Failures per status class of their response, in [`CLASSES`] order.
    failures: [u64; 6],
    /// Requests at or under each bound of [`BUCKETS_S`] (not yet cumulative across buckets).
    buckets: [u64; BUCKETS_S.len()],
    count: u64,
    sum_s: f64,
}

impl NameSeries {
    fn seen(&self) -> bool {
        self.count > 0
    }
}

/// The run's metrics so far. Cheap to clone (one small struct per request name): the sink
/// publishes a clone after each snapshot.
#[derive(Debug, Clone)]
pub struct Metrics {
    run_labels: Vec<(String, String)>,
    info_labels: Vec<(String, String)>,
    names: Vec<NameSeries>,
    users: u64,
    dropped_iterations: Option<u64>,
    arrival_rate: Option<f64>,
    health: HealthSample,
    /// Wall-clock time of the latest snapshot, milliseconds since the epoch.
    at_ms: i64,
    /// How many snapshots were folded in.
    updates: u64,
}

/// One metric family: its name (without `_total` for counters), type, help and samples.
#[derive(Debug, Clone)]
pub struct Family {
    /// Family name, e.g. `loadlens_requests`.
    pub name: &'static str,
    /// Metric type.
    pub kind: Kind,
    /// Unit (OpenMetrics `# UNIT`), when the name ends with it.
    pub unit: Option<&'static str>,
    /// One line of help.
    pub help: &'static str,
    /// Its samples.
    pub samples: Vec<Point>,
}

/// Metric types used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Monotonic; samples end in `_total`.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// `_bucket`, `_sum`, `_count`.
    Histogram,
    /// `_info`, value 1 (a gauge in the 0.0.4 format).
    Info,
}

/// One sample of a family.
#[derive(Debug, Clone)]
pub struct Point {
    /// Appended to the family name: `_total`, `_bucket`, `_sum`, `_count`, `_info` or empty.
    pub suffix: &'static str,
    /// Label pairs, names already valid.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Point {
    /// The sample's full metric name.
    pub fn metric_name(&self, family: &Family) -> String {
        format!("{}{}", family.name, self.suffix)
    }
}

impl Metrics {
    /// Empty metrics of a run with `(method, name)` pairs in `NameId` order.
    pub fn new(run: &RunInfo, names: &[(String, String)]) -> Self {
        let run_labels = vec![("run_id".to_owned(), run.id.clone())];
        let mut info_labels = vec![
            ("run_id".to_owned(), run.id.clone()),
            ("scenario".to_owned(), run.scenario.clone()),
        ];
        for (k, v) in &run.tags {
            let Some(mut name) = label_name(k) else {
                continue;
            };
            if info_labels.iter().any(|(n, _)| *n == name) {
                name = format!("tag_{name}");
            }
            if info_labels.iter().any(|(n, _)| *n == name) {
                continue;
            }
            info_labels.push((name, v.clone()));
        }
        Metrics {
            run_labels,
            info_labels,
            names: names
                .iter()
                .map(|(m, n)| NameSeries {
                    method: m.clone(),
                    name: n.clone(),
                    ..NameSeries::default()
                })
                .collect(),
            users: 0,
            dropped_iterations: None,
            arrival_rate: None,
            health: HealthSample::default(),
            at_ms: now_ms(SystemTime::now()),
            updates: 0,
        }
    }

    /// Fold in one snapshot: its interval's requests add to the counters and the histogram;
    /// the gauges take its values.
    pub fn update(&mut self, snap: &Snapshot) {
        for (series, stats) in self.names.iter_mut().zip(&snap.interval.requests) {
            if stats.count == 0 {
                continue;
            }
            series.count += stats.count;
            for (mine, n) in series.failures.iter_mut().zip(stats.failures_by_class) {
                *mine += n;
            }
            for (outcome, h) in &stats.by_outcome {
                let class = match outcome.status {
                    100..=199 => 0,
                    200..=299 => 1,
                    300..=399 => 2,
                    400..=499 => 3,
                    500..=599 => 4,
                    _ => 5,
                };
                series.classes[class] += h.len();
            }
            add_buckets(&mut series.buckets, &mut series.sum_s, &stats.latency);
        }
        self.users = snap.users;
        self.dropped_iterations = snap.dropped_iterations;
        self.arrival_rate = snap.arrival_rate;
        self.health = snap.health.clone();
        self.at_ms = now_ms(snap.at);
        self.updates += 1;
    }

    /// Snapshots folded in so far.
    pub fn updates(&self) -> u64 {
        self.updates
    }

    /// Time of the latest snapshot, milliseconds since the Unix epoch (remote write's timestamp).
    pub fn timestamp_ms(&self) -> i64 {
        self.at_ms
    }

    /// Requests counted so far, over every name.
    pub fn requests(&self) -> u64 {
        self.names.iter().map(|n| n.count).sum()
    }

    /// The metric families, in a stable order.
    pub fn families(&self) -> Vec<Family> {
        let mut out = Vec::new();
        let name_labels = |s: &NameSeries| {
            let mut l = self.run_labels.clone();
            l.push(("name".into(), s.name.clone()));
            l.push(("method".into(), s.method.clone()));
            l
        };
        let seen = || self.names.iter().filter(|s| s.seen());

        let mut requests = Vec::new();
        for s in seen() {
            for (class, n) in CLASSES.iter().zip(s.classes) {
                if n > 0 {
                    let mut labels = name_labels(s);
                    labels.push(("status_class".into(), (*class).into()));
                    requests.push(point("_total", labels, n as f64));
                }
            }
        }
        out.push(family(
            "loadlens_requests",
            Kind::Counter,
            None,
            "Requests completed, per request name, method and status class (none: no response).",
            requests,
        ));
        let mut failures = Vec::new();
        for s in seen() {
            // Every class with requests gets its series, zeros too, so that a failure ratio per
            // class can be queried from the start.
            for ((class, n), requests) in CLASSES.iter().zip(s.failures).zip(s.classes) {
                if n > 0 || requests > 0 {
                    let mut labels = name_labels(s);
                    labels.push(("status_class".into(), (*class).into()));
                    failures.push(point("_total", labels, n as f64));
                }
            }
        }
        out.push(family(
            "loadlens_request_failures",
            Kind::Counter,
            None,
            "Requests that failed (status, check or transport error), per request name, method and status class of the response (none: no response).",
            failures,
        ));

        let mut latency = Vec::new();
        for s in seen() {
            let mut cumulative = 0;
            for (le, n) in BUCKETS_S.iter().zip(s.buckets) {
                cumulative += n;
                let mut labels = name_labels(s);
                labels.push(("le".into(), format_float(*le)));
                latency.push(point("_bucket", labels, cumulative as f64));
            }
            let mut labels = name_labels(s);
            labels.push(("le".into(), "+Inf".into()));
            latency.push(point("_bucket", labels, s.count as f64));
            latency.push(point("_sum", name_labels(s), s.sum_s));
            latency.push(point("_count", name_labels(s), s.count as f64));
        }
        out.push(family(
            "loadlens_request_duration_seconds",
            Kind::Histogram,
            Some("seconds"),
            "Response time since the start of the run (from the intended start in the open model).",
            latency,
        ));

        out.push(family(
            "loadlens_users",
            Kind::Gauge,
            None,
            "Active virtual users.",
            vec![point("", self.run_labels.clone(), self.users as f64)],
        ));
        if let Some(d) = self.dropped_iterations {
            out.push(family(
                "loadlens_dropped_iterations",
                Kind::Counter,
                None,
                "Open model: arrivals that found no free virtual user.",
                vec![point("_total", self.run_labels.clone(), d as f64)],
            ));
        }
        if let Some(r) = self.arrival_rate {
            out.push(family(
                "loadlens_arrival_rate",
                Kind::Gauge,
                None,
                "Open model: arrivals issued per second over the last interval (started or dropped).",
                vec![point("", self.run_labels.clone(), r)],
            ));
        }
        self.health_families(&mut out);
        out.push(family(
            "loadlens_run",
            Kind::Info,
            None,
            "The run: its id, scenario and tags.",
            vec![point("_info", self.info_labels.clone(), 1.0)],
        ));
        out
    }

    /// The generator's own health: a figure the platform does not give is left out.
    fn health_families(&self, out: &mut Vec<Family>) {
        let h = &self.health;
        let gauges: [(
            &'static str,
            Option<&'static str>,
            &'static str,
            Option<f64>,
        ); 7] = [
            (
                "loadlens_process_cpu_ratio",
                Some("ratio"),
                "CPU time of loadlens over the last interval, share of the CPUs it may use (0-1).",
                h.process_cpu_pct.map(|p| p / 100.0),
            ),
            (
                "loadlens_machine_cpu_ratio",
                Some("ratio"),
                "CPU busy time of the whole machine over the last interval (0-1).",
                h.machine_cpu_pct.map(|p| p / 100.0),
            ),
            (
                "loadlens_process_resident_memory_bytes",
                Some("bytes"),
                "Resident memory of loadlens.",
                h.rss_bytes.map(|b| b as f64),
            ),
            (
                "loadlens_open_connections",
                None,
                "HTTP connections open to the target.",
                h.open_connections.map(|n| n as f64),
            ),
            (
                "loadlens_network_sent_bytes_per_second",
                None,
                "Network bytes sent per second over the last interval.",
                h.net_sent_bytes_per_s,
            ),
            (
                "loadlens_network_received_bytes_per_second",
                None,
                "Network bytes received per second over the last interval.",
                h.net_received_bytes_per_s,
            ),
            (
                "loadlens_scheduling_delay_seconds",
                Some("seconds"),
                "How late the aggregator's one-second tick fired (scheduling delay).",
                h.sched_delay_ms.map(|ms| ms / 1000.0),
            ),
        ];
        for (name, unit, help, value) in gauges {
            if let Some(v) = value.filter(|v| v.is_finite()) {
                out.push(family(
                    name,
                    Kind::Gauge,
                    unit,
                    help,
                    vec![point("", self.run_labels.clone(), v)],
                ));
            }
        }
    }
}

fn family(
    name: &'static str,
    kind: Kind,
    unit: Option<&'static str>,
    help: &'static str,
    samples: Vec<Point>,
) -> Family {
    Family {
        name,
        kind,
        unit,
        help,
        samples,
    }
}

fn point(suffix: &'static str, labels: Vec<(String, String)>, value: f64) -> Point {
    Point {
        suffix,
        labels,
        value,
    }
}

/// Add an interval's latencies to the per-bucket counts. HDR keeps 3 significant digits, so a
/// value is placed by its bucket's middle value: within 0.1 % of a bound it may land on either
/// side.
fn add_buckets(buckets: &mut [u64; BUCKETS_S.len()], sum_s: &mut f64, h: &LatencyHistogram) {
    let inner = h.inner();
    for v in inner.iter_recorded() {
        let us = inner.median_equivalent(v.value_iterated_to());
        let n = v.count_at_value();
        let s = us as f64 / 1e6;
        *sum_s += s * n as f64;
        if let Some(i) = BUCKETS_S.iter().position(|le| s <= *le) {
            buckets[i] += n;
        }
    }
}

fn now_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A valid label name for a tag key (`[a-zA-Z_][a-zA-Z0-9_]*`, not starting with the reserved
/// `__`): other characters become `_`; `None` when nothing is left.
pub fn label_name(key: &str) -> Option<String> {
    let mut s: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if s.is_empty() {
        return None;
    }
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    if s.starts_with("__") {
        s.insert_str(0, "tag");
    }
    Some(s)
}

/// A float as both text formats spell it.
fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        // `{}` prints the shortest text that reads back as the same float; integers get no
        // fraction (`3`), which both formats accept.
        format!("{v}")
    }
}

fn escape_label_value(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// The families as text in `format`; OpenMetrics ends with `# EOF`.
pub fn render(families: &[Family], format: Format) -> String {
    let mut out = String::with_capacity(4096);
    for f in families {
        if f.samples.is_empty() {
            continue;
        }
        let om = format == Format::OpenMetrics;
        let (type_name, kind) = match (f.kind, om) {
            (Kind::Counter, true) => (f.name.to_owned(), "counter"),
            (Kind::Counter, false) => (format!("{}_total", f.name), "counter"),
            (Kind::Gauge, _) => (f.name.to_owned(), "gauge"),
            (Kind::Histogram, _) => (f.name.to_owned(), "histogram"),
            (Kind::Info, true) => (f.name.to_owned(), "info"),
            (Kind::Info, false) => (format!("{}_info", f.name), "gauge"),
        };
        let _ = writeln!(out, "# HELP {type_name} {}", f.help);
        let _ = writeln!(out, "# TYPE {type_name} {kind}");
        if let (Some(unit), true) = (f.unit, om) {
            let _ = writeln!(out, "# UNIT {type_name} {unit}");
        }
        for p in &f.samples {
            out.push_str(f.name);
            out.push_str(p.suffix);
            if !p.labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in p.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(k);
                    out.push_str("=\"");
                    escape_label_value(v, &mut out);
                    out.push('"');
                }
                out.push('}');
            }
            out.push(' ');
            out.push_str(&format_float(p.value));
            out.push('\n');
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// Labels as a sorted map (remote write wants them sorted by name).
pub fn sorted_labels(name: String, labels: &[(String, String)]) -> BTreeMap<String, String> {
    let mut m: BTreeMap<String, String> = labels.iter().cloned().collect();
    m.insert("__name__".into(), name);
    m
}
