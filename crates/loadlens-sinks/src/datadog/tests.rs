//! Tests of the Datadog sink: the shared sink contract, and real runs against the local API
//! stub and a DogStatsD socket, with every captured payload checked against Datadog's official
//! models (`stub::check_official_models`).

use std::time::Duration;

use loadlens_core::executor::{Controls, LoadSettings, StopReason};
use loadlens_core::report::{Summary, Verdict};
use loadlens_core::run::EventKind;
use loadlens_core::sink::SinkReport;
use serde_json::Value;

use super::stub::{check_official_models, Captured, DatadogStub, ModelCheck, StatsdReceiver};
use super::stub::{API_KEY, APP_KEY};
use super::*;
use crate::contract;

fn config(url: &str) -> Config {
    let mut c = Config::new(url, Some(API_KEY), Some(APP_KEY));
    c.backoff = Duration::from_millis(50);
    c
}

fn check_models(captured: &[Captured]) {
    match check_official_models(captured) {
        Ok(ModelCheck::Valid(line)) => eprintln!("official models: {line}"),
        Err(e) => panic!("payloads do not match Datadog's official models:\n{e}"),
    }
}

/// Sum of one count metric's points over every accepted `POST /api/v2/series`, per request tag.
fn count_sum(stub: &DatadogStub, metric: &str) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    for r in stub.accepted("POST", "/api/v2/series") {
        for s in r.json()["series"].as_array().unwrap() {
            if s["metric"] != metric {
                continue;
            }
            let req = s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|t| t.as_str())
                .find(|t| t.starts_with("request:"))
                .unwrap_or("none")
                .to_owned();
            for p in s["points"].as_array().unwrap() {
                *out.entry(req.clone()).or_insert(0.0) += p["value"].as_f64().unwrap();
            }
        }
    }
    out
}

fn events(stub: &DatadogStub) -> Vec<Value> {
    stub.accepted("POST", "/api/v1/events")
        .iter()
        .map(Captured::json)
        .collect()
}

async fn finish(sink: Box<dyn loadlens_core::sink::Sink>, s: &Summary) -> SinkReport {
    tokio::time::timeout(Duration::from_secs(15), sink.finish(s))
        .await
        .expect("finish is bounded")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_sink_contract() {
    let make = |url: &str, timeout: Duration| -> Box<dyn loadlens_core::sink::Sink> {
        let mut c = config(url);
        c.timeout = timeout;
        Box::new(DatadogSink::unchecked(c))
    };
    contract::check_all(&make).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_sends_events_and_metrics_that_match_its_summary_and_the_official_models() {
    let stub = DatadogStub::start();
    let mut cfg = config(stub.url());
    cfg.details = vec!["Target: the contract endpoint".into()];
    let sink = DatadogSink::connect(cfg)
        .await
        .expect("the stub accepts the key");
    let (summary, sink) = contract::short_run(Box::new(sink), 300, Controls::new()).await;
    let report = finish(sink, &summary).await;
    assert_eq!((report.failed, report.dropped), (0, 0), "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");

    let reqs = stub.requests();
    assert_eq!(reqs[0].path, "/api/v1/validate");
    for r in &reqs {
        assert_eq!(r.header("dd-api-key"), Some(API_KEY), "{}", r.path);
        if r.method == "POST" {
            assert_eq!(r.header("content-type"), Some("application/json"));
        }
        if r.path.contains("series") || r.path.contains("distribution") {
            assert_eq!(r.header("content-encoding"), Some("gzip"), "{}", r.path);
        }
    }

    // Events: start and stop, tagged and keyed by the run.
    let ev = events(&stub);
    assert_eq!(ev.len(), 2, "{ev:#?}");
    for e in &ev {
        let tags: Vec<&str> = e["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        assert!(
            tags.contains(&"test_run:contract-run") && tags.contains(&"env:test"),
            "{tags:?}"
        );
        assert_eq!(e["aggregation_key"], "contract-run");
        assert_eq!(e["source_type_name"], "loadlens");
    }
    assert_eq!(ev[0]["alert_type"], "info");
    assert!(ev[0]["text"]
        .as_str()
        .unwrap()
        .contains("Target: the contract endpoint"));
    assert_eq!(ev[1]["alert_type"], "success");
    let stop = ev[1]["text"].as_str().unwrap();
    assert!(
        ev[1]["title"].as_str().unwrap().contains("passed"),
        "{}",
        ev[1]["title"]
    );
    assert!(
        stop.contains("Requests: 300") && stop.contains("p95") && stop.contains("p99"),
        "{stop}"
    );

    // Metrics: the counts sent equal the run's own.
    let total = summary.total();
    let requests = count_sum(&stub, "loadlens.requests");
    assert_eq!(
        requests.values().sum::<f64>() as u64,
        total.request_count,
        "{requests:?}"
    );
    assert_eq!(requests.keys().collect::<Vec<_>>(), ["request:/contract"]);
    let failures = count_sum(&stub, "loadlens.failures");
    assert_eq!(failures.values().sum::<f64>() as u64, total.failure_count);
    let received = count_sum(&stub, "loadlens.bytes.received");
    assert_eq!(received.values().sum::<f64>() as u64, total.bytes_received);
    let dist = stub.accepted("POST", "/api/v1/distribution_points");
    let values: usize = dist
        .iter()
        .flat_map(|r| r.json()["series"].as_array().unwrap().clone())
        .map(|s| s["points"][0][1].as_array().unwrap().len())
        .sum();
    assert_eq!(
        values as u64, total.request_count,
        "under the cap every value is sent"
    );
    assert!(dist[0].json()["series"][0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "method:get"));

    check_models(&reqs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_key_is_one_clear_message_without_the_key() {
    let stub = DatadogStub::start();
    stub.keys("another-key", APP_KEY);
    let err = DatadogSink::connect(config(stub.url())).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, StartError::KeyRejected { status: 403, .. }),
        "{msg}"
    );
    assert!(
        msg.contains("rejected the API key") && msg.contains("DD_API_KEY"),
        "{msg}"
    );
    assert!(
        !msg.contains(API_KEY) && !format!("{err:?}").contains(API_KEY),
        "{msg}"
    );

    // A wrong application key or an unknown monitor is found at the start too.
    let stub = DatadogStub::start();
    stub.keys(API_KEY, "another-app-key");
    stub.monitor(1, "m", &["OK"]);
    let mut cfg = config(stub.url());
    cfg.monitors = vec!["1:abort".parse().unwrap()];
    let err = DatadogSink::connect(cfg.clone()).await.unwrap_err();
    assert!(
        matches!(err, StartError::AppKeyRejected { id: 1, .. }),
        "{err}"
    );
    assert!(!err.to_string().contains(APP_KEY));
    stub.keys(API_KEY, APP_KEY);
    cfg.monitors = vec!["2".parse().unwrap()];
    let err = DatadogSink::connect(cfg).await.unwrap_err();
    assert!(
        matches!(err, StartError::MonitorNotFound { id: 2, .. }),
        "{err}"
    );

    // Nothing listening: unreachable, said once.
    let err = DatadogSink::connect(config(&contract::refused_url()))
        .await
        .unwrap_err();
    assert!(matches!(err, StartError::Unreachable(_)), "{err}");
    check_models(&stub.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_wait_for_the_reset_and_server_errors_are_retried() {
    let stub = DatadogStub::start();
    stub.fail_next("/api/v1/events", 429, 1, 1);
    stub.fail_next("/api/v2/series", 503, 2, 0);
    let sink = DatadogSink::connect(config(stub.url())).await.unwrap();
    let (summary, sink) = contract::short_run(Box::new(sink), 50, Controls::new()).await;
    let report = finish(sink, &summary).await;
    assert_eq!((report.failed, report.dropped), (0, 0), "{report:?}");
    let reqs = stub.requests();
    let events: Vec<&Captured> = reqs.iter().filter(|r| r.path == "/api/v1/events").collect();
    assert_eq!(events[0].status, 429);
    assert_eq!(events[1].status, 202, "retried after the reset");
    let series: Vec<u16> = reqs
        .iter()
        .filter(|r| r.path == "/api/v2/series")
        .map(|r| r.status)
        .collect();
    assert_eq!(&series[..3], [503, 503, 202]);
    assert_eq!(
        count_sum(&stub, "loadlens.requests").values().sum::<f64>() as u64,
        summary.total().request_count
    );
    check_models(&reqs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_request_is_reported_not_retried_and_never_shows_the_key() {
    let stub = DatadogStub::start();
    stub.fail_next("/api/v1/events", 400, 100, 0);
    let sink = DatadogSink::connect(config(stub.url())).await.unwrap();
    let (summary, sink) = contract::short_run(Box::new(sink), 10, Controls::new()).await;
    let report = finish(sink, &summary).await;
    assert_eq!(report.failed, 2, "start and stop events: {report:?}");
    assert!(report.delivered > 0, "metrics still went: {report:?}");
    let text = format!("{report:?}");
    assert!(
        text.contains("POST /api/v1/events: Datadog answered 400"),
        "{text}"
    );
    assert!(!text.contains(API_KEY) && !text.contains(APP_KEY));
    let events = stub
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/events")
        .count();
    assert_eq!(events, 2, "400 is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_going_to_alert_aborts_the_run_and_the_stop_event_says_why() {
    let stub = DatadogStub::start();
    // One GET at the start (the check), then the poller's: OK, OK, Alert.
    stub.monitor(42, "checkout p95", &["OK", "OK", "OK", "Alert"]);
    let mut cfg = config(stub.url());
    cfg.monitors = vec!["42:abort".parse().unwrap()];
    cfg.monitor_interval = Duration::from_millis(200);
    let sink = DatadogSink::connect(cfg).await.unwrap();
    let load = LoadSettings {
        users: 2,
        run_time: Some(Duration::from_secs(20)),
        ..LoadSettings::default()
    };
    let t = std::time::Instant::now();
    let (summary, sink) = contract::run_with(Box::new(sink), load, Controls::new()).await;
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "stopped early: {:?}",
        t.elapsed()
    );
    let StopReason::Aborted(why) = &summary.stop_reason else {
        panic!("{:?}", summary.stop_reason)
    };
    assert!(why.contains("monitor 42") && why.contains("Alert"), "{why}");
    assert_eq!(summary.verdict(), Verdict::Aborted);
    let states: Vec<&str> = summary
        .timeline
        .iter()
        .filter(|e| e.kind == EventKind::MonitorState)
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(states.len(), 2, "{states:?}");
    assert!(states[0].ends_with("is OK"), "{states:?}");
    assert!(
        states[1].contains("OK → Alert") && states[1].contains("aborting"),
        "{states:?}"
    );
    let report = finish(sink, &summary).await;
    assert_eq!((report.failed, report.dropped), (0, 0), "{report:?}");

    let ev = events(&stub);
    let stop = ev.last().unwrap();
    assert_eq!(stop["alert_type"], "error");
    assert!(stop["title"].as_str().unwrap().contains("aborted"));
    assert!(
        stop["text"].as_str().unwrap().contains("checkout p95"),
        "{stop}"
    );
    assert!(
        ev.iter()
            .any(|e| e["title"].as_str().unwrap().contains("OK → Alert")
                && e["alert_type"] == "error")
    );
    assert!(stub
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/monitor/42")
        .all(|r| r.header("dd-application-key") == Some(APP_KEY)));
    check_models(&stub.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_monitor_with_the_fail_action_fails_the_verdict_at_the_end() {
    let stub = DatadogStub::start();
    stub.monitor(7, "errors", &["OK", "Alert"]);
    let mut cfg = config(stub.url());
    cfg.monitors = vec!["7:fail".parse().unwrap()];
    cfg.monitor_interval = Duration::from_millis(100);
    let sink = DatadogSink::connect(cfg).await.unwrap();
    let load = LoadSettings {
        users: 1,
        run_time: Some(Duration::from_millis(1200)),
        ..LoadSettings::default()
    };
    let (summary, sink) = contract::run_with(Box::new(sink), load, Controls::new()).await;
    assert_eq!(summary.stop_reason, StopReason::RunTime);
    assert_eq!(summary.verdict(), Verdict::Failed);
    assert!(
        summary.outcome.failures[0].contains("monitor 7"),
        "{:?}",
        summary.outcome.failures
    );
    finish(sink, &summary).await;
    let stop = events(&stub).pop().unwrap();
    assert!(
        stop["text"].as_str().unwrap().contains("Failed by a guard"),
        "{stop}"
    );
}

/// A parsed DogStatsD line: name, values, type, sample rate, tags.
type StatsdLine = (String, Vec<f64>, String, f64, Vec<String>);

/// Parse one DogStatsD metric line strictly: `name:v[:v…]|type[|@rate][|#tag,…]`.
fn parse_statsd(line: &str) -> Result<StatsdLine, String> {
    let (name, rest) = line.split_once(':').ok_or("no `:`")?;
    if !name.starts_with(|c: char| c.is_ascii_alphabetic())
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut parts = rest.split('|');
    let values = parts
        .next()
        .ok_or("no value")?
        .split(':')
        .map(|v| v.parse::<f64>().map_err(|_| format!("bad value {v:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    let kind = parts.next().ok_or("no type")?.to_owned();
    if !["c", "g", "d", "h", "ms", "s"].contains(&kind.as_str()) {
        return Err(format!("bad type {kind:?}"));
    }
    let (mut rate, mut tags) = (1.0, Vec::new());
    for p in parts {
        if let Some(r) = p.strip_prefix('@') {
            rate = r.parse().map_err(|_| format!("bad rate {r:?}"))?;
            if !(rate > 0.0 && rate <= 1.0) {
                return Err(format!("rate {rate} out of (0, 1]"));
            }
        } else if let Some(t) = p.strip_prefix('#') {
            for tag in t.split(',') {
                if tag.is_empty() || tag.contains([' ', '|', '#', '\n']) {
                    return Err(format!("bad tag {tag:?}"));
                }
                tags.push(tag.to_owned());
            }
        } else {
            return Err(format!("unknown field {p:?}"));
        }
    }
    Ok((name.to_owned(), values, kind, rate, tags))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dogstatsd_lines_follow_the_format_and_carry_the_runs_counts() {
    let udp = StatsdReceiver::start();
    let stub = DatadogStub::start();
    let mut cfg = config(stub.url());
    cfg.metrics = MetricsTransport::DogStatsd;
    cfg.dogstatsd = Some(("127.0.0.1".into(), udp.port));
    cfg.max_values = 100;
    let sink = DatadogSink::connect(cfg).await.unwrap();
    let (summary, sink) = contract::short_run(Box::new(sink), 400, Controls::new()).await;
    let report = finish(sink, &summary).await;
    assert_eq!((report.failed, report.dropped), (0, 0), "{report:?}");
    assert!(
        stub.accepted("POST", "/api/v2/series").is_empty(),
        "metrics went over UDP only"
    );
    let mut lines = Vec::new();
    for _ in 0..100 {
        lines = udp.lines();
        let got: f64 = lines
            .iter()
            .filter(|l| l.starts_with("loadlens.requests:"))
            .filter_map(|l| parse_statsd(l).ok())
            .map(|m| m.1[0])
            .sum();
        // UDP datagrams arrive in any order: wait for the distributions too, not only the
        // counters.
        let weight: f64 = lines
            .iter()
            .filter(|l| l.starts_with("loadlens.response_time:"))
            .filter_map(|l| parse_statsd(l).ok())
            .map(|m| m.1.len() as f64 / m.3)
            .sum();
        let total = summary.total().request_count;
        if got as u64 == total && (weight - total as f64).abs() / (total as f64) < 0.01 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut requests, mut dist_weight) = (0.0, 0.0);
    for l in &lines {
        if let Some(n) = l.strip_prefix("#datagram ") {
            assert!(n.parse::<usize>().unwrap() <= 1432, "datagram of {n} bytes");
            continue;
        }
        let (name, values, kind, rate, tags) =
            parse_statsd(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
        assert!(tags.contains(&"test_run:contract-run".to_owned()), "{l}");
        match name.as_str() {
            "loadlens.requests" => {
                assert_eq!(kind, "c");
                requests += values[0];
            }
            "loadlens.response_time" => {
                assert_eq!(kind, "d");
                dist_weight += values.len() as f64 / rate;
            }
            "loadlens.users" => assert_eq!(kind, "g"),
            _ => {}
        }
    }
    let total = summary.total().request_count as f64;
    assert_eq!(requests, total);
    assert!(
        (dist_weight - total).abs() / total < 0.01,
        "sampled distributions weigh {dist_weight} for {total} requests"
    );
}

#[test]
fn request_names_beyond_the_cap_share_the_overflow_tag() {
    let mut acc = Accumulator::new(2);
    acc.names = (0..4)
        .map(|i| ("GET".to_owned(), format!("/n{i}")))
        .collect();
    let mut set = StatsSet::new(4);
    for r in &mut set.requests {
        r.count = 5;
        r.latency.record(Duration::from_millis(3));
    }
    acc.add(&set);
    let batch = acc.take(1, 10, false);
    let tags: Vec<Vec<String>> = batch.names.iter().map(|n| n.tags.clone()).collect();
    assert_eq!(
        tags,
        vec![
            vec!["request:/n0".to_owned(), "method:get".to_owned()],
            vec!["request:/n1".to_owned(), "method:get".to_owned()],
            vec![OVERFLOW_TAG.to_owned()],
        ]
    );
    assert_eq!(batch.names[2].count, 10);
    assert!(acc.take(2, 10, false).names.is_empty(), "take resets");
}

#[test]
fn the_model_check_catches_wrong_fields_types_and_enum_values() {
    let captured = |path: &str, body: Value| Captured {
        method: "POST".into(),
        path: path.into(),
        headers: Vec::new(),
        body: body.to_string().into_bytes(),
        status: 0,
        response: Vec::new(),
    };
    let bad = [
        captured(
            "/api/v1/events",
            serde_json::json!({ "title": "t", "text": "x", "alert": "info" }),
        ),
        captured(
            "/api/v1/events",
            serde_json::json!({ "title": "t", "text": "x", "alert_type": "fine" }),
        ),
        captured(
            "/api/v2/series",
            serde_json::json!({ "series": [{ "metric": "m", "type": 9, "points": [] }] }),
        ),
        captured(
            "/api/v1/distribution_points",
            serde_json::json!({ "series": [{ "metric": "m", "points": [[1, "x"]] }] }),
        ),
    ];
    for b in &bad {
        match check_official_models(std::slice::from_ref(b)) {
            Err(e) => assert!(e.to_string().contains("INVALID"), "{e}"),
            Ok(ModelCheck::Valid(v)) => {
                panic!("{} passed the check: {v}", String::from_utf8_lossy(&b.body))
            }
        }
    }
}

/// The values Datadog keeps of one metric, per timestamp (summed over tag sets).
fn stored(stub: &DatadogStub, metric: &str) -> std::collections::BTreeMap<i64, f64> {
    let mut out = std::collections::BTreeMap::new();
    for ((m, _, ts), v) in stub.stored_series() {
        if m == metric {
            *out.entry(ts).or_insert(0.0) += v;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_datadog_keeps_of_a_run_equals_its_summary_one_point_per_series_and_second() {
    let stub = DatadogStub::start();
    let mut cfg = config(stub.url());
    // The shortest interval: several flushes fall in each second, and the final flush right
    // after the last regular one.
    cfg.metric_interval = Duration::from_millis(100);
    let sink = DatadogSink::connect(cfg).await.unwrap();
    let load = LoadSettings {
        users: 2,
        run_time: Some(Duration::from_millis(2500)),
        ..LoadSettings::default()
    };
    let (summary, sink) = contract::run_with(Box::new(sink), load, Controls::new()).await;
    let report = finish(sink, &summary).await;
    assert_eq!((report.failed, report.dropped), (0, 0), "{report:?}");

    // Datadog keeps the last point per series and second: nothing may be replaced.
    let kept = stub.stored_series();
    assert_eq!(
        stub.series_points_written(),
        kept.len(),
        "two points for one series and second"
    );
    let t = summary.total();
    let sum = |m: &str| stored(&stub, m).values().sum::<f64>() as u64;
    assert_eq!(sum("loadlens.requests"), t.request_count);
    assert_eq!(sum("loadlens.failures"), t.failure_count);
    assert_eq!(sum("loadlens.bytes.sent"), t.bytes_sent);
    assert_eq!(sum("loadlens.bytes.received"), t.bytes_received);
    // The users gauge: 2 users ran to the end; its last point is not 0.
    let users = stored(&stub, "loadlens.users");
    assert!(!users.is_empty());
    assert_eq!(users.values().last(), Some(&2.0), "{users:?}");
    assert!(users.values().all(|&u| u > 0.0), "{users:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2s_metric_interval_posts_every_2s_of_the_run_whatever_the_tick_jitter() {
    let stub = DatadogStub::start();
    let mut cfg = config(stub.url());
    cfg.metric_interval = Duration::from_secs(2);
    let mut sink = DatadogSink::unchecked(cfg);
    sink.on_start(&contract::context());
    let base = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for k in 1..=10u64 {
        // Ticks a little late, by varying amounts, as on a busy machine.
        let late = Duration::from_micros([900, 300, 1200, 50][k as usize % 4]);
        let elapsed = Duration::from_secs(k) + late;
        let mut interval = StatsSet::new(1);
        interval.requests[0].count = 10;
        interval.requests[0]
            .latency
            .record(Duration::from_millis(5));
        sink.on_snapshot(&Arc::new(Snapshot {
            at: base + elapsed,
            elapsed,
            users: 3,
            point: Default::default(),
            interval: Arc::new(interval),
            requests: Vec::new(),
            total: Default::default(),
            dropped_iterations: None,
            arrival_rate: None,
            health: Default::default(),
            breakdown: None,
            scenarios: Vec::new(),
        }));
    }
    assert!(stub.wait_for(Duration::from_secs(20), |r| {
        r.iter().filter(|r| r.path == "/api/v2/series").count() >= 5
    }));
    let requests = stored(&stub, "loadlens.requests");
    let s0 = 1_700_000_000;
    assert_eq!(
        requests.into_iter().collect::<Vec<_>>(),
        [2, 4, 6, 8, 10].map(|s| (s0 + s, 20.0)),
        "one point every 2 s of the run, 20 requests each"
    );
    for r in stub.accepted("POST", "/api/v2/series") {
        for s in r.json()["series"].as_array().unwrap() {
            if s["metric"] == "loadlens.requests" {
                assert_eq!(s["interval"], 2, "{s}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arrive_while_the_metrics_endpoint_is_rate_limited_or_failing() {
    for (status, reset_s) in [(429u16, 20u64), (500, 0)] {
        let stub = DatadogStub::start();
        stub.fail_next("/api/v2/series", status, 10_000, reset_s);
        let mut cfg = Config::new(stub.url(), Some(API_KEY), Some(APP_KEY));
        cfg.metric_interval = Duration::from_millis(200);
        cfg.timeout = Duration::from_secs(2);
        let sink = DatadogSink::connect(cfg).await.unwrap();
        let load = LoadSettings {
            users: 1,
            run_time: Some(Duration::from_millis(1500)),
            ..LoadSettings::default()
        };
        let (summary, mut sink) = contract::run_with(Box::new(sink), load, Controls::new()).await;
        // Late in the run: a breach, and the run aborted by it.
        for (kind, message) in [
            (EventKind::ThresholdBreached, "p95 < 1ms: 3.2 ms"),
            (EventKind::StopRequested, "aborted: p95 < 1ms"),
        ] {
            let e =
                loadlens_core::run::TimelineEvent::now(Duration::from_millis(1400), kind, message);
            sink.on_event(&e);
        }
        let t = std::time::Instant::now();
        let report = finish(sink, &summary).await;
        assert!(
            t.elapsed() < Duration::from_millis(3500),
            "{status}: finish took {:?}",
            t.elapsed()
        );
        let titles: Vec<String> = events(&stub)
            .iter()
            .map(|e| e["title"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(titles.len(), 4, "{status}: {titles:?}");
        assert!(titles[0].ends_with("started: contract"), "{titles:?}");
        assert!(titles[1].contains("threshold breached"), "{titles:?}");
        assert!(titles[2].contains("aborted: p95"), "{titles:?}");
        assert!(titles[3].contains("passed: contract"), "{titles:?}");
        // The metrics were not delivered, and the report says so.
        assert!(report.failed > 0, "{status}: {report:?}");
        assert!(
            report
                .errors
                .iter()
                .any(|e| e.contains(&format!("answered {status}"))
                    || e.contains("within the end-of-run timeout")),
            "{status}: {report:?}"
        );
    }
}

fn health() -> loadlens_core::stats::HealthSample {
    loadlens_core::stats::HealthSample {
        process_cpu_pct: Some(42.5),
        machine_cpu_pct: Some(61.0),
        rss_bytes: Some(98_765_432),
        open_connections: Some(17),
        net_sent_bytes_per_s: Some(1500.5),
        net_received_bytes_per_s: Some(250_000.0),
        sched_delay_ms: Some(3.25),
    }
}

/// The health gauges: (metric, unit, value) of the snapshot's figures.
const HEALTH: [(&str, &str, f64); 7] = [
    ("loadlens.generator.cpu_pct", "percent", 42.5),
    ("loadlens.generator.machine_cpu_pct", "percent", 61.0),
    ("loadlens.generator.rss_bytes", "byte", 98_765_432.0),
    ("loadlens.generator.open_connections", "connection", 17.0),
    ("loadlens.generator.net.sent_bytes_per_s", "byte", 1500.5),
    (
        "loadlens.generator.net.received_bytes_per_s",
        "byte",
        250_000.0,
    ),
    ("loadlens.generator.sched_delay_ms", "millisecond", 3.25),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_health_goes_as_gauges_with_units_and_the_snapshot_values() {
    let stub = DatadogStub::start();
    let sink = DatadogSink::connect(config(stub.url())).await.unwrap();
    let mut sink: Box<dyn loadlens_core::sink::Sink> = Box::new(sink);
    sink.on_start(&contract::context());
    let mut agg = loadlens_core::stats::Aggregator::new(
        loadlens_core::stats::Recorder::new(1),
        vec![("GET".into(), "/contract".into())],
    );
    let mut snap = agg.tick(Duration::from_secs(1), 3);
    snap.health = health();
    sink.on_snapshot(&std::sync::Arc::new(snap));
    let (summary, _) = contract::short_run(
        Box::new(DatadogSink::unchecked(config(&contract::refused_url()))),
        4,
        Controls::new(),
    )
    .await;
    let report = finish(sink, &summary).await;
    assert_eq!((report.failed, report.dropped), (0, 0), "{report:?}");

    let series: Vec<Value> = stub
        .accepted("POST", "/api/v2/series")
        .iter()
        .flat_map(|r| r.json()["series"].as_array().unwrap().clone())
        .collect();
    for (metric, unit, value) in HEALTH {
        let s = series
            .iter()
            .find(|s| s["metric"] == metric)
            .unwrap_or_else(|| panic!("{metric} in {series:#?}"));
        assert_eq!(s["type"], 3, "{metric} is a gauge");
        assert_eq!(s["unit"], unit, "{metric}");
        assert_eq!(s["points"][0]["value"].as_f64(), Some(value), "{metric}");
        let tags = s["tags"].as_array().unwrap();
        assert!(
            tags.iter().any(|t| t == "test_run:contract-run"),
            "{tags:?}"
        );
        assert!(!tags
            .iter()
            .any(|t| t.as_str().unwrap().starts_with("request:")));
    }
    check_models(&stub.requests());

    // Over DogStatsD: the same gauges.
    let batch = encode::MetricsBatch {
        timestamp: 1,
        interval_s: 1,
        health: health(),
        ..Default::default()
    };
    let (packets, points) = encode::statsd(&batch, &["test_run:x".into()], "loadlens.", 10, 1432);
    assert_eq!(points, 7);
    let text = String::from_utf8(packets.concat()).unwrap();
    for (metric, _, value) in HEALTH {
        let line = format!("{metric}:{value}|g|#test_run:x");
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    // A figure the platform does not give has no point.
    let none = encode::MetricsBatch::default();
    assert_eq!(none.points(), 0);
}
