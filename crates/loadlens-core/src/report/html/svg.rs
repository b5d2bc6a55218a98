//! Plain inline SVG charts for the HTML report: lines over the run's time axis with markers for
//! timeline events, percentile curves on the usual logarithmic "nines" axis, and stacked bars.
//!
//! Written by hand rather than with a charting library: the report must open from disk with no
//! network and read without any script, and three chart kinds are a few hundred lines of string
//! building. Coordinates are rounded to 0.1 px so a one-hour series (3,600 points per line)
//! stays small. Each line and time chart carries its values for the hover script
//! (`super::HOVER_JS`), and, in the report, a no-script fallback of `<title>`s ([`Style`]).

use std::fmt::Write as _;

use super::esc;
use super::palette;

/// One line of a chart. `None` points break the line (e.g. latency of an interval without
/// requests, which is unknown rather than zero).
pub struct Line {
    /// Legend label.
    pub label: String,
    /// Stroke colour.
    pub color: &'static str,
    /// Stroke width in px.
    pub width: f64,
    /// `(x, y)` in data units.
    pub points: Vec<Option<(f64, f64)>>,
}

/// A vertical marker for a timeline event.
pub struct Marker {
    /// Seconds since the start of the run.
    pub x: f64,
    /// Number shown at the top, matching the row of the events table.
    pub number: usize,
    /// Event kind (CSS class).
    pub kind: String,
    /// Hover text.
    pub text: String,
}

/// The drawing area and the data ranges it maps.
struct Frame {
    w: f64,
    h: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    x0: f64,
    x1: f64,
    y1: f64,
}

impl Frame {
    fn x(&self, v: f64) -> f64 {
        let span = (self.x1 - self.x0).max(1e-9);
        self.left + (v - self.x0) / span * (self.w - self.left - self.right)
    }

    fn y(&self, v: f64) -> f64 {
        let span = self.y1.max(1e-9);
        self.h - self.bottom - v.clamp(0.0, self.y1) / span * (self.h - self.top - self.bottom)
    }

    fn open(&self, out: &mut String, label: &str) {
        let _ = write!(
            out,
            r#"<svg viewBox="0 0 {} {}" role="img" aria-label="{}" preserveAspectRatio="xMidYMid meet">"#,
            self.w,
            self.h,
            esc(label)
        );
    }

    /// Grid lines and tick labels.
    fn axes(&self, out: &mut String, xticks: &[(f64, String)], yticks: &[(f64, String)]) {
        let (bottom, top) = (self.h - self.bottom, self.top);
        out.push_str(r#"<g class="grid">"#);
        for (v, label) in yticks {
            let y = self.y(*v);
            let _ = write!(
                out,
                r#"<line x1="{:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}"/><text class="yl" x="{:.1}" y="{:.1}">{}</text>"#,
                self.left,
                self.w - self.right,
                self.left - 6.0,
                y + 4.0,
                esc(label)
            );
        }
        for (v, label) in xticks {
            let x = self.x(*v);
            let _ = write!(
                out,
                r#"<line x1="{x:.1}" x2="{x:.1}" y1="{top:.1}" y2="{bottom:.1}"/><text class="xl" x="{x:.1}" y="{:.1}">{}</text>"#,
                bottom + 16.0,
                esc(label)
            );
        }
        let _ = write!(
            out,
            r#"<rect class="frame" x="{:.1}" y="{top:.1}" width="{:.1}" height="{:.1}"/></g>"#,
            self.left,
            self.w - self.left - self.right,
            bottom - top
        );
    }

    fn lines(&self, out: &mut String, lines: &[Line], hover: &Hover) {
        for (line, values) in lines.iter().zip(&hover.values) {
            let mut d = String::with_capacity(line.points.len() * 14);
            let mut pen_down = false;
            for p in &line.points {
                match p {
                    Some((x, y)) => {
                        let cmd = if pen_down { 'L' } else { 'M' };
                        let _ = write!(d, "{cmd}{:.1} {:.1}", self.x(*x), self.y(*y));
                        pen_down = true;
                    }
                    None => pen_down = false,
                }
            }
            // A single point would draw nothing: give it a visible dot.
            let cap = if line.points.iter().flatten().count() == 1 {
                r#" stroke-linecap="round" stroke-width="6""#
            } else {
                ""
            };
            let _ = write!(
                out,
                r#"<path class="series" data-label="{label}" d="{d}" stroke="{}" stroke-width="{}"{cap} data-v="{}"><title>{label}</title></path>"#,
                line.color,
                line.width,
                join(values.iter().map(|v| v.map(short).unwrap_or_default())),
                label = esc(&line.label),
            );
        }
    }
}

/// How a chart is drawn.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// A small chart (for a grid of one chart per request name).
    pub small: bool,
    /// With the no-script hover fallback: invisible columns whose `<title>` lists the values
    /// at that time (the report, which must read without its script); the live dashboard, a
    /// script already, leaves them out to keep its once-a-second payload small.
    pub fallback: bool,
}

/// Most fallback columns per chart: beyond that, one column stands for several points (the
/// script still shows every point).
const FALLBACK_COLUMNS: usize = 120;
const FALLBACK_COLUMNS_SMALL: usize = 60;

/// What the hover script reads: the x positions where any line has a point, and each line's
/// value there. The figure carries the positions (`data-x` labels, `data-px` in SVG units),
/// each path its values (`data-v`, empty where it has none); the script in [`super::HOVER_JS`]
/// finds the column nearest the mouse and lists the values.
struct Hover {
    /// Data x of each column, sorted, distinct.
    xs: Vec<f64>,
    /// Per line, its value at each column.
    values: Vec<Vec<Option<f64>>>,
}

impl Hover {
    fn of(lines: &[Line]) -> Hover {
        let mut xs: Vec<f64> = lines
            .iter()
            .flat_map(|l| l.points.iter().flatten().map(|p| p.0))
            .collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
        let values = lines
            .iter()
            .map(|l| {
                let mut v = vec![None; xs.len()];
                for (x, y) in l.points.iter().flatten() {
                    let i = xs.partition_point(|p| *p < x - 1e-9);
                    if let Some(slot) = v.get_mut(i) {
                        *slot = Some(*y);
                    }
                }
                v
            })
            .collect();
        Hover { xs, values }
    }

    /// The figure's attributes for the script.
    fn attributes(&self, f: &Frame, label: &dyn Fn(f64) -> String, unit: &str) -> String {
        format!(
            r#" data-x="{}" data-px="{}" data-unit="{}""#,
            esc(&join(self.xs.iter().map(|x| label(*x)))),
            join(self.xs.iter().map(|x| format!("{:.1}", f.x(*x)))),
            esc(unit)
        )
    }

    /// The no-script fallback: invisible full-height columns, each with a `<title>` listing
    /// the lines' values at its x (see [`Style::fallback`]).
    fn columns(
        &self,
        out: &mut String,
        f: &Frame,
        lines: &[Line],
        label: &dyn Fn(f64) -> String,
        unit: &str,
        max: usize,
    ) {
        if self.xs.is_empty() {
            return;
        }
        let step = self.xs.len().div_ceil(max).max(1);
        let chosen: Vec<usize> = (0..self.xs.len()).step_by(step).collect();
        let px: Vec<f64> = chosen.iter().map(|i| f.x(self.xs[*i])).collect();
        let (left, right) = (f.left, f.w - f.right);
        out.push_str(r#"<g class="hover">"#);
        for (k, i) in chosen.iter().enumerate() {
            let x0 = if k == 0 {
                left
            } else {
                (px[k - 1] + px[k]) / 2.0
            };
            let x1 = px.get(k + 1).map_or(right, |n| (px[k] + n) / 2.0);
            let mut text = label(self.xs[*i]);
            for (line, values) in lines.iter().zip(&self.values) {
                if let Some(v) = values[*i] {
                    let _ = write!(text, " · {} {}{unit}", line.label, short(v));
                }
            }
            let _ = write!(
                out,
                r#"<rect x="{x0:.1}" y="{:.1}" width="{:.1}" height="{:.1}"><title>{}</title></rect>"#,
                f.top,
                (x1 - x0).max(0.1),
                f.h - f.top - f.bottom,
                esc(&text)
            );
        }
        out.push_str("</g>");
    }
}

/// A value as the tooltips show it: three or four significant digits.
pub fn short(v: f64) -> String {
    let a = v.abs();
    let s = if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    };
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

fn join(items: impl Iterator<Item = String>) -> String {
    items.collect::<Vec<_>>().join(",")
}

/// The legend as HTML under the chart, so that long request names wrap instead of overflowing.
fn legend<'a>(out: &mut String, items: impl IntoIterator<Item = (&'a str, &'a str)>) {
    out.push_str(r#"<div class="legend">"#);
    for (label, color) in items {
        let _ = write!(
            out,
            r#"<span><i style="background:{color}"></i>{}</span>"#,
            esc(label)
        );
    }
    out.push_str("</div>");
}

/// A round number ≥ `v` (1, 2, 2.5 or 5 × 10ⁿ) so that axes have readable ticks.
pub fn nice_ceiling(v: f64) -> f64 {
    if !(v > 0.0 && v.is_finite()) {
        return 1.0;
    }
    let exp = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= m * exp * (1.0 + 1e-9) {
            return m * exp;
        }
    }
    10.0 * exp
}

/// Compact number for tick labels: `0.25`, `12`, `1.5k`, `2M`.
pub fn compact(v: f64) -> String {
    let a = v.abs();
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_owned()
        } else {
            s
        }
    };
    if a >= 1e6 {
        trim(format!("{:.1}", v / 1e6)) + "M"
    } else if a >= 1e4 {
        trim(format!("{:.1}", v / 1e3)) + "k"
    } else if a >= 10.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        trim(format!("{v:.1}"))
    } else {
        trim(format!("{v:.3}"))
    }
}

/// Elapsed time as `45s`, `12:30` or `1:02:03`.
pub fn clock(secs: f64, long: bool) -> String {
    let s = secs.round().max(0.0) as u64;
    if !long {
        format!("{s}s")
    } else if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// Ticks at round steps of a [`nice_ceiling`] maximum (2 → 0.5 steps, 1, 2.5 and 5 → fifths).
fn y_ticks(y1: f64, unit: &str) -> Vec<(f64, String)> {
    let mantissa = y1 / 10f64.powf(y1.log10().floor());
    let n = if (mantissa - 2.0).abs() < 1e-6 { 4 } else { 5 };
    (0..=n)
        .map(|i| {
            let v = y1 * f64::from(i) / f64::from(n);
            (v, format!("{}{unit}", compact(v)))
        })
        .collect()
}

/// A chart over the run's time axis, `0..=x_max` seconds, with event markers.
pub fn time_chart(
    id: &str,
    title: &str,
    unit: &str,
    x_max: f64,
    lines: &[Line],
    markers: &[Marker],
    style: Style,
) -> String {
    let y_max = lines
        .iter()
        .flat_map(|l| l.points.iter().flatten().map(|p| p.1))
        .fold(0.0, f64::max);
    let (w, h) = if style.small {
        (470.0, 170.0)
    } else {
        (960.0, 240.0)
    };
    let f = Frame {
        w,
        h,
        left: if style.small { 50.0 } else { 60.0 },
        right: if style.small { 14.0 } else { 28.0 },
        top: 18.0,
        bottom: 26.0,
        x0: 0.0,
        x1: x_max.max(1.0),
        y1: nice_ceiling(y_max * 1.05),
    };
    let step = [
        1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0,
        14400.0, 21600.0, 43200.0, 86400.0,
    ]
    .into_iter()
    .find(|s| f.x1 / s <= if style.small { 5.0 } else { 10.0 })
    .unwrap_or(86400.0);
    let long = f.x1 >= 120.0;
    let label = |x: f64| clock_label(x, long);
    let hover = Hover::of(lines);
    let xticks: Vec<(f64, String)> = (0..)
        .map(|i| f64::from(i) * step)
        .take_while(|v| *v <= f.x1 + 1e-9)
        .map(|v| (v, clock(v, long)))
        .collect();
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<figure class="chart{}" id="{}"{}><figcaption>{}</figcaption>"#,
        if style.small { " small" } else { "" },
        esc(id),
        hover.attributes(&f, &label, unit),
        esc(title)
    );
    f.open(&mut out, title);
    f.axes(&mut out, &xticks, &y_ticks(f.y1, unit));
    for m in markers {
        let x = f.x(m.x.clamp(0.0, f.x1));
        let _ = write!(
            out,
            r#"<g class="marker {kind}"><line x1="{x:.1}" x2="{x:.1}" y1="{:.1}" y2="{:.1}"/><text x="{x:.1}" y="{:.1}">{}</text><title>{}</title></g>"#,
            f.top,
            f.h - f.bottom,
            f.top - 4.0,
            m.number,
            esc(&m.text),
            kind = esc(&m.kind),
        );
    }
    f.lines(&mut out, lines, &hover);
    if style.fallback {
        let max = if style.small {
            FALLBACK_COLUMNS_SMALL
        } else {
            FALLBACK_COLUMNS
        };
        hover.columns(&mut out, &f, lines, &label, unit, max);
    }
    out.push_str("</svg>");
    legend(&mut out, lines.iter().map(|l| (l.label.as_str(), l.color)));
    out.push_str("</figure>");
    out
}

/// A time for the tooltips: `12.0 s`, or `1:02:03` on a long axis.
fn clock_label(x: f64, long: bool) -> String {
    if long {
        clock(x, true)
    } else {
        format!("{x:.1} s")
    }
}

/// A quantile from its place on the "nines" axis, as a percentage (`99.74%`).
fn percent_label(x: f64) -> String {
    let q = 1.0 - 10f64.powf(-x);
    // Enough digits to tell 99.99 % from 99.999 %.
    let digits = (x.ceil() as usize).saturating_sub(1).min(4);
    let p = format!("{:.*}", digits.max(1), q * 100.0);
    format!("p{}", p.trim_end_matches('0').trim_end_matches('.'))
}

/// Position of quantile `q` on the "nines" axis: 0 → 0, 0.9 → 1, 0.99 → 2, … 99.999 % → 5
/// (the axis ends there; a curve's last point is its maximum, at `1 - 1/n`).
pub fn nines(q: f64) -> f64 {
    if q >= 1.0 {
        5.0
    } else {
        (-(1.0 - q).log10()).clamp(0.0, 5.0)
    }
}

/// Percentile curves: latency (ms) against the quantile on the "nines" axis. Each line's points
/// are `(quantile, ms)`.
pub fn curve_chart(id: &str, title: &str, lines: &[Line], style: Style) -> String {
    let small = style.small;
    let y_max = lines
        .iter()
        .flat_map(|l| l.points.iter().flatten().map(|p| p.1))
        .fold(0.0, f64::max);
    let (w, h) = if small {
        (300.0, 160.0)
    } else {
        (960.0, 300.0)
    };
    // The axis goes as far as the longest curve: each ends where its samples stop (at
    // `1 - 1/n`, see `LatencyHistogram::percentile_curve`), so 385 samples never draw out to
    // 99.999 %.
    let reach = lines
        .iter()
        .flat_map(|l| l.points.iter().flatten().map(|p| nines(p.0)))
        .fold(0.0, f64::max);
    let f = Frame {
        w,
        h,
        left: if small { 46.0 } else { 60.0 },
        right: if small { 18.0 } else { 28.0 },
        top: 10.0,
        bottom: 26.0,
        x0: 0.0,
        x1: (reach - 1e-9).ceil().clamp(1.0, 5.0),
        y1: nice_ceiling(y_max * 1.05),
    };
    let xticks: Vec<(f64, String)> = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"]
        .iter()
        .enumerate()
        .map(|(i, l)| (i as f64, (*l).to_owned()))
        .take_while(|(x, _)| *x <= f.x1)
        // A small chart has room for four labels.
        .filter(|(x, _)| !small || *x <= 3.0 || *x == f.x1)
        .collect();
    let mapped: Vec<Line> = lines
        .iter()
        .map(|l| Line {
            label: l.label.clone(),
            color: l.color,
            width: l.width,
            points: l
                .points
                .iter()
                .map(|p| p.map(|(q, v)| (nines(q), v)))
                .collect(),
        })
        .collect();
    let hover = Hover::of(&mapped);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<figure class="chart{}" id="{}"{}><figcaption>{}</figcaption>"#,
        if small { " small" } else { "" },
        esc(id),
        hover.attributes(&f, &percent_label, " ms"),
        esc(title)
    );
    f.open(&mut out, title);
    f.axes(&mut out, &xticks, &y_ticks(f.y1, " ms"));
    f.lines(&mut out, &mapped, &hover);
    if style.fallback {
        hover.columns(
            &mut out,
            &f,
            &mapped,
            &percent_label,
            " ms",
            FALLBACK_COLUMNS,
        );
    }
    out.push_str("</svg>");
    if !small {
        legend(&mut out, mapped.iter().map(|l| (l.label.as_str(), l.color)));
    }
    out.push_str("</figure>");
    out
}

/// One bar of [`stacked_bars`]: a label and its segment values.
pub struct Bar {
    /// Row label (e.g. `GET /api/v1/orders`).
    pub label: String,
    /// One value per segment, in the order of the segment names.
    pub values: Vec<f64>,
}

/// Horizontal stacked bars, one row per [`Bar`], segments coloured in `segments` order.
pub fn stacked_bars(id: &str, title: &str, unit: &str, segments: &[&str], bars: &[Bar]) -> String {
    let label_w = 300.0;
    let (w, row, top) = (960.0, 22.0, 8.0);
    let h = top + row * bars.len() as f64 + 26.0;
    let total_max = bars
        .iter()
        .map(|b| b.values.iter().sum::<f64>())
        .fold(0.0, f64::max);
    let f = Frame {
        w,
        h,
        left: label_w,
        right: 28.0,
        top,
        bottom: 26.0,
        x0: 0.0,
        x1: nice_ceiling(total_max * 1.05),
        y1: 1.0,
    };
    let xticks: Vec<(f64, String)> = (0..=5)
        .map(|i| {
            let v = f.x1 * f64::from(i) / 5.0;
            (v, format!("{}{unit}", compact(v)))
        })
        .collect();
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<figure class="chart bars" id="{}"><figcaption>{}</figcaption>"#,
        esc(id),
        esc(title)
    );
    f.open(&mut out, title);
    f.axes(&mut out, &xticks, &[]);
    for (r, bar) in bars.iter().enumerate() {
        let y = top + row * r as f64 + 4.0;
        let name: String = if bar.label.chars().count() > 44 {
            bar.label.chars().take(43).chain(['…']).collect()
        } else {
            bar.label.clone()
        };
        let _ = write!(
            out,
            r#"<g class="bar" data-label="{}"><text class="yl" x="{:.1}" y="{:.1}">{}</text>"#,
            esc(&bar.label),
            label_w - 8.0,
            y + 11.0,
            esc(&name)
        );
        let mut x = 0.0;
        for (i, v) in bar.values.iter().enumerate() {
            if *v <= 0.0 {
                continue;
            }
            let (x0, x1) = (f.x(x), f.x(x + v));
            let _ = write!(
                out,
                r#"<rect x="{x0:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}{unit}</title></rect>"#,
                (x1 - x0).max(0.5),
                row - 8.0,
                palette::nth(i),
                esc(segments.get(i).copied().unwrap_or("")),
                super::fmt_ms(*v)
            );
            x += v;
        }
        out.push_str("</g>");
    }
    out.push_str("</svg>");
    legend(
        &mut out,
        segments
            .iter()
            .enumerate()
            .map(|(i, s)| (*s, palette::nth(i))),
    );
    out.push_str("</figure>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings_and_labels() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(7.3), 10.0);
        assert_eq!(nice_ceiling(180.0), 200.0);
        assert_eq!(nice_ceiling(2.2), 2.5);
        assert_eq!(nice_ceiling(1000.0), 1000.0);
        assert_eq!(compact(12_500.0), "12.5k");
        assert_eq!(compact(0.25), "0.25");
        assert_eq!(compact(2.0), "2");
        assert_eq!(clock(3725.0, true), "1:02:05");
        assert_eq!(clock(90.0, true), "1:30");
        assert_eq!(clock(45.0, false), "45s");
        assert!((nines(0.99) - 2.0).abs() < 1e-9);
        assert_eq!(nines(0.0), 0.0);
    }

    #[test]
    fn gaps_break_lines_and_values_map_into_the_frame() {
        let line = Line {
            label: "p95 <ms>".into(),
            color: palette::P95,
            width: 1.5,
            points: vec![Some((0.0, 1.0)), Some((1.0, 2.0)), None, Some((3.0, 4.0))],
        };
        let svg = time_chart("t", "T", " ms", 3.0, &[line], &[], Style::default());
        // Two sub-paths: M…L… then M….
        let d = svg
            .split(" d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert_eq!(d.matches('L').count(), 1, "{d}");
        assert!(svg.contains("p95 &lt;ms&gt;"));
        assert!(!svg.contains("NaN"));
    }
}
