//! The run's charts over time — requests and failures per second, p50/p95/p99, active users,
//! with numbered markers for timeline events, and each request name's breakdown components
//! ([`components`]) — defined once, for the HTML report and for the live dashboard
//! (`loadlens --web`), which shows this same SVG, rendered from its live series once per
//! snapshot.
//!
//! One Rust builder rather than one script shared by both: the report must open from disk with
//! no script, and the dashboard then gets its charts for the cost of an `innerHTML` per second
//! (no charting code in the page, nothing drawn per connected page). Which series, their
//! colours, titles, axes and legends therefore cannot drift apart between the two.

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
}

/// The three charts as HTML (`<figure>` elements with inline SVG and an HTML legend), or
/// `None` when there is no point yet.
pub fn charts(s: &Series<'_>) -> Option<String> {
    // The last point of a run is often a stub of a few milliseconds after the stop, whose rates
    // are noise; it is left out unless it is all there is.
    let pts: Vec<&SeriesPoint> = if s.points.len() > 1 {
        s.points.iter().filter(|p| p.span_s >= 0.2).collect()
    } else {
        s.points.iter().collect()
    };
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
        out.push_str(&svg::time_chart(id, &title, unit, x_max, &lines, &markers));
    }
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
            }
        }
        assert_eq!(charts(&series(&[])), None);
        let points = [point(1, 5), point(2, 0), point(3, 5)];
        let html = charts(&series(&points)).unwrap();
        let path = |label: &str| {
            let at = html.find(&format!(r#"data-label="{label}" d=""#)).unwrap();
            html[at..].split('"').nth(3).unwrap().to_owned()
        };
        // Latency: two separate dots; rates and users: one line through all three points.
        assert_eq!(path("p95").matches('M').count(), 2, "{}", path("p95"));
        assert_eq!(path("req/s").matches('L').count(), 2);
        assert_eq!(path("users").matches('L').count(), 2);
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
