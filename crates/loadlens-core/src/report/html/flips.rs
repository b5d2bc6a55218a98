//! The report's "Actions" and "Before/after" sections: guard actions and planned flips with
//! their outcomes, and per flip a table of each request name's p50/p95/p99, error rate and
//! throughput before and after it, with the differences (a latency that grew in red). Read
//! from the result's JSON form, like the other outcome sections.

use std::fmt::Write as _;

use serde_json::Value;

use super::{esc, section_open};

/// `actions` of the result: when, what, outcome, why.
pub fn actions(out: &mut String, doc: &Value) {
    let Some(list) = doc["actions"].as_array().filter(|l| !l.is_empty()) else {
        return;
    };
    section_open(out, "actions", "Actions");
    out.push_str("<table><thead><tr><th>at</th><th>action</th><th>outcome</th><th>detail</th><th>cause</th></tr></thead><tbody>");
    for a in list {
        let status = a["status"].as_str().unwrap_or("");
        let class = if status == "failed" {
            " class=\"bad\""
        } else {
            ""
        };
        let _ = write!(
            out,
            r#"<tr{class}><td class="num">{:.1} s</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            a["elapsed_s"].as_f64().unwrap_or(0.0),
            esc(a["action"].as_str().unwrap_or("")),
            esc(&status.replace('_', " ")),
            esc(a["detail"].as_str().unwrap_or("")),
            esc(a["cause"].as_str().unwrap_or(""))
        );
    }
    out.push_str("</tbody></table></section>");
}

fn cell(r: &Value, key: &str, pct: bool) -> String {
    let k = if pct { 100.0 } else { 1.0 };
    let unit = if pct { "%" } else { "" };
    let v = |side: &str| {
        r[side][key]
            .as_f64()
            .map_or_else(|| "–".to_owned(), |x| format!("{:.1}{unit}", x * k))
    };
    let (diff, class) = match r["diff"][key].as_f64() {
        Some(d) => {
            // Worse is red: slower, more errors, less throughput.
            let worse = if key == "rps" { d < 0.0 } else { d > 0.0 };
            (
                format!(" ({}{:.1}{unit})", if d >= 0.0 { "+" } else { "" }, d * k),
                if worse && d != 0.0 {
                    " class=\"num bad\""
                } else {
                    " class=\"num\""
                },
            )
        }
        None => (String::new(), " class=\"num\""),
    };
    format!("<td{class}>{} → {}{diff}</td>", v("before"), v("after"))
}

/// `comparison` of the result: one table per flip.
pub fn comparison(out: &mut String, doc: &Value) {
    let Some(list) = doc["comparison"].as_array().filter(|l| !l.is_empty()) else {
        return;
    };
    section_open(out, "comparison", "Before/after");
    for f in list {
        let span = |k: &str| {
            let a = &f[k];
            format!(
                "{:.1}–{:.1} s",
                a[0].as_f64().unwrap_or(0.0),
                a[1].as_f64().unwrap_or(0.0)
            )
        };
        let _ = write!(
            out,
            "<h3>{} at {:.1} s</h3><p>Before: {}, after: {}.</p>",
            esc(f["flip"].as_str().unwrap_or("")),
            f["at_s"].as_f64().unwrap_or(0.0),
            span("before_s"),
            span("after_s")
        );
        out.push_str("<table class=\"comparison\"><thead><tr><th>request</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>error rate</th><th>req/s</th></tr></thead><tbody>");
        let rows = f["requests"].as_array().cloned().unwrap_or_default();
        for r in rows.iter().chain(std::iter::once(&f["aggregate"])) {
            let m = r["method"].as_str().unwrap_or("");
            let n = r["name"].as_str().unwrap_or("");
            let name = if m.is_empty() {
                n.to_owned()
            } else {
                format!("{m} {n}")
            };
            let _ = write!(
                out,
                "<tr><td>{}</td>{}{}{}{}{}</tr>",
                esc(&name),
                cell(r, "p50_ms", false),
                cell(r, "p95_ms", false),
                cell(r, "p99_ms", false),
                cell(r, "error_rate", true),
                cell(r, "rps", false)
            );
        }
        out.push_str("</tbody></table>");
    }
    out.push_str("</section>");
}
