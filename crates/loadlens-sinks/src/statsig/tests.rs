//! The Console API client and the audit-log poller against the local stub, which checks every
//! request against the specification's shapes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use loadlens_core::run::{EventKind, RunInfo, TimelineEvent};
use loadlens_core::sink::{Sink, SinkContext, TimelineHandle};

use super::stub::{ConsoleStub, KEY};
use super::*;

fn console(stub: &ConsoleStub, key: &str) -> Console {
    let mut cfg = ConsoleConfig::new(stub.url(), Secret::new(key));
    cfg.backoff = Duration::from_millis(20);
    Console::new(cfg).unwrap()
}

fn config(stub: &ConsoleStub, key: Option<&str>) -> Config {
    let mut c = Config::new(stub.url(), key);
    if let Some(cc) = c.console.as_mut() {
        cc.backoff = Duration::from_millis(20);
    }
    c.interval = Duration::from_millis(150);
    c
}

#[tokio::test]
async fn reads_and_flips_a_gate_in_the_specified_shapes() {
    let stub = ConsoleStub::start();
    stub.gate("new_checkout", true);
    let c = console(&stub, KEY);
    assert!(c.get_gate("new_checkout").await.unwrap().is_enabled);
    let off = c
        .disable_gate("new_checkout", "run r1: p95 breached")
        .await
        .unwrap();
    assert!(!off.gate.is_enabled);
    assert_eq!(off.reason, "run r1: p95 breached");
    assert_eq!(stub.gate_enabled("new_checkout"), Some(false));
    assert!(
        c.enable_gate("new_checkout", "restore")
            .await
            .unwrap()
            .gate
            .is_enabled
    );
    let r = stub.requests();
    assert!(r
        .iter()
        .all(|r| r.header("statsig-api-version") == Some("20240601")));
    assert!(r.iter().all(|r| r.header("statsig-api-key") == Some(KEY)));
    assert_eq!(r[1].method, "PUT");
    assert_eq!(r[1].path, "/console/v1/gates/new_checkout/disable");
    assert!(r[1].body.is_empty(), "the spec's disable takes no body");
    assert_eq!(stub.violations(), Vec::<String>::new());
    let e = c.get_gate("nope").await.unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
}

#[tokio::test]
async fn a_refused_key_is_one_clear_error_without_the_key_and_is_not_retried() {
    let stub = ConsoleStub::start();
    stub.gate("g", true);
    let c = console(&stub, "wrong-console-key-123");
    let e = c.get_gate("g").await.unwrap_err();
    let m = e.to_string();
    assert!(
        matches!(e, ApiError::Unauthorized { status: 401, .. }),
        "{m}"
    );
    assert!(
        m.contains("STATSIG_CONSOLE_API_KEY") && !m.contains("wrong-console-key"),
        "{m}"
    );
    assert_eq!(stub.requests().len(), 1, "401 is not retried");
    stub.forbid(true);
    let e = console(&stub, KEY).get_gate("g").await.unwrap_err();
    assert!(
        matches!(e, ApiError::Unauthorized { status: 403, .. }),
        "{e}"
    );
}

#[tokio::test]
async fn honours_retry_after_on_429_then_succeeds() {
    let stub = ConsoleStub::start();
    stub.gate("g", true);
    stub.fail_next("/console/v1/gates/g/disable", 429, 1, Some(1));
    let c = console(&stub, KEY);
    let t = Instant::now();
    let g = c.disable_gate("g", "why").await.unwrap();
    assert!(!g.gate.is_enabled);
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "waited {:?}",
        t.elapsed()
    );
    let puts: Vec<u16> = stub.requests().iter().map(|r| r.status).collect();
    assert_eq!(puts, vec![429, 200]);
}

#[tokio::test]
async fn retries_5xx_with_backoff_and_reports_what_could_not_be_done() {
    let stub = ConsoleStub::start();
    stub.gate("g", true);
    stub.fail_next("/console/v1/gates/g", 503, 2, None);
    let c = console(&stub, KEY);
    assert!(c.get_gate("g").await.unwrap().is_enabled);
    assert_eq!(stub.requests().len(), 3);
    stub.fail_next("/console/v1/gates/g/disable", 500, 10, None);
    let e = c.disable_gate("g", "why").await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "PUT /console/v1/gates/g/disable: Statsig answered 500: stub fault (after 4 attempts)"
    );
    assert_eq!(stub.gate_enabled("g"), Some(true));
    // A 429 asking for longer than the client waits ends the call at once, with the 429.
    stub.fail_next("/console/v1/gates/g", 429, 1, Some(3600));
    assert_eq!(c.get_gate("g").await.unwrap_err().status(), Some(429));
}

#[tokio::test]
async fn pages_through_the_audit_log_from_the_day_of_the_start() {
    let stub = ConsoleStub::start();
    stub.gate("g", true);
    for i in 0..7 {
        stub.flip_by("g", i % 2 == 0, "Alice");
    }
    let mut cfg = ConsoleConfig::new(stub.url(), Secret::new(KEY));
    cfg.page_size = 3;
    let c = Console::new(cfg).unwrap();
    let since = std::time::SystemTime::now();
    let mut ids = Vec::new();
    let mut page = 1;
    loop {
        let p = c.audit_logs(since, page).await.unwrap();
        assert!(p.entries.len() <= 3);
        ids.extend(p.entries.iter().map(|e| e.id.clone()));
        if !p.has_next() {
            break;
        }
        page += 1;
    }
    assert_eq!(page, 3);
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 7);
    let day = &humantime::format_rfc3339_seconds(since).to_string()[..10];
    assert!(stub.requests()[0]
        .path
        .contains(&format!("startDate={day}&limit=3&page=1")));
    assert_eq!(stub.violations(), Vec::<String>::new());
}

fn ctx() -> (SinkContext, Arc<Mutex<Vec<TimelineEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let ctx = SinkContext {
        run: RunInfo {
            id: "statsig-run".into(),
            scenario: "s".into(),
            tags: Default::default(),
        },
        names: Vec::new(),
        controls: loadlens_core::run::Controls::new(),
        timeline: TimelineHandle::new(events.clone(), Instant::now()),
        config: serde_json::Value::Null,
    };
    (ctx, events)
}

fn of_kind(events: &Mutex<Vec<TimelineEvent>>, kind: EventKind) -> Vec<TimelineEvent> {
    let e = events.lock().unwrap();
    e.iter().filter(|e| e.kind == kind).cloned().collect()
}

#[tokio::test]
async fn a_gate_flipped_by_someone_else_appears_once_with_who_and_the_values() {
    let stub = ConsoleStub::start();
    stub.gate("new_checkout", false);
    stub.gate("other", true);
    stub.config("pricing", true, serde_json::json!({"discount": 5}));
    // Before the run: the baseline, not a change of this run.
    stub.flip_by("new_checkout", true, "Early Bird");
    stub.flip_by("new_checkout", false, "Early Bird");
    let mut cfg = config(&stub, Some(KEY));
    cfg.gates = vec!["new_checkout".into()];
    cfg.configs = vec!["pricing".into()];
    let mut sink = StatsigSink::connect(cfg).await.unwrap();
    let (ctx, events) = ctx();
    sink.on_start(&ctx);
    let start = of_kind(&events, EventKind::Note);
    assert_eq!(start.len(), 2, "{start:?}");
    assert_eq!(
        start[0].message,
        "statsig: gate new_checkout is disabled at the start"
    );
    assert!(
        start[1].message.contains("config pricing is enabled")
            && start[1].message.contains("discount")
    );
    stub.flip_by("other", false, "Bob"); // not watched
    stub.flip_by("new_checkout", true, "Alice");
    let t = Instant::now();
    while of_kind(&events, EventKind::ConfigChanged).is_empty()
        && t.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A few more polls: the same entry is never added twice.
    let polls = stub.requests().len();
    let t = Instant::now();
    while stub.requests().len() < polls + 3 && t.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = Box::new(sink).finish(&summary().await).await;
    let changes = of_kind(&events, EventKind::ConfigChanged);
    assert_eq!(changes.len(), 1, "{changes:?}");
    let c = &changes[0];
    assert_eq!(
        c.message,
        "statsig: gate new_checkout changed by Alice <alice@example.com> (gate_update): Enabled gate [false → true]"
    );
    let f = c.flag.as_ref().unwrap();
    assert_eq!(
        (f.provider.as_str(), f.key.as_str(), f.entity.as_str()),
        ("statsig", "new_checkout", "gate")
    );
    assert_eq!(
        (f.old_value.as_deref(), f.new_value.as_deref()),
        (Some("false"), Some("true"))
    );
    assert_eq!((report.delivered, report.failed), (1, 0));
    assert_eq!(stub.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_failing_audit_log_costs_polls_not_the_run_and_is_reported() {
    let stub = ConsoleStub::start();
    let mut sink = StatsigSink::connect(config(&stub, Some(KEY)))
        .await
        .unwrap();
    stub.fail_next("/console/v1/audit_logs", 500, 1000, None);
    let (ctx, _events) = ctx();
    sink.on_start(&ctx);
    let t = Instant::now();
    // Four attempts a poll: nine failed answers mean that two polls have given up.
    let failed = || stub.requests().iter().filter(|r| r.status == 500).count();
    while failed() < 9 && t.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = tokio::time::timeout(
        Duration::from_secs(10),
        Box::new(sink).finish(&summary().await),
    )
    .await
    .expect("finish is bounded");
    assert!(report.failed >= 1, "{report:?}");
    assert!(
        report.errors[0].contains("GET /console/v1/audit_logs: Statsig answered 500"),
        "{report:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(40));
}

#[tokio::test]
async fn start_check_says_what_is_wrong() {
    let stub = ConsoleStub::start();
    stub.gate("g", true);
    let e = StatsigSink::connect(config(&stub, None)).await.unwrap_err();
    assert_eq!(e, ConnectError::NoKey);
    let mut cfg = config(&stub, Some("bad-key-xyz"));
    cfg.gates = vec!["g".into()];
    let e = StatsigSink::connect(cfg).await.unwrap_err().to_string();
    assert!(e.contains("(401)") && !e.contains("bad-key-xyz"), "{e}");
    let mut cfg = config(&stub, Some(KEY));
    cfg.gates = vec!["missing_gate".into()];
    let e = StatsigSink::connect(cfg).await.unwrap_err().to_string();
    assert!(
        e.contains("/console/v1/gates/missing_gate") && e.contains("404"),
        "{e}"
    );
}

#[test]
fn old_and_new_values_are_found_where_the_entry_has_them() {
    use serde_json::json;
    assert_eq!(
        old_new(&json!({"isEnabled": {"oldValue": true, "newValue": false}})),
        (Some("true".into()), Some("false".into()))
    );
    assert_eq!(
        old_new(&json!([{"field": "x", "before": "a", "after": "b"}])),
        (Some("a".into()), Some("b".into()))
    );
    assert_eq!(old_new(&json!({"rules": "changed"})), (None, None));
}

#[test]
fn change_times_are_read_in_the_forms_the_log_may_use() {
    let e = |date: &str, time: &str| AuditLog {
        id: "1".into(),
        name: "g".into(),
        change_log: String::new(),
        action_type: serde_json::Value::Null,
        date: date.into(),
        time: time.into(),
        updated_by: String::new(),
        updated_by_user_id: String::new(),
        modifier_email: serde_json::Value::Null,
        changes: serde_json::Value::Null,
        tags: Vec::new(),
    };
    let want = Some(1_764_736_245_000);
    assert_eq!(at_ms(&e("2025-12-03", "04:30:45")), want);
    assert_eq!(at_ms(&e("", "1764736245000")), want);
    assert_eq!(at_ms(&e("", "2025-12-03T04:30:45Z")), want);
    assert_eq!(at_ms(&e("", "soon")), None);
}

#[test]
fn the_section_refuses_unknown_keys_and_credentials_in_the_url() {
    let src = loadlens_core::scenario::Source {
        file: "s.yaml".into(),
        text: "statsig:\n  gates: [a]\n  gatez: [b]\n".into(),
        dir: Default::default(),
    };
    let section = crate::integration::Section::new(&src, "statsig");
    let e = section.parse::<StatsigSettings>().unwrap_err().to_string();
    assert!(e.contains("s.yaml:3:3") && e.contains("gatez"), "{e}");
    assert!(config::check_url("https://k:s@statsigapi.net").is_err());
    assert_eq!(
        config::check_url("http://127.0.0.1:9/").unwrap(),
        "http://127.0.0.1:9"
    );
}

/// A summary to finish with, from a short real run.
async fn summary() -> loadlens_core::report::Summary {
    struct Nop;
    impl Sink for Nop {
        fn name(&self) -> &str {
            "nop"
        }
        fn finish(
            self: Box<Self>,
            _: &loadlens_core::report::Summary,
        ) -> loadlens_core::sink::FinishFuture {
            Box::pin(async { Default::default() })
        }
    }
    crate::contract::short_run(Box::new(Nop), 5, loadlens_core::executor::Controls::new())
        .await
        .0
}

#[tokio::test]
async fn a_poll_failing_on_a_later_page_loses_no_change() {
    let stub = ConsoleStub::start();
    stub.gate("g", true);
    let mut cfg = config(&stub, Some(KEY));
    let console = cfg.console.as_mut().unwrap();
    console.page_size = 1;
    console.max_attempts = 1;
    let mut sink = StatsigSink::connect(cfg).await.unwrap();
    // Two changes: two pages of one entry; the first read of page 2 fails.
    stub.flip_by("g", false, "Alice");
    stub.flip_by("g", true, "Bob");
    let day = &humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()[..10];
    stub.fail_next(
        &format!("/console/v1/audit_logs?startDate={day}&limit=1&page=2"),
        503,
        1,
        None,
    );
    let (ctx, events) = ctx();
    sink.on_start(&ctx);
    let t = Instant::now();
    while of_kind(&events, EventKind::ConfigChanged).len() < 2
        && t.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = Box::new(sink).finish(&summary().await).await;
    let changes = of_kind(&events, EventKind::ConfigChanged);
    assert_eq!(changes.len(), 2, "{changes:?}");
    assert!(
        changes[0].message.contains("by Alice"),
        "oldest first: {changes:?}"
    );
    assert!(changes[1].message.contains("by Bob"), "{changes:?}");
    assert_eq!((report.delivered, report.failed), (2, 1));
    assert!(stub.requests().iter().any(|r| r.status == 503));
}
