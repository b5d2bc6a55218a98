//! `--summary-md FILE` and `$GITHUB_STEP_SUMMARY`: a short Markdown summary for CI pages —
//! verdict, thresholds, the requests table with corrected and uncorrected percentiles, where the
//! time went (the top contributor per request name, when a trace receiver ran), the open model's
//! arrivals, the generator's health and the scenarios. Also the plain-text version of
//! the same outcome sections, printed under the summary table.

use std::fmt::Write as _;
use std::path::Path;

use super::{Summary, Verdict};
use crate::breakdown::Breakdown;
use crate::duration::ms;
use crate::stats::RequestSummary;

/// Most request rows in the Markdown table (the aggregate is always shown).
const MAX_ROWS: usize = 20;

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The verdict in one line.
fn verdict_line(s: &Summary) -> String {
    let failed = s.outcome.thresholds.iter().filter(|t| !t.passed).count();
    let total = s.outcome.thresholds.len();
    match s.verdict() {
        Verdict::Passed if total == 0 => "✅ **completed** (no thresholds)".into(),
        Verdict::Passed => format!("✅ **passed**: {total} of {total} thresholds held"),
        Verdict::Failed => format!("❌ **failed**: {failed} of {total} thresholds failed"),
        Verdict::Aborted => "⛔ **aborted** by a guard".into(),
        Verdict::Interrupted => "⚠️ **interrupted** (Ctrl-C)".into(),
    }
}

fn latency_row(out: &mut String, label: &str, r: &RequestSummary) {
    let l = &r.latency_ms;
    let _ = writeln!(
        out,
        "| {} | {} | {} ({:.2}%) | {:.1} | {} | {} | {} | {} |",
        cell(label),
        r.request_count,
        r.failure_count,
        r.error_rate * 100.0,
        r.rps,
        ms(l.p50),
        ms(l.p95),
        ms(l.p99),
        ms(l.max)
    );
    if let Some(u) = &r.latency_uncorrected_ms {
        let _ = writeln!(
            out,
            "| ↳ uncorrected | | | | {} | {} | {} | {} |",
            ms(u.p50),
            ms(u.p95),
            ms(u.p99),
            ms(u.max)
        );
    }
}

/// The timeline's feature-flag events (state at the start, changes during the run), as
/// `(seconds into the run, message)`: what the summary and the Markdown list under their own
/// heading.
pub fn config_changes(s: &Summary) -> Vec<(f64, &str)> {
    s.timeline
        .iter()
        .filter(|e| e.flag.is_some() || e.kind == crate::run::EventKind::ConfigChanged)
        .map(|e| (e.elapsed_s, e.message.as_str()))
        .collect()
}

/// The Markdown summary.
pub fn render(s: &Summary) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## loadlens · {} · run `{}`\n",
        cell(&s.run.scenario),
        s.run.id
    );
    let _ = writeln!(
        out,
        "{} · {:.1} s · {}\n",
        verdict_line(s),
        s.duration.as_secs_f64(),
        crate::run::describe(&s.stop_reason)
    );
    if !s.outcome.thresholds.is_empty() {
        out.push_str(
            "### Thresholds\n\n| | threshold | scope | observed | limit |\n|---|---|---|--:|---|\n",
        );
        for t in &s.outcome.thresholds {
            let mark = match (t.passed, t.aborted) {
                (true, _) => "✅",
                (false, true) => "⛔",
                (false, false) => "❌",
            };
            let (observed, limit) = t
                .detail
                .split_once(" (limit ")
                .map_or((t.detail.as_str(), ""), |(o, l)| {
                    (o, l.trim_end_matches(')'))
                });
            let _ = writeln!(
                out,
                "| {mark} | `{}` | {} | {} | {} |",
                t.expression.replace('`', "'"),
                cell(&super::scope_label(t, 5)),
                cell(observed),
                cell(limit)
            );
        }
        out.push('\n');
    }
    out.push_str("### Requests\n\nLatency in ms");
    let open = s.outcome.arrivals.is_some();
    if open {
        out.push_str(", from each arrival's intended start (↳ uncorrected: from the actual start)");
    }
    out.push_str(".\n\n| name | requests | failed | req/s | p50 | p95 | p99 | max |\n|---|--:|--:|--:|--:|--:|--:|--:|\n");
    let rows = s.requests();
    for r in rows.iter().take(MAX_ROWS) {
        latency_row(&mut out, &format!("{} {}", r.method, r.name), r);
    }
    if rows.len() > MAX_ROWS {
        let _ = writeln!(
            out,
            "| … {} more in the JSON result | | | | | | | |",
            rows.len() - MAX_ROWS
        );
    }
    latency_row(&mut out, "**all requests**", &s.total());
    out.push('\n');
    if let Some(b) = &s.outcome.breakdown {
        breakdown(&mut out, b);
    }
    if let Some(a) = &s.outcome.arrivals {
        let d = &a.schedule_delay_ms;
        let _ = writeln!(
            out,
            "### Open model\n\n{} of {} intended arrivals started ({:.1}%), **{} dropped** (no free VU), {} of {} VUs used; scheduling delay p50 {} / p99 {} / max {} ms.\n",
            a.started,
            a.intended,
            a.achieved_pct,
            a.dropped_iterations,
            a.vus_allocated,
            a.max_vus,
            ms(d.p50),
            ms(d.p99),
            ms(d.max)
        );
    }
    let changes = config_changes(s);
    if !changes.is_empty() {
        out.push_str("### Feature flags and configs\n\n| at | event |\n|--:|---|\n");
        for (at, message) in &changes {
            let _ = writeln!(out, "| {at:.1} s | {} |", cell(message));
        }
        out.push('\n');
    }
    out.push_str("### Generator\n\n");
    out.push_str(&generator_line(s));
    out.push_str("\n\n");
    let totals = s.scenario_totals();
    if !totals.is_empty() {
        out.push_str("### Scenarios\n\n| scenario | starts at | requests | failed | req/s | p95 |\n|---|--:|--:|--:|--:|--:|\n");
        for (sc, (_, t)) in s.outcome.scenarios.iter().zip(&totals) {
            let _ = writeln!(
                out,
                "| {} | {:.0} s | {} | {} | {:.1} | {} |",
                cell(&sc.name),
                sc.start_time.as_secs_f64(),
                t.request_count,
                t.failure_count,
                t.rps,
                ms(t.latency_ms.p95)
            );
        }
        out.push('\n');
    }
    if !s.outcome.actions.is_empty() {
        out.push_str("### Actions\n\n| at | action | outcome | cause |\n|--:|---|---|---|\n");
        for a in &s.outcome.actions {
            let status = match a.status {
                crate::action::Status::Done => "✅ done",
                crate::action::Status::Failed => "❌ failed",
                crate::action::Status::DryRun => "dry run",
                crate::action::Status::Skipped => "skipped",
            };
            let _ = writeln!(
                out,
                "| {:.1} s | {} | {status} {} | {} |",
                a.elapsed_s,
                cell(&a.action),
                cell(&a.detail),
                cell(&a.cause)
            );
        }
        out.push('\n');
    }
    out.push_str(&super::flips::render(&s.comparison(), true));
    out
}

/// Where the time went: coverage, and per request name the component with the largest share.
fn breakdown(out: &mut String, b: &Breakdown) {
    let c = &b.coverage;
    let _ = write!(
        out,
        "### Where the time went\n\n{} of {} sampled requests found their server spans",
        c.joined, c.sampled
    );
    if let Some(r) = c.ratio() {
        let _ = write!(out, " ({:.1}% coverage)", r * 100.0);
    }
    let _ = writeln!(
        out,
        "; {} spans dropped, {} late.\n",
        c.spans_dropped, c.spans_late
    );
    let joined: Vec<_> = b.requests.iter().filter(|r| r.joined > 0).collect();
    if joined.is_empty() {
        out.push_str("No sampled request was joined to its server spans.\n\n");
        return;
    }
    out.push_str("| name | joined | p95 ms | top contributor | share | its p95 ms |\n|---|--:|--:|---|--:|--:|\n");
    for r in joined.iter().take(MAX_ROWS) {
        let (label, share, p95) =
            r.top_contributor()
                .map_or(("-", String::new(), String::new()), |c| {
                    (
                        c.label.as_str(),
                        format!("{:.1}%", c.share * 100.0),
                        ms(c.figures.p95),
                    )
                });
        let _ = writeln!(
            out,
            "| {} | {} of {} | {} | **{}** | {share} | {p95} |",
            cell(&format!("{} {}", r.method, r.name)),
            r.joined,
            r.sampled,
            ms(r.total.p95),
            cell(label),
        );
    }
    if joined.len() > MAX_ROWS {
        let _ = writeln!(
            out,
            "| … {} more in the JSON result | | | | | |",
            joined.len() - MAX_ROWS
        );
    }
    out.push('\n');
}

fn generator_line(s: &Summary) -> String {
    let g = &s.outcome.generator;
    let cpu = match (g.cpu_avg_pct, g.cpu_max_pct) {
        (Some(a), Some(m)) => format!("CPU {a:.0}% avg, {m:.0}% max of {} CPU(s)", g.cpu_cores),
        (Some(a), None) => format!("CPU {a:.0}% avg of {} CPU(s)", g.cpu_cores),
        _ => "CPU not measured".into(),
    };
    let mem = g
        .peak_rss_mb
        .map_or(String::new(), |m| format!(", peak memory {m:.0} MB"));
    if g.healthy {
        format!("{cpu}{mem}: the generator was not the bottleneck.")
    } else {
        format!(
            "⚠️ **Results not trustworthy**: {}. ({cpu}{mem})",
            g.reasons.join("; ")
        )
    }
}

/// The outcome sections of the plain-text summary: thresholds, open model, generator,
/// scenarios.
pub fn outcome_text(s: &Summary) -> String {
    let mut out = String::new();
    let o = &s.outcome;
    if let Some(a) = &o.arrivals {
        let d = &a.schedule_delay_ms;
        let _ = writeln!(
            out,
            "\nOpen model: {} of {} intended arrivals started ({:.1}%), {} dropped (no free VU), {}/{} VUs; scheduling delay p50 {} / p99 {} / max {} ms",
            a.started,
            a.intended,
            a.achieved_pct,
            a.dropped_iterations,
            a.vus_allocated,
            a.max_vus,
            ms(d.p50),
            ms(d.p99),
            ms(d.max)
        );
    }
    let totals = s.scenario_totals();
    if !totals.is_empty() {
        let _ = writeln!(out, "\nScenarios");
        for (sc, (_, t)) in o.scenarios.iter().zip(&totals) {
            let _ = writeln!(
                out,
                "  {:<20} from {:>5.0} s  {:>9} reqs  {:>7} failed  {:>9.1} req/s  p95 {} ms{}",
                sc.name,
                sc.start_time.as_secs_f64(),
                t.request_count,
                t.failure_count,
                t.rps,
                ms(t.latency_ms.p95),
                sc.arrivals.as_ref().map_or(String::new(), |a| format!(
                    "  {} dropped",
                    a.dropped_iterations
                ))
            );
        }
    }
    let g = generator_line(s).replace("⚠️ **Results not trustworthy**", "RESULTS NOT TRUSTWORTHY");
    let _ = writeln!(out, "\nGenerator: {g}");
    if !o.thresholds.is_empty() {
        let failed = o.thresholds.iter().filter(|t| !t.passed).count();
        let _ = writeln!(
            out,
            "\nThresholds ({} of {} passed)",
            o.thresholds.len() - failed,
            o.thresholds.len()
        );
        for t in &o.thresholds {
            let mark = match (t.passed, t.aborted) {
                (true, _) => "PASS ",
                (false, true) => "ABORT",
                (false, false) => "FAIL ",
            };
            let _ = writeln!(
                out,
                "  {mark} {:<40} {:<24} {}",
                t.expression, t.scope, t.detail
            );
            if !t.requests.is_empty() {
                let _ = writeln!(out, "        {} covers {}", t.scope, t.requests.join(", "));
            }
        }
    }
    out
}

/// Write the Markdown summary to `path`, whole or not at all ([`super::write_file`]).
pub fn write(s: &Summary, path: &Path) -> std::io::Result<()> {
    super::write_file(path, render(s).as_bytes())
}

/// Append the Markdown summary to `path` (GitHub's `$GITHUB_STEP_SUMMARY`).
pub fn append(s: &Summary, path: &Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(render(s).as_bytes())
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::executor::{
        ArrivalReport, ArrivalSettings, GeneratorHealth, LoadSettings, StopReason,
    };
    use crate::report::Outcome;
    use crate::run::RunInfo;
    use crate::sample::{NameId, Phases, Sample};
    use crate::stats::{LatencyHistogram, StatsSet, TimeSeries};
    use crate::thresholds::{parse, Breach, NameTags};

    fn sample(name: u32, ms: u64, delay: u64, status: u16) -> Sample {
        Sample {
            name: NameId(name),
            started_at: SystemTime::UNIX_EPOCH,
            total: Duration::from_millis(ms + delay),
            schedule_delay: Duration::from_millis(delay),
            phases: Phases::default(),
            status: Some(status),
            bytes_sent: 0,
            bytes_received: 0,
            content_length: 0,
            new_connection: false,
            failure: (status >= 400)
                .then(|| crate::sample::Failure::new(crate::sample::ErrorKind::Status, "HTTP 500")),
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

    /// A fixed open-model run with one passing, one failing and one aborting threshold.
    pub(crate) fn fixture() -> Summary {
        let mut stats = StatsSet::new(2);
        for i in 0..1000u64 {
            // Open model: every first request of an iteration starts a little after its
            // intended time, a few of them much later.
            stats.record(&sample(
                0,
                10 + i % 50,
                if i % 100 == 0 { 40 } else { 1 },
                200,
            ));
        }
        for i in 0..100u64 {
            stats.record(&sample(1, 200 + i, 1, if i < 5 { 500 } else { 200 }));
        }
        let mut delays = LatencyHistogram::new();
        delays.record(Duration::from_micros(80));
        let mut s = Summary {
            run: RunInfo {
                id: "20261122-000000-abc123".into(),
                scenario: "checkout".into(),
                tags: [("env".to_owned(), "ci".to_owned())].into(),
            },
            load: LoadSettings {
                run_time: Some(Duration::from_secs(10)),
                arrival: Some(ArrivalSettings {
                    rate_per_s: 110.0,
                    pre_allocated_vus: 10,
                    max_vus: 50,
                }),
                ..LoadSettings::default()
            },
            host: Some("http://127.0.0.1:8080".into()),
            started_at: SystemTime::UNIX_EPOCH,
            ended_at: SystemTime::UNIX_EPOCH + Duration::from_secs(10),
            duration: Duration::from_secs(10),
            stop_reason: StopReason::Aborted("threshold `error_rate < 1%, abort` failed".into()),
            killed: false,
            names: vec![
                ("GET".into(), "/products".into()),
                ("POST".into(), "/checkout".into()),
            ],
            stats,
            series: TimeSeries::new(4),
            timeline: Vec::new(),
            sinks: Vec::new(),
            dropped_samples: 0,
            outcome: Outcome {
                dropped_iterations: 2,
                arrivals: Some(ArrivalReport {
                    intended: 1102,
                    started: 1100,
                    dropped_iterations: 2,
                    achieved_pct: 99.8,
                    vus_allocated: 12,
                    max_vus: 50,
                    schedule_delay_ms: delays.percentiles(),
                }),
                generator: GeneratorHealth {
                    healthy: false,
                    reasons: vec![
                        "the generator's CPU was above 90% of its 1 CPU(s) for 6 s in a row".into(),
                    ],
                    cpu_cores: 1.0,
                    cpu_avg_pct: Some(93.0),
                    cpu_max_pct: Some(99.0),
                    cpu_saturated_s: 6.0,
                    cpu_seconds: Some(9.3),
                    peak_rss_mb: Some(41.0),
                    achieved_pct: Some(99.8),
                },
                breaches: vec![Breach {
                    index: 3,
                    elapsed: Duration::from_secs(4),
                    aborted: true,
                }],
                scenarios: Vec::new(),
                thresholds: Vec::new(),
                name_tags: NameTags::from_names(&[
                    ("GET /products", &["browse"]),
                    ("POST /checkout", &["checkout", "pay"]),
                ]),
                failures: Vec::new(),
                segments: Vec::new(),
                actions: Vec::new(),
                breakdown: None,
                scenario_hash: None,
                workers: Vec::new(),
            },
        };
        let ts: Vec<_> = [
            "p95 < 300ms",
            "p99{name:POST /checkout} < 250ms",
            "p95{tag:pay} < 300ms",
            "error_rate < 1%, abort",
            "dropped_iterations == 0",
            "generator_healthy",
        ]
        .iter()
        .map(|t| parse(t).unwrap())
        .collect();
        s.evaluate_thresholds(&ts);
        s
    }

    /// Compare with the committed snapshot `src/report/snapshots/NAME`; `UPDATE_SNAPSHOTS=1`
    /// rewrites it (review the diff before committing).
    pub(crate) fn assert_snapshot(name: &str, actual: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/report/snapshots")
            .join(name);
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, actual).unwrap();
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_SNAPSHOTS=1 creates it)", path.display()));
        assert_eq!(actual, expected, "{name} changed:\n{actual}");
    }

    #[test]
    fn markdown_summary_snapshot() {
        assert_snapshot("summary.md", &render(&fixture()));
    }

    #[test]
    fn the_top_contributor_of_each_request_name_is_named_and_no_section_without_a_receiver() {
        let mut s = fixture();
        assert!(!render(&s).contains("Where the time went"));
        s.outcome.breakdown = Some(std::sync::Arc::new(crate::breakdown::Breakdown::example()));
        let md = render(&s);
        assert!(
            md.contains("### Where the time went\n\n148 of 150 sampled requests found their server spans (98.7% coverage); 6 spans dropped, 2 late.\n"),
            "{md}"
        );
        assert!(
            md.contains("| GET /orders | 98 of 100 | 72.0 | **postgresql: SELECT orders** | 55.0% | 39.6 |\n"),
            "{md}"
        );
        assert!(
            md.contains(
                "| GET /search | 50 of 50 | 21.6 | **server self time** | 75.0% | 16.2 |\n"
            ),
            "{md}"
        );
        // Before the open model's section, after the requests.
        let at = md.find("### Where the time went").unwrap();
        assert!(md.find("### Requests").unwrap() < at && at < md.find("### Open model").unwrap());
    }

    #[test]
    fn text_outcome_lists_every_threshold_and_the_generator_verdict() {
        let t = outcome_text(&fixture());
        assert!(t.contains("Thresholds (2 of 6 passed)"), "{t}");
        assert!(
            t.contains("PASS  p95{tag:pay} < 300ms                     tag:pay"),
            "{t}"
        );
        assert!(t.contains("tag:pay covers POST /checkout\n"), "{t}");
        assert!(t.contains("ABORT error_rate < 1%, abort"), "{t}");
        assert!(t.contains("RESULTS NOT TRUSTWORTHY"), "{t}");
        assert!(t.contains("1100 of 1102 intended arrivals started"), "{t}");
    }

    #[test]
    fn appends_to_an_existing_step_summary() {
        let dir = std::env::temp_dir().join(format!("loadlens-md-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("step.md");
        std::fs::write(&p, "# earlier step\n").unwrap();
        append(&fixture(), &p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.starts_with("# earlier step\n## loadlens · checkout"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
