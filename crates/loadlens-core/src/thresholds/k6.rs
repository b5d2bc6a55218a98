//! k6's threshold spelling, read as the loadlens rule it means, so that thresholds copied from
//! a k6 script work as they are (k6: `aggregation operator value` on a metric, see
//! <https://grafana.com/docs/k6/latest/using-k6/thresholds/>):
//!
//! ```text
//! k6                                   loadlens
//! p(95)<300                            p95 < 300ms      (a bare k6 Trend value is ms)
//! http_req_duration: p(99.9)<1000      p99.9 < 1000ms
//! http_req_duration{name:x}: avg<200   avg{name:x} < 200ms
//! http_req_failed: rate<0.01           error_rate < 0.01
//! http_reqs: rate>100 / count>1000     rps > 100 / requests > 1000
//! checks: rate>0.99                    checks > 0.99
//! dropped_iterations: count<1          dropped_iterations < 1
//! ```
//!
//! `===` means `==`. A k6 metric or tag with no loadlens equivalent is refused with a message
//! that names what loadlens measures instead.

use super::ParseErrorKind;

/// The k6 metrics loadlens has an equivalent of, with the aggregations each takes.
const KNOWN: [(&str, &[&str]); 5] = [
    ("http_req_duration", &["p(N)", "avg", "min", "max", "med"]),
    ("http_req_failed", &["rate"]),
    ("http_reqs", &["count", "rate"]),
    ("checks", &["rate"]),
    ("dropped_iterations", &["count"]),
];

/// k6 built-in metrics without a loadlens threshold.
const OTHER_K6: [&str; 15] = [
    "http_req_blocked",
    "http_req_connecting",
    "http_req_tls_handshaking",
    "http_req_sending",
    "http_req_waiting",
    "http_req_receiving",
    "iteration_duration",
    "iterations",
    "vus",
    "vus_max",
    "data_received",
    "data_sent",
    "group_duration",
    "http_req_duration_expected",
    "ws_session_duration",
];

/// The loadlens rule for `rule` when it is written the k6 way; `None` when it is not (it is
/// then read as a loadlens rule).
pub(super) fn translate(rule: &str) -> Option<Result<String, ParseErrorKind>> {
    let rule = rule.trim();
    // `metric{scope}: expression` (a `:` inside the braces belongs to the scope).
    let scope_end = rule.find('}').map_or(0, |i| i + 1);
    if let Some(colon) = rule[scope_end..].find(':').map(|i| scope_end + i) {
        let (lhs, expr) = (rule[..colon].trim(), rule[colon + 1..].trim());
        let metric = lhs.split('{').next().unwrap_or_default().trim();
        let scope = &lhs[metric.len()..];
        if KNOWN.iter().any(|(m, _)| *m == metric) {
            return Some(expression(metric, scope.trim(), expr));
        }
        if OTHER_K6.contains(&metric) {
            return Some(Err(unsupported(&format!("k6's `{metric}`"))));
        }
        return None;
    }
    // A bare k6 expression: `p(95)<300` means http_req_duration; `rate<…` needs its metric.
    let aggregation = aggregation_of(rule);
    if aggregation.starts_with("p(") {
        return Some(expression("http_req_duration", "", rule));
    }
    if matches!(aggregation, "rate" | "count" | "value") {
        return Some(Err(ParseErrorKind::K6(format!(
            "`{aggregation}` needs its k6 metric: write `http_req_failed: rate<0.01` (loadlens `error_rate < 1%`), `http_reqs: rate>100` (`rps > 100`), `http_reqs: count>1000` (`requests > 1000`) or `checks: rate>0.99` (`checks > 99%`)"
        ))));
    }
    None
}

/// The aggregation at the start of a k6 expression (`p(95)`, `avg`, `rate`).
fn aggregation_of(expr: &str) -> &str {
    let end = expr
        .find(|c: char| matches!(c, '<' | '>' | '=' | '!') || c.is_whitespace())
        .unwrap_or(expr.len());
    &expr[..end]
}

/// One k6 expression on `metric` (with its k6 scope, `{name:x}` or empty) as a loadlens rule.
fn expression(metric: &str, scope: &str, expr: &str) -> Result<String, ParseErrorKind> {
    let aggregation = aggregation_of(expr);
    let rest = expr[aggregation.len()..].trim();
    let (op, value) = ["===", "==", "!=", "<=", ">=", "<", ">"]
        .iter()
        .find_map(|op| rest.strip_prefix(op).map(|v| (*op, v.trim())))
        .ok_or(ParseErrorKind::MissingComparison)?;
    let op = if op == "===" { "==" } else { op };
    check_scope(scope)?;
    let loadlens = match (metric, aggregation) {
        ("http_req_duration", a) if a.starts_with("p(") && a.ends_with(')') => {
            format!("p{}", &a[2..a.len() - 1])
        }
        ("http_req_duration", a @ ("avg" | "min" | "max" | "med")) => a.to_owned(),
        ("http_req_failed", "rate") => "error_rate".to_owned(),
        ("http_reqs", "rate") => "rps".to_owned(),
        ("http_reqs", "count") => "requests".to_owned(),
        ("checks", "rate") => "checks".to_owned(),
        ("dropped_iterations", "count") => "dropped_iterations".to_owned(),
        (m, a) => {
            let takes = KNOWN
                .iter()
                .find(|(k, _)| *k == m)
                .map_or(&[][..], |(_, t)| *t);
            return Err(ParseErrorKind::K6(format!(
                "k6's `{m}` takes {}, not `{a}`",
                takes.join(", ")
            )));
        }
    };
    // A bare number on a latency is milliseconds in both; say so, so that the rule reads the
    // same in every report.
    let value = if metric == "http_req_duration" && value.parse::<f64>().is_ok() {
        format!("{value}ms")
    } else {
        value.to_owned()
    };
    Ok(format!("{loadlens}{scope} {op} {value}"))
}

/// k6 scopes by any tag; loadlens by request name and named scenario (its `tag:` is a task
/// tag, which k6 has no equivalent of).
fn check_scope(scope: &str) -> Result<(), ParseErrorKind> {
    let Some(inner) = scope.strip_prefix('{').and_then(|s| s.strip_suffix('}')) else {
        return if scope.is_empty() {
            Ok(())
        } else {
            Err(ParseErrorKind::UnclosedScope {
                lhs: scope.to_owned(),
            })
        };
    };
    let key = inner.split(':').next().unwrap_or_default().trim();
    match key {
        "name" | "scenario" => Ok(()),
        other => Err(ParseErrorKind::K6(format!(
            "k6's tag `{other}` has no loadlens scope: scope by `{{name:…}}` (a request name) or `{{scenario:…}}`"
        ))),
    }
}

fn unsupported(what: &str) -> ParseErrorKind {
    ParseErrorKind::K6(format!(
        "{what} has no loadlens threshold; loadlens measures p50 … p99.99, avg, min, max (k6 http_req_duration), error_rate (http_req_failed: rate), rps and requests (http_reqs), checks and dropped_iterations"
    ))
}

#[cfg(test)]
mod tests {
    use super::translate;

    fn t(rule: &str) -> String {
        match translate(rule) {
            Some(Ok(s)) => s,
            Some(Err(e)) => format!("error: {e}"),
            None => "none".to_owned(),
        }
    }

    #[test]
    fn reads_the_k6_examples_as_loadlens_rules() {
        assert_eq!(t("p(95)<300"), "p95 < 300ms");
        assert_eq!(t("p(99.9) <= 1000"), "p99.9 <= 1000ms");
        assert_eq!(
            t("http_req_duration: ['p(95)<500']"
                .replace(['[', ']', '\''], "")
                .as_str()),
            "p95 < 500ms"
        );
        assert_eq!(t("http_req_duration: avg<200"), "avg < 200ms");
        assert_eq!(
            t("http_req_duration{name:GET /x}: med<150"),
            "med{name:GET /x} < 150ms"
        );
        assert_eq!(t("http_req_failed: rate<0.01"), "error_rate < 0.01");
        assert_eq!(t("http_reqs: rate>100"), "rps > 100");
        assert_eq!(t("http_reqs: count>=1000"), "requests >= 1000");
        assert_eq!(t("checks: rate>0.99"), "checks > 0.99");
        assert_eq!(
            t("dropped_iterations: count===0"),
            "dropped_iterations == 0"
        );
    }

    #[test]
    fn leaves_loadlens_rules_alone() {
        for rule in [
            "p95 < 300ms",
            "avg{name:x: y} < 1s",
            "error_rate < 1%",
            "generator_healthy",
        ] {
            assert_eq!(t(rule), "none", "{rule}");
        }
    }

    #[test]
    fn answers_what_has_no_equivalent_with_the_loadlens_one() {
        assert!(
            t("rate<0.01").contains("`http_req_failed: rate<0.01` (loadlens `error_rate < 1%`)")
        );
        assert!(t("http_req_waiting: p(95)<100")
            .contains("k6's `http_req_waiting` has no loadlens threshold"));
        assert!(t("http_req_failed: p(95)<1")
            .contains("k6's `http_req_failed` takes rate, not `p(95)`"));
        assert!(t("http_req_duration{status:200}: p(95)<1")
            .contains("k6's tag `status` has no loadlens scope"));
    }
}
