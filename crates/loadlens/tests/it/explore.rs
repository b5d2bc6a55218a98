//! A report people can explore, checked in headless Chromium over the DevTools protocol (the
//! client of `dashboard.rs`): the demo's HTML report and a live dashboard show charts per
//! request name, a tooltip with the values under the mouse on their charts (moved there with
//! real mouse events), the percentile curves ending where the samples do, one palette, no
//! script error; the report reads without its script too. Screenshots are kept under
//! `target/tmp/browser/` (printed).

use std::time::Duration;

use serde_json::{json, Value};

use crate::browser::{artifacts, chromium, BROWSER};
use crate::dashboard::Chrome;
use crate::support::*;
use crate::web::Live;

/// Collects the page's script errors in `window.__errors` from its first line on.
const ERRORS: &str = "window.__errors = []; addEventListener('error', e => __errors.push(String(e.message))); addEventListener('unhandledrejection', e => __errors.push(String(e.reason)));";

fn collect_errors(c: &mut Chrome) {
    c.call("Page.enable", json!({}));
    c.call(
        "Page.addScriptToEvaluateOnNewDocument",
        json!({ "source": ERRORS }),
    );
}

/// Move the mouse (real input events) to the fraction `fx` of the width of `selector`'s SVG,
/// half-way down, and return the tooltip's rows once it shows.
fn hover(c: &mut Chrome, selector: &str, fx: f64) -> Vec<String> {
    let sel = serde_json::to_string(selector).unwrap();
    let at = c.eval(&format!(
        "(() => {{ const s = document.querySelector({sel} + ' svg'); s.scrollIntoView({{block: 'center'}}); \
         const f = s.querySelector('rect.frame').getBoundingClientRect(); \
         return [f.left + f.width * {fx}, f.top + f.height / 2]; }})()"
    ));
    let (x, y) = (at[0].as_f64().unwrap(), at[1].as_f64().unwrap());
    // Two moves: the second one inside the chart is the one that counts.
    for (dx, dy) in [(-3.0, -3.0), (0.0, 0.0)] {
        c.call(
            "Input.dispatchMouseEvent",
            json!({"type": "mouseMoved", "x": x + dx, "y": y + dy}),
        );
    }
    c.until(
        &format!("the tooltip over {selector}"),
        "!!document.getElementById('chart-tip') && !document.getElementById('chart-tip').hidden",
    );
    let rows = c.eval("[...document.getElementById('chart-tip').children].map(r => r.textContent)");
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect()
}

/// A screenshot of `selector` and the tooltip beside it, as a person hovering it sees them,
/// kept as `name` in the tests' artefacts.
fn shot_of(c: &mut Chrome, selector: &str, name: &str) {
    let sel = serde_json::to_string(selector).unwrap();
    let r = c.eval(&format!(
        "(() => {{ const a = document.querySelector({sel}).getBoundingClientRect(); \
         const t = document.getElementById('chart-tip').getBoundingClientRect(); \
         const x = Math.min(a.left, t.left), y = Math.min(a.top, t.top); \
         return [x + scrollX, y + scrollY, Math.max(a.right, t.right) - x, Math.max(a.bottom, t.bottom) - y]; }})()"
    ));
    let r: Vec<f64> = r
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let png = c.call(
        "Page.captureScreenshot",
        json!({"format": "png", "clip": {"x": r[0], "y": r[1], "width": r[2], "height": r[3], "scale": 1}}),
    );
    let png = crate::dashboard::decode_base64(png["data"].as_str().unwrap());
    let path = artifacts().join(name);
    std::fs::write(&path, &png).unwrap();
    assert!(
        png.len() > 5_000,
        "{} is {} bytes",
        path.display(),
        png.len()
    );
    println!("screenshot: {}", path.display());
}

/// The number in a tooltip row `label 12.3 ms`.
fn value_of(rows: &[String], label: &str) -> f64 {
    let row = rows
        .iter()
        .find(|r| r.starts_with(&format!("{label} ")))
        .unwrap_or_else(|| panic!("no {label} in the tooltip {rows:?}"));
    row[label.len() + 1..]
        .trim_end_matches(" ms")
        .parse()
        .unwrap_or_else(|e| panic!("{row}: {e}"))
}

/// Equal to three significant digits (the tooltip's precision).
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 0.01 * b.abs().max(1.0)
}

#[test]
fn the_report_shows_each_names_charts_and_hover_values_and_reads_without_its_script() {
    let chrome = chromium();
    let _one = BROWSER.lock().unwrap_or_else(|p| p.into_inner());
    let dir = TempDir::new("explore-report");
    let out_dir = dir.join("out");
    let out = run(&["demo", "-t", "4s", "--out", &out_dir]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let report = dir.path("out").join("report.html");
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path("out").join("result.json")).unwrap(),
    )
    .unwrap();
    let url = format!("file://{}", report.canonicalize().unwrap().display());
    let mut c = Chrome::start(&chrome);
    collect_errors(&mut c);
    c.navigate(&url);

    // Charts per request name: the two overviews, and a pair for every name of the result.
    let names = doc["series"]["requests"].as_array().unwrap();
    assert_eq!(names.len(), doc["requests"].as_array().unwrap().len());
    assert!(names.len() >= 8, "{}", names.len());
    let drawn = c.eval(
        "['#chart-p95-by-name', '#chart-rps-by-name'].map(id => document.querySelectorAll(id + ' path.series').length)",
    );
    assert_eq!(
        drawn,
        json!([8, 8]),
        "the 8 slowest and the 8 busiest names"
    );
    assert_eq!(
        c.eval("document.querySelectorAll('#by-name-each .pair').length"),
        json!(names.len())
    );
    assert_eq!(
        c.eval("[...document.querySelectorAll('#by-name-each .pair')].map(p => p.dataset.name)"),
        json!(names
            .iter()
            .map(|n| format!(
                "{} {}",
                n["method"].as_str().unwrap(),
                n["name"].as_str().unwrap()
            ))
            .collect::<Vec<_>>())
    );
    let lengths = c.eval(
        "[...document.querySelectorAll('#by-name-each path.series')].map(p => p.getTotalLength())",
    );
    assert!(
        lengths
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l.as_f64().unwrap() > 20.0)
            .count()
            >= names.len(),
        "per-name lines drawn: {lengths}"
    );

    // Every time axis starts at 0 s, and so do the rate lines.
    let starts = c.eval(
        "[...document.querySelectorAll('#over-time figure.chart')].filter(f => f.dataset.px).map(f => [f.querySelector('text.xl').textContent, f.querySelector('rect.frame').getAttribute('x'), (f.querySelector('path.series[data-label=\"req/s\"]') || {getAttribute: () => 'M'}).getAttribute('d')])",
    );
    for s in starts.as_array().unwrap() {
        assert!(matches!(s[0].as_str().unwrap(), "0s" | "0:00"), "{s}");
        let d = s[2].as_str().unwrap();
        if d.len() > 1 {
            assert!(
                d.starts_with(&format!("M{} ", s[1].as_str().unwrap())),
                "{s}"
            );
        }
    }

    // The hover: over the response-time chart, the values of the second under the mouse,
    // as the JSON result has them.
    let rows = hover(&mut c, "#chart-latency", 0.5);
    let t: f64 = rows[0].trim_end_matches(" s").parse().unwrap();
    let point = doc["series"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| (p["elapsed_s"].as_f64().unwrap() - t).abs() < 0.05)
        .unwrap_or_else(|| panic!("no point at {t} s: {rows:?}"));
    for (label, key) in [("p50", "p50_ms"), ("p95", "p95_ms"), ("p99", "p99_ms")] {
        let shown = value_of(&rows, label);
        let json = point[key].as_f64().unwrap();
        assert!(
            close(shown, json),
            "{label} at {t} s: {shown} shown, {json} in the JSON"
        );
    }
    assert_eq!(
        c.eval("document.querySelectorAll('#chart-latency line.crosshair').length"),
        json!(1)
    );
    shot_of(&mut c, "#chart-latency", "report-hover-latency.png");
    // Over a name's own chart: its name's values.
    let rows = hover(&mut c, "#chart-name-0-rps", 0.5);
    shot_of(&mut c, "#chart-name-0-rps", "report-hover-name.png");
    assert!(rows[0].ends_with(" s"), "{rows:?}");
    assert!(value_of(&rows, "req/s") >= 0.0);

    // A bar of the connection phases (its widest segment): the segment's title. A mousemove
    // dispatched on the segment itself (real mouse input, as above, missed the segment now and
    // then on this long page: not understood yet).
    let title = c.eval(
        "(() => { const r = [...document.querySelectorAll('#chart-phases g.bar rect')].reduce((a, b) => b.getBoundingClientRect().width > a.getBoundingClientRect().width ? b : a); \
         r.scrollIntoView({block: 'center'}); const b = r.getBoundingClientRect(); const t = r.querySelector('title').textContent; \
         r.dispatchEvent(new MouseEvent('mousemove', {bubbles: true, clientX: b.left + b.width / 2, clientY: b.top + b.height / 2})); return t; })()",
    );
    assert!(title.as_str().unwrap().ends_with(" ms"), "{title}");
    assert_eq!(
        c.eval("[document.getElementById('chart-tip').hidden, document.getElementById('chart-tip').textContent]"),
        json!([false, title])
    );

    // The percentile curves end where the samples do: at 1 - 1/n of the busiest (the
    // aggregate), never at 99.999 % for a few hundred requests.
    let n = doc["aggregate"]["request_count"].as_f64().unwrap();
    assert!(n < 10_000.0, "{n}");
    let last = c.eval("document.getElementById('chart-curves').dataset.x.split(',').pop()");
    let shown: f64 = last
        .as_str()
        .unwrap()
        .trim_start_matches('p')
        .parse()
        .unwrap();
    assert!(
        (shown - 100.0 * (1.0 - 1.0 / n)).abs() < 0.01,
        "{last:?} for {n} requests"
    );
    let ticks =
        c.eval("[...document.querySelectorAll('#chart-curves text.xl')].map(t => t.textContent)");
    assert!(
        !ticks
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "99.999%" || t == "max"),
        "{ticks}"
    );
    let rows = hover(&mut c, "#chart-curves", 0.99);
    assert!(rows[0].starts_with("p99"), "{rows:?}");
    shot_of(&mut c, "#chart-curves", "report-hover-curves.png");
    let max = value_of(&rows, "Aggregated");
    assert!(
        close(max, doc["aggregate"]["latency_ms"]["max"].as_f64().unwrap()),
        "{rows:?}"
    );

    // Failures and p99 in distinct colours, from the one palette.
    let colours = c.eval(
        "['#chart-rps path[data-label=\"failures/s\"]', '#chart-latency path[data-label=\"p99\"]'].map(s => document.querySelector(s).getAttribute('stroke')).concat([getComputedStyle(document.documentElement).getPropertyValue('--c-failures').trim()])",
    );
    assert_ne!(colours[0], colours[1], "{colours}");
    assert_eq!(colours[0], colours[2], "{colours}");
    assert_eq!(c.eval("window.__errors"), json!([]), "no script error");
    // The whole page last: a full-page capture resizes the viewport for a moment.
    c.screenshot("report-hover.png");
    assert_eq!(
        c.eval("performance.getEntriesByType('resource').length"),
        json!(0),
        "nothing fetched"
    );

    // Without the script: the values are in the charts' titles (the browser's own tooltips).
    c.call(
        "Emulation.setScriptExecutionDisabled",
        json!({ "value": true }),
    );
    c.navigate(&url);
    let titles = c.eval(
        "[...document.querySelectorAll('#chart-latency g.hover rect title')].map(t => t.textContent)",
    );
    let titles = titles.as_array().unwrap();
    assert!(titles.len() >= 3, "{titles:?}");
    let one = titles[1].as_str().unwrap();
    assert!(
        one.contains(" · p50 ") && one.contains(" · p99 ") && one.ends_with(" ms"),
        "{one}"
    );
    assert_eq!(
        c.eval("!!document.getElementById('chart-tip')"),
        json!(false)
    );
}

#[test]
fn the_dashboard_shows_each_names_charts_hover_values_and_the_runs_rate_at_the_end() {
    let chrome = chromium();
    let _one = BROWSER.lock().unwrap_or_else(|p| p.into_inner());
    let target = DemoTarget::start(&["--latency", "fixed(5ms)"]);
    let dir = TempDir::new("explore-dashboard");
    let scenario = dir.path("two.yaml");
    std::fs::write(
        &scenario,
        format!(
            "name: two\nhost: {}\nuser_types:\n  - name: shopper\n    wait: between(0.01, 0.02)\n    tasks:\n      - request: {{ path: /api/products }}\n      - request: {{ path: /api/search, query: {{ q: x }} }}\n",
            target.url
        ),
    )
    .unwrap();
    let live = Live::start(&[
        "run",
        &scenario.display().to_string(),
        "-u",
        "3",
        "--json",
        &dir.join("r.json"),
    ]);
    let page = format!("http://{}/", live.addr);
    let mut c = Chrome::start(&chrome);
    collect_errors(&mut c);
    c.navigate(&page);
    c.until(
        "the waiting state",
        "document.getElementById('phase').textContent === 'waiting'",
    );
    c.eval("document.getElementById('start').click(); true");
    c.until(
        "three seconds of load",
        "document.querySelectorAll('#chart-rps path.series[data-label=\"req/s\"]').length === 1 && document.getElementById('chart-rps').dataset.px.split(',').length >= 4",
    );
    // One pair of charts per name, and the overviews.
    c.until(
        "charts for both names",
        "document.querySelectorAll('#by-name-each .pair').length === 2",
    );
    assert_eq!(
        c.eval(
            "[...document.querySelectorAll('#by-name-each .pair')].map(p => p.dataset.name).sort()"
        ),
        json!(["GET /api/products", "GET /api/search"])
    );
    assert_eq!(
        c.eval("document.querySelectorAll('#chart-p95-by-name path.series').length"),
        json!(2)
    );
    assert_eq!(
        c.eval("document.getElementById('k-rps-label').textContent"),
        json!("Req/s, last second")
    );
    // The tooltip, and again after the next redraw (the page redraws every second).
    let rows = hover(&mut c, "#chart-p95-by-name", 0.05);
    assert!(rows.len() >= 2, "{rows:?}");
    let updates = c
        .eval("Number(document.body.dataset.updates)")
        .as_f64()
        .unwrap();
    c.until(
        "the next update",
        &format!("Number(document.body.dataset.updates) > {updates}"),
    );
    assert_eq!(
        c.eval("!document.getElementById('chart-tip').hidden"),
        json!(true),
        "the tooltip stays over a redrawn chart"
    );
    shot_of(&mut c, "#chart-p95-by-name", "dashboard-hover-by-name.png");
    c.screenshot("dashboard-hover.png");

    c.eval("document.getElementById('stop').click(); true");
    c.until(
        "the end of the run",
        "document.getElementById('phase').textContent === 'finished'",
    );
    // At the end, the run's rate: requests / duration, as the result says.
    std::thread::sleep(Duration::from_millis(300));
    let result: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("r.json")).unwrap()).unwrap();
    let rps = result["aggregate"]["rps"].as_f64().unwrap();
    assert_eq!(
        c.eval("document.getElementById('k-rps-label').textContent"),
        json!("Req/s, whole run")
    );
    let tile: f64 = c
        .eval("document.getElementById('k-rps').textContent.replace(/,/g, '')")
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((tile - rps).abs() <= 0.05, "tile {tile}, result {rps}");
    assert_eq!(c.eval("window.__errors"), json!([]), "no script error");
    c.screenshot("dashboard-finished-explore.png");
    interrupt(&live.child);
    let (code, out) = live.wait(Duration::from_secs(20));
    assert_eq!(code, Some(130), "{out}");
}
