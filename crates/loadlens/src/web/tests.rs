//! Unit tests of the dashboard's pieces: auth helpers, load requests, the hub's payload, and the
//! breakdown panel in headless Chromium (a dashboard served in-process, fed known snapshots).

use super::*;

#[test]
fn credentials_compare_whole() {
    assert!(constant_time_eq(b"Basic abc", b"Basic abc"));
    assert!(!constant_time_eq(b"Basic abd", b"Basic abc"));
    assert!(!constant_time_eq(b"Basic ab", b"Basic abc"));
    assert!(!constant_time_eq(b"", b"Basic abc"));
}

#[test]
fn only_loopback_counts_as_private() {
    assert!(!is_exposed("127.0.0.1".parse().unwrap()));
    assert!(!is_exposed("::1".parse().unwrap()));
    assert!(is_exposed("0.0.0.0".parse().unwrap()));
    assert!(is_exposed("192.168.1.4".parse().unwrap()));
}

#[test]
fn a_start_replaces_the_profile_of_its_model() {
    let staged = LoadSettings {
        users: 5,
        stages: loadlens_core::executor::profile::parse_stages("10s:5").unwrap(),
        ..LoadSettings::default()
    };
    let l = LoadRequest {
        users: Some(9),
        rate: None,
    }
    .apply(staged.clone());
    assert_eq!((l.users, l.stages.len()), (9, 0));
    // A rate means nothing to a closed model.
    let l = LoadRequest {
        users: None,
        rate: Some(3.0),
    }
    .apply(staged);
    assert_eq!((l.users, l.stages.len()), (5, 1));
    assert!(LoadRequest::default().valid().is_err());
    assert!(LoadRequest {
        rate: Some(-1.0),
        users: None
    }
    .valid()
    .is_err());
}

/// A snapshot of one name at `elapsed` whose interval of `span` had `interval` requests, of
/// `cumulative` so far.
fn snapshot_of(
    elapsed: std::time::Duration,
    span: std::time::Duration,
    interval: u64,
    cumulative: &loadlens_core::stats::RequestStats,
) -> Arc<loadlens_core::stats::Snapshot> {
    use loadlens_core::stats::{RequestStats, RequestSummary, SeriesPoint, Snapshot, StatsSet};
    let stats = RequestStats {
        count: interval,
        ..RequestStats::default()
    };
    let mut set = StatsSet::new(1);
    set.requests[0] = stats.clone();
    Arc::new(Snapshot {
        at: std::time::SystemTime::now(),
        elapsed,
        users: 10,
        point: SeriesPoint::of(elapsed, span, 10, &stats),
        interval: Arc::new(set),
        requests: vec![RequestSummary::of("GET", "/", cumulative, elapsed)],
        total: RequestSummary::of("", "Aggregated", cumulative, elapsed),
        dropped_iterations: None,
        arrival_rate: None,
        health: Default::default(),
        breakdown: None,
        scenarios: Vec::new(),
    })
}

#[test]
fn the_rate_tile_never_shows_the_stub_interval_at_the_end_of_a_run() {
    use loadlens_core::report::Outcome;
    use loadlens_core::stats::{RequestStats, StatsSet};
    use std::time::{Duration, SystemTime};

    let names = vec![("GET".to_owned(), "/".to_owned())];
    let run = loadlens_core::run::RunInfo {
        id: "r".into(),
        scenario: "s".into(),
        tags: Default::default(),
    };
    let meta = RunMeta {
        run: run.clone(),
        load: LoadSettings::default(),
        host: None,
        names: names.clone(),
        run_time: None,
    };
    let hub = Hub::new(meta, Phase::Running);
    let mut cumulative = RequestStats::default();
    // Ten whole seconds at 85 req/s …
    for s in 1..=10 {
        cumulative.count += 85;
        hub.on_snapshot(snapshot_of(
            Duration::from_secs(s),
            Duration::from_secs(1),
            85,
            &cumulative,
        ));
    }
    let live: serde_json::Value = serde_json::from_str(&hub.payload()).unwrap();
    assert_eq!(live["rps"], 85.0);
    assert_eq!(live["rps_label"], "Req/s, last second");
    // … then the executor stops: the last snapshot covers 0.1 s with 49 requests in it, which
    // the tile used to show as 490 req/s until the summary came, seconds later (sinks flush).
    cumulative.count += 49;
    cumulative.failures = 17;
    let elapsed = Duration::from_millis(10_100);
    hub.on_snapshot(snapshot_of(
        elapsed,
        Duration::from_millis(100),
        49,
        &cumulative,
    ));
    let live: serde_json::Value = serde_json::from_str(&hub.payload()).unwrap();
    assert_eq!(
        live["rps"], 85.0,
        "the last whole second, not the stub's 490"
    );
    assert_eq!(live["rps_label"], "Req/s, last second");
    hub.stopping();
    let stopping: serde_json::Value = serde_json::from_str(&hub.payload()).unwrap();
    assert_eq!(stopping["rps_label"], "Req/s, whole run");
    assert!(
        (stopping["rps"].as_f64().unwrap() - 899.0 / 10.1).abs() < 1e-9,
        "{stopping}"
    );

    let mut stats = StatsSet::new(1);
    stats.requests[0] = RequestStats {
        count: 850,
        failures: 17,
        ..RequestStats::default()
    };
    let summary = Summary {
        run,
        load: LoadSettings::default(),
        host: None,
        started_at: SystemTime::now(),
        ended_at: SystemTime::now(),
        duration: Duration::from_secs(10),
        stop_reason: StopReason::RunTime,
        killed: false,
        names,
        stats,
        series: loadlens_core::stats::TimeSeries::new(2),
        timeline: Vec::new(),
        sinks: Vec::new(),
        dropped_samples: 0,
        outcome: Outcome::default(),
    };
    hub.finish(&summary);
    let end: serde_json::Value = serde_json::from_str(&hub.payload()).unwrap();
    assert_eq!(end["phase"], "finished");
    // 850 requests in 10 s, as the summary says.
    assert_eq!(end["rps"], 85.0);
    assert_eq!(end["rps_label"], "Req/s, whole run");
    assert_eq!(end["failures_per_s"], 1.7);
    assert_eq!(end["rps"].as_f64(), Some(summary.total().rps));
    assert_eq!(end["total"]["rps"], 85.0);
    assert_eq!(end["requests"][0]["rps"], 85.0);
    assert_eq!(end["elapsed_s"], 10.0);
}

#[test]
fn the_dashboard_shows_the_reports_charts_for_the_same_series() {
    use loadlens_core::report::html::over_time::CHARTS;
    use loadlens_core::run::{EventKind, TimelineEvent};
    use loadlens_core::stats::{RequestStats, RequestSummary, SeriesPoint, Snapshot, StatsSet};
    use std::time::{Duration, SystemTime};

    let names = vec![("GET".to_owned(), "/".to_owned())];
    let meta = RunMeta {
        run: loadlens_core::run::RunInfo {
            id: "r".into(),
            scenario: "s".into(),
            tags: Default::default(),
        },
        load: LoadSettings::default(),
        host: None,
        names,
        run_time: None,
    };
    let hub = Hub::new(meta, Phase::Running);
    hub.events.lock().unwrap().push(TimelineEvent::now(
        Duration::from_millis(2500),
        EventKind::ThresholdBreached,
        "p95 < 1ms",
    ));
    let mut cumulative = RequestStats::default();
    for s in 1..=5u64 {
        let interval = RequestStats {
            count: 10 * s,
            failures: s % 2,
            ..RequestStats::default()
        };
        cumulative.count += interval.count;
        cumulative.failures += interval.failures;
        let elapsed = Duration::from_secs(s);
        let mut set = StatsSet::new(1);
        set.requests[0] = interval.clone();
        hub.on_snapshot(Arc::new(Snapshot {
            at: SystemTime::now(),
            elapsed,
            users: s,
            point: SeriesPoint::of(elapsed, Duration::from_secs(1), s, &interval),
            interval: Arc::new(set),
            requests: vec![RequestSummary::of("GET", "/", &cumulative, elapsed)],
            total: RequestSummary::of("", "Aggregated", &cumulative, elapsed),
            dropped_iterations: None,
            arrival_rate: None,
            health: Default::default(),
            breakdown: None,
            scenarios: Vec::new(),
        }));
    }
    let live: serde_json::Value = serde_json::from_str(&hub.payload()).unwrap();
    let charts = live["charts"].as_str().unwrap();
    let (_, report) = hub.download("report.html").unwrap();
    // The same figures, byte for byte: series, colours, axes, legends, markers, the hover
    // script's data, and the charts per request name; only the report has the no-script
    // fallback columns (the page is a script anyway).
    assert!(
        charts.starts_with(r#"<figure class="chart" id="chart-rps" data-x="0.0 s,1.0 s,"#),
        "{charts}"
    );
    assert!(!charts.contains(r#"<g class="hover">"#));
    let mut without_fallback = String::new();
    let mut rest = report.as_str();
    while let Some(at) = rest.find(r#"<g class="hover">"#) {
        without_fallback.push_str(&rest[..at]);
        let end = rest[at..].find("</g>").unwrap() + at + "</g>".len();
        rest = &rest[end..];
    }
    without_fallback.push_str(rest);
    assert!(
        without_fallback.contains(charts),
        "the report's charts differ from the dashboard's"
    );
    for id in [
        "chart-p95-by-name",
        "chart-rps-by-name",
        "chart-name-0-latency",
        "chart-name-0-rps",
    ] {
        assert_eq!(charts.matches(&format!(r#"id="{id}""#)).count(), 1, "{id}");
    }
    // And they are the ones the builder defines, users in the report's colour.
    for (id, _, _, lines) in CHARTS {
        assert_eq!(charts.matches(&format!(r#"id="{id}""#)).count(), 1, "{id}");
        for (label, color, _) in lines {
            assert!(
                charts.contains(&format!(r#"data-label="{label}" d="M"#))
                    && charts.contains(&format!(r#"stroke="{color}""#))
                    && charts.contains(&format!(
                        r#"<span><i style="background:{color}"></i>{}</span>"#,
                        label
                    )),
                "{id}/{label}: {charts}"
            );
        }
    }
    assert!(charts.contains(r##"data-label="users" d="M"##));
    assert!(
        charts.contains(&format!(
            r#"stroke="{}""#,
            loadlens_core::report::html::palette::USERS
        )),
        "users are drawn in the palette's colour"
    );
    assert_eq!(
        charts
            .matches(r#"<g class="marker threshold_breached">"#)
            .count(),
        3 + 2 + 2,
        "one marker per chart: the run's three, the two overviews by name, the name's two"
    );
}

fn breakdown_meta() -> RunMeta {
    let names = vec![
        ("GET".to_owned(), "/orders".to_owned()),
        ("GET".to_owned(), "/search".to_owned()),
    ];
    RunMeta {
        run: loadlens_core::run::RunInfo {
            id: "r".into(),
            scenario: "s".into(),
            tags: Default::default(),
        },
        load: LoadSettings::default(),
        host: None,
        names,
        run_time: Some(std::time::Duration::from_secs(10)),
    }
}

/// A hub of a running run whose snapshots carry `breakdown`: five one-second snapshots.
fn hub_with(breakdown: Option<loadlens_core::breakdown::Breakdown>) -> Arc<Hub> {
    let hub = Hub::new(breakdown_meta(), Phase::Running);
    feed(&hub, breakdown);
    hub
}

fn feed(hub: &Hub, breakdown: Option<loadlens_core::breakdown::Breakdown>) {
    use loadlens_core::stats::{RequestStats, RequestSummary, SeriesPoint, Snapshot, StatsSet};
    use std::time::{Duration, SystemTime};

    let breakdown = breakdown.map(Arc::new);
    let mut cumulative = RequestStats::default();
    for s in 1..=5u64 {
        let interval = RequestStats {
            count: 20,
            ..RequestStats::default()
        };
        cumulative.count += interval.count;
        let elapsed = Duration::from_secs(s);
        let mut set = StatsSet::new(2);
        set.requests[0] = interval.clone();
        hub.on_snapshot(Arc::new(Snapshot {
            at: SystemTime::now(),
            elapsed,
            users: 2,
            point: SeriesPoint::of(elapsed, Duration::from_secs(1), 2, &interval),
            interval: Arc::new(set),
            requests: vec![RequestSummary::of("GET", "/orders", &cumulative, elapsed)],
            total: RequestSummary::of("", "Aggregated", &cumulative, elapsed),
            dropped_iterations: None,
            arrival_rate: None,
            health: Default::default(),
            breakdown: breakdown.clone(),
            scenarios: Vec::new(),
        }));
    }
}

#[test]
fn the_breakdown_panel_is_the_reports_section_and_absent_without_a_receiver() {
    use loadlens_core::breakdown::Breakdown;

    let hub = hub_with(Some(Breakdown::example()));
    let live: serde_json::Value = serde_json::from_str(&hub.payload()).unwrap();
    let panel = live["breakdown"].as_str().expect("a panel");
    assert!(
        panel.contains(r#"<g class="bar" data-label="GET /orders">"#),
        "{panel}"
    );
    assert!(panel.contains("<title>postgresql: SELECT orders: 24.2 ms</title>"));
    // The report downloaded during the run shows the same bars and tables, byte for byte (its
    // charts over time span the run so far, the panel's the planned run time).
    let (_, report) = hub.download("report.html").unwrap();
    let bars = panel.split("</figure>").next().unwrap();
    assert!(bars.starts_with(r#"<p id="breakdown-coverage">"#), "{bars}");
    assert!(report.contains(bars));
    for table in panel.split("<table").skip(1) {
        let table = table.split("</table>").next().unwrap();
        assert!(report.contains(table), "{table}");
    }

    let hub = hub_with(None);
    let live: serde_json::Value = serde_json::from_str(&hub.payload()).unwrap();
    assert!(live["breakdown"].is_null());
    let (_, report) = hub.download("report.html").unwrap();
    assert!(!report.contains("Where the time went"));
}

/// Headless Chromium's DOM of `url` once the network went quiet (`--virtual-time-budget`): the
/// caller closes the event stream (shuts the dashboard down) once the page has its state,
/// since an open stream keeps the network busy. Fails, saying how to install it, without
/// Chromium.
fn rendered_dom(url: &str) -> String {
    let chrome = std::env::var_os("LOADLENS_CHROMIUM")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "/usr/bin/chromium".into());
    assert!(
        chrome.is_file(),
        "no Chromium at {}: run the suite with `scripts/test`, which installs Debian's \
         `chromium` (`apt-get install chromium`), or set LOADLENS_CHROMIUM",
        chrome.display()
    );
    let profile =
        std::env::temp_dir().join(format!("loadlens-web-chromium-{}", std::process::id()));
    let mut child = std::process::Command::new(&chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--disable-sync",
            "--window-size=1300,2400",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start chromium");
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    // Bounded: a browser that never dumps fails the test instead of holding the suite.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while child.try_wait().ok().flatten().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not dump the page within 90 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&profile);
    reader.join().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_the_breakdown_panel_only_with_a_breakdown() {
    use loadlens_core::breakdown::Breakdown;

    let args = WebArgs {
        web: true,
        web_host: None,
        web_port: 0,
        web_auth: None,
    };
    for with in [true, false] {
        let d = Dashboard::start(&args, breakdown_meta(), false)
            .await
            .unwrap();
        feed(&d.hub, with.then(Breakdown::example));
        let url = format!("http://{}/", d.addr());
        let browser = tokio::task::spawn_blocking(move || rendered_dom(&url));
        // The page connected to the event stream, whose first event (the state) is written at
        // once; a while later the dashboard stops, the stream closes, and Chromium, its
        // network quiet, dumps the page. The while is twice what the browser took to get that
        // far (at least a second), so a slow machine waits longer.
        let started = std::time::Instant::now();
        while d.hub.pages() == 0 && started.elapsed() < std::time::Duration::from_secs(60) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(d.hub.pages() > 0, "the page never opened the event stream");
        let connect = started.elapsed();
        tokio::time::sleep((2 * connect).max(std::time::Duration::from_secs(1))).await;
        d.shutdown().await;
        let dom = browser.await.unwrap();
        assert!(
            dom.contains(r#"id="k-requests">100<"#),
            "the page rendered the state: {dom}"
        );
        let section = dom
            .split(r#"<section id="breakdown""#)
            .nth(1)
            .expect("the panel's section")
            .split("</section>")
            .next()
            .unwrap();
        if with {
            assert!(!section.starts_with(" hidden"), "{section}");
            assert!(section.contains(r#"<g class="bar" data-label="GET /orders">"#));
            assert!(section.contains("<title>postgresql: SELECT orders: 24.2 ms</title>"));
            assert!(section.contains("98.7% coverage"));
            assert!(section.contains(r#"<tr data-component="postgresql: SELECT orders">"#));
        } else {
            assert!(section.starts_with(r#" hidden="""#), "{section}");
            assert!(!section.contains("<svg"));
        }
    }
}
