//! Sections read from the result as JSON rather than through its Rust types: thresholds, the
//! open model's arrivals, generator health, named scenarios, and — generically — any section
//! this build has no view of. Reading the JSON value keeps the report able to show a result
//! written by a newer loadlens (`loadlens report` on a file from another version).

use std::fmt::Write as _;

use serde_json::Value;

use super::{esc, fmt_ms, num, section_open, stats_row, table, Rows, STATS_HEAD};
use crate::stats::RequestSummary;

/// Top-level keys rendered here by a dedicated view.
pub const HANDLED: [&str; 7] = [
    "thresholds",
    "actions",
    "comparison",
    "dropped_iterations",
    "arrivals",
    "generator",
    "scenarios",
];

fn f(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn has_stages(load: &Value) -> bool {
    load["stages"].as_array().is_some_and(|s| !s.is_empty())
}

/// The load settings in one line: users, spawn rate, run time, iterations, stages, arrivals.
pub fn load_text(load: &Value) -> String {
    let mut parts = Vec::new();
    let arrival = &load["arrival"];
    if arrival.is_object() {
        parts.push(format!(
            "open model: {} arrivals/s, {}–{} VUs",
            super::svg::compact(f(&arrival["rate_per_s"]).unwrap_or(0.0)),
            arrival["pre_allocated_vus"],
            arrival["max_vus"]
        ));
    } else if let Some(u) = load["users"].as_u64().filter(|_| !has_stages(load)) {
        parts.push(format!("{u} users"));
    }
    if let Some(r) = f(&load["spawn_rate"]) {
        parts.push(format!("spawn rate {}/s", super::svg::compact(r)));
    }
    if let Some(t) = f(&load["run_time"]) {
        parts.push(format!("run time {t:.0} s"));
    }
    if let Some(i) = load["iterations"].as_u64() {
        parts.push(format!("{i} iterations"));
    }
    if let Some(stages) = load["stages"].as_array().filter(|s| !s.is_empty()) {
        let list: Vec<String> = stages
            .iter()
            .map(|st| {
                format!(
                    "{}s→{}",
                    super::svg::compact(f(&st["duration_s"]).unwrap_or(0.0)),
                    super::svg::compact(f(&st["target"]).unwrap_or(0.0))
                )
            })
            .collect();
        parts.push(format!("stages {}", list.join(", ")));
    }
    parts.join(", ")
}

/// The generator's health for the run header, with a warning when the results are not to be
/// trusted; `None` when the result carries no health figures.
pub fn generator_item(doc: &Value) -> Option<(String, bool)> {
    let g = doc.get("generator").filter(|g| g.is_object())?;
    let cores = f(&g["cpu_cores"]).unwrap_or(0.0);
    let healthy = g["healthy"].as_bool().unwrap_or(false);
    let reasons: Vec<&str> = g["reasons"]
        .as_array()
        .map(|r| r.iter().map(s).collect())
        .unwrap_or_default();
    if cores == 0.0 && !healthy && reasons.is_empty() {
        return None; // not measured
    }
    let mut figures = vec![format!("{} CPU cores", super::svg::compact(cores))];
    if let (Some(avg), Some(max)) = (f(&g["cpu_avg_pct"]), f(&g["cpu_max_pct"])) {
        figures.push(format!("CPU avg {avg:.0}% / max {max:.0}%"));
    }
    if let Some(rss) = f(&g["peak_rss_mb"]) {
        figures.push(format!("peak RSS {rss:.0} MB"));
    }
    if let Some(a) = f(&g["achieved_pct"]) {
        figures.push(format!("{a:.1}% of arrivals started"));
    }
    let text = if healthy {
        format!("healthy ({})", figures.join(", "))
    } else {
        format!(
            "NOT trustworthy: {} ({})",
            reasons.join("; "),
            figures.join(", ")
        )
    };
    Some((esc(&text), healthy))
}

/// Each threshold's result, failed first as written; nothing when the run had none.
pub fn thresholds(out: &mut String, doc: &Value) {
    let Some(list) = doc["thresholds"].as_array().filter(|l| !l.is_empty()) else {
        return;
    };
    let failed = list.iter().filter(|t| t["passed"] == false).count();
    section_open(
        out,
        "thresholds",
        &format!(
            "Thresholds: {} of {} passed",
            list.len() - failed,
            list.len()
        ),
    );
    out.push_str(r#"<table class="stats" id="threshold-table"><thead><tr><th>Result</th><th>Threshold</th><th>Scope</th><th>Observed</th><th>First breach</th></tr></thead><tbody>"#);
    for t in list {
        let passed = t["passed"] == true;
        let result = match (passed, t["aborted"] == true) {
            (true, _) => "✓ passed",
            (false, true) => "✗ failed, aborted the run",
            (false, false) => "✗ failed",
        };
        let breach = f(&t["first_breach_s"])
            .map(|b| format!("{b:.1} s"))
            .unwrap_or_else(|| "-".into());
        // Tag scopes list the request names they merged.
        let covered: Vec<&str> = t["requests"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let scope = if covered.is_empty() {
            s(&t["scope"]).to_owned()
        } else {
            format!("{} ({})", s(&t["scope"]), covered.join(", "))
        };
        let _ = write!(
            out,
            r#"<tr class="{}"><td>{result}</td><td><code>{}</code></td><td>{}</td><td>{}</td>{}</tr>"#,
            if passed { "passed" } else { "failed" },
            esc(s(&t["expression"])),
            esc(&scope),
            esc(s(&t["detail"])),
            num(breach)
        );
    }
    out.push_str("</tbody></table></section>");
}

/// The open model's figures: intended and started arrivals, drops, VUs, scheduling delay.
pub fn arrivals(out: &mut String, doc: &Value) {
    let a = &doc["arrivals"];
    let dropped = doc["dropped_iterations"].as_u64().unwrap_or(0);
    if !a.is_object() && dropped == 0 {
        return;
    }
    section_open(out, "arrivals", "Open model");
    if a.is_object() {
        let d = &a["schedule_delay_ms"];
        let delay = |k: &str| fmt_ms(f(&d[k]).unwrap_or(0.0));
        let _ = write!(
            out,
            r#"<dl class="meta" id="arrival-figures"><div><dt>Intended arrivals</dt><dd>{}</dd></div><div><dt>Started</dt><dd>{} ({:.1}%)</dd></div><div><dt>Dropped iterations</dt><dd>{}</dd></div><div><dt>VUs allocated</dt><dd>{} of max {}</dd></div><div><dt>Schedule delay (ms)</dt><dd>p50 {} · p95 {} · p99 {} · max {}</dd></div></dl>"#,
            a["intended"],
            a["started"],
            f(&a["achieved_pct"]).unwrap_or(0.0),
            a["dropped_iterations"],
            a["vus_allocated"],
            a["max_vus"],
            delay("p50"),
            delay("p95"),
            delay("p99"),
            delay("max"),
        );
        out.push_str("<p>Latencies are measured from each arrival's intended start (no coordinated omission); a large schedule delay means the generator, not the target, fell behind.</p>");
    } else {
        let _ = write!(
            out,
            "<p>{dropped} iterations dropped: arrivals found no free VU.</p>"
        );
    }
    out.push_str("</section>");
}

/// One block per named scenario: its start, load, and request table.
pub fn scenarios(out: &mut String, doc: &Value) {
    let Some(list) = doc["scenarios"].as_array().filter(|l| !l.is_empty()) else {
        return;
    };
    section_open(out, "scenarios", "Scenarios");
    for (i, sc) in list.iter().enumerate() {
        let _ = write!(
            out,
            r#"<h3>{}</h3><p>Starts at {:.1} s · {}</p>"#,
            esc(s(&sc["name"])),
            f(&sc["start_time_s"]).unwrap_or(0.0),
            esc(&load_text(&sc["load"]))
        );
        let requests: Vec<RequestSummary> = sc["requests"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|x| serde_json::from_value(x.clone()).ok())
                    .collect()
            })
            .unwrap_or_default();
        let aggregate: RequestSummary =
            serde_json::from_value(sc["aggregate"].clone()).unwrap_or_default();
        table(
            out,
            &format!("scenario-{i}"),
            "Request statistics (times in ms)",
            &STATS_HEAD,
            Rows {
                requests: &requests,
                aggregate: &aggregate,
            },
            &stats_row,
        );
    }
    out.push_str("</section>");
}

/// Top-level sections of the document without a dedicated view, in document order.
pub fn extra_sections(doc: &Value) -> Vec<(String, Value)> {
    match doc {
        Value::Object(map) => map
            .iter()
            .filter(|(k, v)| {
                !super::KNOWN_KEYS.contains(&k.as_str())
                    && !HANDLED.contains(&k.as_str())
                    && !is_empty_value(v)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        _ => Vec::new(),
    }
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

pub fn title_of(key: &str) -> String {
    let s = key.replace('_', " ");
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// A scalar as text, anything else as compact JSON.
pub fn inline_value(v: &Value) -> String {
    match v {
        Value::String(s) => esc(s),
        Value::Null => "-".into(),
        Value::Number(_) | Value::Bool(_) => v.to_string(),
        _ => format!("<code>{}</code>", esc(&v.to_string())),
    }
}

/// A section for data this build has no dedicated view of: an array of objects becomes a table
/// (columns: the union of keys), an object a list of key/value pairs (nested one level), a
/// scalar one line.
pub fn generic_section(out: &mut String, key: &str, value: &Value) {
    let _ = write!(
        out,
        r#"<section id="x-{}" class="generic"><h2>{}</h2>"#,
        esc(key),
        esc(&title_of(key))
    );
    generic_value(out, value, 0);
    out.push_str("</section>");
}

fn generic_value(out: &mut String, value: &Value, depth: usize) {
    match value {
        Value::Array(items) if items.iter().all(Value::is_object) && !items.is_empty() => {
            let mut cols: Vec<&String> = Vec::new();
            for item in items.iter().filter_map(Value::as_object) {
                for k in item.keys() {
                    if !cols.contains(&k) {
                        cols.push(k);
                    }
                }
            }
            out.push_str("<table class=\"stats\"><thead><tr>");
            for c in &cols {
                let _ = write!(out, "<th>{}</th>", esc(c));
            }
            out.push_str("</tr></thead><tbody>");
            for item in items.iter().filter_map(Value::as_object) {
                out.push_str("<tr>");
                for c in &cols {
                    let v = item.get(*c).unwrap_or(&Value::Null);
                    let class = if v.is_number() { " class=\"num\"" } else { "" };
                    let _ = write!(out, "<td{class}>{}</td>", inline_value(v));
                }
                out.push_str("</tr>");
            }
            out.push_str("</tbody></table>");
        }
        Value::Object(map) if depth < 2 => {
            out.push_str("<dl class=\"meta\">");
            for (k, v) in map {
                let _ = write!(out, "<div><dt>{}</dt><dd>", esc(k));
                if v.is_object() || v.is_array() {
                    generic_value(out, v, depth + 1);
                } else {
                    out.push_str(&inline_value(v));
                }
                out.push_str("</dd></div>");
            }
            out.push_str("</dl>");
        }
        v => {
            let _ = write!(out, "<p>{}</p>", inline_value(v));
        }
    }
}
