//! Building OTLP messages: spans from sampled requests, metrics from the per-second snapshots.
//!
//! Spans are built after the fact from a [`Sample`]: its trace and span ids are the ones the
//! core already sent in `traceparent`, its start is the actual send, and the connection
//! phases become child spans laid end to end from that start. Metrics are folded from the
//! interval HDR histograms of each [`Snapshot`] into the semantic-convention buckets, never
//! per request.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use loadlens_core::sample::{ErrorKind, Sample};
use loadlens_core::stats::{Outcome, Snapshot};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
    Metric, NumberDataPoint, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, status, Span, Status};

use super::config::Temporality;
use super::{Names, OVERFLOW_NAME};

/// Name and version of the instrumentation scope on everything exported.
pub fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "loadlens".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..Default::default()
    }
}

/// A string attribute.
pub fn kv(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// An integer attribute.
pub fn kv_int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

fn kv_f64(key: &str, value: f64) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::DoubleValue(value)),
        }),
        ..Default::default()
    }
}

fn kv_bool(key: &str, value: bool) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::BoolValue(value)),
        }),
        ..Default::default()
    }
}

/// The resource every span and metric carries.
pub fn resource(attributes: &[(String, String)]) -> Resource {
    Resource {
        attributes: attributes.iter().map(|(k, v)| kv(k, v.clone())).collect(),
        ..Default::default()
    }
}

/// Nanoseconds since the Unix epoch.
pub fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Span name of the DNS lookup child span.
pub const DNS_SPAN: &str = "DNS lookup";
/// Span name of the TCP connect child span.
pub const CONNECT_SPAN: &str = "socket connect";
/// Span name of the TLS handshake child span.
pub const TLS_SPAN: &str = "TLS handshake";

/// What every span of the run shares.
#[derive(Debug, Clone)]
pub struct SpanContext {
    /// Request, user type and task names.
    pub names: Names,
    /// `loadtest.run_id`.
    pub run_id: String,
    /// The run's scenario name: `loadtest.scenario` of the run span, and of request spans
    /// outside `scenarios:`.
    pub scenario: String,
    /// Trace and span id of the run span that every request span links to.
    pub run_link: Option<(u128, u64)>,
}

/// `error.type` of a failure: the status code for HTTP errors (as the semantic conventions
/// ask), else the failure kind (`timeout`, `refused`, `check`, …).
pub fn error_type(s: &Sample) -> Option<String> {
    let f = s.failure.as_ref()?;
    Some(match (f.kind, s.status) {
        (ErrorKind::Status, Some(code)) => code.to_string(),
        (kind, _) => kind.as_str().to_owned(),
    })
}

/// Host and port of an absolute URL (`http://h:8080/x` → `("h", 8080)`).
pub fn host_port(url: &str) -> Option<(&str, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit('@').next()?;
    let default = if scheme.eq_ignore_ascii_case("https") {
        443
    } else {
        80
    };
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
        return Some((host, port.unwrap_or(default)));
    }
    match authority.rsplit_once(':') {
        Some((h, p)) => Some((h, p.parse().ok()?)),
        None => Some((authority, default)),
    }
}

/// The client span of a sampled request and its connection-phase children, appended to `out`.
/// Samples without trace ids, or not sampled, produce nothing.
pub fn spans(s: &Sample, ctx: &SpanContext, out: &mut Vec<Span>) {
    let Some(ids) = s.trace.filter(|t| t.sampled) else {
        return;
    };
    let trace_id = ids.trace_id.to_be_bytes().to_vec();
    let span_id = ids.span_id.to_be_bytes();
    let (method, name) = ctx.names.request(s.name.0);
    let start = nanos(s.started_at);
    let actual = s.total.saturating_sub(s.schedule_delay);
    let end = start.saturating_add(actual.as_nanos() as u64);
    let mut attrs = Vec::with_capacity(16);
    attrs.push(kv("http.request.method", method));
    let hp = s.url.as_deref().and_then(host_port);
    if let Some(url) = &s.url {
        attrs.push(kv("url.full", url.clone()));
    }
    if let Some((host, port)) = hp {
        attrs.push(kv("server.address", host));
        attrs.push(kv_int("server.port", i64::from(port)));
    }
    if let Some(code) = s.status {
        attrs.push(kv_int("http.response.status_code", i64::from(code)));
    }
    if let Some(v) = s.protocol {
        attrs.push(kv("network.protocol.version", v));
    }
    let error = error_type(s);
    if let Some(e) = &error {
        attrs.push(kv("error.type", e.clone()));
    }
    attrs.push(kv("loadtest.run_id", ctx.run_id.clone()));
    // Under `scenarios:`, the named scenario that sent it (k6's `scenario` tag); else the run's.
    let scenario = ctx.names.scenario_name(s).unwrap_or(&ctx.scenario);
    attrs.push(kv("loadtest.scenario", scenario));
    attrs.push(kv("loadtest.request_name", name));
    attrs.push(kv("loadtest.user_type", ctx.names.user_type(s)));
    attrs.push(kv_int("loadtest.vu", s.vu as i64));
    attrs.push(kv("loadtest.task", ctx.names.task(s)));
    if !s.schedule_delay.is_zero() {
        // Open model: when the request should have started, and how late it actually did.
        let intended = start.saturating_sub(s.schedule_delay.as_nanos() as u64);
        attrs.push(kv_int("loadtest.intended_start_unix_nano", intended as i64));
        attrs.push(kv_f64(
            "loadtest.schedule_delay_s",
            s.schedule_delay.as_secs_f64(),
        ));
    }
    if s.new_connection {
        attrs.push(kv_bool("loadtest.new_connection", true));
    }
    let failed = s.failure.is_some() || s.status.is_some_and(|c| c >= 500);
    let status = Some(if failed {
        Status {
            code: status::StatusCode::Error as i32,
            message: s
                .failure
                .as_ref()
                .map(|f| f.message.clone())
                .unwrap_or_else(|| format!("HTTP {}", s.status.unwrap_or(0))),
        }
    } else {
        Status::default()
    });
    out.push(Span {
        trace_id: trace_id.clone(),
        span_id: span_id.to_vec(),
        // Bit 8 (0x100) says the parent's remoteness is known; this span has no parent.
        flags: 0x101,
        name: format!("{method} {name}"),
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes: attrs,
        status,
        links: ctx
            .run_link
            .map(|(t, sp)| span::Link {
                trace_id: t.to_be_bytes().to_vec(),
                span_id: sp.to_be_bytes().to_vec(),
                flags: 0x101,
                ..Default::default()
            })
            .into_iter()
            .collect(),
        ..Default::default()
    });
    if !s.new_connection {
        return;
    }
    // Connection phases, laid end to end from the start of the request.
    let host = hp.map(|(h, _)| h).unwrap_or("");
    let port = hp.map_or(0, |(_, p)| i64::from(p));
    let mut t = start;
    let phases = [
        (s.phases.dns, DNS_SPAN),
        (s.phases.connect, CONNECT_SPAN),
        (s.phases.tls, TLS_SPAN),
    ];
    // The phase that failed, when the request failed while connecting: its span is an error
    // with the reason, as the request span is.
    let failed_phase = s
        .failure
        .as_ref()
        .filter(|_| s.status.is_none())
        .and_then(|f| {
            match f.kind {
                ErrorKind::Dns => Some(DNS_SPAN),
                ErrorKind::Tls => Some(TLS_SPAN),
                ErrorKind::Refused => Some(CONNECT_SPAN),
                // `io_failure(.., "connect")` in the client: reset or other errors of the connect.
                ErrorKind::Reset | ErrorKind::Other | ErrorKind::ConnectTimeout
                    if f.message.contains("during connect")
                        || f.message.starts_with("connect ") =>
                {
                    Some(CONNECT_SPAN)
                }
                _ => None,
            }
            .map(|phase| (phase, f))
        });
    for (d, span_name) in phases {
        let Some(d) = d else { continue };
        let child_end = t.saturating_add(d.as_nanos() as u64);
        let attributes = match span_name {
            DNS_SPAN => vec![kv("dns.question.name", host)],
            CONNECT_SPAN => vec![
                kv("network.transport", "tcp"),
                kv("server.address", host),
                kv_int("server.port", port),
            ],
            _ => vec![kv("server.address", host), kv_int("server.port", port)],
        };
        let (mut attributes, mut status) = (attributes, None);
        if let Some((_, f)) = failed_phase.filter(|(p, _)| *p == span_name) {
            attributes.push(kv("error.type", f.kind.as_str()));
            status = Some(Status {
                code: status::StatusCode::Error as i32,
                message: f.message.clone(),
            });
        }
        out.push(Span {
            trace_id: trace_id.clone(),
            span_id: fastrand::u64(1..).to_be_bytes().to_vec(),
            parent_span_id: span_id.to_vec(),
            flags: 0x101,
            name: span_name.to_owned(),
            kind: span::SpanKind::Internal as i32,
            start_time_unix_nano: t,
            end_time_unix_nano: child_end,
            attributes,
            status,
            ..Default::default()
        });
        t = child_end;
    }
}

/// Bucket boundaries of `http.client.request.duration`, seconds (HTTP semantic conventions).
pub const DURATION_BOUNDS_S: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// One histogram series.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Buckets {
    /// Counts per bucket (one more than the boundaries).
    pub counts: [u64; 15],
    /// Values.
    pub count: u64,
    /// Sum of the values, seconds.
    pub sum: f64,
    /// Smallest value, seconds.
    pub min: Option<f64>,
    /// Largest value, seconds.
    pub max: Option<f64>,
}

impl Buckets {
    fn add_hdr(&mut self, h: &loadlens_core::stats::LatencyHistogram) {
        let hdr = h.inner();
        if hdr.is_empty() {
            return;
        }
        for v in hdr.iter_recorded() {
            let n = v.count_at_value();
            // Recorded in microseconds; the bucket of the value's equivalence range.
            let secs = hdr.highest_equivalent(v.value_iterated_to()) as f64 / 1e6;
            let i = DURATION_BOUNDS_S.partition_point(|b| *b < secs);
            self.counts[i] += n;
            self.count += n;
            self.sum += secs * n as f64;
        }
        let (lo, hi) = (hdr.min() as f64 / 1e6, hdr.max() as f64 / 1e6);
        self.min = Some(self.min.map_or(lo, |m| m.min(lo)));
        self.max = Some(self.max.map_or(hi, |m| m.max(hi)));
    }
}

/// Attribute set of one request-name series: its method and name, or the overflow series.
type Slot = usize;

/// The metric state folded from snapshots; exported every interval.
#[derive(Debug)]
pub struct Metrics {
    names: Names,
    temporality: Temporality,
    /// Slot of each request name (names past the cap share the last slot).
    slots: Vec<Slot>,
    overflow: Slot,
    run_start: u64,
    last_export: u64,
    /// Cumulative duration histograms, and those since the last export (delta).
    total: BTreeMap<(Slot, Outcome), Buckets>,
    since: BTreeMap<(Slot, Outcome), Buckets>,
    /// Requests by (slot, status code; 0 when no response came).
    requests: BTreeMap<(Slot, u16), u64>,
    /// Failures by (slot, error.type).
    failures: BTreeMap<(Slot, String), u64>,
    /// What the previous export reported for the sums (delta = now - then).
    exported: BTreeMap<String, f64>,
    users: Option<(u64, u64)>,
    dropped_iterations: Option<u64>,
    cpu_at_start: Option<(f64, f64)>,
    /// The generator's health from the snapshots.
    health: super::health::Health,
}

/// The generator's CPU seconds (user, system) and resident memory in bytes, from `/proc`.
pub fn process_usage() -> Option<((f64, f64), Option<u64>)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // USER_HZ is 100 on every mainstream Linux (see loadlens-core's executor::health).
    let utime = f.get(11)?.parse::<f64>().ok()? / 100.0;
    let stime = f.get(12)?.parse::<f64>().ok()? / 100.0;
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024);
    Some(((utime, stime), rss))
}

impl Metrics {
    /// Empty state for a run that started at `run_start`, exporting at most `max_names`
    /// request names individually.
    pub fn new(
        names: Names,
        max_names: usize,
        temporality: Temporality,
        run_start: SystemTime,
    ) -> Self {
        let n = names.requests.len();
        let overflow = max_names.min(n);
        let slots = (0..n).map(|i| i.min(overflow)).collect();
        let start = nanos(run_start);
        Metrics {
            names,
            temporality,
            slots,
            overflow,
            run_start: start,
            last_export: start,
            total: BTreeMap::new(),
            since: BTreeMap::new(),
            requests: BTreeMap::new(),
            failures: BTreeMap::new(),
            exported: BTreeMap::new(),
            users: None,
            dropped_iterations: None,
            cpu_at_start: process_usage().map(|p| p.0),
            health: Default::default(),
        }
    }

    fn slot(&self, name: usize) -> Slot {
        self.slots.get(name).copied().unwrap_or(self.overflow)
    }

    /// Fold in one snapshot's interval.
    pub fn fold(&mut self, snap: &Snapshot) {
        self.users = Some((snap.users, nanos(snap.at)));
        self.health.fold(snap);
        if snap.dropped_iterations.is_some() {
            self.dropped_iterations = snap.dropped_iterations;
        }
        for (i, r) in snap.interval.requests.iter().enumerate() {
            if r.count == 0 {
                continue;
            }
            let slot = self.slot(i);
            for (outcome, h) in &r.by_outcome {
                self.total.entry((slot, *outcome)).or_default().add_hdr(h);
                self.since.entry((slot, *outcome)).or_default().add_hdr(h);
            }
            let mut with_status = 0;
            for &(code, n) in &r.status_codes {
                *self.requests.entry((slot, code)).or_default() += n;
                with_status += n;
            }
            if r.count > with_status {
                *self.requests.entry((slot, 0)).or_default() += r.count - with_status;
            }
        }
        for e in snap.interval.errors.sorted() {
            let slot = self.slot(e.name.0 as usize);
            let kind = match e.kind {
                // `HTTP 503 Service Unavailable` → `503`, as `error.type` on spans.
                ErrorKind::Status => e
                    .message
                    .strip_prefix("HTTP ")
                    .and_then(|m| m.split(' ').next())
                    .filter(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit()))
                    .map_or_else(|| "status".to_owned(), str::to_owned),
                k => k.as_str().to_owned(),
            };
            *self.failures.entry((slot, kind)).or_default() += e.count;
        }
    }

    /// The run's final count of dropped iterations (open model), from its summary: the last
    /// snapshot has it too, but may have been dropped on a full queue.
    pub fn set_dropped_iterations(&mut self, n: u64) {
        self.dropped_iterations = Some(n);
    }

    fn name_attrs(&self, slot: Slot) -> Vec<KeyValue> {
        if slot == self.overflow {
            return vec![
                kv("http.request.method", OVERFLOW_NAME),
                kv("loadtest.request_name", OVERFLOW_NAME),
                kv_bool("otel.metric.overflow", true),
            ];
        }
        let (m, n) = self.names.request(slot as u32);
        let mut a = vec![kv("http.request.method", m), kv("loadtest.request_name", n)];
        // Required on `http.client.request.duration` by the HTTP semantic conventions.
        if let Some((host, port)) = self.names.server(slot as u32) {
            a.push(kv("server.address", host));
            a.push(kv_int("server.port", i64::from(port)));
        }
        a
    }

    /// Name attributes plus `http.response.status_code` and `error.type` (the status code for
    /// 4xx/5xx, the transport error's kind when no response came), as the semantic conventions
    /// key `http.client.request.duration`.
    fn outcome_attrs(&self, slot: Slot, outcome: Outcome) -> Vec<KeyValue> {
        let mut a = self.name_attrs(slot);
        if outcome.status != 0 {
            a.push(kv_int(
                "http.response.status_code",
                i64::from(outcome.status),
            ));
            if outcome.status >= 400 {
                a.push(kv("error.type", outcome.status.to_string()));
            }
        } else if let Some(kind) = outcome.error {
            a.push(kv("error.type", kind.as_str()));
        }
        a
    }

    /// Number of data points a call to [`Metrics::export`] would produce now (for reports).
    pub fn is_empty(&self) -> bool {
        self.users.is_none() && self.total.is_empty()
    }

    /// The metrics to export; in delta temporality, resets what was exported. Points are
    /// stamped with the time of the last snapshot folded in, which they contain everything up
    /// to (`now` only before the first snapshot): stamped with the export's own time, they
    /// would claim up to a snapshot interval that they do not contain yet.
    pub fn export(&mut self, now: SystemTime) -> Vec<Metric> {
        let now = self.users.map_or_else(|| nanos(now), |(_, at)| at);
        let delta = self.temporality == Temporality::Delta;
        let start = if delta {
            self.last_export
        } else {
            self.run_start
        };
        let temporality = if delta {
            AggregationTemporality::Delta
        } else {
            AggregationTemporality::Cumulative
        } as i32;
        let mut out = Vec::new();
        let hist = if delta { &self.since } else { &self.total };
        let points: Vec<HistogramDataPoint> = hist
            .iter()
            .filter(|(_, b)| !delta || b.count > 0)
            .map(|((slot, outcome), b)| HistogramDataPoint {
                attributes: self.outcome_attrs(*slot, *outcome),
                start_time_unix_nano: start,
                time_unix_nano: now,
                count: b.count,
                sum: Some(b.sum),
                bucket_counts: b.counts.to_vec(),
                explicit_bounds: DURATION_BOUNDS_S.to_vec(),
                min: b.min,
                max: b.max,
                ..Default::default()
            })
            .collect();
        if !points.is_empty() {
            out.push(Metric {
                name: "http.client.request.duration".into(),
                description:
                    "Duration of HTTP client requests (from the intended start in the open model)."
                        .into(),
                unit: "s".into(),
                data: Some(metric::Data::Histogram(Histogram {
                    data_points: points,
                    aggregation_temporality: temporality,
                })),
                ..Default::default()
            });
        }
        self.since.clear();

        // Sums: cumulative totals; in delta temporality the change since the last export.
        let mut sums: Vec<SumPoint> = Vec::new();
        for (&(slot, code), &n) in &self.requests {
            let mut a = self.name_attrs(slot);
            if code != 0 {
                a.push(kv_int("http.response.status_code", i64::from(code)));
            }
            sums.push((
                "loadtest.requests",
                "{request}",
                "Requests completed.",
                a,
                n as f64,
                true,
            ));
        }
        for ((slot, kind), &n) in &self.failures {
            let mut a = self.name_attrs(*slot);
            a.push(kv("error.type", kind.clone()));
            sums.push((
                "loadtest.failures",
                "{request}",
                "Requests that failed.",
                a,
                n as f64,
                true,
            ));
        }
        if let Some(n) = self.dropped_iterations {
            sums.push((
                "loadtest.dropped_iterations",
                "{iteration}",
                "Open model: arrivals that found no free virtual user.",
                Vec::new(),
                n as f64,
                true,
            ));
        }
        let usage = process_usage();
        if let (Some(((u, s), _)), Some((u0, s0))) = (usage, self.cpu_at_start) {
            for (mode, v) in [("user", u - u0), ("system", s - s0)] {
                sums.push((
                    "process.cpu.time",
                    "s",
                    "CPU time of the load generator since the run started.",
                    vec![kv("cpu.mode", mode)],
                    v.max(0.0),
                    true,
                ));
            }
        }
        for (direction, bytes) in self.health.network() {
            sums.push((
                "system.network.io",
                "By",
                "Network bytes the load generator's machine (its network namespace) sent and received since the run started.",
                vec![kv("network.io.direction", direction)],
                bytes,
                true,
            ));
        }
        let mut by_name: BTreeMap<&str, (Metric, Vec<NumberDataPoint>)> = BTreeMap::new();
        for (name, unit, desc, attributes, value, monotonic) in sums {
            let key = format!("{name}|{}", attrs_key(&attributes));
            let value = if delta {
                let before = self.exported.insert(key, value).unwrap_or(0.0);
                value - before
            } else {
                value
            };
            let entry = by_name.entry(name).or_insert_with(|| {
                (
                    Metric {
                        name: name.into(),
                        description: desc.into(),
                        unit: unit.into(),
                        data: Some(metric::Data::Sum(Sum {
                            data_points: Vec::new(),
                            aggregation_temporality: temporality,
                            is_monotonic: monotonic,
                        })),
                        ..Default::default()
                    },
                    Vec::new(),
                )
            });
            let number = if unit == "s" {
                number_data_point::Value::AsDouble(value)
            } else {
                number_data_point::Value::AsInt(value.round() as i64)
            };
            entry.1.push(NumberDataPoint {
                attributes,
                start_time_unix_nano: start,
                time_unix_nano: now,
                value: Some(number),
                ..Default::default()
            });
        }
        for (_, (mut m, points)) in by_name {
            if let Some(metric::Data::Sum(s)) = &mut m.data {
                s.data_points = points;
            }
            out.push(m);
        }

        let mut gauge = |name: &str, unit: &str, desc: &str, v: i64| {
            out.push(Metric {
                name: name.into(),
                description: desc.into(),
                unit: unit.into(),
                data: Some(metric::Data::Gauge(Gauge {
                    data_points: vec![NumberDataPoint {
                        time_unix_nano: now,
                        value: Some(number_data_point::Value::AsInt(v)),
                        ..Default::default()
                    }],
                })),
                ..Default::default()
            });
        };
        if let Some((users, _)) = self.users {
            gauge(
                "loadtest.users",
                "{user}",
                "Active virtual users.",
                users as i64,
            );
        }
        // The snapshot's figure, else /proc's now.
        if let Some(rss) = self.health.rss_bytes().or(usage.and_then(|u| u.1)) {
            gauge(
                "process.memory.usage",
                "By",
                "Resident memory of the load generator.",
                rss as i64,
            );
        }
        out.extend(self.health.gauges(now));
        self.last_export = now;
        out
    }
}

/// One point of a sum: metric name, unit, description, attributes, value, monotonic.
type SumPoint = (
    &'static str,
    &'static str,
    &'static str,
    Vec<KeyValue>,
    f64,
    bool,
);

fn attrs_key(a: &[KeyValue]) -> String {
    a.iter()
        .map(|kv| format!("{}={:?}", kv.key, kv.value))
        .collect::<Vec<_>>()
        .join(",")
}
