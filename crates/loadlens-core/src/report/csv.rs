//! Locust-compatible CSV files: `PREFIX_stats.csv`, `PREFIX_stats_history.csv`,
//! `PREFIX_failures.csv`, `PREFIX_exceptions.csv`, written as Locust 2.x writes them (checked
//! against a real Locust run in the tests): its column names and order, its line ends (`\r\n`,
//! Python's csv module), and its number formats: times in milliseconds, medians and
//! percentiles as whole numbers (`N/A` where there are no requests), averages, minimums,
//! maximums and rates as Python prints a float (`5.27`, `2.0`), the history's rates with six
//! decimals, failures first and last seen as `2026-12-03T09:30:01Z`.
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

/// Columns of `_failures.csv` (Locust 2.x).
pub const FAILURES_COLUMNS: [&str; 6] = [
    "Method",
    "Name",
    "Error",
    "Occurrences",
    "First Seen",
    "Last Seen",
];

/// Columns of `_exceptions.csv` (Locust 2.x). Locust lists there the Python exceptions raised
/// by its users' code; loadlens runs no user code, so the file has its header only (a failed
/// request is in `_failures.csv`, as in Locust).
pub const EXCEPTIONS_COLUMNS: [&str; 4] = ["Count", "Message", "Traceback", "Nodes"];

/// Locust's line end (Python's csv module).
const EOL: &str = "\r\n";

/// Quote a field when CSV requires it.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// A float as Python's `str` prints it: the shortest text that reads back (`5.27`), with `.0`
/// on a whole number (`2.0`).
fn num(v: f64) -> String {
    let s = format!("{v}");
    if s.contains(['.', 'e', 'i', 'N']) {
        s
    } else {
        format!("{s}.0")
    }
}

/// A median or percentile as Locust writes it: whole milliseconds.
fn whole(v: f64) -> String {
    format!("{}", v.max(0.0).round() as u64)
}

/// A median column as Locust writes it: whole milliseconds, unless that falls outside the
/// exact minimum and maximum, which Locust then writes instead (so a median is never below
/// the fastest request: `StatsEntry.median_response_time`).
fn median(p50: f64, min: f64, max: f64) -> String {
    let m = p50.max(0.0).round();
    if m < min {
        num(min)
    } else if m > max {
        num(max)
    } else {
        whole(m)
    }
}

/// The percentile columns (50 % … 100 %) of `l`, or `N/A` each without requests.
fn percentiles(requests: u64, l: [f64; 11]) -> Vec<String> {
    if requests == 0 {
        return vec!["N/A".to_owned(); 11];
    }
    l.iter().map(|v| whole(*v)).collect()
}

fn stats_row(r: &RequestSummary, uncorrected: bool) -> String {
    let l = &r.latency_ms;
    let none = r.request_count == 0;
    // Without requests Locust writes 0 for the median, minimum and maximum and for the
    // average size (integers), 0.0 for the average time.
    let or_zero = |v: f64| if none { "0".to_owned() } else { num(v) };
    let mut cols = vec![
        field(&r.method),
        field(&r.name),
        r.request_count.to_string(),
        r.failure_count.to_string(),
        if none {
            "0".to_owned()
        } else {
            median(l.p50, l.min, l.max)
        },
        num(if none { 0.0 } else { l.avg }),
        or_zero(l.min),
        or_zero(l.max),
        or_zero(r.avg_content_bytes),
        num(r.rps),
        num(r.failures_per_s),
    ];
    cols.extend(percentiles(
        r.request_count,
        [
            l.p50, l.p66, l.p75, l.p80, l.p90, l.p95, l.p98, l.p99, l.p99_9, l.p99_99, l.max,
        ],
    ));
    if uncorrected {
        match &r.latency_uncorrected_ms {
            Some(u) => {
                cols.extend([num(u.avg), num(u.min)]);
                cols.extend(percentiles(
                    r.request_count,
                    [
                        u.p50, u.p66, u.p75, u.p80, u.p90, u.p95, u.p98, u.p99, u.p99_9, u.p99_99,
                        u.max,
                    ],
                ));
            }
            None => cols.extend([""; UNCORRECTED_COLUMNS.len()].map(String::from)),
        }
    }
    cols.join(",")
}

/// The `_stats.csv` text: one row per request name (sorted by name, then method), then
/// `Aggregated`; Locust's columns, then
/// [`UNCORRECTED_COLUMNS`] when a row has uncorrected figures.
pub fn stats_csv(summary: &Summary) -> String {
    let mut rows = summary.requests();
    // Sorted by name, then method, as Locust sorts its entries.
    rows.sort_by(|a, b| (&a.name, &a.method).cmp(&(&b.name, &b.method)));
    rows.push(summary.total());
    let uncorrected = rows.iter().any(|r| r.latency_uncorrected_ms.is_some());
    let mut head = STATS_COLUMNS.to_vec();
    if uncorrected {
        head.extend(UNCORRECTED_COLUMNS);
    }
    let mut out = head.into_iter().map(field).collect::<Vec<_>>().join(",");
    out.push_str(EOL);
    for r in &rows {
        out.push_str(&stats_row(r, uncorrected));
        out.push_str(EOL);
    }
    out
}

/// The `_thresholds.csv` text: one row per threshold, in order, with the JSON result's values
/// (`Result` is `passed` or `failed`; numbers unrounded).
pub fn thresholds_csv(summary: &Summary) -> String {
    let mut out = THRESHOLD_COLUMNS.map(field).join(",");
    out.push_str(EOL);
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
        out.push_str(EOL);
    }
    out
}

/// The `_stats_history.csv` text: one `Aggregated` row per second of the run (per series
/// point), with that interval's rates and percentiles and the totals from the start of the
/// run to its end, as Locust writes it without `--csv-full-history`. A point that ends in the
/// same second as the one before (the short last interval of a run) is merged into it, so no
/// second has two rows.
pub fn history_csv(summary: &Summary) -> String {
    let mut out = HISTORY_COLUMNS.map(field).join(",");
    out.push_str(EOL);
    let start = summary
        .started_at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let mut points: Vec<crate::stats::SeriesPoint> = Vec::new();
    for p in summary.series.points() {
        let second = |p: &crate::stats::SeriesPoint| (start + p.elapsed_s) as u64;
        match points.last_mut() {
            Some(last) if second(last) == second(&p) => last.absorb(&p),
            _ => points.push(p),
        }
    }
    let (mut total_req, mut total_fail) = (0u64, 0u64);
    let (mut min, mut max, mut weighted) = (f64::INFINITY, 0.0f64, 0.0f64);
    for p in &points {
        total_req += p.requests;
        total_fail += p.failures;
        if p.requests > 0 {
            min = min.min(p.min_ms);
            max = max.max(p.max_ms);
            weighted += p.avg_ms * p.requests as f64;
        }
        let mut cols = vec![
            ((start + p.elapsed_s) as u64).to_string(),
            p.users.to_string(),
            String::new(),
            "Aggregated".to_owned(),
            format!("{:.6}", p.rps),
            format!("{:.6}", p.failures_per_s),
        ];
        cols.extend(percentiles(
            p.requests,
            [
                p.p50_ms,
                p.p66_ms,
                p.p75_ms,
                p.p80_ms,
                p.p90_ms,
                p.p95_ms,
                p.p98_ms,
                p.p99_ms,
                p.p99_9_ms,
                p.p99_99_ms,
                p.max_ms,
            ],
        ));
        cols.push(total_req.to_string());
        cols.push(total_fail.to_string());
        if total_req == 0 {
            // As Locust: 0 for the median, minimum, maximum and size, 0.0 for the average.
            cols.extend(["0", "0.0", "0", "0", "0"].map(String::from));
        } else {
            cols.push(median(p.total_p50_ms, min, max));
            cols.push(num(weighted / total_req as f64));
            cols.push(num(min));
            cols.push(num(max));
            cols.push(num(p.total_avg_content_bytes));
        }
        out.push_str(&cols.join(","));
        out.push_str(EOL);
    }
    out
}

/// A time as Locust writes it in `_failures.csv`: UTC, whole seconds, `2026-12-03T09:30:01Z`.
fn utc(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// The `_failures.csv` text: one row per request and error, sorted by method, name and error
/// as Locust sorts them, with when it was first and last seen (empty for errors read back from
/// a result file written before these times were kept).
pub fn failures_csv(summary: &Summary) -> String {
    let mut out = FAILURES_COLUMNS.map(field).join(",");
    out.push_str(EOL);
    let mut errors = summary.errors();
    // Sorted as Locust sorts its errors (by `METHOD.name.error`).
    errors.sort_by(|(m1, n1, e1), (m2, n2, e2)| {
        (m1, n1, e1.kind.to_string(), &e1.message).cmp(&(m2, n2, e2.kind.to_string(), &e2.message))
    });
    for (method, name, e) in errors {
        let (first, last) = e
            .seen
            .map_or((String::new(), String::new()), |(f, l)| (utc(f), utc(l)));
        let _ = write!(
            out,
            "{},{},{},{},{first},{last}{EOL}",
            field(&method),
            field(&name),
            field(&format!("{}: {}", e.kind, e.message)),
            e.count
        );
    }
    out
}

/// The `_exceptions.csv` text: Locust's header ([`EXCEPTIONS_COLUMNS`]) and no rows.
pub fn exceptions_csv() -> String {
    let mut out = EXCEPTIONS_COLUMNS.map(field).join(",");
    out.push_str(EOL);
    out
}

/// The five files written for `prefix`.
pub fn paths(prefix: &Path) -> [PathBuf; 5] {
    let base = prefix.to_string_lossy();
    [
        "stats",
        "stats_history",
        "failures",
        "exceptions",
        "thresholds",
    ]
    .map(|f| format!("{base}_{f}.csv").into())
}

/// Write the five files for `prefix`, each whole or not at all ([`super::write_file`]); returns
/// their paths.
pub fn write(summary: &Summary, prefix: &Path) -> io::Result<Vec<PathBuf>> {
    let texts = [
        stats_csv(summary),
        history_csv(summary),
        failures_csv(summary),
        exceptions_csv(),
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

    /// Locust never writes a median below the fastest request or above the slowest: it
    /// writes that request's exact time instead.
    #[test]
    fn a_median_outside_the_minimum_and_maximum_is_written_as_they_are() {
        assert_eq!(median(12.4, 3.0, 40.0), "12");
        assert_eq!(median(0.4, 0.31, 0.9), "0.31");
        assert_eq!(median(1.2, 1.000168, 1.3), "1.000168");
        assert_eq!(median(7.6, 7.0, 7.25), "7.25");
    }

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
        assert_eq!(agg[STATS_COLUMNS.len() + 2], whole(u.p50));
        assert_eq!(agg.last().copied(), Some(whole(u.max).as_str()));
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
