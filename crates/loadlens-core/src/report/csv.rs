//! Locust-compatible CSV files: `PREFIX_stats.csv`, `PREFIX_stats_history.csv`,
//! `PREFIX_failures.csv`, with Locust's column names so existing spreadsheets keep working.
//! Times are in milliseconds like Locust's; loadlens writes them with two decimals.

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

fn stats_row(r: &RequestSummary) -> String {
    let l = &r.latency_ms;
    let cols = [
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
    cols.join(",")
}

/// The `_stats.csv` text: one row per request name, then `Aggregated`.
pub fn stats_csv(summary: &Summary) -> String {
    let mut out = STATS_COLUMNS.map(field).join(",");
    out.push('\n');
    for r in summary
        .requests()
        .iter()
        .chain(std::iter::once(&summary.total()))
    {
        out.push_str(&stats_row(r));
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

/// Write the three files for `prefix`; returns their paths.
pub fn write(summary: &Summary, prefix: &Path) -> io::Result<Vec<PathBuf>> {
    let base = prefix.to_string_lossy();
    let files = [
        (format!("{base}_stats.csv"), stats_csv(summary)),
        (format!("{base}_stats_history.csv"), history_csv(summary)),
        (format!("{base}_failures.csv"), failures_csv(summary)),
    ];
    let mut paths = Vec::new();
    for (path, text) in files {
        let path = PathBuf::from(path);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, text)?;
        paths.push(path);
    }
    Ok(paths)
}
