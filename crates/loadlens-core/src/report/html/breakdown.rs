//! The section "Where the time went": per request name, the client's latency split into
//! connection phases, time outside the service, server self time and the downstream operations
//! of the service's own spans ([`crate::breakdown`]).
//!
//! One stacked bar per request name (mean time per joined request, so that a bar adds up to the
//! mean response time), then per name: its table of components with p50/p95/p99, its components
//! over time (drawn by the run's one chart builder, [`super::over_time::components`], with the
//! timeline's markers), and its slowest requests with a link to each trace when the run has a
//! link template. The same HTML is shown live by the web dashboard ([`body`]), so the two never
//! drift apart.
//!
//! Without a trace receiver the result has no breakdown and there is no section at all.

use std::fmt::Write as _;

use super::over_time::{self, ComponentLine};
use super::palette;
use super::svg::{self, Bar};
use super::{esc, fmt_ms, num, section_open};
use crate::breakdown::{Breakdown, Component, ComponentKey, ComponentKind, RequestBreakdown};
use crate::run::TimelineEvent;

/// Downstream operations with a segment of their own in the bars (those with the largest share
/// in some request name); the others share one segment. With the client's five components and
/// the server's self time this keeps the colours distinct.
const TOP_OPERATIONS: usize = 4;

/// Label of the segment of the operations beyond [`TOP_OPERATIONS`].
const OTHER_OPERATIONS: &str = "other downstream operations";

/// One segment of the stacked bars.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    /// Every component of this key (a client phase, outside, self time, or one operation).
    One(ComponentKey),
    /// The downstream operations without a segment of their own.
    OtherOperations,
}

impl Segment {
    fn label(&self) -> String {
        match self {
            Segment::One(k) => k.label(),
            Segment::OtherOperations => OTHER_OPERATIONS.to_owned(),
        }
    }

    fn covers(&self, c: &Component, top: &[ComponentKey]) -> bool {
        match self {
            Segment::One(k) => c.key == *k,
            Segment::OtherOperations => {
                c.key.kind == ComponentKind::Operation && !top.contains(&c.key)
            }
        }
    }
}

/// The segments every bar is cut into, in drawing order, and their colours (`palette::nth` in that
/// order, as [`svg::stacked_bars`] draws them). Segments that are zero in every bar are left
/// out (no TLS on plain HTTP, no "other" with few operations).
struct Segments {
    list: Vec<Segment>,
    top: Vec<ComponentKey>,
}

impl Segments {
    fn of(b: &Breakdown) -> Segments {
        // Rank operations by their largest share in any request name.
        let mut ops: Vec<(&ComponentKey, f64)> = Vec::new();
        for c in b.requests.iter().flat_map(|r| &r.components) {
            if c.key.kind != ComponentKind::Operation {
                continue;
            }
            match ops.iter_mut().find(|(k, _)| **k == c.key) {
                Some((_, s)) => *s = s.max(c.share),
                None => ops.push((&c.key, c.share)),
            }
        }
        ops.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let top: Vec<ComponentKey> = ops
            .iter()
            .take(TOP_OPERATIONS)
            .map(|(k, _)| (*k).clone())
            .collect();
        let kind = |k| Segment::One(ComponentKey::of(k));
        let mut list = vec![
            kind(ComponentKind::Dns),
            kind(ComponentKind::Connect),
            kind(ComponentKind::Tls),
            kind(ComponentKind::Outside),
            kind(ComponentKind::ServerSelf),
        ];
        list.extend(top.iter().cloned().map(Segment::One));
        list.push(Segment::OtherOperations);
        list.push(kind(ComponentKind::Download));
        let mut s = Segments { list, top };
        let used: Vec<bool> = s
            .list
            .iter()
            .map(|seg| b.requests.iter().any(|r| s.value(seg, r) > 0.0))
            .collect();
        let mut keep = used.into_iter();
        s.list.retain(|_| keep.next().unwrap_or(false));
        s
    }

    /// Mean time per joined request of `r` in `seg`, ms: the segment's sum over the joined
    /// requests (a component absent from a request counts as zero there).
    fn value(&self, seg: &Segment, r: &RequestBreakdown) -> f64 {
        if r.joined == 0 {
            return 0.0;
        }
        let sum: f64 = r
            .components
            .iter()
            .filter(|c| seg.covers(c, &self.top))
            .map(|c| c.figures.sum())
            .sum();
        sum / r.joined as f64
    }

    fn color(&self, key: &ComponentKey) -> Option<&'static str> {
        self.list
            .iter()
            .position(|s| *s == Segment::One(key.clone()))
            .map(palette::nth)
    }
}

fn label_of(r: &RequestBreakdown) -> String {
    if r.method.is_empty() {
        r.name.clone()
    } else {
        format!("{} {}", r.method, r.name)
    }
}

fn pct(v: f64) -> String {
    format!("{:.1}%", v * 100.0)
}

/// A link to a trace only when it is a web address: a result file may come from elsewhere
/// (`loadlens report`), and a `javascript:` template must not become a live link.
fn trace_link(b: &Breakdown, trace_id: &str) -> Option<String> {
    b.link(trace_id)
        .filter(|l| l.starts_with("https://") || l.starts_with("http://"))
}

/// The section, when the result has a breakdown (nothing otherwise).
pub fn section(
    out: &mut String,
    b: Option<&Breakdown>,
    min_span_s: f64,
    timeline: &[TimelineEvent],
) {
    let Some(b) = b else {
        return;
    };
    section_open(out, "breakdown", "Where the time went");
    out.push_str(&body(b, min_span_s, timeline));
    out.push_str("</section>");
}

/// The section's content: coverage, bars, and per request name its table, chart over time and
/// slowest requests. `min_span_s`: the time axis spans at least this many seconds (as in
/// [`over_time::Series::min_span_s`]).
pub fn body(b: &Breakdown, min_span_s: f64, timeline: &[TimelineEvent]) -> String {
    let mut out = String::with_capacity(16 * 1024);
    coverage(&mut out, b);
    if b.requests.iter().all(|r| r.joined == 0) {
        out.push_str(
            "<p class=\"empty\" id=\"breakdown-none\">No sampled request has been joined to its \
             server spans (yet). The service must export its spans to the trace receiver, \
             continue the <code>traceparent</code> it receives, and sample the requests \
             loadlens samples.</p>",
        );
        return out;
    }
    let segments = Segments::of(b);
    let labels: Vec<String> = segments.list.iter().map(Segment::label).collect();
    let label_refs: Vec<&str> = labels.iter().map(String::as_str).collect();
    let bars: Vec<Bar> = b
        .requests
        .iter()
        .filter(|r| r.joined > 0)
        .map(|r| Bar {
            label: label_of(r),
            values: segments.list.iter().map(|s| segments.value(s, r)).collect(),
        })
        .collect();
    out.push_str(&svg::stacked_bars(
        "chart-breakdown",
        "Mean time per joined request, by component",
        " ms",
        &label_refs,
        &bars,
    ));
    for (i, r) in b.requests.iter().enumerate().filter(|(_, r)| r.joined > 0) {
        let _ = write!(
            out,
            r#"<div class="breakdown-request" data-name="{}"><h3>{}</h3><p>{} of {} sampled requests joined · response time p50 {} / p95 {} / p99 {} ms</p>"#,
            esc(&label_of(r)),
            esc(&label_of(r)),
            r.joined,
            r.sampled,
            fmt_ms(r.total.p50),
            fmt_ms(r.total.p95),
            fmt_ms(r.total.p99),
        );
        components_table(&mut out, i, r);
        let lines: Vec<ComponentLine<'_>> = r
            .components
            .iter()
            .filter_map(|c| {
                Some(ComponentLine {
                    label: &c.label,
                    color: segments.color(&c.key)?,
                    points: &c.series,
                })
            })
            .collect();
        if let Some(chart) = over_time::components(
            &format!("chart-breakdown-{i}"),
            &format!("{}: components over time (mean per interval)", label_of(r)),
            &lines,
            min_span_s,
            timeline,
        ) {
            out.push_str(&chart);
        }
        slowest(&mut out, b, i, r);
        out.push_str("</div>");
    }
    operations(&mut out, b);
    out
}

fn coverage(out: &mut String, b: &Breakdown) {
    let c = &b.coverage;
    let ratio = c.ratio().map_or_else(
        || "no request sampled yet".to_owned(),
        |r| pct(r) + " coverage",
    );
    let _ = write!(
        out,
        r#"<p id="breakdown-coverage">{} of {} sampled requests found their server spans (<b>{ratio}</b>). Spans: {} received, {} joined, {} dropped (never matched within the join window), {} late, {} of other traces ignored"#,
        c.joined,
        c.sampled,
        c.spans_received,
        c.spans_joined,
        c.spans_dropped,
        c.spans_late,
        c.spans_foreign,
    );
    if c.rejected_exports > 0 {
        let _ = write!(
            out,
            r#"; <span class="warn">{} exports refused (undecodable)</span>"#,
            c.rejected_exports
        );
    }
    out.push_str(".</p>");
}

fn components_table(out: &mut String, i: usize, r: &RequestBreakdown) {
    let _ = write!(
        out,
        r#"<table class="stats breakdown" id="breakdown-table-{i}"><caption>{}: components (ms; share of the joined requests' total time)</caption><thead><tr><th>Component</th><th>Share</th><th>Count</th><th>p50</th><th>p95</th><th>p99</th><th>Max</th><th>Span errors</th></tr></thead><tbody>"#,
        esc(&label_of(r))
    );
    for c in &r.components {
        let f = &c.figures;
        let _ = write!(
            out,
            r#"<tr data-component="{}"><td>{}</td>{}{}{}{}{}{}{}</tr>"#,
            esc(&c.label),
            esc(&c.label),
            num(pct(c.share)),
            num(f.count),
            num(fmt_ms(f.p50)),
            num(fmt_ms(f.p95)),
            num(fmt_ms(f.p99)),
            num(fmt_ms(f.max)),
            num(c.errors),
        );
    }
    let t = &r.total;
    let _ = write!(
        out,
        r#"</tbody><tfoot><tr data-component="total"><td>response time</td>{}{}{}{}{}{}{}</tr></tfoot></table>"#,
        num("100%"),
        num(t.count),
        num(fmt_ms(t.p50)),
        num(fmt_ms(t.p95)),
        num(fmt_ms(t.p99)),
        num(fmt_ms(t.max)),
        num("")
    );
}

fn slowest(out: &mut String, b: &Breakdown, i: usize, r: &RequestBreakdown) {
    if r.slowest.is_empty() {
        return;
    }
    let _ = write!(
        out,
        r#"<table class="stats slowest" id="slowest-{i}"><caption>{}: slowest sampled requests</caption><thead><tr><th>Trace</th><th>Started at</th><th>Response time (ms)</th><th>Dominated by</th><th>Its time (ms)</th></tr></thead><tbody>"#,
        esc(&label_of(r))
    );
    for s in &r.slowest {
        let trace = match trace_link(b, &s.trace_id) {
            Some(url) => format!(
                r#"<a href="{}" rel="noopener noreferrer"><code>{}</code></a>"#,
                esc(&url),
                esc(&s.trace_id)
            ),
            None => format!("<code>{}</code>", esc(&s.trace_id)),
        };
        let _ = write!(
            out,
            r#"<tr><td>{trace}</td>{}{}<td>{}</td>{}</tr>"#,
            num(format!("{:.1} s", s.at_s)),
            num(fmt_ms(s.total_ms)),
            esc(&s.dominant),
            num(fmt_ms(s.dominant_ms)),
        );
    }
    out.push_str("</tbody></table>");
}

/// Each downstream operation over every request name (what `span:` thresholds read).
fn operations(out: &mut String, b: &Breakdown) {
    if b.operations.is_empty() {
        return;
    }
    out.push_str(r#"<table class="stats" id="breakdown-operations"><caption>Downstream operations over every request name (self time, ms)</caption><thead><tr><th>Operation</th><th>Count</th><th>p50</th><th>p95</th><th>p99</th><th>Max</th><th>Span errors</th></tr></thead><tbody>"#);
    for c in &b.operations {
        let f = &c.figures;
        let _ = write!(
            out,
            r#"<tr><td>{}</td>{}{}{}{}{}{}</tr>"#,
            esc(&c.label),
            num(f.count),
            num(fmt_ms(f.p50)),
            num(fmt_ms(f.p95)),
            num(fmt_ms(f.p99)),
            num(fmt_ms(f.max)),
            num(c.errors),
        );
    }
    out.push_str("</tbody></table>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_add_up_to_each_components_mean_per_joined_request() {
        let b = Breakdown::example();
        let s = Segments::of(&b);
        let labels: Vec<String> = s.list.iter().map(Segment::label).collect();
        // No DNS or TLS in the example; three operations, no "other".
        assert_eq!(
            labels,
            [
                "connect",
                "outside the service",
                "server self time",
                "postgresql: SELECT orders",
                "pricing: GET /price/{sku}",
                "redis: GET",
                "download"
            ]
        );
        let orders = &b.requests[0];
        // 98 selects of mean 24.2 ms over 98 joined requests; 4 connects of 0.22 ms.
        assert!((s.value(&s.list[3], orders) - 24.2).abs() < 1e-9);
        assert!((s.value(&s.list[0], orders) - 4.0 * 0.22 / 98.0).abs() < 1e-9);
        // /search has no select.
        assert_eq!(s.value(&s.list[3], &b.requests[1]), 0.0);
    }

    #[test]
    fn operations_beyond_the_top_share_one_segment() {
        let mut b = Breakdown::example();
        let template = b.requests[0].components[3].clone();
        for n in 0..3 {
            let mut c = template.clone();
            c.key = ComponentKey::operation("stock", format!("op{n}"));
            c.label = c.key.label();
            c.share = 0.001 * f64::from(n);
            b.requests[0].components.push(c);
        }
        let s = Segments::of(&b);
        assert_eq!(s.top.len(), TOP_OPERATIONS);
        assert!(s.list.contains(&Segment::OtherOperations));
        // Redis keeps its place by its 17% in /search; op2 is the fourth; op0 and op1 are
        // "other".
        assert!(s.top.contains(&ComponentKey::operation("stock", "op2")));
        let other = s.value(&Segment::OtherOperations, &b.requests[0]);
        assert!((other - 2.0 * template.figures.sum() / 98.0).abs() < 1e-9);
    }

    #[test]
    fn only_web_addresses_become_links() {
        let mut b = Breakdown::example();
        assert!(trace_link(&b, "ab").is_some());
        b.link_template = Some("javascript:alert('{trace_id}')".into());
        assert_eq!(trace_link(&b, "ab"), None);
        b.link_template = None;
        assert_eq!(trace_link(&b, "ab"), None);
    }
}
