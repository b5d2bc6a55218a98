//! Statsig end to end: `loadlens run` against the demo target, with the local Console API stub
//! standing in for `statsigapi.net` (`--statsig-url`); the stub checks every request against
//! the specification's shapes.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use loadlens_sinks::datadog::stub::{DatadogStub, API_KEY as DD_KEY};
use loadlens_sinks::statsig::stub::{ConsoleStub, KEY};
use serde_json::Value;

use crate::support::{bin, stderr, stdout, DemoTarget, TempDir};

/// `loadlens` with only the Statsig and Datadog variables given here.
fn loadlens(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin());
    c.args(args).env_remove("TEST_RUN_ID");
    for k in [
        "STATSIG_CONSOLE_API_KEY",
        "LOADLENS_STATSIG",
        "LOADLENS_STATSIG_URL",
        "LOADLENS_STATSIG_GATES",
        "DD_API_KEY",
        "DATADOG_API_KEY",
        "DD_APP_KEY",
        "DD_SITE",
        "DD_AGENT_HOST",
    ] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run loadlens")
}

fn audit_polls(stub: &ConsoleStub) -> usize {
    stub.requests()
        .iter()
        .filter(|r| r.route() == "/console/v1/audit_logs")
        .count()
}

#[test]
fn a_gate_flipped_mid_run_appears_once_on_the_timeline_in_the_reports_and_in_datadog() {
    let target = DemoTarget::start(&[]);
    let stub = ConsoleStub::start();
    stub.gate("new_checkout", true);
    let dd = DatadogStub::start();
    let dir = TempDir::new("statsig");
    let (json, html, md) = (dir.join("r.json"), dir.join("r.html"), dir.join("r.md"));
    let url = format!("{}/api/products", target.url);
    let args = [
        "run",
        "--url",
        &url,
        "-c",
        "2",
        "-t",
        "5s",
        "--json",
        &json,
        "--html",
        &html,
        "--summary-md",
        &md,
        "--run-id",
        "statsig-e2e-1",
        "--statsig-url",
        stub.url(),
        "--statsig-gate",
        "new_checkout",
        "--statsig-interval",
        "300ms",
        "--datadog-url",
        dd.url(),
        "--datadog-metrics",
        "off",
    ];
    let out = std::thread::scope(|s| {
        let run = s.spawn(|| {
            loadlens(
                &args,
                &[("STATSIG_CONSOLE_API_KEY", KEY), ("DD_API_KEY", DD_KEY)],
            )
        });
        // Someone flips the gate in the console once the poller runs (the first read of the
        // audit log is the start-up baseline).
        assert!(
            stub.wait_for(Duration::from_secs(30), |r| r
                .iter()
                .filter(|r| r.route() == "/console/v1/audit_logs")
                .count()
                >= 2),
            "the poller never ran"
        );
        stub.flip_by("new_checkout", false, "Alice");
        run.join().unwrap()
    });
    let (so, se) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{so}\n{se}");
    assert!(audit_polls(&stub) >= 3, "polled after the flip");
    assert!(
        so.contains("Statsig: gate new_checkout, audit log every 300ms"),
        "{so}"
    );
    let change = "statsig: gate new_checkout changed by Alice <alice@example.com> (gate_update): Disabled gate [true → false]";

    // The JSON result: the state at the start, then the change, once, with its flag.
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let timeline = doc["timeline"].as_array().unwrap();
    let flagged: Vec<&Value> = timeline
        .iter()
        .filter(|e| e.get("flag").is_some())
        .collect();
    assert_eq!(flagged.len(), 2, "{timeline:?}");
    assert_eq!(flagged[0]["kind"], "note");
    assert_eq!(
        flagged[0]["message"],
        "statsig: gate new_checkout is enabled at the start"
    );
    assert_eq!(flagged[1]["kind"], "config_changed");
    assert_eq!(flagged[1]["message"], change);
    assert_eq!(flagged[1]["flag"]["key"], "new_checkout");
    assert_eq!(flagged[1]["flag"]["provider"], "statsig");
    assert_eq!(flagged[1]["flag"]["old_value"], "true");
    assert_eq!(flagged[1]["flag"]["new_value"], "false");
    let statsig = doc["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "statsig")
        .unwrap();
    assert_eq!(
        (statsig["delivered"].as_u64(), statsig["failed"].as_u64()),
        (Some(1), Some(0))
    );

    // The terminal: a log line as the change lands (the live view shows it in its log rows).
    assert_eq!(
        se.matches("Config changed during the run.").count(),
        1,
        "{se}"
    );

    // The summary, the Markdown and the HTML report (a marker and a timeline row).
    assert_eq!(
        so.matches("gate new_checkout changed by Alice").count(),
        1,
        "{so}"
    );
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(
        md.contains("### Feature flags and configs")
            && md.matches("gate new_checkout changed by Alice").count() == 1,
        "{md}"
    );
    let html = std::fs::read_to_string(&html).unwrap();
    assert!(
        html.matches("gate new_checkout changed by Alice").count() >= 1,
        "not in the HTML report"
    );
    assert!(
        html.contains("config_changed"),
        "no config_changed marker in the HTML report"
    );

    // Datadog: one event for the change, tagged with the run and the gate.
    let events: Vec<Value> = dd
        .accepted("POST", "/api/v1/events")
        .iter()
        .map(|c| c.json())
        .filter(|e| {
            e["title"]
                .as_str()
                .unwrap_or_default()
                .contains("new_checkout changed")
        })
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    let tags: Vec<&str> = events[0]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for t in [
        "test_run:statsig-e2e-1",
        "feature_flag:new_checkout",
        "statsig_gate:new_checkout",
    ] {
        assert!(tags.contains(&t), "{t} missing from {tags:?}");
    }

    // The key never appears.
    for text in [
        &so,
        &se,
        &std::fs::read_to_string(&json).unwrap(),
        &md,
        &html,
    ] {
        assert!(!text.contains(KEY), "the Console API key leaked");
    }
    assert_eq!(stub.violations(), Vec::<String>::new());
}

#[test]
fn a_change_made_after_the_last_poll_is_read_once_more_when_the_load_stops() {
    // The audit log is read every minute, the run lasts 3 s: only the read made when the load
    // stops can see a change made during the run, and it must reach every output.
    let target = DemoTarget::start(&[]);
    let stub = ConsoleStub::start();
    stub.gate("new_checkout", true);
    let dd = DatadogStub::start();
    let dir = TempDir::new("statsig-last");
    let (json, jsonl) = (dir.join("r.json"), dir.join("r.jsonl"));
    let url = format!("{}/api/products", target.url);
    let args = [
        "run",
        "--url",
        &url,
        "-c",
        "1",
        "-t",
        "3s",
        "--json",
        &json,
        "--jsonl",
        &jsonl,
        "--run-id",
        "statsig-last-1",
        "--statsig-url",
        stub.url(),
        "--statsig-gate",
        "new_checkout",
        "--statsig-interval",
        "60s",
        "--datadog-url",
        dd.url(),
        "--datadog-metrics",
        "off",
    ];
    let started = Instant::now();
    let out = std::thread::scope(|s| {
        let run = s.spawn(|| {
            loadlens(
                &args,
                &[("STATSIG_CONSOLE_API_KEY", KEY), ("DD_API_KEY", DD_KEY)],
            )
        });
        // A second into the run (the start-up check has read the audit log's baseline),
        // someone turns the gate off.
        assert!(
            stub.wait_for(Duration::from_secs(30), |r| r
                .iter()
                .any(|r| r.route() == "/console/v1/audit_logs")),
            "no start-up check"
        );
        std::thread::sleep(Duration::from_secs(1));
        stub.flip_by("new_checkout", false, "Alice");
        run.join().unwrap()
    });
    let (so, se) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{so}\n{se}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the last read held the run up: {:?}",
        started.elapsed()
    );
    // The start-up baseline, then the last read: no regular poll in between.
    assert_eq!(audit_polls(&stub), 2, "{:?}", stub.requests());

    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let changes: Vec<&Value> = doc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "config_changed")
        .collect();
    assert_eq!(changes.len(), 1, "{:?}", doc["timeline"]);
    assert_eq!(changes[0]["flag"]["key"], "new_checkout");
    assert_eq!(changes[0]["flag"]["new_value"], "false");
    assert_eq!(
        so.matches("gate new_checkout changed by Alice").count(),
        1,
        "{so}"
    );
    let lines = std::fs::read_to_string(&jsonl).unwrap();
    assert_eq!(
        lines
            .lines()
            .filter(|l| l.contains("\"event\":\"config_change\""))
            .count(),
        1,
        "{lines}"
    );
    let events = dd
        .accepted("POST", "/api/v1/events")
        .iter()
        .filter(|c| {
            c.json()["title"]
                .as_str()
                .unwrap_or_default()
                .contains("new_checkout changed")
        })
        .count();
    assert_eq!(events, 1);
    assert_eq!(stub.violations(), Vec::<String>::new());
}

#[test]
fn a_refused_key_says_so_once_and_the_run_goes_on_unless_statsig_is_required() {
    let target = DemoTarget::start(&[]);
    let stub = ConsoleStub::start();
    stub.gate("g", true);
    let url = format!("{}/api/products", target.url);
    let args = [
        "run",
        "--url",
        &url,
        "-n",
        "20",
        "-c",
        "2",
        "--statsig-url",
        stub.url(),
        "--statsig-gate",
        "g",
    ];
    let out = loadlens(
        &args,
        &[("STATSIG_CONSOLE_API_KEY", "wrong-console-key-123")],
    );
    let (so, se) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{se}");
    assert_eq!(
        se.matches("refused the Console API key (401)").count(),
        1,
        "{se}"
    );
    assert!(se.contains("goes on without Statsig"), "{se}");
    assert!(!so.contains("wrong-console-key") && !se.contains("wrong-console-key"));
    assert_eq!(stub.requests().len(), 1, "only the check, not retried");

    let mut required = args.to_vec();
    required.push("--statsig-required");
    let before = target.stats();
    let out = loadlens(
        &required,
        &[("STATSIG_CONSOLE_API_KEY", "wrong-console-key-123")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("refused the Console API key"));
    assert_eq!(target.stats(), before, "no request was sent to the target");

    // No key at all: the same, said as such.
    let out = loadlens(&args, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("STATSIG_CONSOLE_API_KEY is not set"),
        "{}",
        stderr(&out)
    );
    assert_eq!(stub.violations(), Vec::<String>::new());
}

#[test]
fn a_429_at_the_start_is_waited_out_as_retry_after_says() {
    let target = DemoTarget::start(&[]);
    let stub = ConsoleStub::start();
    stub.gate("g", false);
    stub.fail_next("/console/v1/gates/g", 429, 1, Some(1));
    let dir = TempDir::new("statsig429");
    let json = dir.join("r.json");
    let url = format!("{}/api/products", target.url);
    let t = Instant::now();
    let out = loadlens(
        &[
            "run",
            "--url",
            &url,
            "-n",
            "10",
            "-c",
            "1",
            "--json",
            &json,
            "--statsig-url",
            stub.url(),
            "--statsig-gate",
            "g",
        ],
        &[("STATSIG_CONSOLE_API_KEY", KEY)],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(t.elapsed() >= Duration::from_millis(950));
    let r = stub.requests();
    let gate: Vec<u16> = r
        .iter()
        .filter(|r| r.route() == "/console/v1/gates/g")
        .map(|r| r.status)
        .collect();
    assert_eq!(gate, vec![429, 200]);
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(doc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["message"] == "statsig: gate g is disabled at the start"));
    assert_eq!(stub.violations(), Vec::<String>::new());
}

#[test]
fn a_config_change_is_a_feature_flag_event_on_the_opentelemetry_run_span() {
    let agent = crate::otel::agent();
    let target = DemoTarget::start(&["--latency", "0"]);
    let stub = ConsoleStub::start();
    stub.gate("new_checkout", false);
    let url = format!("{}/api/products", target.url);
    let args = [
        "run",
        "--url",
        &url,
        "-c",
        "1",
        "-t",
        "4s",
        "--otel",
        "--statsig-url",
        stub.url(),
        "--statsig-gate",
        "new_checkout",
        "--statsig-interval",
        "300ms",
    ];
    let out = std::thread::scope(|s| {
        let run = s.spawn(|| {
            let mut c = Command::new(bin());
            c.args(args)
                .env_remove("TEST_RUN_ID")
                .env("OTEL_EXPORTER_OTLP_ENDPOINT", &agent.http)
                .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
                .env("STATSIG_CONSOLE_API_KEY", KEY);
            c.output().expect("run loadlens")
        });
        assert!(stub.wait_for(Duration::from_secs(30), |r| r
            .iter()
            .filter(|r| r.route() == "/console/v1/audit_logs")
            .count()
            >= 2));
        stub.flip_by("new_checkout", true, "Alice");
        run.join().unwrap()
    });
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let run_span = agent
        .spans()
        .into_iter()
        .map(|(_, s)| s)
        .find(|s| {
            s["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("loadtest"))
        })
        .expect("the run span");
    let events = run_span["events"].as_array().expect("run span events");
    let flagged: Vec<&Value> = events
        .iter()
        .filter(|e| crate::otel::attr(e, "feature_flag.key").is_some())
        .collect();
    let s = |e: &Value, k: &str| {
        crate::otel::attr(e, k).map(|v| v["string_value"].as_str().unwrap_or_default().to_owned())
    };
    // The state at the start, then the change.
    assert_eq!(flagged.len(), 2, "{events:?}");
    let change = flagged[1];
    assert_eq!(change["name"], "ConfigChanged");
    assert_eq!(
        s(change, "feature_flag.key").as_deref(),
        Some("new_checkout")
    );
    assert_eq!(
        s(change, "feature_flag.provider.name").as_deref(),
        Some("statsig")
    );
    assert_eq!(
        s(change, "feature_flag.result.value").as_deref(),
        Some("true")
    );
    assert_eq!(
        s(change, "loadlens.feature_flag.previous_value").as_deref(),
        Some("false")
    );
    assert!(s(change, "loadlens.feature_flag.changed_by")
        .unwrap()
        .starts_with("Alice"));
}

#[test]
fn a_config_change_reaches_the_web_dashboards_events_during_the_run() {
    use std::io::{BufRead, BufReader, Read};
    let target = DemoTarget::start(&[]);
    let stub = ConsoleStub::start();
    stub.gate("new_checkout", true);
    let url = format!("{}/api/products", target.url);
    let mut child = Command::new(bin())
        .args([
            "run",
            "--url",
            &url,
            "-c",
            "1",
            "-t",
            "6s",
            "--headless",
            "--web",
            "--web-port",
            "0",
        ])
        .args([
            "--statsig-url",
            stub.url(),
            "--statsig-gate",
            "new_checkout",
        ])
        .args(["--statsig-interval", "300ms"])
        .env_remove("TEST_RUN_ID")
        .env("STATSIG_CONSOLE_API_KEY", KEY)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start loadlens");
    let stdout = child.stdout.take().unwrap();
    // Killed however the test ends, so that a failure leaves no run behind.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Kill(child);
    let mut reader = BufReader::new(stdout);
    let mut addr = None;
    for _ in 0..20 {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if let Some(a) = line.trim().strip_prefix("dashboard: http://") {
            addr = Some(a.trim_end_matches('/').to_owned());
            break;
        }
    }
    let addr = addr.expect("the dashboard's address");
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
    });
    let polled = stub.wait_for(Duration::from_secs(30), |r| {
        r.iter()
            .filter(|r| r.route() == "/console/v1/audit_logs")
            .count()
            >= 2
    });
    assert!(polled, "{:?} {:?}", stub.requests(), child.0.try_wait());
    stub.flip_by("new_checkout", false, "Alice");
    let t = Instant::now();
    let changes = loop {
        let (status, _, body) = crate::web::http(&addr, "GET", "/api/state", None, None);
        assert_eq!(status, 200, "{body}");
        let state: Value = serde_json::from_str(&body).unwrap();
        let changes: Vec<String> = state["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "config_changed")
            .map(|e| e["message"].as_str().unwrap().to_owned())
            .collect();
        if !changes.is_empty() || t.elapsed() > Duration::from_secs(20) {
            break changes;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert!(
        changes[0].starts_with("statsig: gate new_checkout changed by Alice"),
        "{changes:?}"
    );
}
