//! The before/after comparison of a run with planned flips (`actions:` with `at` or `stage`):
//! per flip and per request name, p50, p95 and p99, the error rate and the throughput of the
//! segment before the flip and the segment after it, with their differences. The figures come
//! from each segment's own HDR histograms (the aggregator cuts the run at each flip), so they
//! are exact, and memory stays bounded: one histogram set per segment, flips + 1 in all.
//!
//! It answers "what does turning on feature X cost at 500 req/s?" in one run. The flip takes
//! effect in the service some time after it is asked for (the flag service, then the service's
//! own refresh): the first seconds of the "after" segment may still run the old setting.

use std::fmt::Write as _;

use super::{Segment, Summary};
use crate::stats::RequestSummary;

/// A request name's figures over one segment.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Figures {
    /// Completed requests.
    pub requests: u64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Failed / completed, 0-1.
    pub error_rate: f64,
    /// Completed requests per second over the segment.
    pub rps: f64,
}

impl Figures {
    fn of(r: &RequestSummary) -> Self {
        Figures {
            requests: r.request_count,
            p50_ms: r.latency_ms.p50,
            p95_ms: r.latency_ms.p95,
            p99_ms: r.latency_ms.p99,
            error_rate: r.error_rate,
            rps: r.rps,
        }
    }
}

/// The differences after − before (a latency that grew is positive).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Delta {
    /// p50 after − before, ms.
    pub p50_ms: f64,
    /// p95 after − before, ms.
    pub p95_ms: f64,
    /// p99 after − before, ms.
    pub p99_ms: f64,
    /// Error rate after − before (0-1).
    pub error_rate: f64,
    /// Throughput after − before, per second.
    pub rps: f64,
}

/// One request name before and after a flip.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RequestComparison {
    /// Method.
    pub method: String,
    /// Request name.
    pub name: String,
    /// Before the flip (null: no request in that segment).
    pub before: Option<Figures>,
    /// After the flip (null: no request in that segment).
    pub after: Option<Figures>,
    /// After − before (null unless both have requests).
    pub diff: Option<Delta>,
}

/// One planned flip and the segments on each side of it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FlipComparison {
    /// What was flipped and why (`enable gate new_checkout (statsig), planned at 30 s`).
    pub flip: String,
    /// Seconds into the run when the segment after the flip began.
    pub at_s: f64,
    /// The segment before: `[start, end]`, seconds into the run.
    pub before_s: [f64; 2],
    /// The segment after.
    pub after_s: [f64; 2],
    /// Every request name either segment has, in name order.
    pub requests: Vec<RequestComparison>,
    /// Every request name together.
    pub aggregate: RequestComparison,
}

fn segment_rows(
    s: &Segment,
    names: &[(String, String)],
) -> (Vec<Option<Figures>>, Option<Figures>) {
    let span = s.end.saturating_sub(s.start);
    let rows = names
        .iter()
        .zip(&s.stats.requests)
        .map(|((m, n), st)| {
            (st.count > 0).then(|| Figures::of(&RequestSummary::of(m, n, st, span)))
        })
        .collect();
    let agg = s.stats.aggregate();
    let total = (agg.count > 0).then(|| Figures::of(&RequestSummary::of("", "", &agg, span)));
    (rows, total)
}

fn compare(method: &str, name: &str, b: Option<Figures>, a: Option<Figures>) -> RequestComparison {
    RequestComparison {
        method: method.to_owned(),
        name: name.to_owned(),
        before: b,
        after: a,
        diff: b.zip(a).map(|(b, a)| Delta {
            p50_ms: a.p50_ms - b.p50_ms,
            p95_ms: a.p95_ms - b.p95_ms,
            p99_ms: a.p99_ms - b.p99_ms,
            error_rate: a.error_rate - b.error_rate,
            rps: a.rps - b.rps,
        }),
    }
}

impl Summary {
    /// The before/after comparison of each planned flip (empty without flips).
    pub fn comparison(&self) -> Vec<FlipComparison> {
        let segs = &self.outcome.segments;
        segs.windows(2)
            .map(|w| {
                let (rb, tb) = segment_rows(&w[0], &self.names);
                let (ra, ta) = segment_rows(&w[1], &self.names);
                let requests = self
                    .names
                    .iter()
                    .zip(rb.into_iter().zip(ra))
                    .filter(|(_, (b, a))| b.is_some() || a.is_some())
                    .map(|((m, n), (b, a))| compare(m, n, b, a))
                    .collect();
                FlipComparison {
                    flip: w[1].cause.clone(),
                    at_s: w[1].start.as_secs_f64(),
                    before_s: [w[0].start.as_secs_f64(), w[0].end.as_secs_f64()],
                    after_s: [w[1].start.as_secs_f64(), w[1].end.as_secs_f64()],
                    requests,
                    aggregate: compare("", "Aggregated", tb, ta),
                }
            })
            .collect()
    }
}

fn signed(v: f64, unit: &str) -> String {
    format!("{}{v:.1}{unit}", if v >= 0.0 { "+" } else { "" })
}

/// The comparison as a text table (the summary) or a Markdown one (`markdown`).
pub fn render(flips: &[FlipComparison], markdown: bool) -> String {
    let mut out = String::new();
    for f in flips {
        if markdown {
            let _ = writeln!(
                out,
                "\n### Before/after: {} (at {:.1} s)\n\n| request | p50 ms | p95 ms | p99 ms | error rate | req/s |\n|---|---|---|---|---|---|",
                f.flip, f.at_s
            );
        } else {
            let _ = writeln!(
                out,
                "\nBefore/after {} (at {:.1} s; before {:.1}-{:.1} s, after {:.1}-{:.1} s)",
                f.flip, f.at_s, f.before_s[0], f.before_s[1], f.after_s[0], f.after_s[1]
            );
            let _ = writeln!(
                out,
                "  {:<28} {:>22} {:>22} {:>22} {:>18} {:>20}",
                "Name", "p50 ms", "p95 ms", "p99 ms", "error rate", "req/s"
            );
        }
        for r in f.requests.iter().chain(std::iter::once(&f.aggregate)) {
            let cell = |get: fn(&Figures) -> f64, dget: fn(&Delta) -> f64, pct: bool| {
                let k = if pct { 100.0 } else { 1.0 };
                let unit = if pct { "%" } else { "" };
                let v = |x: Option<Figures>| {
                    x.map_or_else(|| "-".to_owned(), |x| format!("{:.1}{unit}", get(&x) * k))
                };
                let d = r
                    .diff
                    .map(|d| format!(" ({})", signed(dget(&d) * k, unit)))
                    .unwrap_or_default();
                format!("{} → {}{d}", v(r.before), v(r.after))
            };
            let name = if r.method.is_empty() {
                r.name.clone()
            } else {
                format!("{} {}", r.method, r.name)
            };
            let cells = [
                cell(|x| x.p50_ms, |d| d.p50_ms, false),
                cell(|x| x.p95_ms, |d| d.p95_ms, false),
                cell(|x| x.p99_ms, |d| d.p99_ms, false),
                cell(|x| x.error_rate, |d| d.error_rate, true),
                cell(|x| x.rps, |d| d.rps, false),
            ];
            if markdown {
                let _ = writeln!(out, "| {name} | {} |", cells.join(" | "));
            } else {
                let _ = writeln!(
                    out,
                    "  {:<28} {:>22} {:>22} {:>22} {:>18} {:>20}",
                    name, cells[0], cells[1], cells[2], cells[3], cells[4]
                );
            }
        }
    }
    out
}
