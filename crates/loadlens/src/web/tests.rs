//! Unit tests of the dashboard's pieces that need no server: auth helpers, load requests.

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

#[test]
fn at_the_end_the_rate_tiles_show_the_runs_rate_not_the_last_intervals() {
    use loadlens_core::report::Outcome;
    use loadlens_core::stats::{RequestStats, RequestSummary, SeriesPoint, Snapshot, StatsSet};
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
    // The last snapshot: a stub interval of 0.1 s after the last full second, 49 requests in it.
    let stub = RequestStats {
        count: 49,
        ..RequestStats::default()
    };
    let mut interval = StatsSet::new(1);
    interval.requests[0] = stub.clone();
    let elapsed = Duration::from_millis(10_100);
    let cumulative = RequestStats {
        count: 850,
        failures: 17,
        ..RequestStats::default()
    };
    hub.on_snapshot(Arc::new(Snapshot {
        at: SystemTime::now(),
        elapsed,
        users: 0,
        point: SeriesPoint::of(elapsed, Duration::from_millis(100), 0, &stub),
        interval: Arc::new(interval),
        requests: vec![RequestSummary::of("GET", "/", &cumulative, elapsed)],
        total: RequestSummary::of("", "Aggregated", &cumulative, elapsed),
        dropped_iterations: None,
        health: Default::default(),
        breakdown: None,
    }));
    let live: serde_json::Value = serde_json::from_str(&hub.payload()).unwrap();
    assert_eq!(live["rps"], 490.0, "during the run: the last interval");

    let mut stats = StatsSet::new(1);
    stats.requests[0] = cumulative;
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
            health: Default::default(),
            breakdown: None,
        }));
    }
    let live: serde_json::Value = serde_json::from_str(&hub.payload()).unwrap();
    let charts = live["charts"].as_str().unwrap();
    let (_, report) = hub.download("report.html").unwrap();
    // The same three figures, byte for byte: series, colours, axes, legends and markers.
    assert!(
        charts.starts_with(r#"<figure class="chart" id="chart-rps">"#),
        "{charts}"
    );
    assert!(
        report.contains(charts),
        "the report's charts differ from the dashboard's"
    );
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
        charts.contains(r##"stroke="#b07aa1""##),
        "users are drawn in PALETTE[6]"
    );
    assert_eq!(
        charts
            .matches(r#"<g class="marker threshold_breached">"#)
            .count(),
        3,
        "one marker per chart"
    );
}
