//! Locust-compatible CSV files: `PREFIX_stats.csv`, `PREFIX_stats_history.csv`,
//! `PREFIX_failures.csv`, with Locust's column names so existing spreadsheets keep working.
//! Times are in milliseconds like Locust's; loadlens writes them with two decimals.
//!
//! What Locust has no column for comes after Locust's columns, which keep their names and
//! order: in the open model `_stats.csv` ends with the uncorrected figures (from each request's
//! actual start, [`UNCORRECTED_COLUMNS`]). `PREFIX_thresholds.csv` has one row per threshold,
//! with the values of the JSON result.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::Summary;
use crate::stats::RequestSummary;

/// Columns of `_stats.csv` (Locust 2.x).
pub const STATS_COLUMNS: [&str; 22] = [
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Median Response Time",
    "Average Response Time",
    "Min Response Time",
    "Max Response Time",
    "Average Content Size",
    "Requests/s",
    "Failures/s",
    "50%",
    "66%",
    "75%",
    "80%",
    "90%",
    "95%",
    "98%",
    "99%",
    "99.9%",
    "99.99%",
    "100%",
];

/// Columns of `_stats_history.csv` (Locust 2.x).
pub const HISTORY_COLUMNS: [&str; 24] = [
    "Timestamp",
    "User Count",
    "Type",
    "Name",
    "Requests/s",
    "Failures/s",
    "50%",
    "66%",
    "75%",
    "80%",
    "90%",
    "95%",
    "98%",
    "99%",
    "99.9%",
    "99.99%",
    "100%",
    "Total Request Count",
    "Total Failure Count",
    "Total Median Response Time",
    "Total Average Response Time",
    "Total Min Response Time",
    "Total Max Response Time",
    "Total Average Content Size",
];

/// Columns appended to `_stats.csv` when a request was started late by the open model: the
/// same statistics measured from the actual start instead of the intended one (empty on rows
/// without a late start).
pub const UNCORRECTED_COLUMNS: [&str; 13] = [
    "Uncorrected Average Response Time",
    "Uncorrected Min Response Time",
    "Uncorrected 50%",
    "Uncorrected 66%",
    "Uncorrected 75%",
    "Uncorrected 80%",
    "Uncorrected 90%",
    "Uncorrected 95%",
    "Uncorrected 98%",
    "Uncorrected 99%",
    "Uncorrected 99.9%",
    "Uncorrected 99.99%",
    "Uncorrected 100%",
];

/// Columns of `_thresholds.csv`: the fields of the JSON result's `thresholds` (numbers in
/// `Unit`, as there; `Observed` empty when there was no data).
pub const THRESHOLD_COLUMNS: [&str; 12] = [
    "Threshold",
    "Scope",
    "Requests",
    "Metric",
    "Operator",
    "Limit",
    "Observed",
    "Unit",
    "Result",
    "Aborted",
    "First Breach (s)",
    "Detail",
];

/// Columns of `_failures.csv`.
pub const FAILURES_COLUMNS: [&str; 4] = ["Method", "Name", "Error", "Occurrences"];

/// Quote a field when CSV requires it.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

fn num(v: f64) -> String {
    format!("{v:.2}")
}

fn stats_row(r: &RequestSummary, uncorrected: bool) -> String {
    let l = &r.latency_ms;
    let mut cols = vec![
        field(&r.method),
        field(&r.name),
        r.request_count.to_string(),
        r.failure_count.to_string(),
        num(l.p50),
        num(l.avg),
        num(l.min),
        num(l.max),
        num(r.avg_content_bytes),
        num(r.rps),
        num(r.failures_per_s),
        num(l.p50),
        num(l.p66),
        num(l.p75),
        num(l.p80),
        num(l.p90),
        num(l.p95),
        num(l.p98),
        num(l.p99),
        num(l.p99_9),
        num(l.p99_99),
        num(l.max),
    ];
    if uncorrected {
        match &r.latency_uncorrected_ms {
            Some(u) => cols.extend(
                [
                    u.avg, u.min, u.p50, u.p66, u.p75, u.p80, u.p90, u.p95, u.p98, u.p99, u.p99_9,
                    u.p99_99, u.max,
                ]
                .map(num),
            ),
            None => cols.extend([""; UNCORRECTED_COLUMNS.len()].map(String::from)),
        }
    }
    cols.join(",")
}

/// The `_stats.csv` text: one row per request name, then `Aggregated`; Locust's columns, then
/// [`UNCORRECTED_COLUMNS`] when a row has uncorrected figures.
pub fn stats_csv(summary: &Summary) -> String {
    let mut rows = summary.requests();
    rows.push(summary.total());
    let uncorrected = rows.iter().any(|r| r.latency_uncorrected_ms.is_some());
    let mut head = STATS_COLUMNS.to_vec();
    if uncorrected {
        head.extend(UNCORRECTED_COLUMNS);
    }
    let mut out = head.into_iter().map(field).collect::<Vec<_>>().join(",");
    out.push('\n');
    for r in &rows {
        out.push_str(&stats_row(r, uncorrected));
        out.push('\n');
    }
    out
}

/// The `_thresholds.csv` text: one row per threshold, in order, with the JSON result's values
/// (`Result` is `passed` or `failed`; numbers unrounded).
pub fn thresholds_csv(summary: &Summary) -> String {
    let mut out = THRESHOLD_COLUMNS.map(field).join(",");
    out.push('\n');
    for t in &summary.outcome.thresholds {
        let cols = [
            field(&t.expression),
            field(&t.scope),
            field(&t.requests.join("; ")),
            field(&t.metric),
            field(&t.op),
            t.limit.to_string(),
            t.observed.map(|v| v.to_string()).unwrap_or_default(),
            field(&t.unit),
            if t.passed { "passed" } else { "failed" }.to_owned(),
            t.aborted.to_string(),
            t.first_breach_s.map(|v| v.to_string()).unwrap_or_default(),
            field(&t.detail),
        ];
        out.push_str(&cols.join(","));
        out.push('\n');
    }
    out
}

/// The `_stats_history.csv` text: one `Aggregated` row per series point, with the interval's
/// rates and percentiles and the cumulative totals up to that point.
pub fn history_csv(summary: &Summary) -> String {
    let mut out = HISTORY_COLUMNS.map(field).join(",");
    out.push('\n');
    let start = summary
        .started_at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let (mut total_req, mut total_fail) = (0u64, 0u64);
    let (mut min, mut max, mut weighted) = (f64::INFINITY, 0.0f64, 0.0f64);
    for p in summary.series.points() {
        total_req += p.requests;
        total_fail += p.failures;
        if p.requests > 0 {
            min = min.min(p.min_ms);
            max = max.max(p.max_ms);
            weighted += p.avg_ms * p.requests as f64;
        }
        let avg = if total_req > 0 {
            weighted / total_req as f64
        } else {
            0.0
        };
        // Percentiles beyond what the series keeps are left empty rather than invented.
        let _ = writeln!(
            out,
            "{},{},,Aggregated,{},{},{},,,,,{},,{},,,{},{},{},,{},{},{},",
            (start + p.elapsed_s) as u64,
            p.users,
            num(p.rps),
            num(p.failures_per_s),
            num(p.p50_ms),
            num(p.p95_ms),
            num(p.p99_ms),
            num(p.max_ms),
            total_req,
            total_fail,
            num(avg),
            num(if min.is_finite() { min } else { 0.0 }),
            num(max),
        );
    }
    out
}

/// The `_failures.csv` text.
pub fn failures_csv(summary: &Summary) -> String {
    let mut out = FAILURES_COLUMNS.map(field).join(",");
    out.push('\n');
    for (method, name, e) in summary.errors() {
        let _ = writeln!(
            out,
            "{},{},{},{}",
            field(&method),
            field(&name),
            field(&format!("{}: {}", e.kind, e.message)),
            e.count
        );
    }
    out
}

/// The four files written for `prefix`.
pub fn paths(prefix: &Path) -> [PathBuf; 4] {
    let base = prefix.to_string_lossy();
    ["stats", "stats_history", "failures", "thresholds"].map(|f| format!("{base}_{f}.csv").into())
}

/// Write the four files for `prefix`, each whole or not at all ([`super::write_file`]); returns
/// their paths.
pub fn write(summary: &Summary, prefix: &Path) -> io::Result<Vec<PathBuf>> {
    let texts = [
        stats_csv(summary),
        history_csv(summary),
        failures_csv(summary),
        thresholds_csv(summary),
    ];
    let mut written = Vec::new();
    for (path, text) in paths(prefix).into_iter().zip(texts) {
        super::write_file(&path, text.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::markdown::tests::{assert_snapshot, fixture};

    #[test]
    fn open_model_stats_end_with_the_uncorrected_columns() {
        let s = fixture();
        let text = stats_csv(&s);
        assert_snapshot("stats.csv", &text);
        let head: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        assert_eq!(head[..STATS_COLUMNS.len()], STATS_COLUMNS, "Locust's first");
        assert_eq!(head[STATS_COLUMNS.len()..], UNCORRECTED_COLUMNS);
        let agg: Vec<&str> = text.lines().last().unwrap().split(',').collect();
        let u = s.total().latency_uncorrected_ms.unwrap();
        assert_eq!(agg[1], "Aggregated");
        assert_eq!(agg[STATS_COLUMNS.len() + 2], num(u.p50));
        assert_eq!(agg.last().copied(), Some(num(u.max).as_str()));
    }

    #[test]
    fn closed_model_stats_keep_exactly_locusts_columns() {
        let mut s = fixture();
        // A closed model: no request starts late.
        for r in &mut s.stats.requests {
            r.latency_uncorrected.clear();
        }
        let text = stats_csv(&s);
        assert_eq!(text.lines().next().unwrap(), STATS_COLUMNS.join(","));
        assert!(text.lines().all(|l| l.split(',').count() == 22), "{text}");
    }

    #[test]
    fn one_threshold_row_per_threshold_with_the_json_values() {
        let s = fixture();
        let text = thresholds_csv(&s);
        assert_snapshot("thresholds.csv", &text);
        let rows: Vec<&str> = text.lines().skip(1).collect();
        assert_eq!(rows.len(), s.outcome.thresholds.len());
        let tag = rows[2];
        let t = &s.outcome.thresholds[2];
        assert!(
            tag.starts_with(&format!(
                "p95{{tag:pay}} < 300ms,tag:pay,POST /checkout,p95,<,300,{},ms,passed,false,,",
                t.observed.unwrap()
            )),
            "{tag}"
        );
        assert!(rows[3].contains(",failed,true,4,"), "{}", rows[3]);
    }
}
