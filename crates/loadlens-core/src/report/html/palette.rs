//! The one palette of loadlens' charts, for the HTML report and the live dashboard alike.
//!
//! Both draw their charts with this module's colours: the report's SVG is built here, the
//! dashboard shows the same SVG (rendered by the hub with the report's builders) and takes the
//! colours of its own page — the tiles, the tooltip — from [`css_vars`], which
//! [`super::style`] puts in front of the shared style sheet. A colour is therefore defined once,
//! in this file.
//!
//! Each figure keeps its colour on every chart: requests blue, p50 green, p95 orange, p99
//! purple, users brown. Red means failures and nothing else, so the categorical palette used for
//! request names and bar segments ([`CATEGORICAL`]) leaves it out.

/// Requests per second.
pub const REQUESTS: &str = "#4e79a7";
/// Failures (per second, counts, the failed-state tiles): the only red of the charts.
pub const FAILURES: &str = "#e15759";
/// Median latency.
pub const P50: &str = "#59a14f";
/// 95th percentile latency.
pub const P95: &str = "#f28e2b";
/// 99th percentile latency.
pub const P99: &str = "#b07aa1";
/// Active users.
pub const USERS: &str = "#9c755f";
/// The aggregate of every request name, where it is drawn beside the names.
pub const AGGREGATE: &str = "#222222";

/// Colours for things without a fixed colour (request names, bar segments), used in order:
/// Tableau 10, colour-blind friendly, without its red (kept for failures).
pub const CATEGORICAL: [&str; 9] = [
    "#4e79a7", "#f28e2b", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
    "#bab0ac",
];

/// The `i`-th categorical colour (wrapping around).
pub fn nth(i: usize) -> &'static str {
    CATEGORICAL[i % CATEGORICAL.len()]
}

/// The named colours as CSS custom properties (`--c-failures` …) on `:root`, for the parts of
/// the pages that are not SVG built here (tiles, legends, tooltip).
pub fn css_vars() -> String {
    let named = [
        ("requests", REQUESTS),
        ("failures", FAILURES),
        ("p50", P50),
        ("p95", P95),
        ("p99", P99),
        ("users", USERS),
        ("aggregate", AGGREGATE),
    ];
    let mut out = String::from(":root {");
    for (name, colour) in named {
        out.push_str(&format!(" --c-{name}: {colour};"));
    }
    out.push_str(" }\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_colour_is_distinct_and_red_means_failures_only() {
        let named = [REQUESTS, FAILURES, P50, P95, P99, USERS, AGGREGATE];
        for (i, a) in named.iter().enumerate() {
            for b in &named[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert!(!CATEGORICAL.contains(&FAILURES));
        assert!(css_vars().contains("--c-failures: #e15759;"));
        assert!(css_vars().contains("--c-p99: #b07aa1;"));
    }
}
