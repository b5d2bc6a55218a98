//! A coordinated run's telemetry arrives once: the coordinator sends the run-level part
//! (Datadog start/stop events and metrics, Statsig flag changes on the merged timeline, the
//! OpenTelemetry run span), the workers their request spans only — each process given the same
//! flags and environment, as the pods of `deploy/kubernetes` are. Against the local Datadog and
//! Statsig stubs and Datadog's OTLP test agent.

use loadlens_sinks::datadog::stub::{Captured, DatadogStub, API_KEY as DD_KEY};
use loadlens_sinks::statsig::stub::{ConsoleStub, KEY as STATSIG_KEY};
use serde_json::Value;

use crate::coordinator::{coordinator, count, read, scenario, served, Proc, LONG};
use crate::support::{DemoTarget, TempDir};

/// One worker per result path in `jsons`, as the pods of the Indexed Job start them: the same
/// `flags` and `env`, the index from `JOB_COMPLETION_INDEX`.
fn indexed_workers(
    file: &str,
    url: &str,
    jsons: &[String],
    flags: &[&str],
    env: &[(&str, &str)],
) -> Vec<Proc> {
    let n = jsons.len().to_string();
    jsons
        .iter()
        .enumerate()
        .map(|(i, json)| {
            let mut a = vec!["run", file, "--coordinator", url, "--workers", &n];
            a.extend(["--json", json, "--no-tui"]);
            a.extend(flags);
            let index = i.to_string();
            let mut e = env.to_vec();
            e.push(("JOB_COMPLETION_INDEX", &index));
            Proc::spawn(&crate::coordinator::strings(&a), &e)
        })
        .collect()
}

fn titles(dd: &DatadogStub) -> Vec<String> {
    dd.accepted("POST", "/api/v1/events")
        .iter()
        .map(Captured::json)
        .map(|e| e["title"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn string_attr(span: &Value, key: &str) -> Option<String> {
    crate::otel::attr(span, key).and_then(|v| v["string_value"].as_str().map(str::to_owned))
}

#[test]
fn run_level_events_are_sent_once_by_the_coordinator_and_request_spans_by_the_workers() {
    let agent = crate::otel::agent();
    let target = DemoTarget::start(&["--latency", "fixed(2ms)"]);
    let dd = DatadogStub::start();
    let statsig = ConsoleStub::start();
    statsig.gate("new_checkout", true);
    let dir = TempDir::new("coordtel");
    let file = scenario(&dir, "s.yaml", &target.url, 4, "5s", "");
    let before = served(&target);
    // What every pod gets: the same integration flags and environment.
    let flags = [
        "--otel",
        "--datadog-url",
        dd.url(),
        "--datadog-metric-interval",
        "1s",
        "--statsig-url",
        statsig.url(),
        "--statsig-gate",
        "new_checkout",
        "--statsig-interval",
        "300ms",
    ];
    let env = [
        ("DD_API_KEY", DD_KEY),
        ("STATSIG_CONSOLE_API_KEY", STATSIG_KEY),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", agent.http.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_TRACES_SAMPLER", "always_on"),
    ];
    let merged = dir.join("m.json");
    let mut args = vec![file.as_str(), "--workers", "2", "--json", &merged];
    args.extend(flags);
    let (mut c, url) = coordinator(&args, &env);
    let jsons: Vec<String> = (0..2).map(|i| dir.join(&format!("w{i}.json"))).collect();
    let mut ws = indexed_workers(&file, &url, &jsons, &flags, &env);
    // Someone flips the gate once the coordinator's poller runs (its first read of the audit
    // log is the start-up baseline).
    c.wait_for("workers in: the load starts", LONG);
    assert!(statsig.wait_for(LONG, |r| r
        .iter()
        .filter(|r| r.route() == "/console/v1/audit_logs")
        .count()
        >= 2));
    statsig.flip_by("new_checkout", false, "Alice");
    for w in &mut ws {
        w.expect_exit(0, LONG);
    }
    c.expect_exit(0, LONG);
    let m = read(&merged);
    let run_id = m["run"]["id"].as_str().unwrap().to_owned();
    let total = count(&m);
    assert_eq!(total, served(&target) - before, "the target's own count");

    // The workers took the coordinator's run id, and sent no run-level telemetry.
    for (j, w) in jsons.iter().zip(&ws) {
        let r = read(j);
        assert_eq!(r["run"]["id"], run_id.as_str());
        assert!(
            w.out().contains("A worker sends request spans only"),
            "{}",
            w.out()
        );
        assert!(!w.out().contains("Datadog:"), "{}", w.out());
        assert!(!w.out().contains("Statsig:"), "{}", w.out());
        let flagged = r["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e.get("flag").is_some())
            .count();
        assert_eq!(flagged, 0, "{:#}", r["timeline"]);
    }
    assert!(
        c.out()
            .contains("(run-level: sent once, by the coordinator)"),
        "{}",
        c.out()
    );

    // Datadog: exactly one start and one stop event, both of the coordinator's run.
    let t = titles(&dd);
    let started: Vec<&String> = t.iter().filter(|t| t.contains(" started: ")).collect();
    let stopped: Vec<&String> = t.iter().filter(|t| t.contains(" passed: ")).collect();
    assert_eq!(started.len(), 1, "{t:#?}");
    assert_eq!(stopped.len(), 1, "{t:#?}");
    assert!(started[0].contains(&run_id), "{t:#?}");
    let stop_text = dd
        .accepted("POST", "/api/v1/events")
        .iter()
        .map(Captured::json)
        .find(|e| {
            e["title"]
                .as_str()
                .unwrap_or_default()
                .contains(" passed: ")
        })
        .unwrap()["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        stop_text.contains(&format!("Requests: {total},")),
        "the stop event carries the merged count {total}: {stop_text}"
    );
    // The flag change: one Datadog event, tagged with the gate.
    let changes = t
        .iter()
        .filter(|t| t.contains("new_checkout changed"))
        .count();
    assert_eq!(changes, 1, "{t:#?}");
    // Metrics from the merged snapshots: one series, no point written twice, adding up to the
    // merged count.
    let kept = dd.stored_series();
    assert_eq!(
        dd.series_points_written(),
        kept.len(),
        "a point overwritten"
    );
    let sent: f64 = kept
        .iter()
        .filter(|((metric, _, _), _)| metric == "loadlens.requests")
        .map(|(_, v)| v)
        .sum();
    assert_eq!(sent as u64, total, "loadlens.requests over the run");

    // Statsig: the change is on the merged timeline once, with its flag.
    let flagged: Vec<&Value> = m["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "config_changed")
        .collect();
    assert_eq!(flagged.len(), 1, "{:#}", m["timeline"]);
    assert_eq!(flagged[0]["flag"]["key"], "new_checkout");
    assert_eq!(statsig.violations(), Vec::<String>::new());

    // OpenTelemetry: one run span, from the coordinator; request spans from both workers,
    // each linked to that run span, all with the run's id.
    let spans = agent.spans();
    let runs: Vec<&Value> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| {
            s["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("loadtest "))
        })
        .collect();
    assert_eq!(runs.len(), 1, "run spans: {runs:#?}");
    let run = runs[0];
    assert_eq!(
        string_attr(run, "loadtest.run_id").as_deref(),
        Some(run_id.as_str())
    );
    let change_on_span = run["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "ConfigChanged")
        .count();
    assert_eq!(change_on_span, 1, "{:#}", run["events"]);
    let requests: Vec<&Value> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| s["name"] == "GET /api/products")
        .collect();
    assert!(!requests.is_empty());
    for s in &requests {
        assert_eq!(
            string_attr(s, "loadtest.run_id").as_deref(),
            Some(run_id.as_str())
        );
        let link = &s["links"][0];
        assert_eq!(link["trace_id"], run["trace_id"], "{s:#}");
        assert_eq!(link["span_id"], run["span_id"], "{s:#}");
    }
    let traced: u64 = jsons
        .iter()
        .map(|j| read(j))
        .map(|r| {
            r["sinks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == "otlp")
                .map_or(0, |s| s["delivered"].as_u64().unwrap_or(0))
        })
        .sum();
    eprintln!(
        "{} request spans received, {traced} delivered by the workers, {total} requests",
        requests.len()
    );
    assert_eq!(
        requests.len() as u64,
        total,
        "one span per request (always_on)"
    );
}

#[test]
fn the_coordinators_dashboard_shows_the_merged_run_and_changes_every_workers_load() {
    use crate::web::{http, read_events};
    let target = DemoTarget::start(&["--latency", "fixed(2ms)"]);
    let dir = TempDir::new("coordweb");
    let file = scenario(&dir, "s.yaml", &target.url, 2, "8s", "");
    let before = served(&target);
    let merged = dir.join("m.json");
    let (mut c, url) = coordinator(
        &[
            &file,
            "--workers",
            "2",
            "--json",
            &merged,
            "--web",
            "--web-port",
            "0",
        ],
        &[],
    );
    c.wait_for("dashboard: http://", LONG);
    let addr = c
        .out()
        .lines()
        .find_map(|l| l.strip_prefix("dashboard: http://"))
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let jsons: Vec<String> = (0..2).map(|i| dir.join(&format!("w{i}.json"))).collect();
    let mut ws: Vec<Proc> = (0..2)
        .map(|i| crate::coordinator::worker(&file, &url, 2, i, &jsons[i as usize], &[]))
        .collect();
    c.wait_for("workers in: the load starts", LONG);
    // The merged run, live: one state per merged snapshot, the count growing.
    let events = read_events(&addr, 4, None);
    let counts: Vec<u64> = events
        .iter()
        .filter_map(|e| e["total"]["requests"].as_u64())
        .collect();
    assert!(counts.len() >= 2, "{events:#?}");
    assert!(counts.windows(2).all(|w| w[1] > w[0]), "{counts:?}");
    let last = events.last().unwrap();
    assert_eq!(last["phase"], "running");
    assert_eq!(last["users"], 2, "both workers' users: {last:#}");
    assert_eq!(last["requests"][0]["name"], "/api/products");
    // A load change from the page reaches every worker: 6 users over two workers.
    let (code, _, body) = http(&addr, "POST", "/api/load", Some(r#"{"users":6}"#), None);
    assert_eq!(code, 202, "{body}");
    let t = std::time::Instant::now();
    loop {
        let (_, _, s) = http(&addr, "GET", "/api/state", None, None);
        let s: Value = serde_json::from_str(&s).unwrap();
        if s["users"] == 6 {
            break;
        }
        assert!(
            t.elapsed() < LONG / 4,
            "the workers never ran 6 users: {s:#}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // After the run it serves the final, merged state and reports until Ctrl-C.
    c.wait_for("serves its final state", LONG);
    for w in &mut ws {
        w.expect_exit(0, LONG);
    }
    let m = read(&merged);
    let total = count(&m);
    assert_eq!(total, served(&target) - before, "the target's own count");
    let (_, _, s) = http(&addr, "GET", "/api/state", None, None);
    let s: Value = serde_json::from_str(&s).unwrap();
    assert_eq!(s["phase"], "finished", "{s:#}");
    assert_eq!(s["total"]["requests"], total, "{s:#}");
    let (code, _, doc) = http(&addr, "GET", "/download/result.json", None, None);
    assert_eq!(code, 200);
    let doc: Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(doc["aggregate"]["request_count"], total);
    assert_eq!(doc["workers"].as_array().map(Vec::len), Some(2));
    for j in &jsons {
        let peak = read(j)["series"]["points"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["users"].as_u64())
            .max();
        assert_eq!(peak, Some(3), "each worker ran its half of 6 users");
    }
    crate::support::interrupt(&c.child);
    c.expect_exit(0, LONG);
}

#[test]
fn a_threshold_breach_disables_the_gate_once_from_the_coordinator_not_once_per_worker() {
    let target = DemoTarget::start(&["--latency", "0"]);
    let statsig = ConsoleStub::start();
    statsig.gate("new_checkout", true);
    let dir = TempDir::new("coordgate");
    let file = scenario(&dir, "s.yaml", &target.url, 4, "3s", "");
    let flags = [
        "--statsig-url",
        statsig.url(),
        "--statsig-gate",
        "new_checkout",
    ];
    let env = [("STATSIG_CONSOLE_API_KEY", STATSIG_KEY)];
    let merged = dir.join("m.json");
    let mut args = vec![file.as_str(), "--workers", "2", "--json", &merged];
    args.extend(["--threshold", "p95 < 0ms, disable_gate new_checkout"]);
    args.extend(flags);
    let (mut c, url) = coordinator(&args, &env);
    let jsons: Vec<String> = (0..2).map(|i| dir.join(&format!("w{i}.json"))).collect();
    let mut ws = indexed_workers(&file, &url, &jsons, &flags, &env);
    for w in &mut ws {
        w.expect_exit(0, LONG);
    }
    // Nothing is faster than 0 ms: the run fails, and the gate is disabled once.
    c.expect_exit(1, LONG);
    assert_eq!(statsig.gate_enabled("new_checkout"), Some(false));
    let disables = statsig
        .requests()
        .iter()
        .filter(|r| {
            r.route()
                .ends_with("/console/v1/gates/new_checkout/disable")
        })
        .count();
    assert_eq!(disables, 1, "{:#?}", statsig.requests());
    let m = read(&merged);
    let actions = m["actions"]
        .as_array()
        .expect("actions in the merged result");
    assert_eq!(actions.len(), 1, "{actions:#?}");
    assert_eq!(actions[0]["status"], "done");
    for j in &jsons {
        let r = read(j);
        assert!(
            r["actions"].as_array().is_none_or(Vec::is_empty),
            "a worker acted: {:#}",
            r["actions"]
        );
    }
    assert_eq!(statsig.violations(), Vec::<String>::new());
}

#[test]
fn a_planned_flip_in_a_coordinated_run_gets_the_before_after_comparison_of_the_merged_run() {
    let statsig = ConsoleStub::start();
    statsig.gate("new_checkout", false);
    let gate_url = format!("{}/console/v1/gates/new_checkout", statsig.url());
    // 80 ms more per response while the gate is on.
    let target = DemoTarget::gated(&gate_url, STATSIG_KEY, "fixed(80ms)");
    let dir = TempDir::new("coordflip");
    let file = dir.join("s.yaml");
    std::fs::write(
        &file,
        format!(
            "host: {}\nuser_types: [{{ name: u, tasks: [{{ request: {{ path: / }} }}] }}]\nload: {{ arrival_rate: 40/s, pre_allocated_vus: 10, run_time: 6s }}\nactions:\n  - {{ at: 50%, statsig: {{ enable_gate: new_checkout }}, restore: true }}\n",
            target.url
        ),
    )
    .unwrap();
    let flags = [
        "--statsig-url",
        statsig.url(),
        "--statsig-gate",
        "new_checkout",
    ];
    let env = [("STATSIG_CONSOLE_API_KEY", STATSIG_KEY)];
    let merged = dir.join("m.json");
    let mut args = vec![file.as_str(), "--workers", "2", "--json", &merged];
    args.extend(flags);
    let (mut c, url) = coordinator(&args, &env);
    let jsons: Vec<String> = (0..2).map(|i| dir.join(&format!("w{i}.json"))).collect();
    let mut ws = indexed_workers(&file, &url, &jsons, &flags, &env);
    for w in &mut ws {
        w.expect_exit(0, LONG);
    }
    c.expect_exit(0, LONG);
    let m = read(&merged);
    crate::schema::assert_valid(&m);
    let cmp = &m["comparison"][0];
    assert!(
        cmp["flip"]
            .as_str()
            .unwrap()
            .starts_with("enable gate new_checkout (statsig), planned at 3.0 s"),
        "{cmp:#}"
    );
    let at = cmp["at_s"].as_f64().unwrap();
    assert!((3.0..4.5).contains(&at), "{cmp:#}");
    let agg = &cmp["aggregate"];
    eprintln!("merged before/after at {at:.2} s: {agg:#}");
    let (before, after) = (&agg["before"], &agg["after"]);
    // The two segments hold every request of the merged run.
    let (nb, na) = (
        before["requests"].as_u64().unwrap(),
        after["requests"].as_u64().unwrap(),
    );
    assert!(nb > 0 && na > 0, "{agg:#}");
    assert_eq!(nb + na, count(&m), "{agg:#}");
    // The gate's 80 ms shows after the flip, not before (the workers' reports reach the
    // coordinator up to an interval late, so the edges of the segments are a little mixed:
    // medians, not tails).
    let (b50, a50) = (
        before["p50_ms"].as_f64().unwrap(),
        after["p50_ms"].as_f64().unwrap(),
    );
    assert!(b50 < 40.0, "{agg:#}");
    assert!(a50 >= 70.0, "{agg:#}");
    // Flipped once, by the coordinator, and restored at the end.
    let flips = statsig
        .requests()
        .iter()
        .filter(|r| r.route().ends_with("/console/v1/gates/new_checkout/enable"))
        .count();
    assert_eq!(flips, 1, "{:#?}", statsig.requests());
    assert_eq!(statsig.gate_enabled("new_checkout"), Some(false));
    assert_eq!(statsig.violations(), Vec::<String>::new());
}
