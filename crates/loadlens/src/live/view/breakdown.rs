//! The full-screen view's panel "Where the time went", shown only when a trace receiver feeds
//! the snapshots a breakdown: the trace coverage in its title, then one line per request name
//! with joined requests — its p95 and its largest components by share, the largest first, so
//! that the part that grows when the load rises is read at a glance.

use loadlens_core::breakdown::{Breakdown, Component};
use loadlens_core::duration::ms;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

/// Components named per line (the rest are in the reports).
const COMPONENTS_PER_LINE: usize = 3;

/// Lines the panel wants inside its borders: one per request name with joined requests, or one
/// saying there is none yet.
pub fn rows(b: &Breakdown) -> usize {
    b.requests.iter().filter(|r| r.joined > 0).count().max(1)
}

/// The title: coverage and the spans lost.
fn title(b: &Breakdown) -> String {
    let c = &b.coverage;
    let coverage = match c.ratio() {
        Some(r) => format!("{:.1}% of {} sampled requests joined", r * 100.0, c.sampled),
        None => "no request sampled yet".to_owned(),
    };
    let mut t = format!(" Where the time went · {coverage}");
    if c.spans_dropped + c.spans_late > 0 {
        t += &format!(
            " · {} spans dropped, {} late",
            c.spans_dropped, c.spans_late
        );
    }
    t + " "
}

/// One line per request name: name, p95, then its largest components by share.
fn lines(b: &Breakdown) -> Vec<Line<'static>> {
    let joined: Vec<_> = b.requests.iter().filter(|r| r.joined > 0).collect();
    if joined.is_empty() {
        return vec![Line::styled(
            "no sampled request has found its server spans yet",
            Style::new().add_modifier(Modifier::DIM),
        )];
    }
    let name_w = joined
        .iter()
        .map(|r| r.method.len() + 1 + r.name.chars().count())
        .max()
        .unwrap_or(0)
        .min(28);
    joined
        .iter()
        .map(|r| {
            let name: String = format!("{} {}", r.method, r.name)
                .chars()
                .take(name_w)
                .collect();
            let mut by_share: Vec<&Component> = r.components.iter().collect();
            by_share.sort_by(|a, b| b.share.total_cmp(&a.share));
            let mut spans = vec![
                Span::raw(format!("{name:<name_w$}  ")),
                Span::raw(format!("p95 {:>7} ms  ", ms(r.total.p95))),
            ];
            for (i, c) in by_share.iter().take(COMPONENTS_PER_LINE).enumerate() {
                if i > 0 {
                    spans.push(Span::styled(
                        " · ",
                        Style::new().add_modifier(Modifier::DIM),
                    ));
                }
                // The largest stands out: it is what the panel is for.
                let style = if i == 0 {
                    Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD)
                } else {
                    Style::new()
                };
                spans.push(Span::styled(
                    format!("{} {:.0}%", c.label, c.share * 100.0),
                    style,
                ));
            }
            Line::from(spans)
        })
        .collect()
}

/// Draw the panel into `area` (borders included).
pub fn render(frame: &mut Frame<'_>, area: Rect, b: &Breakdown) {
    let block = Block::bordered().title(title(b));
    frame.render_widget(Paragraph::new(lines(b)).block(block), area);
}
