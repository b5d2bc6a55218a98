//! The HTML report in a real browser: headless Chromium (Debian's `chromium`, installed by
//! `scripts/test`) loads the report from disk and the tests assert what a person would see — chart
//! lines drawn, one row per request name, the numbers of the JSON result — and how long a large
//! report takes to render; and "Where the time went", from a known breakdown and from a run
//! whose service (OpenTelemetry Python SDK) sent its spans to the trace receiver. Screenshots are
//! kept under `target/tmp/browser/`.
//!
//! A test-only probe script is appended to a copy of the report (the report itself has no
//! script); it measures the rendered page and writes the result into the DOM, which
//! `--dump-dom` prints.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// The Chromium binary; a test fails, saying how to install it, when there is none.
pub fn chromium() -> PathBuf {
    let candidates = std::env::var_os("LOADLENS_CHROMIUM")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            [
                "/usr/bin/chromium",
                "/usr/bin/chromium-browser",
                "/usr/bin/google-chrome",
            ]
            .map(PathBuf::from),
        );
    for c in candidates {
        if c.is_file() {
            return c;
        }
    }
    panic!(
        "no Chromium at /usr/bin/chromium: run the suite with `scripts/test`, which installs \
         Debian's `chromium`, or set LOADLENS_CHROMIUM"
    );
}

/// Where screenshots are kept.
pub fn artifacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One Chromium at a time: two browsers on a 2-core machine would measure each other.
pub static BROWSER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Run headless Chromium on `page` with `mode` (`--dump-dom` or `--screenshot=…`), bounded in
/// time; returns stdout.
fn headless(chrome: &Path, page: &Path, mode: &[&str], profile: &TempDir) -> String {
    let _one = BROWSER.lock().unwrap_or_else(|p| p.into_inner());
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let mut child = Command::new(chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1300,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.0.display()))
        .args(mode)
        .arg(&url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium exited with {status}");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

/// Measures the page where it is inserted (the end of the body: everything above is parsed) and
/// appends the numbers as JSON in `<pre id="probe">`.
const PROBE: &str = r#"<script>
(() => {
  document.body.getBoundingClientRect(); // force style and layout
  const text = el => el.textContent.trim();
  const rows = sel => [...document.querySelectorAll(sel)].map(tr => [...tr.cells].map(text));
  const r = {
    rendered_ms: performance.now(),
    resources: performance.getEntriesByType('resource').map(e => e.name),
    paths: [...document.querySelectorAll('path.series')].map(p => ({
      chart: p.closest('figure').id, label: p.dataset.label,
      length: p.getTotalLength(), width: p.getBoundingClientRect().width })),
    charts: [...document.querySelectorAll('figure.chart svg')].map(s => ({
      id: s.closest('figure').id, width: s.getBoundingClientRect().width,
      height: s.getBoundingClientRect().height })),
    bars: [...document.querySelectorAll('#chart-phases g.bar')].map(g => ({
      label: g.dataset.label, width: g.getBoundingClientRect().width })),
    breakdown_bars: [...document.querySelectorAll('#chart-breakdown g.bar')].map(g => ({
      label: g.dataset.label, segments: [...g.querySelectorAll('rect')].map(r => ({
        title: text(r), width: r.getBoundingClientRect().width })) })),
    breakdown_rows: rows('#breakdown-table-0 tbody tr'),
    slowest_links: [...document.querySelectorAll('table.slowest a')].map(a => a.href),
    breakdown_visible: !!document.getElementById('breakdown') &&
      document.getElementById('breakdown').getBoundingClientRect().height > 0,
    request_rows: rows('#request-stats tbody tr'),
    aggregate_row: rows('#request-stats tfoot tr')[0],
    percentile_rows: rows('#response-times tbody tr'),
    phase_rows: rows('#phase-stats tbody tr'),
    error_rows: rows('#error-table tbody tr'),
    verdict: text(document.getElementById('verdict')),
    run_id: text(document.getElementById('run-id')),
  };
  const pre = document.createElement('pre');
  pre.id = 'probe';
  pre.textContent = JSON.stringify(r);
  document.body.appendChild(pre);
})();
</script>"#;

/// Load `report` with the probe in Chromium and return the probe's measurements.
fn probe(chrome: &Path, report: &Path, dir: &TempDir) -> Value {
    let html = std::fs::read_to_string(report).unwrap();
    assert!(html.contains("</body>"));
    let probed = dir.path("probed.html");
    std::fs::write(
        &probed,
        html.replacen("</body>", &format!("{PROBE}</body>"), 1),
    )
    .unwrap();
    let profile = TempDir::new("chromium-profile");
    let dom = headless(chrome, &probed, &["--dump-dom"], &profile);
    let start = dom.find(r#"<pre id="probe">"#).unwrap_or_else(|| {
        panic!(
            "no probe output in the DOM:\n{}",
            &dom[..dom.len().min(2000)]
        )
    });
    let body = &dom[start + r#"<pre id="probe">"#.len()..];
    let body = &body[..body.find("</pre>").unwrap()];
    let json = body
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"))
}

fn screenshot(chrome: &Path, report: &Path, name: &str) -> PathBuf {
    let png = artifacts().join(name);
    let _ = std::fs::remove_file(&png);
    let profile = TempDir::new("chromium-profile");
    headless(
        chrome,
        report,
        &[&format!("--screenshot={}", png.display())],
        &profile,
    );
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(size > 20_000, "{} is {size} bytes", png.display());
    println!("screenshot: {}", png.display());
    png
}

fn cell(row: &Value, i: usize) -> &str {
    row[i].as_str().unwrap()
}

#[test]
fn the_demo_report_shows_charts_and_the_numbers_of_the_json_result() {
    let chrome = chromium();
    let dir = TempDir::new("browser-demo");
    let out_dir = dir.join("out");
    let out = run(&["demo", "-t", "3s", "--out", &out_dir]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let report = dir.path("out").join("report.html");
    assert!(
        stdout(&out).contains(&format!("wrote {}", report.display())),
        "the demo prints the report's path: {}",
        stdout(&out)
    );
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path("out").join("result.json")).unwrap(),
    )
    .unwrap();

    let p = probe(&chrome, &report, &dir);
    println!("rendered in {:.0} ms", p["rendered_ms"].as_f64().unwrap());
    assert_eq!(p["resources"], serde_json::json!([]), "nothing is fetched");
    assert_eq!(p["verdict"], "passed");
    assert_eq!(p["run_id"], doc["run"]["id"]);

    // Charts over time: req/s, failures/s, p50/p95/p99 and users, each a drawn line.
    let paths = p["paths"].as_array().unwrap();
    for (chart, label) in [
        ("chart-rps", "req/s"),
        ("chart-rps", "failures/s"),
        ("chart-latency", "p50"),
        ("chart-latency", "p95"),
        ("chart-latency", "p99"),
        ("chart-users", "users"),
        ("chart-curves", "Aggregated"),
    ] {
        let path = paths
            .iter()
            .find(|x| x["chart"] == chart && x["label"] == label)
            .unwrap_or_else(|| panic!("no {label} line in {chart}: {paths:?}"));
        assert!(
            path["length"].as_f64().unwrap() > 50.0 && path["width"].as_f64().unwrap() > 50.0,
            "{chart}/{label} is not drawn: {path}"
        );
    }
    for c in p["charts"].as_array().unwrap() {
        assert!(c["width"].as_f64().unwrap() > 100.0, "{c}");
    }

    // One row per request name, with the JSON's numbers.
    let requests = doc["requests"].as_array().unwrap();
    let rows = p["request_rows"].as_array().unwrap();
    assert_eq!(rows.len(), requests.len());
    assert!(rows.len() >= 8, "{rows:?}");
    for (row, r) in rows.iter().zip(requests) {
        assert_eq!(cell(row, 0), r["method"].as_str().unwrap());
        assert_eq!(cell(row, 1), r["name"].as_str().unwrap());
        assert_eq!(cell(row, 2), r["request_count"].to_string());
        assert_eq!(cell(row, 3), r["failure_count"].to_string());
        assert_eq!(cell(row, 10), format!("{:.2}", r["rps"].as_f64().unwrap()));
    }
    assert_eq!(cell(&p["aggregate_row"], 1), "Aggregated");
    assert_eq!(
        cell(&p["aggregate_row"], 2),
        doc["aggregate"]["request_count"].to_string()
    );
    assert_eq!(
        p["percentile_rows"].as_array().unwrap().len(),
        requests.len()
    );
    assert_eq!(p["phase_rows"].as_array().unwrap().len(), requests.len());
    // A stacked bar per name plus the aggregate, each with a visible width.
    let bars = p["bars"].as_array().unwrap();
    assert_eq!(bars.len(), requests.len() + 1);
    assert!(
        bars.iter().all(|b| b["width"].as_f64().unwrap() > 1.0),
        "{bars:?}"
    );

    screenshot(&chrome, &report, "demo-report.png");
}

/// A one-hour run with 50 request names: the result is made from a real demo result, widened
/// to 50 names and 3,599 one-second points, and rebuilt with `loadlens report`.
#[test]
fn a_one_hour_report_with_50_names_is_under_5_mb_and_renders_in_under_2_s() {
    let chrome = chromium();
    let dir = TempDir::new("browser-big");
    let out_dir = dir.join("out");
    let out = run(&["demo", "-t", "2s", "--out", &out_dir]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let mut doc: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path("out").join("result.json")).unwrap(),
    )
    .unwrap();
    let template = doc["requests"][0].clone();
    doc["requests"] = (0..50)
        .map(|i| {
            let mut r = template.clone();
            r["name"] = format!("/api/v1/resource/{i}/with/a/longer/path").into();
            r
        })
        .collect();
    let point = doc["series"]["points"][0].clone();
    doc["series"]["points"] = (1..=3599)
        .map(|s| {
            let mut p = point.clone();
            p["elapsed_s"] = s.into();
            p["p95_ms"] = (20.0 + f64::from(s % 97)).into();
            p
        })
        .collect();
    doc["run"]["duration_s"] = 3599.into();
    let big = dir.path("big.json");
    std::fs::write(&big, serde_json::to_string(&doc).unwrap()).unwrap();
    let html = dir.path("big.html");
    let out = run(&[
        "report",
        &big.display().to_string(),
        "--html",
        &html.display().to_string(),
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

    let size = std::fs::metadata(&html).unwrap().len();
    // Other tests run beside this one on small CI machines: the best of three loads measures
    // the page rather than the machine's load.
    let mut ms = f64::INFINITY;
    let mut p = Value::Null;
    for _ in 0..3 {
        p = probe(&chrome, &html, &dir);
        ms = ms.min(p["rendered_ms"].as_f64().unwrap());
        if ms < 2_000.0 {
            break;
        }
    }
    println!("1-hour, 50-name report: {size} bytes, parsed, styled and laid out in {ms:.0} ms");
    assert!(size < 5_000_000, "{size} bytes");
    assert!(ms < 2_000.0, "rendered in {ms} ms");
    assert_eq!(p["request_rows"].as_array().unwrap().len(), 50);
    screenshot(&chrome, &html, "one-hour-report.png");
}

#[test]
fn where_the_time_went_renders_from_the_json_result_with_its_numbers() {
    let chrome = chromium();
    let target = DemoTarget::start(&["--latency", "0"]);
    let dir = TempDir::new("browser-breakdown");
    let out = run(&[
        "run",
        "--url",
        &format!("{}/api/products", target.url),
        "-n",
        "50",
        "-c",
        "2",
        "--json",
        &dir.join("r.json"),
        "--html",
        &dir.join("plain.html"),
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    // Without a receiver: no section.
    let plain = probe(&chrome, &dir.path("plain.html"), &dir);
    assert_eq!(plain["breakdown_visible"], false);
    assert_eq!(plain["breakdown_bars"], serde_json::json!([]));

    // The same result with a breakdown of known figures, rebuilt by `loadlens report`.
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("r.json")).unwrap()).unwrap();
    doc["breakdown"] =
        serde_json::to_value(loadlens_core::breakdown::Breakdown::example()).unwrap();
    std::fs::write(dir.path("b.json"), doc.to_string()).unwrap();
    let out = run(&["report", &dir.join("b.json"), "--html", &dir.join("b.html")]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let p = probe(&chrome, &dir.path("b.html"), &dir);
    assert_eq!(p["breakdown_visible"], true);
    let bars = p["breakdown_bars"].as_array().unwrap();
    assert_eq!(bars.len(), 2, "{bars:?}");
    assert_eq!(bars[0]["label"], "GET /orders");
    // Each segment drawn, as wide as its share of the bar: the select (24.2 ms) twice the
    // pricing call (12.1 ms).
    let width = |title: &str| {
        bars[0]["segments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["title"] == title)
            .unwrap_or_else(|| panic!("no segment {title}: {bars:?}"))["width"]
            .as_f64()
            .unwrap()
    };
    let (select, pricing) = (
        width("postgresql: SELECT orders: 24.2 ms"),
        width("pricing: GET /price/{sku}: 12.1 ms"),
    );
    assert!(pricing > 5.0, "{pricing}");
    assert!((select / pricing - 2.0).abs() < 0.1, "{select} / {pricing}");
    let rows = p["breakdown_rows"].as_array().unwrap();
    let select_row = rows
        .iter()
        .find(|r| r[0] == "postgresql: SELECT orders")
        .expect("the select's row");
    assert_eq!(
        select_row,
        &serde_json::json!([
            "postgresql: SELECT orders",
            "55.0%",
            "98",
            "22.0",
            "39.6",
            "55.0",
            "88.0",
            "2"
        ])
    );
    assert_eq!(
        p["slowest_links"][0],
        "http://127.0.0.1:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(p["resources"], serde_json::json!([]), "nothing is fetched");
}

#[test]
fn a_run_with_the_trace_receiver_shows_where_the_time_went_in_html_and_markdown() {
    use crate::otel::{peer, Proc};
    let chrome = chromium();
    let python = peer(
        "LOADLENS_OTEL_PYTHON",
        ".cache/loadlens-otel-app/bin/python",
        "Python with the OpenTelemetry SDK",
    );
    let (http, grpc) = (free_port(), free_port());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/peers/otel_target.py");
    let mut child = std::process::Command::new(python)
        .arg(script)
        .env(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("http://127.0.0.1:{http}/v1/traces"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the Python target");
    let url = listening_url(&mut child, "the Python target");
    let _target = Proc(child);
    let dir = TempDir::new("browser-receiver");
    let out = run(&[
        "run",
        "--url",
        &format!("{url}/ok"),
        "-c",
        "2",
        "-n",
        "100",
        "--trace-receiver",
        &format!("127.0.0.1:{http}"),
        "--trace-receiver-grpc",
        &format!("127.0.0.1:{grpc}"),
        "--trace-link",
        "http://127.0.0.1:16686/trace/{trace_id}",
        "--json",
        &dir.join("r.json"),
        "--html",
        &dir.join("r.html"),
        "--summary-md",
        &dir.join("r.md"),
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("r.json")).unwrap()).unwrap();
    let b = &doc["breakdown"];
    let (sampled, joined) = (&b["coverage"]["sampled"], &b["coverage"]["joined"]);
    assert!(joined.as_u64().unwrap() > 0, "nothing joined: {b}");

    // The HTML report: the coverage, one bar drawn, the table, the slowest requests linked.
    let html = std::fs::read_to_string(dir.path("r.html")).unwrap();
    assert!(
        html.contains(&format!(
            "<p id=\"breakdown-coverage\">{joined} of {sampled} sampled requests found their server spans"
        )),
        "{}",
        &html[html.find("Where the time went").unwrap_or(0)..][..400]
    );
    let p = probe(&chrome, &dir.path("r.html"), &dir);
    assert_eq!(p["breakdown_visible"], true);
    let bar = &p["breakdown_bars"][0];
    assert_eq!(bar["label"], "GET /ok");
    let segments = bar["segments"].as_array().unwrap();
    for s in ["outside the service", "server self time"] {
        assert!(
            segments.iter().any(
                |x| x["title"].as_str().unwrap().starts_with(&format!("{s}: "))
                    && x["width"].as_f64().unwrap() > 0.0
            ),
            "{s} drawn: {segments:?}"
        );
    }
    let self_row = p["breakdown_rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[0] == "server self time")
        .expect("server self time's row")
        .clone();
    assert_eq!(self_row[2], joined.to_string(), "{self_row}");
    let slowest = &b["requests"][0]["slowest"][0]["trace_id"];
    assert_eq!(
        p["slowest_links"][0],
        format!("http://127.0.0.1:16686/trace/{}", slowest.as_str().unwrap())
    );

    // The Markdown summary names the component with the largest share.
    let top = b["requests"][0]["components"]
        .as_array()
        .unwrap()
        .iter()
        .max_by(|a, b| {
            a["share"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["share"].as_f64().unwrap())
        })
        .unwrap();
    let md = std::fs::read_to_string(dir.path("r.md")).unwrap();
    assert!(
        md.contains(&format!(
            "| GET /ok | {joined} of {sampled} | {} | **{}** |",
            loadlens_core::duration::ms(b["requests"][0]["total"]["p95"].as_f64().unwrap()),
            top["label"].as_str().unwrap()
        )),
        "{md}"
    );
}
