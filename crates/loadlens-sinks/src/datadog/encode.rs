//! Encoders: run events (`POST /api/v1/events`), counts and gauges (`POST /api/v2/series`),
//! latency distributions (`POST /api/v1/distribution_points`) and DogStatsD lines. Pure
//! functions of the data, so they are tested without a network and their output is validated
//! against Datadog's official models (see `tests.rs`).
//!
//! Metrics, every interval, tagged with the run's tags plus `request:<name>` and `method:<M>`:
//!
//! | metric | type | value |
//! |---|---|---|
//! | `PREFIX.requests` | count | requests completed in the interval |
//! | `PREFIX.failures` | count | requests failed in the interval |
//! | `PREFIX.bytes.sent`, `PREFIX.bytes.received` | count | wire bytes |
//! | `PREFIX.users` | gauge | peak active virtual users in the interval, those active at its start included (no request tag; no point for a last interval without users) |
//! | `PREFIX.response_time` | distribution | response times in ms, from the HDR histograms |
//!
//! The generator's own health, gauges of the interval's last snapshot (no request tag; a
//! figure the platform does not give has no point):
//!
//! | metric | unit | value |
//! |---|---|---|
//! | `PREFIX.generator.cpu_pct` | percent | CPU time of loadlens, percent of the CPUs it may use |
//! | `PREFIX.generator.machine_cpu_pct` | percent | CPU busy time of the whole machine |
//! | `PREFIX.generator.rss_bytes` | byte | resident memory of loadlens |
//! | `PREFIX.generator.open_connections` | connection | HTTP connections open |
//! | `PREFIX.generator.net.sent_bytes_per_s`, `PREFIX.generator.net.received_bytes_per_s` | byte | network bytes per second |
//! | `PREFIX.generator.sched_delay_ms` | millisecond | how late the 1 s aggregation tick fired |
//!
//! Latency is a *distribution*, never a percentile gauge, so Datadog computes correct percentiles
//! across workers and over any time span. Volume is bounded: per request name and interval, up
//! to [`Config::max_values`](super::Config::max_values) values (1,000 by default) are sent as
//! recorded (each HDR bucket's value, repeated by its count, exact to 3 significant digits).
//! Above that, the same number of values is taken at evenly spaced quantiles
//! (`(k + 0.5) / n`), a stratified sample whose percentiles stay within `1/n` of the recorded
//! ones. Over DogStatsD those values carry the sample rate `n / count`, so the agent's counts
//! stay exact; the distribution points API has no sample rate, so there the distribution's own
//! count is capped — use `PREFIX.requests` for counts.

use std::io::Write as _;

use loadlens_core::stats::{HealthSample, LatencyHistogram};
use serde_json::{json, Value};

/// One request name's figures for one interval.
#[derive(Debug, Clone, Default)]
pub struct NameMetrics {
    /// `request:<name>` and `method:<M>` (or the overflow tag).
    pub tags: Vec<String>,
    /// Requests completed.
    pub count: u64,
    /// Requests failed.
    pub failures: u64,
    /// Wire bytes sent.
    pub bytes_sent: u64,
    /// Wire bytes received.
    pub bytes_received: u64,
    /// Response times.
    pub latency: LatencyHistogram,
}

/// One interval's metrics.
#[derive(Debug, Clone, Default)]
pub struct MetricsBatch {
    /// End of the interval, Unix seconds.
    pub timestamp: i64,
    /// Length of the interval, seconds (at least 1).
    pub interval_s: i64,
    /// Peak active users in the interval (counting those active at its start). `None` for the
    /// last interval of a run in which no user was active: a 0 there would become the gauge's
    /// last value, though the run had users.
    pub users: Option<u64>,
    /// Per request name (only names with requests in the interval).
    pub names: Vec<NameMetrics>,
    /// The generator's health in the interval's last snapshot.
    pub health: HealthSample,
}

/// The generator's health gauges: name after the prefix, Datadog unit, value.
pub fn health_gauges(h: &HealthSample) -> Vec<(&'static str, &'static str, f64)> {
    [
        ("generator.cpu_pct", "percent", h.process_cpu_pct),
        ("generator.machine_cpu_pct", "percent", h.machine_cpu_pct),
        ("generator.rss_bytes", "byte", h.rss_bytes.map(|b| b as f64)),
        (
            "generator.open_connections",
            "connection",
            h.open_connections.map(|n| n as f64),
        ),
        (
            "generator.net.sent_bytes_per_s",
            "byte",
            h.net_sent_bytes_per_s,
        ),
        (
            "generator.net.received_bytes_per_s",
            "byte",
            h.net_received_bytes_per_s,
        ),
        ("generator.sched_delay_ms", "millisecond", h.sched_delay_ms),
    ]
    .into_iter()
    .filter_map(|(name, unit, v)| Some((name, unit, v?)))
    .collect()
}

impl MetricsBatch {
    /// Metric points in the batch, the unit of delivery counts whatever the transport: the
    /// users gauge, the health gauges, four counts per request name, and one distribution per
    /// name with requests.
    pub fn points(&self) -> u64 {
        u64::from(self.users.is_some())
            + health_gauges(&self.health).len() as u64
            + self
                .names
                .iter()
                .map(|n| 4 + u64::from(!n.latency.is_empty()))
                .sum::<u64>()
    }
}

/// A run event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Title.
    pub title: String,
    /// Body text (cut at 4,000 characters, Datadog's limit).
    pub text: String,
    /// `info`, `success`, `warning` or `error`.
    pub alert_type: &'static str,
    /// Unix seconds.
    pub date: i64,
}

/// Value of `source_type_name` on events.
pub const SOURCE_TYPE: &str = "loadlens";

/// `key:value` as a Datadog tag: lowercase, characters outside `[a-z0-9_:./-]` replaced by `_`,
/// at most 200 characters.
pub fn tag(key: &str, value: &str) -> String {
    let mut t = String::with_capacity(key.len() + value.len() + 1);
    for c in key.chars().chain(std::iter::once(':')).chain(value.chars()) {
        let c = c.to_ascii_lowercase();
        t.push(
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ':' | '.' | '/') {
                c
            } else {
                '_'
            },
        );
        if t.len() >= 200 {
            break;
        }
    }
    t
}

/// The body of `POST /api/v1/events`.
pub fn event(e: &Event, tags: &[String], aggregation_key: &str) -> Vec<u8> {
    let text: String = e.text.chars().take(4000).collect();
    let key: String = aggregation_key.chars().take(100).collect();
    let body = json!({
        "title": e.title,
        "text": text,
        "tags": tags,
        "alert_type": e.alert_type,
        "aggregation_key": key,
        "source_type_name": SOURCE_TYPE,
        "date_happened": e.date,
        "priority": "normal",
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

fn joined(base: &[String], extra: &[String]) -> Vec<String> {
    base.iter().chain(extra).cloned().collect()
}

/// The body of `POST /api/v2/series` (uncompressed) and the number of points in it.
pub fn series(batch: &MetricsBatch, base_tags: &[String], prefix: &str) -> (Vec<u8>, u64) {
    let point = |v: f64| json!([{ "timestamp": batch.timestamp, "value": v }]);
    let mut out: Vec<Value> = Vec::new();
    if let Some(users) = batch.users {
        out.push(json!({
            "metric": format!("{prefix}users"),
            "type": 3,
            "points": point(users as f64),
            "tags": base_tags,
        }));
    }
    for (name, unit, v) in health_gauges(&batch.health) {
        out.push(json!({
            "metric": format!("{prefix}{name}"),
            "type": 3,
            "unit": unit,
            "points": point(v),
            "tags": base_tags,
        }));
    }
    for n in &batch.names {
        let tags = joined(base_tags, &n.tags);
        for (name, v, unit) in [
            ("requests", n.count, "request"),
            ("failures", n.failures, "request"),
            ("bytes.sent", n.bytes_sent, "byte"),
            ("bytes.received", n.bytes_received, "byte"),
        ] {
            out.push(json!({
                "metric": format!("{prefix}{name}"),
                "type": 1,
                "interval": batch.interval_s,
                "unit": unit,
                "points": point(v as f64),
                "tags": tags,
            }));
        }
    }
    let n = out.len() as u64;
    (
        serde_json::to_vec(&json!({ "series": out })).unwrap_or_default(),
        n,
    )
}

/// Up to `max` response times in ms from `h`, and the sample rate they stand for (1 when every
/// value is there). See the module docs for the sampling.
pub fn values(h: &LatencyHistogram, max: usize) -> (Vec<f64>, f64) {
    let inner = h.inner();
    let count = inner.len();
    let ms = |us: u64| us as f64 / 1000.0;
    if count == 0 || max == 0 {
        return (Vec::new(), 1.0);
    }
    if count <= max as u64 {
        let mut v = Vec::with_capacity(count as usize);
        for it in inner.iter_recorded() {
            let value = ms(inner.median_equivalent(it.value_iterated_to()));
            v.extend(std::iter::repeat_n(value, it.count_at_value() as usize));
        }
        return (v, 1.0);
    }
    let v = (0..max)
        .map(|k| ms(inner.value_at_quantile((k as f64 + 0.5) / max as f64)))
        .collect();
    (v, max as f64 / count as f64)
}

/// The body of `POST /api/v1/distribution_points` (uncompressed) and its number of series.
pub fn distributions(
    batch: &MetricsBatch,
    base_tags: &[String],
    prefix: &str,
    max_values: usize,
) -> (Vec<u8>, u64) {
    let mut out = Vec::new();
    for n in &batch.names {
        let (v, _) = values(&n.latency, max_values);
        if v.is_empty() {
            continue;
        }
        out.push(json!({
            "metric": format!("{prefix}response_time"),
            "type": "distribution",
            "points": [[batch.timestamp, v]],
            "tags": joined(base_tags, &n.tags),
        }));
    }
    let n = out.len() as u64;
    (
        serde_json::to_vec(&json!({ "series": out })).unwrap_or_default(),
        n,
    )
}

/// DogStatsD datagrams of at most `max_packet` bytes (newline-separated lines), and the number
/// of metric points in them (as [`MetricsBatch::points`] counts them). Distributions pack several values per line (`name:v1:v2|d`,
/// DogStatsD protocol 1.1, agent 7.25+).
pub fn statsd(
    batch: &MetricsBatch,
    base_tags: &[String],
    prefix: &str,
    max_values: usize,
    max_packet: usize,
) -> (Vec<Vec<u8>>, u64) {
    let mut lines: Vec<String> = Vec::new();
    let tagstr = |t: &[String]| {
        if t.is_empty() {
            String::new()
        } else {
            format!("|#{}", t.join(","))
        }
    };
    if let Some(users) = batch.users {
        lines.push(format!("{prefix}users:{users}|g{}", tagstr(base_tags)));
    }
    for (name, _, v) in health_gauges(&batch.health) {
        lines.push(format!(
            "{prefix}{name}:{}|g{}",
            trim_float(v),
            tagstr(base_tags)
        ));
    }
    for n in &batch.names {
        let tags = tagstr(&joined(base_tags, &n.tags));
        for (name, v) in [
            ("requests", n.count),
            ("failures", n.failures),
            ("bytes.sent", n.bytes_sent),
            ("bytes.received", n.bytes_received),
        ] {
            lines.push(format!("{prefix}{name}:{v}|c{tags}"));
        }
        let (vals, rate) = values(&n.latency, max_values);
        let rate = if rate < 1.0 {
            format!("|@{}", trim_float(rate))
        } else {
            String::new()
        };
        let head = format!("{prefix}response_time");
        let tail = format!("|d{rate}{tags}");
        let mut line = head.clone();
        for v in vals {
            let v = trim_float(v);
            if line.len() > head.len() && line.len() + v.len() + 1 + tail.len() > max_packet {
                lines.push(std::mem::replace(&mut line, head.clone()) + &tail);
            }
            line.push(':');
            line.push_str(&v);
        }
        if line.len() > head.len() {
            lines.push(line + &tail);
        }
    }
    let count = batch.points();
    let mut packets: Vec<Vec<u8>> = Vec::new();
    let mut cur: Vec<u8> = Vec::new();
    for l in lines {
        if !cur.is_empty() && cur.len() + 1 + l.len() > max_packet {
            packets.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(b'\n');
        }
        cur.extend_from_slice(l.as_bytes());
    }
    if !cur.is_empty() {
        packets.push(cur);
    }
    (packets, count)
}

/// A float without trailing zeros, at most 6 decimals (`0.25`, `12`, `3.142`).
fn trim_float(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.to_owned()
    }
}

/// `body` gzip-compressed (Datadog's intake accepts `Content-Encoding: gzip`).
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing into a Vec cannot fail.
    let _ = enc.write_all(body);
    enc.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn hist(ms: &[u64]) -> LatencyHistogram {
        let mut h = LatencyHistogram::new();
        for &m in ms {
            h.record(Duration::from_millis(m));
        }
        h
    }

    #[test]
    fn tags_are_normalised() {
        assert_eq!(tag("request", "GET /api/{id}?q"), "request:get_/api/_id__q");
        assert_eq!(tag("test_run", "2026-x"), "test_run:2026-x");
        assert_eq!(tag("k", &"x".repeat(500)).len(), 200);
    }

    #[test]
    fn few_values_are_sent_as_recorded() {
        let (v, rate) = values(&hist(&[1, 1, 2, 300]), 1000);
        assert_eq!(rate, 1.0);
        assert_eq!(v.len(), 4);
        assert_eq!(v[0], v[1]);
        assert!((v[3] - 300.0).abs() / 300.0 < 0.001, "{v:?}");
    }

    #[test]
    fn many_values_are_sampled_at_quantiles_with_their_rate() {
        let ms: Vec<u64> = (1..=10_000).collect();
        let h = hist(&ms);
        let (v, rate) = values(&h, 1000);
        assert_eq!(v.len(), 1000);
        assert!((rate - 0.1).abs() < 1e-12);
        let mut sorted = v.clone();
        sorted.sort_by(f64::total_cmp);
        let p95 = sorted[949];
        assert!((p95 - h.quantile_ms(0.95)).abs() / h.quantile_ms(0.95) < 0.01);
    }

    #[test]
    fn statsd_packets_respect_the_size_limit() {
        let batch = MetricsBatch {
            timestamp: 1,
            interval_s: 10,
            users: Some(3),
            names: vec![NameMetrics {
                tags: vec!["request:/a".into()],
                count: 2000,
                latency: hist(&(1..=2000).collect::<Vec<_>>()),
                ..NameMetrics::default()
            }],
            health: HealthSample::default(),
        };
        let (packets, points) = statsd(&batch, &["test_run:x".into()], "ll.", 1000, 1432);
        assert_eq!(points, 6);
        assert!(packets.iter().all(|p| p.len() <= 1432));
        let text: Vec<String> = packets
            .iter()
            .map(|p| String::from_utf8(p.clone()).unwrap())
            .collect();
        let all = text.join("\n");
        let values: usize = all
            .lines()
            .filter(|l| l.starts_with("ll.response_time:"))
            .map(|l| l.split('|').next().unwrap().split(':').count() - 1)
            .sum();
        assert_eq!(values, 1000);
        assert!(all.contains("|d|@0.5|#test_run:x,request:/a"), "{all}");
        assert!(all.contains("ll.requests:2000|c|#test_run:x,request:/a"));
    }
}
