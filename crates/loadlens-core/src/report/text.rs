//! The end-of-run text summary, laid out like Locust's so its users read it at a glance, plus
//! what Locust cannot show: connection phases and errors by kind.

use std::fmt::Write as _;

use super::Summary;
use crate::duration::ms;
use crate::stats::{PhaseStats, RequestSummary};

fn name_width(rows: &[RequestSummary]) -> usize {
    rows.iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(10)
        .clamp(24, 60)
}

fn clip(s: &str, w: usize) -> String {
    if s.chars().count() <= w {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(w.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The full summary text.
pub fn render(summary: &Summary) -> String {
    let mut rows = summary.requests();
    let total = summary.total();
    let w = name_width(&rows);
    let mut out = String::new();

    // Requests table.
    let _ = writeln!(
        out,
        "{:<8} {:<w$} {:>9} {:>16} | {:>7} {:>7} {:>7} {:>7} | {:>9} {:>10}",
        "Type", "Name", "# reqs", "# fails", "Avg", "Min", "Max", "Med", "req/s", "failures/s"
    );
    let rule = format!(
        "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
        "-".repeat(8),
        "-".repeat(w + 1),
        "-".repeat(10),
        "-".repeat(17),
        "-".repeat(8),
        "-".repeat(8),
        "-".repeat(8),
        "-".repeat(8),
        "-".repeat(10),
        "-".repeat(11)
    );
    let line = |out: &mut String, r: &RequestSummary| {
        let fails = format!("{}({:.2}%)", r.failure_count, r.error_rate * 100.0);
        let _ = writeln!(
            out,
            "{:<8} {:<w$} {:>9} {:>16} | {:>7} {:>7} {:>7} {:>7} | {:>9.2} {:>10.2}",
            r.method,
            clip(&r.name, w),
            r.request_count,
            fails,
            ms(r.latency_ms.avg),
            ms(r.latency_ms.min),
            ms(r.latency_ms.max),
            ms(r.latency_ms.p50),
            r.rps,
            r.failures_per_s
        );
    };
    out.push_str(&rule);
    out.push('\n');
    for r in &rows {
        line(&mut out, r);
    }
    out.push_str(&rule);
    out.push('\n');
    line(&mut out, &total);

    // Percentiles.
    let _ = writeln!(
        out,
        "\nResponse time percentiles (ms, HDR histograms: exact to 3 significant digits)"
    );
    let _ = writeln!(
        out,
        "{:<8} {:<w$} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9}",
        "Type", "Name", "50%", "75%", "90%", "95%", "99%", "99.9%", "100%", "# reqs"
    );
    let prule = format!(
        "{}|{}|{}",
        "-".repeat(8),
        "-".repeat(w + 1),
        "-".repeat(8 * 7 + 10)
    );
    out.push_str(&prule);
    out.push('\n');
    rows.push(total.clone());
    let n = rows.len();
    for (i, r) in rows.iter().enumerate() {
        if i == n - 1 {
            out.push_str(&prule);
            out.push('\n');
        }
        let l = &r.latency_ms;
        let _ = writeln!(
            out,
            "{:<8} {:<w$} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9}",
            r.method,
            clip(&r.name, w),
            ms(l.p50),
            ms(l.p75),
            ms(l.p90),
            ms(l.p95),
            ms(l.p99),
            ms(l.p99_9),
            ms(l.max),
            r.request_count
        );
        // Open model: the same percentiles from the actual start, beside the corrected ones.
        if let Some(u) = &r.latency_uncorrected_ms {
            let _ = writeln!(
                out,
                "{:<8} {:<w$} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>9}",
                "",
                "  (uncorrected)",
                ms(u.p50),
                ms(u.p75),
                ms(u.p90),
                ms(u.p95),
                ms(u.p99),
                ms(u.p99_9),
                ms(u.max),
                ""
            );
        }
    }
    if rows.iter().any(|r| r.latency_uncorrected_ms.is_some()) {
        let _ = writeln!(
            out,
            "Open model: latency counts from each arrival's intended start (coordinated omission);\n\
             (uncorrected) rows count from the actual start."
        );
    }

    // Connection phases.
    let _ = writeln!(
        out,
        "\nConnection phases (ms, avg / p95; new = requests that opened a connection)"
    );
    let _ = writeln!(
        out,
        "{:<8} {:<w$} {:>6} {:>15} {:>15} {:>15} {:>15} {:>15}",
        "Type", "Name", "new", "DNS", "Connect", "TLS", "TTFB", "Download"
    );
    out.push_str(&prule);
    out.push('\n');
    let ph = |p: &PhaseStats| {
        if p.count == 0 {
            "-".to_owned()
        } else {
            format!("{} / {}", ms(p.avg), ms(p.p95))
        }
    };
    for (i, r) in rows.iter().enumerate() {
        if i == n - 1 {
            out.push_str(&prule);
            out.push('\n');
        }
        let p = &r.phases_ms;
        let _ = writeln!(
            out,
            "{:<8} {:<w$} {:>6} {:>15} {:>15} {:>15} {:>15} {:>15}",
            r.method,
            clip(&r.name, w),
            r.new_connections,
            ph(&p.dns),
            ph(&p.connect),
            ph(&p.tls),
            ph(&p.ttfb),
            ph(&p.download)
        );
    }

    // Errors.
    let errors = summary.errors();
    if !errors.is_empty() {
        let by_kind: Vec<String> = summary
            .stats
            .errors
            .by_kind()
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        let _ = writeln!(out, "\nError report ({})", by_kind.join(", "));
        let _ = writeln!(
            out,
            "{:>13}  {:<8} {:<w$} Error",
            "# occurrences", "Type", "Name"
        );
        let _ = writeln!(out, "{}|{}", "-".repeat(14), "-".repeat(w + 40));
        for (m, nm, e) in errors.iter().take(30) {
            let _ = writeln!(
                out,
                "{:>13}  {:<8} {:<w$} {}: {}",
                e.count,
                m,
                clip(nm, w),
                e.kind,
                e.message
            );
        }
        if errors.len() > 30 {
            let _ = writeln!(
                out,
                "  … {} more distinct errors in the JSON/CSV reports",
                errors.len() - 30
            );
        }
        if summary.stats.errors.overflow > 0 {
            let _ = writeln!(
                out,
                "  {} failures not itemised (more than {} distinct errors)",
                summary.stats.errors.overflow,
                crate::stats::ErrorCatalogue::MAX_ENTRIES
            );
        }
    }

    out.push_str(&crate::report::markdown::outcome_text(summary));

    for f in &summary.outcome.failures {
        let _ = writeln!(out, "\nFAILED by a guard: {f}");
    }
    if !summary.outcome.actions.is_empty() {
        let _ = writeln!(out, "\nActions");
        for a in &summary.outcome.actions {
            let _ = writeln!(out, "  {:>7.1} s  {}", a.elapsed_s, a.line());
        }
    }
    out.push_str(&crate::report::flips::render(&summary.comparison(), false));

    let changes = crate::report::markdown::config_changes(summary);
    if !changes.is_empty() {
        let _ = writeln!(out, "\nFeature flags and configs:");
        for (at, message) in changes {
            let _ = writeln!(out, "  {at:>7.1} s  {message}");
        }
    }

    if let Some(b) = &summary.outcome.breakdown {
        let _ = writeln!(out, "\n{}", coverage_line(&b.coverage));
        if b.coverage.spans_dropped > 0 {
            let _ = writeln!(
                out,
                "  {} spans dropped: more sampled requests waited for their spans than the join keeps, or a trace had too many spans; a shorter --trace-join-window (longer than the service's export delay) or a lower sampling ratio joins more",
                b.coverage.spans_dropped
            );
        }
        breakdown(&mut out, b);
    }

    // Sinks and drops (a sink that had nothing to send and no error says nothing).
    for s in &summary.sinks {
        if s.delivered + s.failed + s.dropped == 0 && s.errors.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\n{}: {} delivered, {} failed, {} dropped{}",
            s.name,
            s.delivered,
            s.failed,
            s.dropped,
            if s.errors.is_empty() {
                String::new()
            } else {
                format!(" ({})", s.errors.join("; "))
            }
        );
    }
    if summary.dropped_samples > 0 {
        let _ = writeln!(
            out,
            "\n{} samples dropped on the way to exporters (queue full)",
            summary.dropped_samples
        );
    }
    out
}

/// Where the time went, per request name with joined requests: its p95 and the component
/// with the largest share (the HTML report and the JSON result have every component).
fn breakdown(out: &mut String, b: &crate::breakdown::Breakdown) {
    let joined: Vec<_> = b.requests.iter().filter(|r| r.joined > 0).collect();
    if joined.is_empty() {
        return;
    }
    let w = joined
        .iter()
        .map(|r| r.name.chars().count())
        .max()
        .unwrap_or(10)
        .clamp(24, 60);
    let _ = writeln!(
        out,
        "\nWhere the time went (ms; the component with the largest share of each name's time)"
    );
    let _ = writeln!(
        out,
        "{:<8} {:<w$} {:>15} {:>7} | {:<36} {:>6} {:>7}",
        "Type", "Name", "joined", "p95", "top contributor", "share", "its p95"
    );
    let rule = format!(
        "{}|{}|{}|{}",
        "-".repeat(8),
        "-".repeat(w + 1),
        "-".repeat(23),
        "-".repeat(52)
    );
    out.push_str(&rule);
    out.push('\n');
    for r in joined {
        let (label, share, p95) =
            r.top_contributor()
                .map_or(("-".to_owned(), String::new(), String::new()), |c| {
                    (
                        clip(&c.label, 36),
                        format!("{:.0}%", c.share * 100.0),
                        ms(c.figures.p95),
                    )
                });
        let _ = writeln!(
            out,
            "{:<8} {:<w$} {:>15} {:>7} | {:<36} {:>6} {:>7}",
            r.method,
            clip(&r.name, w),
            format!("{} of {}", r.joined, r.sampled),
            ms(r.total.p95),
            label,
            share,
            p95
        );
    }
}

/// The trace receiver's coverage in one line: how many sampled requests found their server
/// spans, and what became of the spans received.
pub fn coverage_line(c: &crate::breakdown::Coverage) -> String {
    let pct = c.ratio().map_or_else(
        || "no sampled request".to_owned(),
        |r| format!("{:.1}% coverage", r * 100.0),
    );
    let mut line = format!(
        "traces: {} sampled requests, {} joined to their server spans ({pct}); spans: {} received, {} joined, {} dropped, {} late, {} foreign",
        c.sampled, c.joined, c.spans_received, c.spans_joined, c.spans_dropped, c.spans_late, c.spans_foreign
    );
    if c.rejected_exports > 0 {
        line.push_str(&format!(", {} exports rejected", c.rejected_exports));
    }
    line
}

/// One-paragraph header: run id, scenario, duration, why it stopped, tags.
pub fn header(summary: &Summary) -> String {
    let tags: Vec<String> = summary
        .run
        .tags
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "Run {} · {} · {:.1}s · {}{}{}",
        summary.run.id,
        summary.run.scenario,
        summary.duration.as_secs_f64(),
        crate::run::describe(&summary.stop_reason),
        if summary.killed {
            " (users stopped without waiting)"
        } else {
            ""
        },
        if tags.is_empty() {
            String::new()
        } else {
            format!("\nTags: {}", tags.join(" "))
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::SinkReport;

    #[test]
    fn the_summary_says_the_trace_coverage_when_a_receiver_ran() {
        let mut s = crate::report::markdown::tests::fixture();
        assert!(!render(&s).contains("traces: "));
        s.outcome.breakdown = Some(std::sync::Arc::new(crate::breakdown::Breakdown::example()));
        assert!(
            render(&s).contains(
                "\ntraces: 150 sampled requests, 148 joined to their server spans (98.7% coverage); spans: 650 received, 640 joined, 6 dropped, 2 late, 2 foreign\n"
            ),
            "{}",
            render(&s)
        );
        assert!(
            render(&s).contains("\n  6 spans dropped: more sampled requests waited"),
            "{}",
            render(&s)
        );
        let none = crate::breakdown::Coverage {
            rejected_exports: 3,
            ..Default::default()
        };
        assert_eq!(
            coverage_line(&none),
            "traces: 0 sampled requests, 0 joined to their server spans (no sampled request); spans: 0 received, 0 joined, 0 dropped, 0 late, 0 foreign, 3 exports rejected"
        );
    }

    #[test]
    fn the_summary_names_each_request_names_top_contributor_when_a_receiver_ran() {
        let mut s = crate::report::markdown::tests::fixture();
        assert!(!render(&s).contains("Where the time went"));
        s.outcome.breakdown = Some(std::sync::Arc::new(crate::breakdown::Breakdown::example()));
        let text = render(&s);
        let rows: Vec<&str> = text
            .split("Where the time went")
            .nth(1)
            .expect("a section")
            .lines()
            .skip(3)
            .take_while(|l| !l.is_empty())
            .collect();
        let cells = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(
            rows.iter().map(|l| cells(l)).collect::<Vec<_>>(),
            [
                "GET /orders 98 of 100 72.0 | postgresql: SELECT orders 55% 39.6",
                "GET /search 50 of 50 21.6 | server self time 75% 16.2",
            ],
            "{text}"
        );
    }

    #[test]
    fn a_sink_with_nothing_sent_and_no_error_is_left_out_of_the_summary() {
        let mut s = crate::report::markdown::tests::fixture();
        let report = |name: &str, delivered, errors: Vec<String>| SinkReport {
            name: name.into(),
            delivered,
            failed: 0,
            dropped: 0,
            errors,
        };
        s.sinks = vec![
            report("traces", 0, Vec::new()),
            report("otlp", 12, Vec::new()),
            report("datadog", 0, vec!["key refused".into()]),
        ];
        let text = render(&s);
        assert!(!text.contains("traces: 0 delivered"), "{text}");
        assert!(
            text.contains("\notlp: 12 delivered, 0 failed, 0 dropped\n"),
            "{text}"
        );
        assert!(
            text.contains("\ndatadog: 0 delivered, 0 failed, 0 dropped (key refused)\n"),
            "{text}"
        );
    }
}
