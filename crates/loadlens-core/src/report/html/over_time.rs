//! The run's charts over time — requests and failures per second, p50/p95/p99, active users,
//! with numbered markers for timeline events; the same per request name ([`by_name`]: which
//! endpoint got slow, and when); and each request name's breakdown components
//! ([`components`]) — defined once, for the HTML report and for the live dashboard
//! (`loadlens --web`), which shows this same SVG, rendered from its live series once per
//! snapshot. Every time axis starts at the run's start, 0 s.
//!
//! One Rust builder rather than one script shared by both: the report must read from disk
//! without any script, and the dashboard then gets its charts for the cost of an `innerHTML`
//! per second (no charting code in the page, nothing drawn per connected page). Which series,
//! their colours ([`super::palette`]), titles, axes and legends therefore cannot drift apart
//! between the two. The one script both have, `hover.js`, only reads values the SVG carries.

use std::fmt::Write as _;

use super::palette;
use super::svg::{self, Line, Marker};
use crate::breakdown;
use crate::run::{EventKind, TimelineEvent};
use crate::stats::SeriesPoint;

/// Stroke width of every line over time, in px.
const WIDTH: f64 = 1.5;

/// One line: legend label, colour, and its value at a point (`None` breaks the line).
pub type LineSpec = (&'static str, &'static str, fn(&SeriesPoint) -> Option<f64>);

/// An interval without responses has no latency: a gap, not a zero.
fn latency(p: &SeriesPoint, v: f64) -> Option<f64> {
    (p.requests > 0).then_some(v)
}

/// The charts: id, title (before any resolution note), y unit, and their lines in drawing
/// order (the legend's order too).
pub const CHARTS: [(&str, &str, &str, &[LineSpec]); 3] = [
    (
        "chart-rps",
        "Requests per second",
        "",
        &[
            ("req/s", palette::REQUESTS, |p| Some(p.rps)),
            ("failures/s", palette::FAILURES, |p| Some(p.failures_per_s)),
        ],
    ),
    (
        "chart-latency",
        "Response time",
        " ms",
        &[
            ("p50", palette::P50, |p| latency(p, p.p50_ms)),
            ("p95", palette::P95, |p| latency(p, p.p95_ms)),
            ("p99", palette::P99, |p| latency(p, p.p99_ms)),
        ],
    ),
    (
        "chart-users",
        "Active users",
        "",
        &[("users", palette::USERS, |p| Some(p.users as f64))],
    ),
];

/// What the charts are drawn from.
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    /// The points, oldest first.
    pub points: &'a [SeriesPoint],
    /// Seconds per point (more than 1 once a long run is downsampled; the titles say so).
    pub resolution_s: u64,
    /// The time axis spans at least this many seconds: the run's length in the report, the
    /// planned run time on the dashboard (so that the axis does not rescale every second).
    pub min_span_s: f64,
    /// The run's events; all but start and finish become numbered markers.
    pub timeline: &'a [TimelineEvent],
    /// Draw the no-script hover fallback ([`svg::Style::fallback`]): the report does, the
    /// dashboard does not.
    pub fallback: bool,
}

impl Series<'_> {
    /// The points drawn, from the run's start: a point at 0 s, where nothing has happened
    /// yet (no requests, no users, no latency), then the intervals. The last point of a run is
    /// often a stub of a few milliseconds after the stop, whose rates are noise; it is left out
    /// unless it is all there is.
    fn drawn(points: &[SeriesPoint]) -> Vec<SeriesPoint> {
        let kept = points
            .iter()
            .filter(|p| points.len() == 1 || p.span_s >= 0.2);
        let mut out = Vec::with_capacity(points.len() + 1);
        if points.first().is_some_and(|p| p.elapsed_s > 0.0) {
            out.push(SeriesPoint::default());
        }
        out.extend(kept.cloned());
        out
    }

    fn style(&self, small: bool) -> svg::Style {
        svg::Style {
            small,
            fallback: self.fallback,
        }
    }
}

/// The three charts as HTML (`<figure>` elements with inline SVG and an HTML legend), or
/// `None` when there is no point yet.
pub fn charts(s: &Series<'_>) -> Option<String> {
    s.points.last()?;
    let pts = Series::drawn(s.points);
    let x_max = pts.last()?.elapsed_s.max(s.min_span_s);
    let markers = markers(s.timeline);
    let resolution = if s.resolution_s > 1 {
        format!(" (one point per {} s)", s.resolution_s)
    } else {
        String::new()
    };
    let mut out = String::new();
    for (id, title, unit, specs) in CHARTS {
        // Users are counted, not sampled per interval: the title needs no resolution note.
        let title = if id == "chart-users" {
            title.to_owned()
        } else {
            format!("{title}{resolution}")
        };
        let lines: Vec<Line> = specs
            .iter()
            .map(|(label, color, value)| Line {
                label: (*label).to_owned(),
                color,
                width: WIDTH,
                points: pts
                    .iter()
                    .map(|p| value(p).map(|y| (p.elapsed_s, y)))
                    .collect(),
            })
            .collect();
        out.push_str(&svg::time_chart(
            id,
            &title,
            unit,
            x_max,
            &lines,
            &markers,
            s.style(false),
        ));
    }
    Some(out)
}

/// One request name's series, for [`by_name`].
#[derive(Debug, Clone, Copy)]
pub struct NameSeries<'a> {
    /// `GET /api/orders`.
    pub label: &'a str,
    /// Seconds per point.
    pub resolution_s: u64,
    /// The points, oldest first.
    pub points: &'a [SeriesPoint],
}

/// Request names drawn in each overview chart of [`by_name`].
pub const NAMES_IN_OVERVIEW: usize = 8;

/// Per request name, which endpoint got slow and when: two overview charts — p95 of the
/// [`NAMES_IN_OVERVIEW`] names with the highest p95 at any time, requests per second of the
/// busiest — and then, for at most `each` names (the busiest, in the given order), a pair of
/// small charts: p50/p95/p99 and req/s with failures/s. A name keeps its colour in both
/// overviews. `None` without any name's series.
pub fn by_name(names: &[NameSeries<'_>], s: &Series<'_>, each: usize) -> Option<String> {
    let drawn: Vec<Vec<SeriesPoint>> = names.iter().map(|n| Series::drawn(n.points)).collect();
    let x_max = drawn
        .iter()
        .filter_map(|p| p.last().map(|p| p.elapsed_s))
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))?
        .max(s.min_span_s);
    let markers = markers(s.timeline);
    let requests = |i: usize| names[i].points.iter().map(|p| p.requests).sum::<u64>();
    let peak_p95 = |i: usize| {
        names[i]
            .points
            .iter()
            .filter(|p| p.requests > 0)
            .map(|p| p.p95_ms)
            .fold(0.0, f64::max)
    };
    let mut by_p95: Vec<usize> = (0..names.len()).collect();
    by_p95.sort_by(|a, b| peak_p95(*b).total_cmp(&peak_p95(*a)));
    let mut busiest: Vec<usize> = (0..names.len()).collect();
    busiest.sort_by_key(|i| std::cmp::Reverse(requests(*i)));
    let resolution = names.iter().map(|n| n.resolution_s).max().unwrap_or(1);
    let note = if resolution > 1 {
        format!(" (one point per {resolution} s)")
    } else {
        String::new()
    };
    let some = |n: usize, which: &str| {
        if names.len() > n {
            format!(", the {n} of {} names with {which}", names.len())
        } else {
            String::new()
        }
    };
    let line = |i: usize, value: &dyn Fn(&SeriesPoint) -> Option<f64>| Line {
        label: names[i].label.to_owned(),
        color: palette::nth(i),
        width: WIDTH,
        points: drawn[i]
            .iter()
            .map(|p| value(p).map(|y| (p.elapsed_s, y)))
            .collect(),
    };
    let mut out = String::from(r#"<div class="by-name" id="by-name">"#);
    let p95: Vec<Line> = by_p95
        .iter()
        .take(NAMES_IN_OVERVIEW)
        .map(|i| line(*i, &|p| latency(p, p.p95_ms)))
        .collect();
    out.push_str(&svg::time_chart(
        "chart-p95-by-name",
        &format!(
            "p95 by request name{}{note}",
            some(NAMES_IN_OVERVIEW, "the highest p95")
        ),
        " ms",
        x_max,
        &p95,
        &markers,
        s.style(false),
    ));
    let rps: Vec<Line> = busiest
        .iter()
        .take(NAMES_IN_OVERVIEW)
        .map(|i| line(*i, &|p| Some(p.rps)))
        .collect();
    out.push_str(&svg::time_chart(
        "chart-rps-by-name",
        &format!(
            "Requests per second by request name{}{note}",
            some(NAMES_IN_OVERVIEW, "the most requests")
        ),
        "",
        x_max,
        &rps,
        &markers,
        s.style(false),
    ));
    let mut shown: Vec<usize> = busiest.into_iter().take(each).collect();
    shown.sort_unstable();
    let _ = write!(
        out,
        r#"<details id="by-name-each" open><summary>Each request name{}: response time and requests per second</summary><div class="pairs">"#,
        if shown.len() < names.len() {
            format!(", the {} busiest of {}", shown.len(), names.len())
        } else {
            format!(" ({})", names.len())
        }
    );
    for i in shown {
        let _ = write!(
            out,
            r#"<div class="pair" data-name="{}">"#,
            super::esc(names[i].label)
        );
        for (kind, title, unit, specs) in [
            ("latency", "response time", " ms", &CHARTS[1].3),
            ("rps", "requests per second", "", &CHARTS[0].3),
        ] {
            let lines: Vec<Line> = specs
                .iter()
                .map(|(label, color, value)| Line {
                    label: (*label).to_owned(),
                    color,
                    width: WIDTH,
                    points: drawn[i]
                        .iter()
                        .map(|p| value(p).map(|y| (p.elapsed_s, y)))
                        .collect(),
                })
                .collect();
            out.push_str(&svg::time_chart(
                &format!("chart-name-{i}-{kind}"),
                &format!("{}: {title}", names[i].label),
                unit,
                x_max,
                &lines,
                &markers,
                s.style(true),
            ));
        }
        out.push_str("</div>");
    }
    out.push_str("</div></details></div>");
    Some(out)
}

/// One line of a [`components`] chart: a component of a request name's breakdown.
#[derive(Debug, Clone, Copy)]
pub struct ComponentLine<'a> {
    /// Legend label (the component's label).
    pub label: &'a str,
    /// Stroke colour (the component's colour in the stacked bars).
    pub color: &'static str,
    /// Its values per interval.
    pub points: &'a [breakdown::SeriesPoint],
}

/// One request name's breakdown components over time: each component's mean per interval, in
/// ms, on the run's time axis with the timeline's markers (as the run's own charts have them).
/// An interval where a component did not occur is a gap, not a zero. `None` when no component
/// has a point.
pub fn components(
    id: &str,
    title: &str,
    lines: &[ComponentLine<'_>],
    min_span_s: f64,
    timeline: &[TimelineEvent],
) -> Option<String> {
    let last = lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.elapsed_s))
        .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))?;
    let drawn: Vec<Line> = lines
        .iter()
        .map(|l| Line {
            label: l.label.to_owned(),
            color: l.color,
            width: WIDTH,
            points: l
                .points
                .iter()
                .map(|p| (p.count > 0).then_some((p.elapsed_s, p.avg_ms)))
                .collect(),
        })
        .collect();
    Some(svg::time_chart(
        id,
        title,
        " ms",
        last.max(min_span_s),
        &drawn,
        &markers(timeline),
        svg::Style {
            small: false,
            fallback: true,
        },
    ))
}

/// Timeline events as chart markers (run start and finish are left out: they are the edges of
/// the time axis), numbered like the rows of the timeline table.
pub fn markers(timeline: &[TimelineEvent]) -> Vec<Marker> {
    timeline
        .iter()
        .enumerate()
        .filter(|(_, e)| !matches!(e.kind, EventKind::RunStarted | EventKind::RunFinished))
        .map(|(i, e)| {
            let kind = kind_name(e.kind);
            Marker {
                x: e.elapsed_s,
                number: i + 1,
                text: format!("#{} at {:.1}s — {kind}: {}", i + 1, e.elapsed_s, e.message),
                kind,
            }
        })
        .collect()
}

/// The event kind as the result file spells it (`threshold_breached`).
fn kind_name(k: EventKind) -> String {
    serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::RequestStats;
    use std::time::Duration;

    fn point(s: u64, requests: u64) -> SeriesPoint {
        let stats = RequestStats {
            count: requests,
            ..RequestStats::default()
        };
        SeriesPoint::of(Duration::from_secs(s), Duration::from_secs(1), s, &stats)
    }

    #[test]
    fn no_point_no_chart_and_a_second_without_responses_breaks_the_latency_lines() {
        fn series(points: &[SeriesPoint]) -> Series<'_> {
            Series {
                points,
                resolution_s: 1,
                min_span_s: 0.0,
                timeline: &[],
                fallback: true,
            }
        }
        assert_eq!(charts(&series(&[])), None);
        let points = [point(1, 5), point(2, 0), point(3, 5)];
        let html = charts(&series(&points)).unwrap();
        let path = |label: &str| {
            let at = html.find(&format!(r#"data-label="{label}" d=""#)).unwrap();
            html[at..].split('"').nth(3).unwrap().to_owned()
        };
        // Latency: two separate dots; rates and users: one line through all three points,
        // from the run's start (0 s, at the left edge of the frame: x = 60).
        assert_eq!(path("p95").matches('M').count(), 2, "{}", path("p95"));
        assert_eq!(path("req/s").matches('L').count(), 3);
        assert_eq!(path("users").matches('L').count(), 3);
        assert!(path("req/s").starts_with("M60.0 "), "{}", path("req/s"));
        assert!(path("users").starts_with("M60.0 "), "{}", path("users"));
        // The hover script's data: the times, and each line's values there (none for the
        // latency at 0 s and in the second without responses).
        assert!(
            html.contains(r#"data-x="0.0 s,1.0 s,2.0 s,3.0 s""#),
            "{html}"
        );
        assert!(html.contains(r#"data-label="req/s""#));
        assert!(html.contains(r#"data-v="0,5,0,5""#), "{html}");
        // Latency has no value at 0 s nor in the second without responses: its columns are
        // the seconds with one.
        assert!(html.contains(r#"data-x="1.0 s,3.0 s""#), "{html}");
        // And the fallback without the script: a column per time whose title lists them.
        assert!(
            html.contains("<title>1.0 s · req/s 5 · failures/s 0</title>"),
            "{html}"
        );
        assert!(!html.contains("one point per"));
        let one = [point(4, 5)];
        let downsampled = Series {
            resolution_s: 4,
            ..series(&one)
        };
        let html = charts(&downsampled).unwrap();
        assert!(html.contains("Response time (one point per 4 s)"));
        assert!(html.contains("<figcaption>Active users</figcaption>"));
    }
}
