//! Datadog end to end: `loadlens run` against the demo target, with the local Datadog API stub
//! standing in for the site (`--datadog-url`), every captured payload checked against
//! Datadog's official models.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use loadlens_sinks::datadog::stub::{
    check_official_models, Captured, DatadogStub, ModelCheck, API_KEY, APP_KEY,
};
use serde_json::Value;

use crate::support::{bin, stderr, stdout, DemoTarget, TempDir};

fn storefront() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/storefront.yaml")
        .display()
        .to_string()
}

/// `loadlens` with only the Datadog variables given here (none inherited from the machine).
fn loadlens(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin());
    c.args(args).env_remove("TEST_RUN_ID");
    for k in [
        "DD_API_KEY",
        "DATADOG_API_KEY",
        "DD_APP_KEY",
        "DATADOG_APP_KEY",
        "DD_SITE",
        "DD_AGENT_HOST",
        "DD_DOGSTATSD_PORT",
        "LOADLENS_DATADOG",
        "LOADLENS_DATADOG_URL",
    ] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run loadlens")
}

fn check_models(captured: &[Captured]) {
    match check_official_models(captured) {
        Ok(ModelCheck::Valid(line)) => eprintln!("official models: {line}"),
        Err(e) => panic!("payloads do not match Datadog's official models:\n{e}"),
    }
}

fn events(stub: &DatadogStub) -> Vec<Value> {
    stub.accepted("POST", "/api/v1/events")
        .iter()
        .map(Captured::json)
        .collect()
}

/// Sum of `loadlens.requests` per request tag over every accepted series payload.
fn requests_sent(stub: &DatadogStub) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for r in stub.accepted("POST", "/api/v2/series") {
        for s in r.json()["series"].as_array().unwrap() {
            if s["metric"] != "loadlens.requests" {
                continue;
            }
            let tag = s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|t| t.as_str())
                .find(|t| t.starts_with("request:"))
                .unwrap()
                .to_owned();
            for p in s["points"].as_array().unwrap() {
                *out.entry(tag.clone()).or_insert(0) += p["value"].as_f64().unwrap() as u64;
            }
        }
    }
    out
}

#[test]
fn a_monitor_going_to_alert_aborts_the_run_with_exit_3_and_datadog_gets_the_runs_own_counts() {
    let target = DemoTarget::start(&[]);
    let stub = DatadogStub::start();
    // The start-time check reads it once, then the poller: OK, OK, Alert (about 1 s in).
    stub.monitor(4242, "checkout p95", &["OK", "OK", "OK", "Alert"]);
    let dir = TempDir::new("datadog");
    let json = dir.join("result.json");
    let t = Instant::now();
    let out = loadlens(
        &[
            "run",
            &storefront(),
            "-H",
            &target.url,
            "-u",
            "5",
            "-t",
            "60s",
            "--json",
            &json,
            "--run-id",
            "dd-e2e-1",
            "--tag",
            "team=perf",
            "--datadog-url",
            stub.url(),
            "--datadog-monitor",
            "4242:abort",
            "--datadog-monitor-interval",
            "500ms",
            "--datadog-metric-interval",
            "1s",
        ],
        &[
            ("DD_API_KEY", API_KEY),
            ("DD_APP_KEY", APP_KEY),
            ("DD_ENV", "staging"),
            ("DD_SERVICE", "storefront"),
        ],
    );
    let (so, se) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(3), "{so}\n{se}");
    assert!(t.elapsed() < Duration::from_secs(30), "stopped early");
    assert!(
        so.contains("Datadog: events, metrics every 1s (API), monitors 4242:abort"),
        "{so}"
    );
    assert!(
        so.contains("datadog: ") && so.contains(" delivered, 0 failed, 0 dropped"),
        "{so}"
    );
    for text in [&so, &se, &std::fs::read_to_string(&json).unwrap()] {
        assert!(
            !text.contains(API_KEY) && !text.contains(APP_KEY),
            "a key leaked"
        );
    }

    // The run's own figures: aborted by the monitor, transitions on the timeline.
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["run"]["verdict"], "aborted");
    let reason = doc["run"]["stop_reason"].as_str().unwrap();
    assert!(
        reason.contains("monitor 4242") && reason.contains("Alert"),
        "{reason}"
    );
    let states: Vec<&str> = doc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "monitor_state")
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(states.len(), 2, "{states:?}");
    assert!(states[1].contains("OK → Alert"), "{states:?}");
    let sink = &doc["sinks"][0];
    assert_eq!(sink["name"], "datadog");
    assert_eq!(
        (sink["failed"].as_u64(), sink["dropped"].as_u64()),
        (Some(0), Some(0))
    );

    // Datadog got the same counts, per request name.
    let sent = requests_sent(&stub);
    let total: u64 = sent.values().sum();
    assert_eq!(
        total,
        doc["aggregate"]["request_count"].as_u64().unwrap(),
        "{sent:?}"
    );
    for r in doc["requests"].as_array().unwrap() {
        let name = r["name"].as_str().unwrap().to_lowercase().replace(' ', "_");
        assert_eq!(
            sent.get(&format!("request:{name}")).copied(),
            r["request_count"].as_u64(),
            "{name}: {sent:?}"
        );
    }

    // Events: start, the monitor's transitions, the abort, the stop saying why.
    let ev = events(&stub);
    let titles: Vec<&str> = ev.iter().map(|e| e["title"].as_str().unwrap()).collect();
    // The monitor poller and the event queue deliver independently: the first poll's event may
    // reach the API before the start event, so only presence is asserted here.
    assert!(
        titles
            .iter()
            .any(|t| t.starts_with("loadlens run dd-e2e-1 started")),
        "{titles:?}"
    );
    assert!(
        titles.iter().any(|t| t.contains("OK → Alert")),
        "{titles:?}"
    );
    let stop = ev.last().unwrap();
    assert!(
        stop["title"].as_str().unwrap().contains("aborted"),
        "{stop}"
    );
    assert_eq!(stop["alert_type"], "error");
    assert!(
        stop["text"].as_str().unwrap().contains("checkout p95"),
        "{stop}"
    );
    for e in &ev {
        let tags: Vec<&str> = e["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        for t in [
            "test_run:dd-e2e-1",
            "env:staging",
            "service:storefront",
            "team:perf",
        ] {
            assert!(tags.contains(&t), "{t} missing in {tags:?}");
        }
        assert_eq!(e["aggregation_key"], "dd-e2e-1");
    }
    check_models(&stub.requests());
}

#[test]
fn a_rejected_key_says_so_once_and_the_run_goes_on_unless_datadog_is_required() {
    let target = DemoTarget::start(&[]);
    let stub = DatadogStub::start();
    let url = format!("{}/api/products", target.url);
    let args = [
        "run",
        "--url",
        &url,
        "-n",
        "20",
        "-c",
        "2",
        "--datadog-url",
        stub.url(),
    ];
    let out = loadlens(&args, &[("DD_API_KEY", "wrong-key-123")]);
    let se = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{se}");
    assert_eq!(se.matches("rejected the API key").count(), 1, "{se}");
    assert!(
        se.contains("goes on without Datadog") && !se.contains("wrong-key-123"),
        "{se}"
    );
    assert_eq!(stub.requests().len(), 1, "only the key check");

    let mut required = args.to_vec();
    required.push("--datadog-required");
    let before = target.stats();
    let out = loadlens(&required, &[("DD_API_KEY", "wrong-key-123")]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("rejected the API key"));
    assert_eq!(target.stats(), before, "no request was sent to the target");
}

#[test]
fn a_scenario_datadog_section_with_the_fail_action_fails_the_run_with_exit_1() {
    let target = DemoTarget::start(&[]);
    let stub = DatadogStub::start();
    stub.monitor(7, "error rate", &["OK", "Alert"]);
    let dir = TempDir::new("datadog-fail");
    let scenario = dir.join("s.yaml");
    std::fs::write(
        &scenario,
        "user_types:\n  - name: u\n    wait: constant(0.05)\n    tasks: [{ request: { path: /api/products } }]\n\
         load: { users: 2, run_time: 2s }\n\
         datadog:\n  url: ${DD_STUB}\n  metric_interval: 1s\n  monitor_interval: 300ms\n  monitors: [{ id: 7, action: fail }]\n",
    )
    .unwrap();
    let json = dir.join("r.json");
    let out = loadlens(
        &["run", &scenario, "-H", &target.url, "--json", &json],
        &[
            ("DD_API_KEY", API_KEY),
            ("DD_APP_KEY", APP_KEY),
            ("DD_STUB", stub.url()),
        ],
    );
    let so = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{so}\n{}", stderr(&out));
    assert!(so.contains("FAILED by a guard: Datadog monitor 7"), "{so}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(doc["run"]["verdict"], "failed");
    assert_eq!(doc["run"]["stop_reason"], "run time elapsed");
    assert!(doc["failures"][0].as_str().unwrap().contains("monitor 7"));
    let sent: u64 = requests_sent(&stub).values().sum();
    assert_eq!(sent, doc["aggregate"]["request_count"].as_u64().unwrap());
    check_models(&stub.requests());
}
