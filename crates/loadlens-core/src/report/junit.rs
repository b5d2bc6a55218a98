//! `--junit FILE`: one JUnit test case per threshold, so CI systems (GitHub, GitLab, Jenkins,
//! Buildkite) list each rule with its observed value and fail the ones that did not hold.
//! A threshold that aborted the run is a failure of type `aborted`.

use std::fmt::Write as _;
use std::path::Path;

use super::Summary;

/// Escape text for XML attributes and content.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// The JUnit XML document of `summary`.
pub fn render(summary: &Summary) -> String {
    let results = &summary.outcome.thresholds;
    let failures = results.iter().filter(|t| !t.passed).count();
    let secs = summary.duration.as_secs_f64();
    let suite = esc(&summary.run.scenario);
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"loadlens\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{secs:.3}\">",
        results.len()
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"loadlens thresholds: {suite}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{secs:.3}\" timestamp=\"{}\">",
        results.len(),
        esc(&crate::run::rfc3339(summary.started_at))
    );
    x.push_str("    <properties>\n");
    let mut props = vec![
        ("run_id".to_owned(), summary.run.id.clone()),
        (
            "verdict".to_owned(),
            format!("{:?}", summary.verdict()).to_lowercase(),
        ),
        (
            "stop_reason".to_owned(),
            crate::run::describe(&summary.stop_reason),
        ),
    ];
    props.extend(
        summary
            .run
            .tags
            .iter()
            .map(|(k, v)| (format!("tag.{k}"), v.clone())),
    );
    for (k, v) in props {
        let _ = writeln!(
            x,
            "      <property name=\"{}\" value=\"{}\"/>",
            esc(&k),
            esc(&v)
        );
    }
    x.push_str("    </properties>\n");
    for t in results {
        let _ = write!(
            x,
            "    <testcase classname=\"loadlens.{suite}\" name=\"{}\" time=\"{secs:.3}\"",
            esc(&t.expression)
        );
        let scope = format!("scope {}", super::scope_label(t, usize::MAX));
        if t.passed {
            let _ = writeln!(
                x,
                ">\n      <system-out>{}; {}</system-out>\n    </testcase>",
                esc(&t.detail),
                esc(&scope)
            );
            continue;
        }
        let kind = if t.aborted { "aborted" } else { "threshold" };
        let mut body = format!("{}: {}; {scope}", t.expression, t.detail);
        if let Some(s) = t.first_breach_s {
            let _ = write!(body, "; first failed {s:.1} s into the run");
        }
        if t.aborted {
            body.push_str("; the run was aborted");
        }
        let _ = writeln!(
            x,
            ">\n      <failure type=\"{kind}\" message=\"{}\">{}</failure>\n    </testcase>",
            esc(&t.detail),
            esc(&body)
        );
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

/// Write the JUnit file, whole or not at all ([`super::write_file`]).
pub fn write(summary: &Summary, path: &Path) -> std::io::Result<()> {
    super::write_file(path, render(summary).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::markdown::tests::{assert_snapshot, fixture};

    #[test]
    fn one_case_per_threshold_with_failures_explained() {
        assert_snapshot("junit.xml", &render(&fixture()));
    }

    #[test]
    fn escapes_xml_in_names_and_messages() {
        assert_eq!(
            esc(r#"p95{name:a<b & "c"} < 1s"#),
            "p95{name:a&lt;b &amp; &quot;c&quot;} &lt; 1s"
        );
        assert_eq!(esc("bell\u{7}"), "bell");
    }
}
