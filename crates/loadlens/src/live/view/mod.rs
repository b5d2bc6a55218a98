//! What the full-screen view shows, kept apart from the terminal: [`View`] folds snapshots into
//! its own short history (for the sparklines) and a list of recent errors, and
//! [`View::render`] draws it into any ratatui frame — the real terminal, or a `TestBackend`
//! buffer in the tests.
//!
//! Layout, top to bottom: a title line (run id, scenario, profile), time elapsed and left with a
//! progress bar, the run's figures; the table per request name (method, name, requests,
//! failures, p50/p95/p99, average and current req/s) with the aggregate as its last row; where
//! the time went ([`breakdown`], only when a trace receiver runs); sparklines of req/s and p95; the recent errors; log lines that arrived during the run; and
//! the key help, which turns into the stop notice once a stop was asked for. Columns and panels
//! give way on small terminals; below a minimum size only the progress line is left.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use loadlens_core::duration::ms;
use loadlens_core::sample::ErrorKind;
use loadlens_core::stats::{RequestSummary, SeriesPoint, Snapshot};
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, LineGauge, Paragraph, Row, Sparkline, Table, Wrap};
use ratatui::Frame;

use super::Header;

mod breakdown;

/// Snapshots kept for the sparklines: ten minutes at one a second, wider than any terminal.
const HISTORY: usize = 600;
/// Distinct errors kept (the most recently seen).
const ERRORS_KEPT: usize = 20;
/// Log lines kept for display.
const LOGS_KEPT: usize = 20;
/// Most lines of one row of sparklines; a terminal with room for two gets a second row
/// (failures/s, users).
const SPARK_ROW: u16 = 10;
/// Below this size the view is the progress line alone.
const MIN_WIDTH: u16 = 50;
const MIN_HEIGHT: u16 = 14;

/// One distinct error (request, kind, message) and how often it happened so far.
#[derive(Debug, Clone, PartialEq)]
struct RecentError {
    method: String,
    name: String,
    kind: ErrorKind,
    message: String,
    count: u64,
    last_seen: Duration,
}

/// The state of the full-screen view.
#[derive(Debug)]
pub struct View {
    header: Header,
    run_time: Option<Duration>,
    names: Vec<(String, String)>,
    latest: Option<Arc<Snapshot>>,
    /// The last [`HISTORY`] intervals.
    history: VecDeque<SeriesPoint>,
    errors: Vec<RecentError>,
    logs: VecDeque<String>,
    notice: Option<String>,
    /// Stop requests made so far (`q`, Ctrl-C).
    pub stop_requests: usize,
    /// True once the run is stopping, for any reason.
    pub stopping: bool,
}

impl View {
    /// An empty view; `names` are the `(method, name)` pairs in `NameId` order.
    pub fn new(header: Header, run_time: Option<Duration>, names: Vec<(String, String)>) -> Self {
        View {
            header,
            run_time,
            names,
            latest: None,
            history: VecDeque::with_capacity(HISTORY),
            errors: Vec::new(),
            logs: VecDeque::new(),
            notice: None,
            stop_requests: 0,
            stopping: false,
        }
    }

    /// Fold in a new snapshot.
    pub fn push(&mut self, s: Arc<Snapshot>) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(s.point.clone());
        for e in s.interval.errors.sorted() {
            let (method, name) = self
                .names
                .get(e.name.0 as usize)
                .cloned()
                .unwrap_or_default();
            match self.errors.iter_mut().find(|r| {
                r.kind == e.kind && r.message == e.message && r.name == name && r.method == method
            }) {
                Some(r) => {
                    r.count += e.count;
                    r.last_seen = s.elapsed;
                }
                None => self.errors.push(RecentError {
                    method,
                    name,
                    kind: e.kind,
                    message: e.message,
                    count: e.count,
                    last_seen: s.elapsed,
                }),
            }
        }
        // Newest first, then the most frequent; the stalest fall off.
        self.errors
            .sort_by(|a, b| b.last_seen.cmp(&a.last_seen).then(b.count.cmp(&a.count)));
        self.errors.truncate(ERRORS_KEPT);
        self.latest = Some(s);
    }

    /// A stop notice (replaces the key help).
    pub fn notice(&mut self, text: String) {
        self.notice = Some(text);
    }

    /// A log line that arrived during the run. Its timestamp is left out here (the line is
    /// printed whole after the run).
    pub fn log(&mut self, line: String) {
        if self.logs.len() == LOGS_KEPT {
            self.logs.pop_front();
        }
        let line = match line.trim_start().split_once(' ') {
            Some((stamp, rest))
                if stamp.len() >= 20
                    && stamp.ends_with('Z')
                    && stamp.starts_with(|c: char| c.is_ascii_digit()) =>
            {
                rest.trim_start().to_owned()
            }
            _ => line,
        };
        self.logs.push_back(line);
    }

    /// Draw everything into `frame`.
    pub fn render(&self, frame: &mut Frame<'_>) {
        let area = frame.area();
        if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
            self.render_compact(frame, area);
            return;
        }
        let tall = area.height >= 36;
        let error_rows = self.errors.len().clamp(1, if tall { 8 } else { 3 }) as u16;
        let log_rows = self.logs.len().min(if tall { 3 } else { 1 }) as u16;
        // The table as tall as its rows (header, one per request, aggregate, borders) while the
        // sparklines keep their minimum; the sparklines take what is left.
        let requests = self.latest.as_ref().map_or(0, |s| s.requests.len() + 1) as u16;
        let middle = area.height - 3 - (error_rows + 2) - log_rows - 1;
        // Where the time went, when there is a breakdown and the table keeps its minimum.
        let panel_h = self.breakdown().map_or(0, |b| {
            breakdown::rows(b).min(if tall { 6 } else { 3 }) as u16 + 2
        });
        let panel_h = if middle >= panel_h + 4 { panel_h } else { 0 };
        let middle = middle - panel_h;
        let want = requests + 3;
        // Smaller sparklines, or none, rather than a table cut short.
        let spark_min = [8, 5, 3]
            .into_iter()
            .filter(|h| tall || *h < 8)
            .find(|h| middle >= want + h)
            // The table fits without sparklines, or will not fit anyway: keep some.
            .unwrap_or(if middle >= want {
                0
            } else {
                middle.saturating_sub(4).min(5)
            });
        let table_h = want.min(middle.saturating_sub(spark_min)).max(4);
        // Taller sparklines say no more; what is left stays blank above the key help.
        let spark_h = match middle.saturating_sub(table_h) {
            h if h >= 2 * SPARK_ROW => 2 * SPARK_ROW,
            h => h.min(SPARK_ROW),
        };
        let [head, table, panel, sparks, errors, _, logs, footer] = Layout::vertical([
            Constraint::Length(3),
            Constraint::Length(table_h),
            Constraint::Length(panel_h),
            Constraint::Length(spark_h),
            Constraint::Length(error_rows + 2),
            Constraint::Fill(1),
            Constraint::Length(log_rows),
            Constraint::Length(1),
        ])
        .areas(area);
        self.render_head(frame, head);
        self.render_table(frame, table);
        if let Some(b) = self.breakdown().filter(|_| panel_h > 0) {
            breakdown::render(frame, panel, b);
        }
        self.render_sparklines(frame, sparks);
        self.render_errors(frame, errors);
        let lines: Vec<Line<'_>> = self
            .logs
            .iter()
            .skip(self.logs.len() - log_rows as usize)
            .map(|l| Line::styled(l.as_str(), Style::new().fg(Color::Yellow)))
            .collect();
        frame.render_widget(Paragraph::new(lines), logs);
        frame.render_widget(Paragraph::new(self.footer()), footer);
    }

    fn title(&self) -> Line<'_> {
        Line::from(vec![
            Span::styled(
                " loadlens ",
                Style::new()
                    .fg(Color::Black)
                    .bg(Color::Cyan)
                    .add_modifier(Modifier::BOLD),
            ),
            Span::raw(format!(
                " run {} · {} · {}",
                self.header.run_id, self.header.scenario, self.header.profile
            )),
        ])
    }

    /// Where the time went so far (`None` without a trace receiver).
    fn breakdown(&self) -> Option<&loadlens_core::breakdown::Breakdown> {
        self.latest.as_ref()?.breakdown.as_deref()
    }

    fn elapsed(&self) -> Duration {
        self.latest.as_ref().map_or(Duration::ZERO, |s| s.elapsed)
    }

    fn time_label(&self) -> String {
        let elapsed = self.elapsed().as_secs();
        let mut t = format!("elapsed {}", super::clock(elapsed));
        if let Some(rt) = self.run_time {
            t += &format!(
                " · left {}",
                super::clock(rt.as_secs().saturating_sub(elapsed))
            );
        }
        if self.stopping {
            t += " · stopping";
        }
        t
    }

    fn figures(&self) -> Line<'_> {
        let Some(s) = &self.latest else {
            return Line::styled(
                "waiting for the first second of results…",
                Style::new().add_modifier(Modifier::DIM),
            );
        };
        let t = &s.total;
        let fail_style = if t.failure_count > 0 {
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD)
        } else {
            Style::new()
        };
        let bold = Style::new().add_modifier(Modifier::BOLD);
        let sep = || Span::styled(" │ ", Style::new().add_modifier(Modifier::DIM));
        Line::from(vec![
            Span::raw("users "),
            Span::styled(s.users.to_string(), bold),
            sep(),
            Span::raw("reqs "),
            Span::styled(t.request_count.to_string(), bold),
            sep(),
            Span::raw("failures "),
            Span::styled(
                format!("{} ({:.2}%)", t.failure_count, t.error_rate * 100.0),
                fail_style,
            ),
            sep(),
            Span::styled(rate(s.point.rps), bold),
            Span::raw(" req/s now"),
            sep(),
            Span::raw("p95 "),
            Span::styled(format!("{} ms", ms(s.point.p95_ms)), bold),
            Span::raw(" now"),
        ])
    }

    fn render_head(&self, frame: &mut Frame<'_>, area: Rect) {
        let [title, time, figures] = Layout::vertical([Constraint::Length(1); 3]).areas(area);
        frame.render_widget(Paragraph::new(self.title()), title);
        let label = Span::styled(
            self.time_label(),
            if self.stopping {
                Style::new().fg(Color::Yellow)
            } else {
                Style::new()
            },
        );
        match self.run_time.filter(|rt| !rt.is_zero()) {
            Some(rt) => {
                let ratio = (self.elapsed().as_secs_f64() / rt.as_secs_f64()).clamp(0.0, 1.0);
                let gauge = LineGauge::default()
                    .ratio(ratio)
                    .label(Line::from(label))
                    .filled_style(Style::new().fg(Color::Cyan))
                    .unfilled_style(Style::new().fg(Color::DarkGray));
                frame.render_widget(gauge, time);
            }
            None => frame.render_widget(Paragraph::new(Line::from(label)), time),
        }
        frame.render_widget(Paragraph::new(self.figures()), figures);
    }

    fn render_table(&self, frame: &mut Frame<'_>, area: Rect) {
        let names = self.latest.as_ref().map_or(0, |s| s.requests.len());
        // Borders, header and the aggregate take four lines.
        let fit = (area.height as usize).saturating_sub(4);
        let block = Block::bordered().title(if fit < names {
            format!(" Requests: {fit} of {names} shown (a taller terminal shows all) ")
        } else {
            " Requests ".to_owned()
        });
        // Before the first snapshot: the header row alone, laid out as it will be.
        let lines: Vec<(&RequestSummary, f64)> = match &self.latest {
            None => Vec::new(),
            Some(s) => {
                let span = s.point.span_s;
                let now = |r: &RequestSummary| {
                    let id = self
                        .names
                        .iter()
                        .position(|(m, n)| *m == r.method && *n == r.name);
                    let count = id
                        .and_then(|i| s.interval.requests.get(i))
                        .map_or(0, |st| st.count);
                    if span > 0.0 {
                        count as f64 / span
                    } else {
                        0.0
                    }
                };
                let mut lines: Vec<_> = s.requests.iter().map(|r| (r, now(r))).collect();
                lines.push((&s.total, s.point.rps));
                lines
            }
        };
        let texts: Vec<Vec<String>> = lines
            .iter()
            .map(|(r, now)| Col::ALL.iter().map(|c| c.text(r, *now)).collect())
            .collect();
        // Each column as wide as its widest cell; the name takes the rest. The richest set of
        // columns that leaves the name its room is shown.
        let width = |i: usize| {
            texts
                .iter()
                .map(|t| t[i].chars().count())
                .chain([Col::ALL[i].name().len()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..Col::ALL.len()).map(width).collect();
        let name_room = width(1).min(24);
        let inner = area.width.saturating_sub(2) as usize;
        let cols = Col::SETS
            .iter()
            .find(|set| {
                let fixed: usize = set
                    .iter()
                    .filter(|c| **c != Col::Name)
                    .map(|c| widths[c.index()] + 1)
                    .sum();
                inner >= fixed + name_room
            })
            .unwrap_or(&Col::SETS[Col::SETS.len() - 1]);
        let fixed: usize = cols
            .iter()
            .filter(|c| **c != Col::Name)
            .map(|c| widths[c.index()])
            .sum();
        // Names as wide as the longest; on a wide terminal the columns spread a little and the
        // rest stays blank instead of pushing the numbers far from their names.
        let gaps = cols.len() - 1;
        let name_w = width(1).min(inner.saturating_sub(fixed + gaps));
        let spacing = if inner >= fixed + name_w + 3 * gaps {
            3
        } else {
            1
        };
        let constraints = cols.iter().map(|c| match c {
            Col::Name => Constraint::Length(name_w.max(4) as u16),
            c => Constraint::Length(widths[c.index()] as u16),
        });
        let row = |(r, t): (&(&RequestSummary, f64), &Vec<String>)| {
            Row::new(cols.iter().map(|c| {
                let text = t[c.index()].clone();
                match c {
                    Col::Method | Col::Name => Cell::from(text),
                    Col::Fails if r.0.failure_count > 0 => {
                        Cell::from(Line::from(text).right_aligned())
                            .style(Style::new().fg(Color::Red))
                    }
                    _ => Cell::from(Line::from(text).right_aligned()),
                }
            }))
        };
        let mut rows: Vec<Row<'_>> = lines.iter().zip(&texts).map(row).collect();
        let total = rows
            .pop()
            .map(|r| r.style(Style::new().add_modifier(Modifier::BOLD)));
        let header = Row::new(cols.iter().map(|c| c.title()))
            .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
        let mut table = Table::new(rows, constraints)
            .header(header)
            .column_spacing(spacing)
            .flex(Flex::Start)
            .block(block);
        if let Some(total) = total {
            table = table.footer(total);
        }
        frame.render_widget(table, area);
    }

    /// req/s and p95 side by side; on a tall terminal failures/s and users below them.
    fn render_sparklines(&self, frame: &mut Frame<'_>, area: Rect) {
        let (top, bottom) = if area.height >= SPARK_ROW * 2 {
            let [t, b] = Layout::vertical([Constraint::Fill(1); 2]).areas(area);
            (t, Some(b))
        } else {
            (area, None)
        };
        let halves = |r: Rect| -> [Rect; 2] {
            Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)]).areas(r)
        };
        let [left, right] = halves(top);
        self.sparkline(frame, left, "req/s", Color::Green, |p| {
            (p.rps, p.rps.round() as u64, rate(p.rps))
        });
        // p95 in microseconds: loopback latencies are fractions of a millisecond.
        self.sparkline(frame, right, "p95", Color::Yellow, |p| {
            let v = p.p95_ms;
            (v, (v * 1000.0).round() as u64, format!("{} ms", ms(v)))
        });
        if let Some(bottom) = bottom {
            let [left, right] = halves(bottom);
            self.sparkline(frame, left, "failures/s", Color::Red, |p| {
                let v = p.failures_per_s;
                (v, (v * 100.0).round() as u64, rate(v))
            });
            self.sparkline(frame, right, "users", Color::Cyan, |p| {
                (p.users as f64, p.users, p.users.to_string())
            });
        }
    }

    /// One sparkline of the history's newest points that fit; `value` gives a point's number,
    /// its bar height and its label.
    fn sparkline(
        &self,
        frame: &mut Frame<'_>,
        area: Rect,
        what: &str,
        color: Color,
        value: impl Fn(&SeriesPoint) -> (f64, u64, String),
    ) {
        let width = area.width.saturating_sub(2) as usize;
        let shown: Vec<(f64, u64, String)> = self
            .history
            .iter()
            .skip(self.history.len().saturating_sub(width))
            .map(&value)
            .collect();
        let title = match (
            shown.last(),
            shown.iter().max_by(|a, b| a.0.total_cmp(&b.0)),
        ) {
            (Some(last), Some(max)) => format!(" {what}  now {} · max {} ", last.2, max.2),
            _ => format!(" {what} "),
        };
        let block = Block::bordered().title(title);
        let spark = Sparkline::default()
            .data(shown.iter().map(|v| v.1))
            .style(Style::new().fg(color))
            .block(block);
        frame.render_widget(spark, area);
    }

    fn render_errors(&self, frame: &mut Frame<'_>, area: Rect) {
        let now = self.elapsed();
        let title = match self.errors.len() {
            0 => " Errors: none so far ".to_owned(),
            1 => " Errors: 1 kind ".to_owned(),
            n => format!(" Errors: {n} kinds, newest first "),
        };
        let lines: Vec<Line<'_>> = self
            .errors
            .iter()
            .map(|e| {
                let ago = now.saturating_sub(e.last_seen).as_secs();
                let when = if ago == 0 {
                    "now".to_owned()
                } else {
                    format!("{ago}s ago")
                };
                Line::from(vec![
                    Span::styled(
                        format!("{:>7}× ", e.count),
                        Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
                    ),
                    Span::raw(format!("{} {}  ", e.method, e.name)),
                    Span::styled(
                        format!("{}: {}", e.kind, e.message),
                        Style::new().fg(Color::Red),
                    ),
                    Span::styled(
                        format!("  ({when})"),
                        Style::new().add_modifier(Modifier::DIM),
                    ),
                ])
            })
            .collect();
        let style = if self.errors.is_empty() {
            Style::new().add_modifier(Modifier::DIM)
        } else {
            Style::new()
        };
        frame.render_widget(
            Paragraph::new(lines).block(Block::bordered().title(title).border_style(style)),
            area,
        );
    }

    fn footer(&self) -> Line<'_> {
        let key = Style::new().add_modifier(Modifier::BOLD | Modifier::REVERSED);
        if self.stop_requests >= 2 {
            return Line::styled(
                " Stopping now: in-flight requests are abandoned; the reports are still written.",
                Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            );
        }
        if self.stop_requests == 1 || self.stopping {
            let text = match &self.notice {
                Some(n) if self.stop_requests == 1 => n.clone(),
                _ => "Stopping: in-flight requests get to finish…".to_owned(),
            };
            return Line::from(vec![
                Span::styled(
                    format!(" {text} "),
                    Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
                ),
                Span::styled(" q ", key),
                Span::raw(if self.stop_requests == 1 {
                    " again: stop now"
                } else {
                    " twice: stop now"
                }),
            ]);
        }
        Line::from(vec![
            Span::styled(" q ", key),
            Span::raw(" stop gracefully  "),
            Span::styled(" Ctrl-C ", key),
            Span::raw(" too; press either twice to stop at once"),
        ])
    }

    /// A terminal too small for the layout: the progress line and the key help, wrapped.
    fn render_compact(&self, frame: &mut Frame<'_>, area: Rect) {
        let mut lines = vec![self.title()];
        lines.push(match &self.latest {
            Some(s) => Line::raw(super::line(s, self.run_time)),
            None => Line::raw("waiting for the first second of results…"),
        });
        lines.push(self.footer());
        frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), area);
    }
}

/// Table columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Col {
    Method,
    Name,
    Reqs,
    Fails,
    P50,
    P95,
    P99,
    Rps,
    Now,
}

impl Col {
    const ALL: [Col; 9] = [
        Col::Method,
        Col::Name,
        Col::Reqs,
        Col::Fails,
        Col::P50,
        Col::P95,
        Col::P99,
        Col::Rps,
        Col::Now,
    ];

    /// What is shown, richest first: the narrower the terminal, the fewer columns.
    const SETS: [&'static [Col]; 4] = [
        &Col::ALL,
        &[
            Col::Method,
            Col::Name,
            Col::Reqs,
            Col::Fails,
            Col::P50,
            Col::P95,
            Col::P99,
            Col::Now,
        ],
        &[
            Col::Method,
            Col::Name,
            Col::Reqs,
            Col::Fails,
            Col::P95,
            Col::P99,
            Col::Now,
        ],
        &[
            Col::Method,
            Col::Name,
            Col::Reqs,
            Col::Fails,
            Col::P95,
            Col::Now,
        ],
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn name(self) -> &'static str {
        match self {
            Col::Method => "Method",
            Col::Name => "Name",
            Col::Reqs => "# reqs",
            Col::Fails => "# fails",
            Col::P50 => "p50 ms",
            Col::P95 => "p95 ms",
            Col::P99 => "p99 ms",
            Col::Rps => "req/s",
            Col::Now => "now/s",
        }
    }

    fn title(self) -> Cell<'static> {
        match self {
            Col::Method | Col::Name => Cell::from(self.name()),
            _ => Cell::from(Line::from(self.name()).right_aligned()),
        }
    }

    /// The cell of `r` (cumulative figures; `now`: req/s in the last interval).
    fn text(self, r: &RequestSummary, now: f64) -> String {
        match self {
            Col::Method => r.method.clone(),
            Col::Name => r.name.clone(),
            Col::Reqs => r.request_count.to_string(),
            Col::Fails => format!("{} ({:.2}%)", r.failure_count, r.error_rate * 100.0),
            Col::P50 => ms(r.latency_ms.p50),
            Col::P95 => ms(r.latency_ms.p95),
            Col::P99 => ms(r.latency_ms.p99),
            Col::Rps => rate(r.rps),
            Col::Now => rate(now),
        }
    }
}

/// A rate with the precision its size deserves.
fn rate(v: f64) -> String {
    if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

#[cfg(test)]
mod tests;
