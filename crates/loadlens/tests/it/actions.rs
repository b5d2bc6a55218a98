//! Guard actions and planned flips end to end: `loadlens run` against the demo target, with the
//! local Statsig Console API stub (`--statsig-url`) switching gates, the Datadog stub for a
//! monitor in Alert, and a local server receiving webhooks.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use loadlens_sinks::statsig::stub::{ConsoleStub, KEY};
use serde_json::Value;

use crate::support::{bin, stderr, stdout, DemoTarget, TempDir};

const GATE: &str = "new_checkout";

/// `loadlens` with the Statsig key of the stub and only the variables given here.
fn loadlens(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin());
    c.args(args)
        .env_remove("TEST_RUN_ID")
        .env_remove("DD_API_KEY")
        .env_remove("DD_APP_KEY")
        .env("STATSIG_CONSOLE_API_KEY", KEY);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run loadlens")
}

fn result(dir: &TempDir) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.path("result.json")).unwrap()).unwrap()
}

/// Requests the stub received on `PUT /console/v1/gates/GATE/VERB`.
fn puts(stub: &ConsoleStub, verb: &str) -> usize {
    let path = format!("/console/v1/gates/{GATE}/{verb}");
    stub.requests()
        .iter()
        .filter(|r| r.route() == path || r.route().ends_with(&format!("PUT {path}")))
        .count()
}

/// A quick-mode run against the demo target whose threshold fails at once (nothing is faster
/// than 0 ms) and disables the gate.
fn breaching_run(stub: &ConsoleStub, target: &DemoTarget, dir: &TempDir, extra: &[&str]) -> Output {
    let json = dir.join("result.json");
    let url = format!("{}/", target.url);
    let mut args = vec![
        "run",
        "--url",
        &url,
        "-c",
        "2",
        "-t",
        "3s",
        "--headless",
        "--no-tui",
        "--run-id",
        "act-run-1",
        "--threshold",
        "p95 < 0ms, disable_gate new_checkout",
        "--statsig-gate",
        GATE,
        "--statsig-url",
        stub.url(),
        "--json",
        &json,
    ];
    args.extend_from_slice(extra);
    loadlens(&args, &[])
}

#[test]
fn a_threshold_breach_disables_the_gate_exactly_once_with_the_reason_naming_the_run() {
    let stub = ConsoleStub::start();
    stub.gate(GATE, true);
    let target = DemoTarget::start(&["--latency", "0"]);
    let dir = TempDir::new("act-breach");
    let out = breaching_run(&stub, &target, &dir, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stub.gate_enabled(GATE), Some(false));
    // Breached on every tick of a 3 s run, acted on once.
    assert_eq!(puts(&stub, "disable"), 1, "{:#?}", stub.requests());
    assert_eq!(stub.violations(), Vec::<String>::new());
    let doc = result(&dir);
    crate::schema::assert_valid(&doc);
    let actions = doc["actions"].as_array().expect("actions in the result");
    assert_eq!(actions.len(), 1, "{actions:#?}");
    let a = &actions[0];
    assert_eq!(a["status"], "done");
    assert_eq!(a["action"], "disable gate new_checkout (statsig)");
    let reason = a["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("loadlens run act-run-1: threshold `p95 < 0ms, disable_gate new_checkout` failed: observed"),
        "{reason}"
    );
    // On the timeline, and in the summary with its outcome.
    let timeline = doc["timeline"].as_array().unwrap();
    assert_eq!(
        timeline.iter().filter(|e| e["kind"] == "action").count(),
        1,
        "{timeline:#?}"
    );
    let text = stdout(&out);
    assert!(
        text.contains("disable gate new_checkout (statsig): done"),
        "{text}"
    );
    assert!(!text.contains(KEY) && !stderr(&out).contains(KEY));
}

#[test]
fn dry_run_actions_prints_what_it_would_do_and_changes_nothing_in_the_stub() {
    let stub = ConsoleStub::start();
    stub.gate(GATE, true);
    let target = DemoTarget::start(&["--latency", "0"]);
    let dir = TempDir::new("act-dry");
    let out = breaching_run(&stub, &target, &dir, &["--dry-run-actions"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out) + &stderr(&out);
    assert!(
        text.contains("dry run: when threshold `p95 < 0ms, disable_gate new_checkout` first fails: disable gate new_checkout"),
        "{text}"
    );
    assert_eq!(stub.gate_enabled(GATE), Some(true));
    let writes: Vec<_> = stub
        .requests()
        .into_iter()
        .filter(|r| {
            r.route().contains("PUT")
                || r.route().ends_with("/disable")
                || r.route().ends_with("/enable")
        })
        .collect();
    assert!(writes.is_empty(), "{writes:#?}");
    let doc = result(&dir);
    assert_eq!(
        doc["actions"][0]["status"], "dry_run",
        "{:#}",
        doc["actions"]
    );
}

#[test]
fn a_monitor_in_alert_with_disable_gate_disables_the_gate_once_beside_a_threshold() {
    use loadlens_sinks::datadog::stub::{DatadogStub, API_KEY, APP_KEY};
    let stub = ConsoleStub::start();
    stub.gate(GATE, true);
    let dd = DatadogStub::start();
    dd.monitor(1234, "checkout latency", &["Alert"]);
    let target = DemoTarget::start(&["--latency", "0"]);
    let dir = TempDir::new("act-monitor");
    let json = dir.join("result.json");
    let url = format!("{}/", target.url);
    let out = loadlens(
        &[
            "run",
            "--url",
            &url,
            "-c",
            "2",
            "-t",
            "3s",
            "--headless",
            "--no-tui",
            "--run-id",
            "act-run-2",
            "--statsig-gate",
            GATE,
            "--statsig-url",
            stub.url(),
            "--datadog-url",
            dd.url(),
            "--datadog-monitor",
            "1234:disable_gate=new_checkout",
            "--datadog-monitor-interval",
            "200ms",
            "--json",
            &json,
        ],
        &[("DD_API_KEY", API_KEY), ("DD_APP_KEY", APP_KEY)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stub.gate_enabled(GATE), Some(false));
    assert_eq!(puts(&stub, "disable"), 1, "{:#?}", stub.requests());
    let doc = result(&dir);
    let a = &doc["actions"][0];
    assert_eq!(a["status"], "done", "{:#}", doc["actions"]);
    let reason = a["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("loadlens run act-run-2: Datadog monitor 1234"),
        "{reason}"
    );
    assert!(reason.contains("went to Alert"), "{reason}");
    // The action reached Datadog as an event of the run.
    let events: Vec<Value> = dd
        .accepted("POST", "/api/v1/events")
        .iter()
        .map(|c| c.json())
        .collect();
    assert!(
        events.iter().any(|e| e["title"]
            .as_str()
            .is_some_and(|t| t.contains("action disable gate new_checkout (statsig): done"))),
        "{events:#?}"
    );
}

/// Each request a server received: its header block and its body.
type Received = Arc<Mutex<Vec<(String, String)>>>;

/// A server that records each request's headers and body and answers 200.
fn hook_server(fail_first: usize) -> (String, Received) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                head.push_str(&line);
            }
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let n = {
                let mut g = g.lock().unwrap();
                g.push((head, String::from_utf8_lossy(&body).into_owned()));
                g.len()
            };
            let answer: &[u8] = if n <= fail_first {
                b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            } else {
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            };
            let _ = conn.write_all(answer);
        }
    });
    (url, got)
}

#[test]
fn a_webhook_receives_its_body_with_the_header_from_the_environment() {
    // The hook is busy at first: the webhook is retried (at most 3 attempts).
    let (hook, got) = hook_server(1);
    let target = DemoTarget::start(&["--latency", "0"]);
    let dir = TempDir::new("act-webhook");
    let scenario = dir.path("s.yaml");
    std::fs::write(
        &scenario,
        format!(
            "host: {}\nuser_types: [{{ name: u, tasks: [{{ request: {{ path: / }} }}] }}]\nload: {{ users: 2, run_time: 2s }}\nthresholds:\n  - {{ threshold: 'p95 < 0ms', on_fail: {{ webhook: {{ url: '{hook}', headers_from_env: {{ Authorization: HOOK_TOKEN }} }} }} }}\n",
            target.url
        ),
    )
    .unwrap();
    let json = dir.join("result.json");
    let out = loadlens(
        &[
            "run",
            scenario.to_str().unwrap(),
            "--headless",
            "--no-tui",
            "--run-id",
            "act-run-3",
            "--json",
            &json,
        ],
        &[("HOOK_TOKEN", "Bearer hook-s3cret")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "one 503, then delivered: {got:#?}");
    assert_eq!(got[0].1, got[1].1, "the retry sends the same body");
    let (head, body) = &got[1];
    assert!(head.starts_with("POST /hook "), "{head}");
    assert!(
        head.contains("authorization: Bearer hook-s3cret")
            || head.contains("Authorization: Bearer hook-s3cret"),
        "{head}"
    );
    let body: Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["run_id"], "act-run-3");
    assert!(
        body["breach"]
            .as_str()
            .unwrap()
            .starts_with("threshold `p95 < 0ms` failed"),
        "{body}"
    );
    assert!(body["links"].is_object());
    // The token is in no output.
    let doc = std::fs::read_to_string(dir.path("result.json")).unwrap();
    for text in [stdout(&out), stderr(&out), doc] {
        assert!(!text.contains("hook-s3cret"));
    }
    assert_eq!(result(&dir)["actions"][0]["status"], "done");
}

#[test]
fn a_webhook_header_variable_that_is_not_set_refuses_the_run() {
    let dir = TempDir::new("act-webhook-env");
    let scenario = dir.path("s.yaml");
    std::fs::write(
        &scenario,
        "host: http://127.0.0.1:9\nuser_types: [{ name: u, tasks: [{ request: { path: / } }] }]\nload: { users: 1, run_time: 1s }\nactions:\n  - { on: run_failed, webhook: { url: 'http://127.0.0.1:9/h', headers_from_env: { Authorization: NOT_SET_TOKEN } } }\n",
    )
    .unwrap();
    let out = loadlens(
        &["run", scenario.to_str().unwrap(), "--headless", "--no-tui"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("header Authorization comes from the environment variable NOT_SET_TOKEN, which is not set"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_planned_flip_at_half_the_run_shows_the_slowdown_in_the_before_after_comparison() {
    let stub = ConsoleStub::start();
    stub.gate(GATE, false);
    let gate_url = format!("{}/console/v1/gates/{GATE}", stub.url());
    let target = DemoTarget::gated(&gate_url, KEY, "fixed(80ms)");
    let dir = TempDir::new("act-flip");
    let scenario = dir.path("s.yaml");
    std::fs::write(
        &scenario,
        format!(
            "host: {}\nuser_types: [{{ name: u, tasks: [{{ request: {{ path: / }} }}] }}]\nload: {{ arrival_rate: 40/s, pre_allocated_vus: 10, run_time: 5s }}\nactions:\n  - {{ at: 50%, statsig: {{ enable_gate: {GATE} }}, restore: true }}\n",
            target.url
        ),
    )
    .unwrap();
    let (json, md, html) = (
        dir.join("result.json"),
        dir.join("summary.md"),
        dir.join("report.html"),
    );
    let out = loadlens(
        &[
            "run",
            scenario.to_str().unwrap(),
            "--headless",
            "--no-tui",
            "--run-id",
            "act-run-4",
            "--statsig-gate",
            GATE,
            "--statsig-url",
            stub.url(),
            "--json",
            &json,
            "--summary-md",
            &md,
            "--html",
            &html,
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let doc = result(&dir);
    crate::schema::assert_valid(&doc);
    let c = &doc["comparison"][0];
    assert!(
        c["flip"]
            .as_str()
            .unwrap()
            .starts_with("enable gate new_checkout (statsig), planned at 2.5 s"),
        "{c:#}"
    );
    let at = c["at_s"].as_f64().unwrap();
    assert!((2.5..4.0).contains(&at), "{c:#}");
    let agg = &c["aggregate"];
    eprintln!("before/after at {at:.2} s: {agg:#}");
    let (before, after) = (&agg["before"], &agg["after"]);
    assert!(before["requests"].as_u64().unwrap() > 0 && after["requests"].as_u64().unwrap() > 0);
    // 80 ms more per response while the gate is on; the target learns of it within a poll
    // (200 ms) of the flip, so most of the "after" segment pays it (arrivals at a constant
    // rate: the requests of those first moments are no more numerous than the others).
    let (b50, a50) = (
        before["p50_ms"].as_f64().unwrap(),
        after["p50_ms"].as_f64().unwrap(),
    );
    assert!(b50 < 40.0, "{agg:#}");
    assert!(a50 >= 70.0, "{agg:#}");
    assert!(agg["diff"]["p50_ms"].as_f64().unwrap() >= 40.0, "{agg:#}");
    assert!(agg["diff"]["rps"].as_f64().unwrap() < 0.0, "{agg:#}");
    // The flip and its restore, both recorded; the gate is back off.
    let actions = doc["actions"].as_array().unwrap();
    let done: Vec<&str> = actions
        .iter()
        .filter(|a| a["status"] == "done")
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        done,
        [
            "enable gate new_checkout (statsig)",
            "disable gate new_checkout (statsig)"
        ],
        "{actions:#?}"
    );
    assert_eq!(stub.gate_enabled(GATE), Some(false));
    assert_eq!(stub.violations(), Vec::<String>::new());
    // Every report shows the comparison.
    assert!(
        stdout(&out).contains("Before/after enable gate new_checkout"),
        "{}",
        stdout(&out)
    );
    let md = std::fs::read_to_string(dir.path("summary.md")).unwrap();
    assert!(
        md.contains("### Before/after: enable gate new_checkout"),
        "{md}"
    );
    let html = std::fs::read_to_string(dir.path("report.html")).unwrap();
    assert!(html.contains(r#"<section id="comparison">"#));
}

#[test]
fn the_end_of_a_failed_run_disables_the_gate_and_a_busy_webhook_that_stays_busy_is_shown_failed() {
    let stub = ConsoleStub::start();
    stub.gate(GATE, true);
    let (hook, got) = hook_server(usize::MAX);
    let dd = loadlens_sinks::datadog::stub::DatadogStub::start();
    let target = DemoTarget::start(&["--latency", "0"]);
    let dir = TempDir::new("act-failed-run");
    let scenario = dir.path("s.yaml");
    std::fs::write(
        &scenario,
        format!(
            "host: {}\nuser_types: [{{ name: u, tasks: [{{ request: {{ path: / }} }}] }}]\nload: {{ users: 2, run_time: 2s }}\nthresholds: ['p95 < 0ms']\nactions:\n  - {{ on: run_failed, statsig: {{ disable_gate: {GATE} }} }}\n  - {{ on: run_failed, webhook: {{ url: '{hook}' }} }}\n",
            target.url
        ),
    )
    .unwrap();
    let json = dir.join("result.json");
    let out = loadlens(
        &[
            "run",
            scenario.to_str().unwrap(),
            "--headless",
            "--no-tui",
            "--run-id",
            "act-run-5",
            "--datadog-url",
            dd.url(),
            "--statsig-gate",
            GATE,
            "--statsig-url",
            stub.url(),
            "--json",
            &json,
        ],
        &[("DD_API_KEY", loadlens_sinks::datadog::stub::API_KEY)],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stub.gate_enabled(GATE), Some(false));
    assert_eq!(puts(&stub, "disable"), 1);
    // Done after the run, and still sent to Datadog as events of the run.
    let titles: Vec<String> = dd
        .accepted("POST", "/api/v1/events")
        .iter()
        .map(|c| c.json()["title"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        titles
            .iter()
            .any(|t| t.contains("action disable gate new_checkout (statsig): done")),
        "{titles:#?}"
    );
    assert!(
        titles
            .iter()
            .any(|t| t.contains("action webhook") && t.contains("FAILED")),
        "{titles:#?}"
    );
    // Three attempts, then failed: shown as such, not dropped.
    assert_eq!(got.lock().unwrap().len(), 3);
    let doc = result(&dir);
    crate::schema::assert_valid(&doc);
    let actions = doc["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 2, "{actions:#?}");
    for a in actions {
        assert!(
            a["reason"].as_str().unwrap().starts_with(
                "loadlens run act-run-5: the run failed: threshold `p95 < 0ms` failed"
            ),
            "{a:#}"
        );
    }
    let gate = actions
        .iter()
        .find(|a| a["action"] == "disable gate new_checkout (statsig)")
        .unwrap();
    assert_eq!(gate["status"], "done");
    let hook = actions
        .iter()
        .find(|a| a["action"].as_str().unwrap().starts_with("webhook"))
        .unwrap();
    assert_eq!(hook["status"], "failed");
    assert!(
        hook["detail"].as_str().unwrap().contains("answered 503"),
        "{hook:#}"
    );
    assert!(stdout(&out).contains(": FAILED (POST"), "{}", stdout(&out));
    // After the run, yet on the result's timeline.
    let timeline = doc["timeline"].as_array().unwrap();
    assert_eq!(timeline.iter().filter(|e| e["kind"] == "action").count(), 2);
}

#[test]
fn gate_actions_without_an_integration_to_switch_them_refuse_the_run_with_the_reason() {
    let dir = TempDir::new("act-no-target");
    let scenario = dir.path("s.yaml");
    std::fs::write(
        &scenario,
        "host: http://127.0.0.1:9\nuser_types: [{ name: u, tasks: [{ request: { path: / } }] }]\nload: { users: 1, run_time: 10s }\nactions:\n  - { at: 5s, statsig: { enable_gate: a } }\n  - { at: 150%, statsig: { enable_gate: b } }\n",
    )
    .unwrap();
    // The entry is located in the file.
    let out = loadlens(&["validate", scenario.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(
            "s.yaml:6:5: actions[1]: at: `150%` is not a share of the run between 0% and 100%"
        ),
        "{}",
        stderr(&out)
    );
    // Statsig is off (no key): refused before any load, naming what is missing.
    let text = std::fs::read_to_string(&scenario)
        .unwrap()
        .replace("150%", "6s");
    std::fs::write(&scenario, text).unwrap();
    let mut c = Command::new(bin());
    c.args(["run", scenario.to_str().unwrap(), "--headless", "--no-tui"])
        .env_remove("STATSIG_CONSOLE_API_KEY");
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("enable gate a (statsig), planned at 5.0 s: no integration `statsig` that switches feature gates is on for this run"),
        "{}",
        stderr(&out)
    );
}
