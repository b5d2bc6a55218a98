//! `loadlens compare BASE.json NEW.json [--fail-if 'p95 > +10%' …]`: per-request deltas between
//! two JSON results (p50/p95/p99, req/s, error rate) and regression bounds for CI gates.
//!
//! A bound is `METRIC OP VALUE`:
//! - `METRIC`: `p50`, `p75`, `p90`, `p95`, `p99`, `p99.9`, `avg`, `max` (ms), `rps`,
//!   `error_rate` (percent).
//! - `OP`: `>` (fail when above) or `<` (fail when below).
//! - `VALUE` with a sign is a change from the baseline: `+10%` relative, `+5ms` / `+5` absolute
//!   (`+0.5` for `error_rate` is half a percentage point). Without a sign it is the new value
//!   itself: `p95 > 250ms`, `error_rate > 1%`, `rps < 100`.
//!
//! Every bound is checked on the aggregate and on each request name present in both results
//! (`--aggregate-only` limits it to the aggregate). A row with fewer than `--min-requests N`
//! requests in either result is shown as "too few samples" and cannot fail: a p95 of 7
//! requests says little. Exit 1 when a bound is exceeded, 2 when an input is unreadable or a
//! bound does not parse.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use loadlens_core::duration::ms as fmt_ms;
use loadlens_core::report::json::ResultDoc;
use loadlens_core::stats::RequestSummary;

use crate::exit::{Exit, Failure};

/// `loadlens compare`.
#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Baseline JSON result.
    pub base: PathBuf,
    /// New JSON result.
    pub new: PathBuf,
    /// Regression bound, e.g. `p95 > +10%`, `error_rate > +0.5`, `rps < -5%`, `p99 > 800ms`
    /// (repeatable). Exit 1 when one is exceeded.
    #[arg(
        long = "fail-if",
        value_name = "BOUND",
        env = "LOADLENS_FAIL_IF",
        value_delimiter = ','
    )]
    pub fail_if: Vec<String>,
    /// Check bounds on the aggregate only, not on each request name.
    #[arg(long)]
    pub aggregate_only: bool,
    /// A request name (or the aggregate) with fewer requests than this in either result cannot
    /// fail a bound: it is shown as "too few samples" (0: every row counts).
    #[arg(
        long,
        value_name = "N",
        env = "LOADLENS_MIN_REQUESTS",
        default_value_t = 0
    )]
    pub min_requests: u64,
}

/// A metric a bound can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// A latency percentile or statistic, ms.
    Latency(&'static str),
    /// Requests per second.
    Rps,
    /// Failure ratio, in percent.
    ErrorRate,
}

impl Metric {
    fn parse(s: &str) -> Option<Metric> {
        Some(match s.to_ascii_lowercase().as_str() {
            "p50" | "median" | "med" => Metric::Latency("p50"),
            "p75" => Metric::Latency("p75"),
            "p90" => Metric::Latency("p90"),
            "p95" => Metric::Latency("p95"),
            "p99" => Metric::Latency("p99"),
            "p99.9" | "p999" | "p99_9" => Metric::Latency("p99.9"),
            "avg" | "mean" => Metric::Latency("avg"),
            "max" => Metric::Latency("max"),
            "rps" | "req/s" | "throughput" => Metric::Rps,
            "error_rate" | "errors" | "error%" | "failure_rate" => Metric::ErrorRate,
            _ => return None,
        })
    }

    /// The value of this metric for `r` (ms, req/s or percent).
    pub fn of(self, r: &RequestSummary) -> f64 {
        let l = &r.latency_ms;
        match self {
            Metric::Latency("p50") => l.p50,
            Metric::Latency("p75") => l.p75,
            Metric::Latency("p90") => l.p90,
            Metric::Latency("p95") => l.p95,
            Metric::Latency("p99") => l.p99,
            Metric::Latency("p99.9") => l.p99_9,
            Metric::Latency("avg") => l.avg,
            Metric::Latency(_) => l.max,
            Metric::Rps => r.rps,
            Metric::ErrorRate => r.error_rate * 100.0,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Metric::Latency(n) => n,
            Metric::Rps => "rps",
            Metric::ErrorRate => "error_rate",
        }
    }

    fn unit(self) -> &'static str {
        match self {
            Metric::Latency(_) => " ms",
            Metric::Rps => " req/s",
            Metric::ErrorRate => "%",
        }
    }
}

/// What a bound's value is compared with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit {
    /// Relative change from the baseline, in percent (`+10%`).
    Relative(f64),
    /// Absolute change from the baseline (`+5ms`).
    Delta(f64),
    /// The new value itself (`250ms`).
    Value(f64),
}

/// A parsed `--fail-if` bound.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    /// The text as given, for messages.
    pub text: String,
    /// Metric.
    pub metric: Metric,
    /// `true` for `>`, `false` for `<`.
    pub above: bool,
    /// Limit.
    pub limit: Limit,
}

impl Bound {
    /// Parse `METRIC OP VALUE` (see the module docs).
    pub fn parse(text: &str) -> Result<Bound, String> {
        let t = text.trim();
        let bad = |why: &str| {
            format!(
                "--fail-if `{text}`: {why} (expected e.g. `p95 > +10%`, `error_rate > +0.5`, `rps < -5%`, `p99 > 800ms`)"
            )
        };
        let (i, above) = match (t.find('>'), t.find('<')) {
            (Some(i), None) => (i, true),
            (None, Some(i)) => (i, false),
            _ => return Err(bad("needs exactly one of > or <")),
        };
        let metric_text = t[..i].trim();
        let metric = Metric::parse(metric_text).ok_or_else(|| {
            bad(&format!(
                "unknown metric `{metric_text}`; one of p50 p75 p90 p95 p99 p99.9 avg max rps error_rate"
            ))
        })?;
        let mut v = t[i + 1..].trim().trim_start_matches('=').trim();
        let signed = v.starts_with('+') || v.starts_with('-');
        let percent = v.ends_with('%');
        if percent {
            v = &v[..v.len() - 1];
        } else if let Some(x) = v.strip_suffix("ms") {
            if !matches!(metric, Metric::Latency(_)) {
                return Err(bad("`ms` only applies to latency metrics"));
            }
            v = x;
        }
        let n: f64 = v
            .trim()
            .parse()
            .map_err(|_| bad(&format!("`{}` is not a number", v.trim())))?;
        if !n.is_finite() {
            return Err(bad("the value must be finite"));
        }
        let limit = match (signed, percent) {
            (true, true) => Limit::Relative(n),
            (true, false) => Limit::Delta(n),
            (false, true) if metric == Metric::ErrorRate => Limit::Value(n),
            (false, true) => return Err(bad("a relative change needs a sign: `+10%` (or `-10%`)")),
            (false, false) => Limit::Value(n),
        };
        Ok(Bound {
            text: t.to_owned(),
            metric,
            above,
            limit,
        })
    }

    /// `Some(description)` when `base → new` exceeds this bound.
    pub fn check(&self, base: f64, new: f64) -> Option<String> {
        let (observed, shown) = match self.limit {
            Limit::Relative(_) => {
                let r = relative(base, new);
                (r, pct(r))
            }
            Limit::Delta(_) => (new - base, format!("{:+.2}", new - base)),
            Limit::Value(_) => (new, format!("{new:.2}")),
        };
        let limit = match self.limit {
            Limit::Relative(l) | Limit::Delta(l) | Limit::Value(l) => l,
        };
        let exceeded = if self.above {
            observed > limit
        } else {
            observed < limit
        };
        exceeded.then(|| {
            format!(
                "{} {}{u} → {}{u} ({shown})",
                self.metric.name(),
                num(base),
                num(new),
                u = self.metric.unit()
            )
        })
    }
}

/// Relative change in percent; a rise from zero is infinite.
fn relative(base: f64, new: f64) -> f64 {
    if base == 0.0 {
        if new == 0.0 {
            0.0
        } else {
            f64::INFINITY.copysign(new)
        }
    } else {
        (new - base) / base * 100.0
    }
}

fn pct(r: f64) -> String {
    if r.is_infinite() {
        "new".into()
    } else {
        format!("{r:+.1}%")
    }
}

fn num(v: f64) -> String {
    fmt_ms(v)
}

/// One row of the comparison: a request name (or the aggregate) in both results.
struct Row<'a> {
    label: String,
    base: &'a RequestSummary,
    new: &'a RequestSummary,
}

fn label(r: &RequestSummary) -> String {
    if r.method.is_empty() {
        r.name.clone()
    } else {
        format!("{} {}", r.method, r.name)
    }
}

fn read(path: &std::path::Path, what: &str) -> Result<ResultDoc, Failure> {
    ResultDoc::read(path).map_err(|e| {
        Failure::new(
            Exit::InvalidInput,
            format!("cannot read the {what} result: {e}"),
        )
    })
}

/// Compare and print; the exit status says whether every bound held.
pub fn run(args: &CompareArgs) -> Result<Exit, Failure> {
    let bounds = args
        .fail_if
        .iter()
        .filter(|b| !b.trim().is_empty())
        .map(|b| Bound::parse(b))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::new(Exit::InvalidInput, e))?;
    let base = read(&args.base, "baseline")?;
    let new = read(&args.new, "new")?;
    let (text, failures) = compare(
        &base,
        &new,
        &bounds,
        Checked {
            aggregate_only: args.aggregate_only,
            min_requests: args.min_requests,
        },
    );
    // Never a panic on a closed pipe (`loadlens compare … | head`).
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    Ok(if failures > 0 {
        Exit::ThresholdsFailed
    } else {
        Exit::Passed
    })
}

/// Which rows the bounds are checked on.
#[derive(Debug, Clone, Copy, Default)]
pub struct Checked {
    /// The aggregate only.
    pub aggregate_only: bool,
    /// Rows with fewer requests than this in either result are not checked.
    pub min_requests: u64,
}

impl Row<'_> {
    /// Fewer requests than `min` in either result.
    fn too_few(&self, min: u64) -> bool {
        self.base.request_count < min || self.new.request_count < min
    }
}

/// The comparison text and the number of exceeded bounds.
pub fn compare(
    base: &ResultDoc,
    new: &ResultDoc,
    bounds: &[Bound],
    checked: Checked,
) -> (String, usize) {
    let Checked {
        aggregate_only,
        min_requests,
    } = checked;
    let mut out = String::new();
    let describe = |d: &ResultDoc| {
        format!(
            "run {} · {} · {} · {:.1}s · {} requests",
            d.run.id, d.run.scenario, d.run.started_at, d.run.duration_s, d.aggregate.request_count
        )
    };
    let _ = writeln!(out, "base: {}", describe(base));
    let _ = writeln!(out, "new:  {}", describe(new));
    if base.run.scenario != new.run.scenario {
        let _ = writeln!(
            out,
            "note: the scenarios differ (`{}` vs `{}`)",
            base.run.scenario, new.run.scenario
        );
    }
    let key = |r: &RequestSummary| (r.method.clone(), r.name.clone());
    let mut rows: Vec<Row<'_>> = Vec::new();
    for b in &base.requests {
        if let Some(n) = new.requests.iter().find(|n| key(n) == key(b)) {
            rows.push(Row {
                label: label(b),
                base: b,
                new: n,
            });
        }
    }
    let only_base: Vec<String> = base
        .requests
        .iter()
        .filter(|b| !new.requests.iter().any(|n| key(n) == key(b)))
        .map(label)
        .collect();
    let only_new: Vec<String> = new
        .requests
        .iter()
        .filter(|n| !base.requests.iter().any(|b| key(n) == key(b)))
        .map(label)
        .collect();
    rows.push(Row {
        label: "Aggregated".into(),
        base: &base.aggregate,
        new: &new.aggregate,
    });

    let w = rows
        .iter()
        .map(|r| r.label.chars().count())
        .max()
        .unwrap_or(10)
        .clamp(24, 60);
    let cols = [
        Metric::Latency("p50"),
        Metric::Latency("p95"),
        Metric::Latency("p99"),
        Metric::Rps,
        Metric::ErrorRate,
    ];
    let _ = writeln!(
        out,
        "\n{:<w$} {:>24} {:>24} {:>24} {:>24} {:>24}",
        "Name", "p50 ms", "p95 ms", "p99 ms", "req/s", "error %"
    );
    let _ = writeln!(out, "{}", "-".repeat(w + 5 * 25));
    let n = rows.len();
    for (i, r) in rows.iter().enumerate() {
        if i == n - 1 {
            let _ = writeln!(out, "{}", "-".repeat(w + 5 * 25));
        }
        let mut line = format!("{:<w$}", clip(&r.label, w));
        for m in cols {
            let (b, v) = (m.of(r.base), m.of(r.new));
            let cell = format!("{} → {} ({})", num(b), num(v), pct(relative(b, v)));
            let _ = write!(line, " {cell:>24}");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if !only_base.is_empty() {
        let _ = writeln!(out, "only in base: {}", only_base.join(", "));
    }
    if !only_new.is_empty() {
        let _ = writeln!(out, "only in new:  {}", only_new.join(", "));
    }
    let too_few: Vec<String> = rows
        .iter()
        .filter(|r| r.too_few(min_requests))
        .map(|r| {
            format!(
                "{} ({} → {} requests)",
                r.label, r.base.request_count, r.new.request_count
            )
        })
        .collect();
    if !too_few.is_empty() {
        let _ = writeln!(
            out,
            "too few samples (under --min-requests {min_requests}, not checked): {}",
            too_few.join(", ")
        );
    }

    let mut failures = 0;
    if !bounds.is_empty() {
        let _ = writeln!(out);
    }
    for bound in bounds {
        let checked = rows
            .iter()
            .filter(|r| !aggregate_only || (r.label == "Aggregated" && r.base.method.is_empty()));
        let (mut exceeded, mut waived) = (Vec::new(), Vec::new());
        for r in checked {
            if let Some(d) = bound.check(bound.metric.of(r.base), bound.metric.of(r.new)) {
                match r.too_few(min_requests) {
                    true => waived.push(format!("{}: {d}, too few samples", r.label)),
                    false => exceeded.push(format!("{}: {d}", r.label)),
                }
            }
        }
        if exceeded.is_empty() {
            let _ = writeln!(out, "ok    {}", bound.text);
        } else {
            failures += 1;
            let _ = writeln!(out, "FAIL  {}", bound.text);
        }
        for e in exceeded.iter().chain(&waived) {
            let _ = writeln!(out, "        {e}");
        }
    }
    if !bounds.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            if failures == 0 {
                format!("every bound held ({})", bounds.len())
            } else {
                format!("{failures} of {} bounds exceeded", bounds.len())
            }
        );
    }
    (out, failures)
}

fn clip(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        s.to_owned()
    } else {
        s.chars().take(w - 1).chain(['…']).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_parse_with_and_without_signs() {
        let b = Bound::parse("p95 > +10%").unwrap();
        assert_eq!(
            (b.metric, b.above, b.limit),
            (Metric::Latency("p95"), true, Limit::Relative(10.0))
        );
        let b = Bound::parse("rps<-5%").unwrap();
        assert_eq!(
            (b.metric, b.above, b.limit),
            (Metric::Rps, false, Limit::Relative(-5.0))
        );
        assert_eq!(
            Bound::parse("p99 > 800ms").unwrap().limit,
            Limit::Value(800.0)
        );
        assert_eq!(
            Bound::parse("p99 > +20ms").unwrap().limit,
            Limit::Delta(20.0)
        );
        assert_eq!(
            Bound::parse("error_rate > 1%").unwrap().limit,
            Limit::Value(1.0)
        );
        assert_eq!(
            Bound::parse("error_rate > +0.5").unwrap().limit,
            Limit::Delta(0.5)
        );
        for bad in [
            "p95 +10%",
            "p42 > +1%",
            "p95 > 10%",
            "rps > 5ms",
            "p95 > +x%",
            "p95 > < 1",
        ] {
            let e = Bound::parse(bad).unwrap_err();
            assert!(e.contains("--fail-if"), "{e}");
        }
    }

    #[test]
    fn bounds_check_relative_absolute_and_value_limits() {
        let b = Bound::parse("p95 > +10%").unwrap();
        assert!(b.check(100.0, 109.0).is_none());
        assert!(b.check(100.0, 111.0).unwrap().contains("+11.0%"));
        assert!(b.check(0.0, 1.0).unwrap().contains("new"));
        assert!(b.check(0.0, 0.0).is_none());
        let b = Bound::parse("rps < -5%").unwrap();
        assert!(b.check(1000.0, 960.0).is_none());
        assert!(b.check(1000.0, 940.0).is_some());
        let b = Bound::parse("p99 > 800ms").unwrap();
        assert!(b.check(10.0, 801.0).is_some());
        assert!(b.check(900.0, 799.0).is_none());
    }
}
