//! `loadlens run --html`, `loadlens report RESULT.json --html` and `loadlens compare`, on results
//! of real runs against the demo target.

use serde_json::Value;

use crate::schema::assert_valid;
use crate::support::*;

/// Run quick mode against `target` and return the JSON result (the HTML report beside it).
fn quick_run(target: &DemoTarget, dir: &TempDir, name: &str) -> Value {
    let out = run(&[
        "run",
        "--url",
        &format!("{}/api/products", target.url),
        "-c",
        "4",
        "-n",
        "300",
        "--json",
        &dir.join(&format!("{name}.json")),
        "--html",
        &dir.join(&format!("{name}.html")),
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains(&format!("wrote {}", dir.join(&format!("{name}.html")))));
    serde_json::from_str(&std::fs::read_to_string(dir.path(&format!("{name}.json"))).unwrap())
        .unwrap()
}

#[test]
fn run_writes_the_html_report_and_report_rebuilds_it_from_the_json() {
    let target = DemoTarget::start(&["--latency", "0"]);
    let dir = TempDir::new("html");
    let j = quick_run(&target, &dir, "r");
    assert_valid(&j);
    let curve = j["requests"][0]["latency_curve"].as_array().unwrap();
    assert!(curve.len() > 10 && curve.len() <= 43, "{}", curve.len());
    // The curve ends at the maximum, at the highest percentile the samples support (1 - 1/n).
    let n = j["requests"][0]["request_count"].as_f64().unwrap();
    assert!(
        (curve.last().unwrap()[1].as_f64().unwrap() - (1.0 - 1.0 / n)).abs() < 1e-6,
        "{curve:?}"
    );
    assert_eq!(
        curve.last().unwrap()[0],
        j["requests"][0]["latency_ms"]["max"]
    );

    let written = std::fs::read_to_string(dir.path("r.html")).unwrap();
    assert!(written.starts_with("<!DOCTYPE html>"));
    assert!(written.contains(r#"<tr data-name="/api/products">"#));
    // One inline script (the charts' hover values), nothing fetched.
    assert_eq!(written.matches("<script").count(), 1);
    assert!(!written.contains("<script src"));
    assert!(!written.contains("fetch(") && !written.contains("XMLHttpRequest"));

    let out = run(&[
        "report",
        &dir.join("r.json"),
        "--html",
        &dir.join("again.html"),
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let rebuilt = std::fs::read_to_string(dir.path("again.html")).unwrap();
    assert_eq!(
        rebuilt, written,
        "the report is a function of the JSON result"
    );

    // Default output: beside the result.
    let out = run(&["report", &dir.join("r.json")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path("r.html").exists());

    // The env twin of --html.
    let env_html = dir.path("env.html");
    let out = std::process::Command::new(bin())
        .args([
            "run",
            "--url",
            &format!("{}/health", target.url),
            "-n",
            "20",
            "-c",
            "2",
        ])
        .env("LOADLENS_HTML", &env_html)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(env_html.exists());
}

#[test]
fn report_rejects_unreadable_and_incompatible_results() {
    let dir = TempDir::new("report-bad");
    let out = run(&[
        "report",
        &dir.join("missing.json"),
        "--html",
        &dir.join("x.html"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing.json"), "{}", stderr(&out));

    std::fs::write(dir.path("v9.json"), r#"{"format_version": 9}"#).unwrap();
    let out = run(&[
        "report",
        &dir.join("v9.json"),
        "--html",
        &dir.join("x.html"),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("format_version 9 is not supported"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.path("x.html").exists());
}

#[test]
fn compare_prints_deltas_and_fails_on_exceeded_bounds() {
    let target = DemoTarget::start(&["--latency", "0"]);
    let dir = TempDir::new("compare");
    let base = quick_run(&target, &dir, "base");
    // The new run: same shape, p95 and p99 doubled, a 5 % error rate.
    let mut new = base.clone();
    let obj = new.as_object_mut().unwrap();
    let mut aggregate = obj.remove("aggregate").unwrap();
    for r in obj["requests"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .chain([&mut aggregate])
    {
        for p in ["p95", "p99"] {
            let v = r["latency_ms"][p].as_f64().unwrap();
            r["latency_ms"][p] = (v * 2.0).into();
        }
        r["error_rate"] = 0.05.into();
    }
    new["aggregate"] = aggregate;
    std::fs::write(dir.path("new.json"), new.to_string()).unwrap();
    let (b, n) = (dir.join("base.json"), dir.join("new.json"));

    let out = run(&["compare", &b, &n]);
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains("GET /api/products") && text.contains("Aggregated"),
        "{text}"
    );
    assert!(text.contains("(+100.0%)"), "p95 doubled: {text}");

    let out = run(&["compare", &b, &n, "--fail-if", "p50 > +10%"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("every bound held"));

    let out = run(&[
        "compare",
        &b,
        &n,
        "--fail-if",
        "p95 > +10%",
        "--fail-if",
        "error_rate > 1%",
        "--fail-if",
        "rps < -50%",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("FAIL  p95 > +10%"), "{text}");
    assert!(text.contains("FAIL  error_rate > 1%"), "{text}");
    assert!(text.contains("ok    rps < -50%"), "{text}");
    assert!(text.contains("2 of 3 bounds exceeded"), "{text}");

    // Comparing a result with itself holds every bound.
    let out = run(&[
        "compare",
        &b,
        &b,
        "--fail-if",
        "p99 > +0%",
        "--aggregate-only",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn compare_rejects_bad_bounds_and_unreadable_files() {
    let dir = TempDir::new("compare-bad");
    std::fs::write(dir.path("not.json"), "<html>").unwrap();
    let out = run(&["compare", &dir.join("not.json"), &dir.join("not.json")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read the baseline result")
            && stderr(&out).contains("not JSON"),
        "{}",
        stderr(&out)
    );
    let out = run(&["compare", "a.json", "b.json", "--fail-if", "p97 > +1%"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown metric `p97`"),
        "{}",
        stderr(&out)
    );
}
