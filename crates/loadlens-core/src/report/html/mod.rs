//! The self-contained HTML report: one file that opens from disk with no network. A small
//! inline script ([`HOVER_JS`]) shows values under the mouse on every chart; without it the
//! report reads the same, each value in a `<title>` (the browser's own tooltip).
//!
//! It is generated from a [`ResultDoc`] alone — the same document `--json` writes — so
//! `loadlens report RESULT.json --html out.html` rebuilds it from a saved result. Charts are
//! inline SVG drawn by [`svg`] (those over time by [`over_time`], shared with the dashboard); styles are inlined from `style.css`. Sections: run header and
//! verdict, charts over time with markers for timeline events, the timeline, the per-request
//! tables (Locust's columns, percentiles, connection phases), where the time went (the service's
//! own spans joined to ours, [`breakdown`]; only when the run had a trace receiver), percentile
//! curves, the connection-phase breakdown, errors, sinks, and any section of the document this build does
//! not know yet (rendered generically, so a newer result never loses information here).
//!
//! Size is bounded: the series holds at most 3,600 points and each request's curve at most
//! [`crate::stats::LatencyHistogram::PERCENTILE_CURVE_POINTS`]; a one-hour run with 50 request
//! names stays well under 5 MB (checked by a test).

pub mod breakdown;
mod flips;
mod outcome;
pub mod over_time;
pub mod palette;
pub mod svg;

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use super::json::ResultDoc;
use crate::duration::ms as fmt_ms;
use crate::stats::{PhaseStats, RequestSummary};
use svg::{Bar, Line};

/// The hover script of every chart (crosshair and tooltip), for the report and the dashboard;
/// the report reads the same without it (see `hover.js`).
pub const HOVER_JS: &str = include_str!("hover.js");

/// The report's style sheet without the palette (see [`style`]).
const STYLE: &str = include_str!("style.css");

/// The report's style sheet, the [`palette`]'s colours first (also inlined by the live web
/// dashboard, which draws the same charts).
pub fn style() -> String {
    palette::css_vars() + STYLE
}

/// Top-level keys of the result that have a dedicated section (or, as `histograms`, are data
/// for machines: `loadlens merge`); any other key gets a generic one (a merged result's
/// `workers` is a table).
const KNOWN_KEYS: [&str; 15] = [
    "format_version",
    "tool",
    "run",
    "load",
    "aggregate",
    "requests",
    "errors",
    "errors_by_kind",
    "errors_overflow",
    "series",
    "timeline",
    "sinks",
    "dropped_samples",
    "breakdown",
    "histograms",
];

/// Request names drawn in the combined percentile-curve chart (the busiest ones); every name
/// also gets a small chart of its own.
const CURVES_IN_MAIN_CHART: usize = 8;

/// Escape text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Write the report of `doc` to `path`, whole or not at all ([`super::write_file`]).
pub fn write(doc: &ResultDoc, path: &Path) -> std::io::Result<()> {
    super::write_file(path, render(doc).as_bytes())
}

/// The whole report as one HTML document.
pub fn render(doc: &ResultDoc) -> String {
    let mut out = String::with_capacity(256 * 1024);
    let title = format!("loadlens · {} · {}", doc.run.scenario, doc.run.id);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"generator\" content=\"loadlens {}\"><title>{}</title><style>{}</style></head><body>",
        esc(&doc.tool.version),
        esc(&title),
        style()
    );
    // Sections added to the result by other features are read from its JSON form (see
    // `outcome`), so this report shows whatever the document holds.
    let value = serde_json::to_value(doc).unwrap_or(Value::Null);
    let extra = outcome::extra_sections(&value);
    header(&mut out, doc, &value);
    nav(&mut out, doc, &value, &extra);
    outcome::thresholds(&mut out, &value);
    charts_over_time(&mut out, doc);
    timeline(&mut out, doc);
    outcome::arrivals(&mut out, &value);
    request_tables(&mut out, doc);
    breakdown::section(
        &mut out,
        doc.breakdown.as_ref(),
        doc.run.duration_s,
        &doc.timeline,
    );
    outcome::scenarios(&mut out, &value);
    flips::actions(&mut out, &value);
    flips::comparison(&mut out, &value);
    curves(&mut out, doc);
    phases(&mut out, doc);
    errors(&mut out, doc);
    sinks(&mut out, doc);
    for (key, v) in &extra {
        outcome::generic_section(&mut out, key, v);
    }
    let _ = writeln!(
        out,
        "<footer>Generated by loadlens {} from a result of format version {}. \
         Latencies from HDR histograms (3 significant digits); points of a downsampled series \
         average their parts' percentiles.</footer><script>{HOVER_JS}</script></body></html>",
        esc(&doc.tool.version),
        doc.format_version
    );
    out
}

fn section_open(out: &mut String, id: &str, title: &str) {
    let _ = write!(out, r#"<section id="{}"><h2>{}</h2>"#, esc(id), esc(title));
}

fn header(out: &mut String, doc: &ResultDoc, value: &Value) {
    let r = &doc.run;
    let verdict = serde_json::to_value(r.verdict)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let _ = write!(
        out,
        r#"<header><h1>{} <span class="verdict {v}" id="verdict">{v}</span></h1><dl class="meta">"#,
        esc(&r.scenario),
        v = esc(&verdict)
    );
    let mut item = |k: &str, v: String| {
        let _ = write!(out, "<div><dt>{}</dt><dd>{v}</dd></div>", esc(k));
    };
    item(
        "Run id",
        format!("<code id=\"run-id\">{}</code>", esc(&r.id)),
    );
    if let Some(h) = &r.host {
        item("Host", format!("<code>{}</code>", esc(h)));
    }
    item("Started", esc(&r.started_at));
    item("Ended", esc(&r.ended_at));
    item("Duration", format!("{:.1} s", r.duration_s));
    item(
        "Stop reason",
        format!(
            "{}{}",
            esc(&r.stop_reason),
            if r.killed {
                " (users stopped without waiting)"
            } else {
                ""
            }
        ),
    );
    let load = outcome::load_text(&value["load"]);
    item("Load", esc(&load));
    if !r.tags.is_empty() {
        let tags: String = r
            .tags
            .iter()
            .map(|(k, v)| format!(r#"<span class="tag">{}={}</span>"#, esc(k), esc(v)))
            .collect();
        item("Tags", tags);
    }
    let generator = outcome::generator_item(value);
    if let Some((text, healthy)) = &generator {
        let class = if *healthy { "" } else { r#" class="warn""# };
        item("Generator", format!("<span{class}>{text}</span>"));
    }
    // Fields of the run section added after this build: shown, not lost.
    if let Value::Object(run) = &value["run"] {
        for (k, v) in run {
            if ![
                "id",
                "scenario",
                "host",
                "tags",
                "started_at",
                "ended_at",
                "duration_s",
                "verdict",
                "stop_reason",
                "killed",
            ]
            .contains(&k.as_str())
            {
                item(k, outcome::inline_value(v));
            }
        }
    }
    out.push_str("</dl>");
    let a = &doc.aggregate;
    let _ = write!(
        out,
        r#"<div class="kpis" id="kpis"><div class="c-requests"><b>{}</b>requests</div><div class="c-failures"><b>{}</b>failures ({:.2}%)</div><div class="c-requests"><b>{:.1}</b>req/s</div><div class="c-p50"><b>{}</b>p50 ms</div><div class="c-p95"><b>{}</b>p95 ms</div><div class="c-p99"><b>{}</b>p99 ms</div><div><b>{}</b>max ms</div></div></header>"#,
        a.request_count,
        a.failure_count,
        a.error_rate * 100.0,
        a.rps,
        fmt_ms(a.latency_ms.p50),
        fmt_ms(a.latency_ms.p95),
        fmt_ms(a.latency_ms.p99),
        fmt_ms(a.latency_ms.max)
    );
}

fn nav(out: &mut String, doc: &ResultDoc, value: &Value, extra: &[(String, Value)]) {
    out.push_str("<nav>");
    let present = |k: &str| {
        value[k].as_array().is_some_and(|a| !a.is_empty())
            || value[k].is_object()
            || value[k].as_u64().is_some_and(|n| n > 0)
    };
    let mut links = Vec::new();
    if present("thresholds") {
        links.push(("thresholds", "Thresholds"));
    }
    links.extend([("over-time", "Over time"), ("timeline", "Timeline")]);
    if present("arrivals") || present("dropped_iterations") {
        links.push(("arrivals", "Open model"));
    }
    links.push(("requests", "Requests"));
    if doc.breakdown.is_some() {
        links.push(("breakdown", "Where the time went"));
    }
    if present("scenarios") {
        links.push(("scenarios", "Scenarios"));
    }
    if present("actions") {
        links.push(("actions", "Actions"));
    }
    if present("comparison") {
        links.push(("comparison", "Before/after"));
    }
    links.extend([
        ("curves", "Percentile curves"),
        ("phases", "Connection phases"),
        ("errors", "Errors"),
    ]);
    if !doc.sinks.is_empty() || doc.dropped_samples > 0 {
        links.push(("sinks", "Sinks"));
    }
    for (id, label) in links {
        let _ = write!(out, r##"<a href="#{id}">{label}</a>"##);
    }
    for (key, _) in extra {
        let _ = write!(
            out,
            r##"<a href="#x-{}">{}</a>"##,
            esc(key),
            esc(&outcome::title_of(key))
        );
    }
    out.push_str("</nav>");
}

fn kind_name<T: serde::Serialize>(k: &T) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn charts_over_time(out: &mut String, doc: &ResultDoc) {
    section_open(out, "over-time", "Over time");
    let series = over_time::Series {
        points: &doc.series.points,
        resolution_s: doc.series.resolution_s,
        min_span_s: doc.run.duration_s,
        timeline: &doc.timeline,
        fallback: true,
    };
    match over_time::charts(&series) {
        Some(charts) => out.push_str(&charts),
        None => out.push_str(
            "<p class=\"empty\">No time series: the run ended before its first second.</p>",
        ),
    }
    out.push_str("<h3 id=\"over-time-by-name\">By request name</h3>");
    let labels: Vec<String> = doc
        .series
        .requests
        .iter()
        .map(|s| {
            if s.method.is_empty() {
                s.name.clone()
            } else {
                format!("{} {}", s.method, s.name)
            }
        })
        .collect();
    let names: Vec<over_time::NameSeries<'_>> = doc
        .series
        .requests
        .iter()
        .zip(&labels)
        .map(|(s, label)| over_time::NameSeries {
            label,
            resolution_s: s.resolution_s,
            points: &s.points,
        })
        .collect();
    match over_time::by_name(&names, &series, usize::MAX) {
        Some(charts) => out.push_str(&charts),
        None => out.push_str(
            "<p class=\"empty\">No series per request name (a result of an older loadlens, or no request completed).</p>",
        ),
    }
    let without = doc.requests.len().saturating_sub(names.len());
    if !names.is_empty() && without > 0 {
        let _ = write!(
            out,
            "<p class=\"note\">{without} request names have no series of their own (only the first {} names keep one).</p>",
            crate::stats::TimeSeries::MAX_NAMES
        );
    }
    out.push_str("</section>");
}

fn timeline(out: &mut String, doc: &ResultDoc) {
    section_open(out, "timeline", "Timeline");
    if doc.timeline.is_empty() {
        out.push_str("<p class=\"empty\">No events.</p></section>");
        return;
    }
    out.push_str(
        "<table class=\"events\"><thead><tr><th>#</th><th>At</th><th>Time</th><th>Event</th><th>Message</th></tr></thead><tbody>",
    );
    for (i, e) in doc.timeline.iter().enumerate() {
        let kind = kind_name(&e.kind);
        let _ = write!(
            out,
            r#"<tr class="{k}"><td class="num">{}</td><td class="num">{:.1} s</td><td>{}</td><td>{k}</td><td>{}</td></tr>"#,
            i + 1,
            e.elapsed_s,
            esc(&e.at),
            esc(&e.message),
            k = esc(&kind)
        );
    }
    out.push_str("</tbody></table></section>");
}

fn name_cells(r: &RequestSummary) -> String {
    format!(
        r#"<td>{}</td><td class="name">{}</td>"#,
        esc(&r.method),
        esc(&r.name)
    )
}

/// A per-request table: one body row per request name, the aggregate in the footer.
pub(crate) struct Rows<'a> {
    requests: &'a [RequestSummary],
    aggregate: &'a RequestSummary,
}

impl<'a> Rows<'a> {
    fn of(doc: &'a ResultDoc) -> Self {
        Rows {
            requests: &doc.requests,
            aggregate: &doc.aggregate,
        }
    }
}

fn table(
    out: &mut String,
    id: &str,
    caption: &str,
    head: &[&str],
    doc: Rows<'_>,
    row: &dyn Fn(&RequestSummary) -> String,
) {
    let _ = write!(
        out,
        r#"<table class="stats per-request" id="{id}"><caption>{}</caption><thead><tr><th>Type</th><th>Name</th>"#,
        esc(caption)
    );
    for h in head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for r in doc.requests {
        let _ = write!(
            out,
            r#"<tr data-name="{}">{}{}</tr>"#,
            esc(&r.name),
            name_cells(r),
            row(r)
        );
    }
    let _ = write!(
        out,
        r#"</tbody><tfoot><tr data-name="Aggregated">{}{}</tr></tfoot></table>"#,
        name_cells(doc.aggregate),
        row(doc.aggregate)
    );
}

fn num(v: impl std::fmt::Display) -> String {
    format!(r#"<td class="num">{v}</td>"#)
}

/// Headings of the request statistics table (after Type and Name).
const STATS_HEAD: [&str; 11] = [
    "# Requests",
    "# Fails",
    "Fail %",
    "Average",
    "Min",
    "Max",
    "Median",
    "Average size (bytes)",
    "RPS",
    "Failures/s",
    "Status codes",
];

/// Cells of the request statistics table (Locust's columns, plus the failure ratio and status
/// codes).
fn stats_row(r: &RequestSummary) -> String {
    let codes: Vec<String> = r
        .status_codes
        .iter()
        .map(|(c, n)| format!("{c}×{n}"))
        .collect();
    [
        num(r.request_count),
        num(r.failure_count),
        num(format!("{:.2}", r.error_rate * 100.0)),
        num(fmt_ms(r.latency_ms.avg)),
        num(fmt_ms(r.latency_ms.min)),
        num(fmt_ms(r.latency_ms.max)),
        num(fmt_ms(r.latency_ms.p50)),
        num(format!("{:.0}", r.avg_content_bytes)),
        num(format!("{:.2}", r.rps)),
        num(format!("{:.2}", r.failures_per_s)),
        num(esc(&codes.join(" "))),
    ]
    .concat()
}

fn request_tables(out: &mut String, doc: &ResultDoc) {
    section_open(out, "requests", "Requests");
    table(
        out,
        "request-stats",
        "Request statistics (times in ms)",
        &STATS_HEAD,
        Rows::of(doc),
        &stats_row,
    );
    table(
        out,
        "response-times",
        "Response time percentiles (ms)",
        &[
            "50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%",
        ],
        Rows::of(doc),
        &|r| {
            let l = &r.latency_ms;
            [
                l.p50, l.p66, l.p75, l.p80, l.p90, l.p95, l.p98, l.p99, l.p99_9, l.p99_99, l.max,
            ]
            .iter()
            .map(|v| num(fmt_ms(*v)))
            .collect()
        },
    );
    if doc
        .requests
        .iter()
        .any(|r| r.latency_uncorrected_ms.is_some())
    {
        table(
            out,
            "response-times-uncorrected",
            "Response time from the actual start, without coordinated-omission correction (ms)",
            &["50%", "90%", "95%", "99%", "99.9%", "100%"],
            Rows::of(doc),
            &|r| match &r.latency_uncorrected_ms {
                Some(l) => [l.p50, l.p90, l.p95, l.p99, l.p99_9, l.max]
                    .iter()
                    .map(|v| num(fmt_ms(*v)))
                    .collect(),
                None => num("-").repeat(6),
            },
        );
    }
    out.push_str("</section>");
}

fn curve_line(r: &RequestSummary, color: &'static str, width: f64, label: String) -> Line {
    // Results of an older loadlens end their curves at `[max, 1.0]`: the maximum goes where the
    // samples stop, as in curves written now.
    let top = crate::stats::LatencyHistogram::highest_quantile(r.request_count);
    Line {
        label,
        color,
        width,
        points: r
            .latency_curve
            .iter()
            .map(|[v, q]| Some((if *q >= 1.0 { top } else { *q }, *v)))
            .collect(),
    }
}

fn label_of(r: &RequestSummary) -> String {
    if r.method.is_empty() {
        r.name.clone()
    } else {
        format!("{} {}", r.method, r.name)
    }
}

fn curves(out: &mut String, doc: &ResultDoc) {
    section_open(out, "curves", "Latency percentile curves");
    if doc.aggregate.latency_curve.is_empty() {
        out.push_str("<p class=\"empty\">This result has no percentile curves (written by an older loadlens, or no request completed).</p></section>");
        return;
    }
    let mut busiest: Vec<&RequestSummary> = doc.requests.iter().collect();
    busiest.sort_by_key(|r| std::cmp::Reverse(r.request_count));
    let mut lines = vec![curve_line(
        &doc.aggregate,
        palette::AGGREGATE,
        2.5,
        "Aggregated".into(),
    )];
    for (i, r) in busiest.iter().take(CURVES_IN_MAIN_CHART).enumerate() {
        lines.push(curve_line(r, palette::nth(i), 1.5, label_of(r)));
    }
    let title = if doc.requests.len() > CURVES_IN_MAIN_CHART {
        format!(
            "Aggregated and the {CURVES_IN_MAIN_CHART} busiest of {} request names",
            doc.requests.len()
        )
    } else {
        "Aggregated and every request name".into()
    };
    out.push_str(&svg::curve_chart(
        "chart-curves",
        &title,
        &lines,
        svg::Style {
            small: false,
            fallback: true,
        },
    ));
    out.push_str("<p class=\"note\">Each curve ends at its maximum, at the highest percentile its number of samples supports (1 − 1/n: 99.74 % for 385 samples).</p>");
    let _ = write!(
        out,
        r#"<details id="curves-each" open><summary>One chart per request name ({})</summary><div class="grid">"#,
        doc.requests.len()
    );
    for (i, r) in doc.requests.iter().enumerate() {
        out.push_str(&svg::curve_chart(
            &format!("curve-{i}"),
            &label_of(r),
            &[curve_line(r, palette::REQUESTS, 1.5, label_of(r))],
            svg::Style {
                small: true,
                fallback: true,
            },
        ));
    }
    out.push_str("</div></details></section>");
}

fn phases(out: &mut String, doc: &ResultDoc) {
    section_open(out, "phases", "Connection phases");
    out.push_str("<p>Mean time per request spent in each phase. DNS, connect and TLS happen only on requests that opened a connection, so their share is averaged over every request of the name.</p>");
    let per_request = |p: &PhaseStats, n: u64| {
        if n == 0 {
            0.0
        } else {
            p.avg * p.count as f64 / n as f64
        }
    };
    let bars: Vec<Bar> = doc
        .requests
        .iter()
        .chain([&doc.aggregate])
        .map(|r| {
            let p = &r.phases_ms;
            Bar {
                label: label_of(r),
                values: [&p.dns, &p.connect, &p.tls, &p.ttfb, &p.download]
                    .iter()
                    .map(|s| per_request(s, r.request_count))
                    .collect(),
            }
        })
        .collect();
    out.push_str(&svg::stacked_bars(
        "chart-phases",
        "Where the time goes, per request name",
        " ms",
        &["DNS", "Connect", "TLS", "TTFB", "Download"],
        &bars,
    ));
    let cell = |p: &PhaseStats| {
        if p.count == 0 {
            num("-")
        } else {
            num(format!("{} / {}", fmt_ms(p.avg), fmt_ms(p.p95)))
        }
    };
    table(
        out,
        "phase-stats",
        "Connection phases (ms, avg / p95 over the requests that went through the phase)",
        &[
            "New connections",
            "DNS",
            "Connect",
            "TLS",
            "TTFB",
            "Download",
        ],
        Rows::of(doc),
        &|r| {
            let p = &r.phases_ms;
            [
                num(r.new_connections),
                cell(&p.dns),
                cell(&p.connect),
                cell(&p.tls),
                cell(&p.ttfb),
                cell(&p.download),
            ]
            .concat()
        },
    );
    out.push_str("</section>");
}

fn errors(out: &mut String, doc: &ResultDoc) {
    section_open(out, "errors", "Errors");
    if doc.errors.is_empty() && doc.errors_overflow == 0 {
        out.push_str("<p class=\"empty\" id=\"no-errors\">No failures.</p></section>");
        return;
    }
    out.push_str("<p class=\"kinds\">");
    for (k, n) in &doc.errors_by_kind {
        let _ = write!(out, r#"<span class="tag">{}: {n}</span> "#, esc(k));
    }
    out.push_str("</p><table class=\"stats\" id=\"error-table\"><thead><tr><th># Occurrences</th><th>Type</th><th>Name</th><th>Kind</th><th>Message</th></tr></thead><tbody>");
    for e in &doc.errors {
        let _ = write!(
            out,
            r#"<tr><td class="num">{}</td><td>{}</td><td class="name">{}</td><td>{}</td><td>{}</td></tr>"#,
            e.count,
            esc(&e.method),
            esc(&e.name),
            esc(&e.kind),
            esc(&e.message)
        );
    }
    out.push_str("</tbody></table>");
    if doc.errors_overflow > 0 {
        let _ = write!(
            out,
            "<p>{} failures not itemised (more than {} distinct errors).</p>",
            doc.errors_overflow,
            crate::stats::ErrorCatalogue::MAX_ENTRIES
        );
    }
    out.push_str("</section>");
}

fn sinks(out: &mut String, doc: &ResultDoc) {
    if doc.sinks.is_empty() && doc.dropped_samples == 0 {
        return;
    }
    section_open(out, "sinks", "Sinks");
    if !doc.sinks.is_empty() {
        out.push_str("<table class=\"stats\"><thead><tr><th>Sink</th><th>Delivered</th><th>Failed</th><th>Dropped</th><th>Errors</th></tr></thead><tbody>");
        for s in &doc.sinks {
            let _ = write!(
                out,
                "<tr><td>{}</td>{}{}{}<td>{}</td></tr>",
                esc(&s.name),
                num(s.delivered),
                num(s.failed),
                num(s.dropped),
                esc(&s.errors.join("; "))
            );
        }
        out.push_str("</tbody></table>");
    }
    if doc.dropped_samples > 0 {
        let _ = write!(
            out,
            "<p>{} samples dropped on the way to exporters (queue full).</p>",
            doc.dropped_samples
        );
    }
    out.push_str("</section>");
}

#[cfg(test)]
pub(crate) mod tests;
