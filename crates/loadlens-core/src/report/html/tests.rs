use std::time::{Duration, SystemTime};

use super::*;
use crate::executor::{LoadSettings, RunOutput, StopReason};
use crate::report::Summary;
use crate::run::{EventKind, RunInfo, TimelineEvent};
use crate::sample::{ErrorKind, Failure, NameId, Phases, Sample};
use crate::stats::{SeriesPoint, StatsSet, TimeSeries};

fn sample(name: u32, us: u64, fail: bool) -> Sample {
    // Built from the one constructor and then filled in, so that fields added to `Sample` need
    // no change here.
    let failure = Failure::new(ErrorKind::Status, "HTTP 503 <Service Unavailable>");
    let mut s = Sample::failed_before_send(NameId(name), failure);
    s.failure = s.failure.filter(|_| fail);
    s.total = Duration::from_micros(us);
    s.phases = Phases {
        dns: us.is_multiple_of(7).then(|| Duration::from_micros(300)),
        connect: us.is_multiple_of(7).then(|| Duration::from_micros(200)),
        ttfb: Some(Duration::from_micros(us * 9 / 10)),
        download: Some(Duration::from_micros(us / 10)),
        ..Phases::default()
    };
    s.status = Some(if fail { 503 } else { 200 });
    s.bytes_sent = 100;
    s.bytes_received = 400;
    s.content_length = 300;
    s.new_connection = us.is_multiple_of(7);
    s
}

/// A run of `seconds` with `names` request names, built as the executor would leave it.
pub(crate) fn synthetic(names: usize, seconds: usize) -> ResultDoc {
    let mut rng = fastrand::Rng::with_seed(11);
    let mut stats = StatsSet::new(names);
    for i in 0..names as u32 {
        for _ in 0..2_000 {
            let us = if rng.u32(0..100) < 2 {
                rng.u64(200_000..2_000_000)
            } else {
                rng.u64(1_000..60_000) * u64::from(i % 5 + 1)
            };
            stats.record(&sample(i, us, rng.u32(0..100) < 3));
        }
    }
    let mut series = TimeSeries::new(TimeSeries::DEFAULT_CAPACITY);
    for s in 1..=seconds {
        let requests = 500 + rng.u64(0..100);
        // Each name's share of the interval; name 1 gets slow in the second half.
        series.push_names((0..names).map(|i| {
            let requests = requests / names as u64;
            let slow = if i == 1 && s > seconds / 2 { 10.0 } else { 1.0 };
            SeriesPoint {
                elapsed_s: s as f64,
                span_s: 1.0,
                users: (s as u64 * 2).min(200),
                requests,
                failures: requests / 30,
                rps: requests as f64,
                failures_per_s: (requests / 30) as f64,
                min_ms: 0.9,
                avg_ms: (20.0 + rng.f64() * 5.0) * slow,
                p50_ms: (15.0 + rng.f64() * 5.0) * slow,
                p95_ms: (80.0 + rng.f64() * 40.0) * slow,
                p99_ms: (300.0 + rng.f64() * 300.0) * slow,
                max_ms: 1900.0 * slow,
                ..SeriesPoint::default()
            }
        }));
        series.push(SeriesPoint {
            elapsed_s: s as f64,
            span_s: 1.0,
            users: (s as u64 * 2).min(200),
            requests,
            failures: requests / 30,
            rps: requests as f64,
            failures_per_s: (requests / 30) as f64,
            min_ms: 0.9,
            avg_ms: 20.0 + rng.f64() * 5.0,
            p50_ms: 15.0 + rng.f64() * 5.0,
            p95_ms: 80.0 + rng.f64() * 40.0,
            p99_ms: 300.0 + rng.f64() * 300.0,
            max_ms: 1900.0,
            ..SeriesPoint::default()
        });
    }
    let ev = |t: f64, kind, msg: &str| TimelineEvent {
        elapsed_s: t,
        at: "2026-11-22T00:00:00.000Z".into(),
        kind,
        message: msg.into(),
        flag: None,
    };
    let end = seconds as f64;
    // Built through `RunOutput`, as the executor leaves it, so that fields added to `Summary`
    // need no change here.
    let mut output = RunOutput {
        started_at: SystemTime::UNIX_EPOCH,
        ended_at: SystemTime::UNIX_EPOCH + Duration::from_secs(seconds as u64),
        duration: Duration::from_secs(seconds as u64),
        stop_reason: StopReason::RunTime,
        killed: false,
        names: (0..names)
            .map(|i| ("GET".to_owned(), format!("/api/v1/item/{i}?q=<x>")))
            .collect(),
        stats,
        series,
        timeline: vec![
            ev(0.0, EventKind::RunStarted, "run started"),
            ev(end / 3.0, EventKind::UsersSpawned, "200 users running"),
            ev(end / 2.0, EventKind::ThresholdBreached, "p95 > 100ms"),
            ev(end, EventKind::StopRequested, "run time elapsed"),
            ev(end, EventKind::RunFinished, "run finished"),
        ],
        sinks: Vec::new(),
        dropped_samples: 0,
        dropped_iterations: 0,
        arrivals: None,
        generator: Default::default(),
        breaches: Vec::new(),
        scenarios: Vec::new(),
        failures: Vec::new(),
        segments: Vec::new(),
        name_tags: Default::default(),
        breakdown: None,
    };
    let summary = Summary::new(
        RunInfo {
            id: "20261122-000000-abcdef".into(),
            scenario: "synthetic <&> run".into(),
            tags: [("env".to_owned(), "staging".to_owned())].into(),
        },
        LoadSettings {
            users: 200,
            spawn_rate: Some(2.0),
            run_time: Some(Duration::from_secs(seconds as u64)),
            ..LoadSettings::default()
        },
        Some("http://127.0.0.1:8080".into()),
        &mut output,
    );
    ResultDoc::of(&summary)
}

#[test]
fn a_one_hour_run_with_50_names_stays_under_5_mb() {
    // 3,599 s is the longest series before the first downsampling: the most points (3,599).
    let doc = synthetic(50, 3599);
    assert_eq!(doc.series.points.len(), 3599);
    assert!(doc.requests.iter().all(|r| !r.latency_curve.is_empty()));
    let started = std::time::Instant::now();
    let html = render(&doc);
    let took = started.elapsed();
    let json = serde_json::to_string_pretty(&doc).unwrap();
    println!(
        "report of a 1-hour run with 50 names: HTML {} bytes (rendered in {took:?}), JSON {} bytes",
        html.len(),
        json.len()
    );
    assert!(html.len() < 5_000_000, "{} bytes", html.len());
    // Nothing is fetched at view time; the one script is the charts' hover.
    assert_eq!(html.matches("<script").count(), 1);
    assert!(html.contains(&format!("<script>{HOVER_JS}</script>")));
    for needle in ["http://", "https://", "<script src", "src="] {
        let hits: Vec<&str> = html
            .match_indices(needle)
            .map(|(i, _)| &html[i..(i + 60).min(html.len())])
            .collect();
        // The only URL is the target host shown as text.
        assert!(
            hits.iter().all(|h| h.starts_with("http://127.0.0.1:8080<")),
            "{needle}: {hits:?}"
        );
    }
}

#[test]
fn every_request_name_gets_a_row_a_curve_and_a_bar_with_escaped_text() {
    let doc = synthetic(3, 30);
    let html = render(&doc);
    for (i, r) in doc.requests.iter().enumerate() {
        assert_eq!(
            html.matches(&format!(r#"<tr data-name="{}">"#, esc(&r.name)))
                .count(),
            3,
            "statistics, percentiles and phases rows of {}",
            r.name
        );
        assert!(html.contains(&format!(r#"id="curve-{i}""#)));
    }
    assert!(!html.contains("<x>"), "names are escaped");
    assert!(html.contains("synthetic &lt;&amp;&gt; run"));
    assert!(html.contains(r#"class="verdict passed""#));
    assert!(html.contains("HTTP 503 &lt;Service Unavailable&gt;"));
    // Charts: rps, latency, users over time, curves, phases; markers for the three mid-run events.
    for id in [
        "chart-rps",
        "chart-latency",
        "chart-users",
        "chart-curves",
        "chart-phases",
    ] {
        assert!(html.contains(&format!(r#"id="{id}""#)), "{id}");
    }
    // One marker on each chart over time: the run's three, the two overviews by name and
    // each name's two.
    assert_eq!(
        html.matches(r#"<g class="marker threshold_breached">"#)
            .count(),
        3 + 2 + 2 * doc.requests.len()
    );
    assert_eq!(html.matches(r#"<g class="marker run_started">"#).count(), 0);
}

#[test]
fn each_request_name_has_its_charts_over_time_and_the_one_that_got_slow_shows() {
    let doc = synthetic(3, 300);
    assert_eq!(doc.series.requests.len(), 3);
    // 300 s at one point a second do not fit in 240 points: one per 2 s.
    assert_eq!(doc.series.requests[0].resolution_s, 2);
    let html = render(&doc);
    for i in 0..3 {
        for kind in ["latency", "rps"] {
            assert!(
                html.contains(&format!(r#"id="chart-name-{i}-{kind}""#)),
                "{i} {kind}"
            );
        }
    }
    // The p95 overview lists the name that got slow (name 1, after 150 s) first, and its
    // values say when: ~100 ms before, ~1 s after.
    let overview = html
        .split(r#"<figure class="chart" id="chart-p95-by-name""#)
        .nth(1)
        .unwrap()
        .split("</figure>")
        .next()
        .unwrap();
    assert!(overview.contains("(one point per 2 s)"), "{overview}");
    let first = overview
        .split(r#"<path class="series" data-label=""#)
        .nth(1)
        .unwrap();
    assert!(
        first.starts_with(r#"GET /api/v1/item/1?q=&lt;x&gt;""#),
        "{first}"
    );
    let values: Vec<f64> = first
        .split(r#"data-v=""#)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .split(',')
        .filter(|v| !v.is_empty())
        .map(|v| v.parse().unwrap())
        .collect();
    assert!(values[..70].iter().all(|v| *v < 130.0), "{values:?}");
    assert!(values[80..].iter().all(|v| *v > 700.0), "{values:?}");
    // Without the script, the same values are in the columns' titles.
    assert!(overview.contains(r#"<g class="hover"><rect"#));
    assert!(overview.contains("<title>0:02 · GET /api/v1/item/1?q=&lt;x&gt; 113 ms"));
    assert!(overview.contains("<title>2:34 · GET /api/v1/item/1?q=&lt;x&gt; 978 ms"));
}

#[test]
fn sections_this_build_does_not_know_are_rendered_generically() {
    let doc = synthetic(2, 5);
    let mut html = String::new();
    outcome::generic_section(
        &mut html,
        "canary_checks",
        &serde_json::json!([
            {"check": "p95", "limit": "< 200ms", "value": 180.5, "passed": true},
            {"check": "error_rate", "limit": "< 1%", "value": 2.1, "passed": false}
        ]),
    );
    assert!(html.contains("<h2>Canary checks</h2>"));
    assert_eq!(html.matches("<tr>").count(), 3);
    assert!(html.contains("&lt; 200ms") && html.contains("180.5"));
    // Every section of today's document has a dedicated view.
    let value = serde_json::to_value(&doc).unwrap();
    assert_eq!(outcome::extra_sections(&value), vec![]);
    let mut value = value;
    value["canary_checks"] = serde_json::json!({"ok": true});
    let extra = outcome::extra_sections(&value);
    assert_eq!(extra.len(), 1);
    assert_eq!(extra[0].0, "canary_checks");
}

#[test]
fn thresholds_open_model_generator_and_scenarios_are_shown_when_present() {
    let doc = synthetic(2, 5);
    let mut v = serde_json::to_value(&doc).unwrap();
    v["thresholds"] = serde_json::json!([
        {"expression": "p95 < 300ms", "metric": "p95", "scope": "aggregate", "op": "<",
         "limit": 300.0, "observed": 120.0, "unit": "ms", "passed": true, "aborted": false,
         "abort_on_fail": false, "first_breach_s": null, "detail": "120 ms, limit < 300 ms"},
        {"expression": "error_rate < 1%", "metric": "error_rate", "scope": "aggregate", "op": "<",
         "limit": 0.01, "observed": 0.03, "unit": "ratio", "passed": false, "aborted": true,
         "abort_on_fail": true, "first_breach_s": 12.5, "detail": "3.00 %, limit < 1 %"},
        {"expression": "p95{tag:pay} < 1s", "metric": "p95", "scope": "tag:pay", "op": "<",
         "limit": 1000.0, "observed": 420.0, "unit": "ms", "passed": true, "aborted": false,
         "abort_on_fail": false, "first_breach_s": null, "detail": "420 ms (limit < 1000 ms)",
         "requests": ["GET /cart", "POST /pay<x>"]}
    ]);
    v["arrivals"] = serde_json::json!({"intended": 1000, "started": 990, "dropped_iterations": 10,
        "achieved_pct": 99.0, "vus_allocated": 40, "max_vus": 40,
        "schedule_delay_ms": doc.aggregate.latency_ms});
    v["generator"] = serde_json::json!({"healthy": false, "reasons": ["CPU saturated for 12 s"],
        "cpu_cores": 2.0, "cpu_avg_pct": 97.0, "cpu_max_pct": 100.0, "cpu_saturated_s": 12.0,
        "cpu_seconds": 20.0, "peak_rss_mb": 55.0, "achieved_pct": 99.0});
    v["scenarios"] = serde_json::json!([{"name": "browse <b>", "start_time_s": 5.0,
        "load": v["load"].clone(), "aggregate": v["aggregate"].clone(),
        "requests": v["requests"].clone(), "arrivals": null}]);

    let mut html = String::new();
    outcome::thresholds(&mut html, &v);
    assert!(html.contains("Thresholds: 2 of 3 passed"), "{html}");
    assert!(
        html.contains("<td>tag:pay (GET /cart, POST /pay&lt;x&gt;)</td>"),
        "{html}"
    );
    assert!(html.contains("✗ failed, aborted the run") && html.contains("12.5 s"));
    assert!(html.contains("<code>error_rate &lt; 1%</code>"));

    let mut html = String::new();
    outcome::arrivals(&mut html, &v);
    assert!(
        html.contains("990 (99.0%)") && html.contains("40 of max 40"),
        "{html}"
    );

    let (text, healthy) = outcome::generator_item(&v).unwrap();
    assert!(
        !healthy && text.contains("NOT trustworthy: CPU saturated for 12 s"),
        "{text}"
    );

    let mut html = String::new();
    outcome::scenarios(&mut html, &v);
    assert!(html.contains("<h3>browse &lt;b&gt;</h3>"));
    assert_eq!(
        html.matches("<tr data-name=").count(),
        3,
        "2 names + aggregate"
    );

    // The generator's defaults (nothing measured) show nothing.
    v["generator"] = serde_json::json!({"healthy": false, "reasons": [], "cpu_cores": 0.0});
    assert!(outcome::generator_item(&v).is_none());
}

#[test]
fn a_run_without_requests_still_renders() {
    let mut doc = synthetic(1, 0);
    doc.requests.clear();
    doc.aggregate = RequestSummary::default();
    doc.errors.clear();
    doc.timeline.clear();
    let html = render(&doc);
    assert!(html.contains("No time series"));
    assert!(html.contains("no percentile curves"));
    assert!(!html.contains("NaN") && !html.contains("inf"));
}

#[test]
fn curves_survive_the_json_round_trip() {
    let doc = synthetic(2, 5);
    let text = serde_json::to_string(&doc).unwrap();
    let back: ResultDoc = serde_json::from_str(&text).unwrap();
    assert_eq!(
        back.requests[0].latency_curve,
        doc.requests[0].latency_curve
    );
    assert_eq!(render(&back), render(&doc));
}

#[test]
fn where_the_time_went_shows_bars_tables_charts_and_slowest_requests_with_links() {
    use crate::breakdown::Breakdown;
    let mut doc = synthetic(2, 5);
    let b = Breakdown::example();
    doc.breakdown = Some(b.clone());
    let html = render(&doc);
    let section = html
        .split(r#"<section id="breakdown"><h2>Where the time went</h2>"#)
        .nth(1)
        .expect("the section")
        .split("</section>")
        .next()
        .unwrap();
    assert!(html.contains(r##"<a href="#breakdown">Where the time went</a>"##));
    assert!(
        section.contains(
            "148 of 150 sampled requests found their server spans (<b>98.7% coverage</b>)"
        ),
        "{section}"
    );
    // One bar per request name; each segment is the component's mean per joined request.
    let bar = |name: &str| {
        section
            .split(&format!(r#"<g class="bar" data-label="{name}">"#))
            .nth(1)
            .unwrap_or_else(|| panic!("no bar {name}"))
            .split("</g>")
            .next()
            .unwrap()
            .to_owned()
    };
    let orders = bar("GET /orders");
    // 22 ms × 1.1 mean; 4 connects of 0.22 ms over 98 joined requests.
    assert!(
        orders.contains("<title>postgresql: SELECT orders: 24.2 ms</title>"),
        "{orders}"
    );
    assert!(orders.contains("<title>pricing: GET /price/{sku}: 12.1 ms</title>"));
    assert!(orders.contains("<title>server self time: 3.30 ms</title>"));
    assert!(
        orders.contains("<title>connect: 0.01 ms</title>"),
        "{orders}"
    );
    let search = bar("GET /search");
    assert!(search.contains("<title>server self time: 9.90 ms</title>"));
    assert!(!search.contains("SELECT"), "no select in /search: {search}");
    // The table: p50/p95/p99/max per component, its share and span errors.
    let row = section
        .split(r#"<tr data-component="postgresql: SELECT orders">"#)
        .nth(1)
        .unwrap()
        .split("</tr>")
        .next()
        .unwrap();
    let cells: Vec<&str> = row
        .split("<td")
        .skip(1)
        .map(|c| c.split('>').nth(1).unwrap().trim_end_matches("</td"))
        .collect();
    assert_eq!(
        cells,
        [
            "postgresql: SELECT orders",
            "55.0%",
            "98",
            "22.0",
            "39.6",
            "55.0",
            "88.0",
            "2"
        ]
    );
    // Components over time per name, with the timeline's markers.
    for id in ["chart-breakdown", "chart-breakdown-0", "chart-breakdown-1"] {
        assert!(section.contains(&format!(r#"id="{id}""#)), "{id}");
    }
    let chart = section
        .split(r#"id="chart-breakdown-0""#)
        .nth(1)
        .unwrap()
        .split("</figure>")
        .next()
        .unwrap();
    assert!(chart.contains(r#"data-label="redis: GET" d="M"#), "{chart}");
    assert!(chart.contains(r#"<g class="marker threshold_breached">"#));
    // The slowest requests, linked to the trace UI.
    assert!(section.contains(
        r#"<a href="http://127.0.0.1:16686/trace/4bf92f3577b34da6a3ce929d0e0e4736" rel="noopener noreferrer"><code>4bf92f3577b34da6a3ce929d0e0e4736</code></a>"#
    ));
    assert!(section.contains("<td>postgresql: SELECT orders</td><td class=\"num\">120</td>"));
    // Not shown twice as a generic section.
    assert!(!html.contains(r#"id="x-breakdown""#));

    // A run without a receiver: no section, no link.
    doc.breakdown = None;
    let html = render(&doc);
    assert!(!html.contains("Where the time went") && !html.contains("id=\"breakdown"));

    // A receiver that joined nothing: the coverage and why, no empty chart.
    let mut none = b;
    for r in &mut none.requests {
        r.joined = 0;
    }
    none.coverage.joined = 0;
    doc.breakdown = Some(none);
    let html = render(&doc);
    assert!(html.contains(r#"id="breakdown-none""#));
    assert!(!html.contains(r#"id="chart-breakdown""#));
}
