use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use crate::action::{Action, Status};
use crate::client::ClientConfig;
use crate::executor::{Executor, Flip, LoadSettings};
use crate::plan::{Plan, PlanOptions};
use crate::report::Summary;
use crate::run::{Controls, RunInfo};
use crate::testutil;

/// A gate service in memory: its gates' states and every call with its reason.
#[derive(Default)]
struct FakeGates {
    on: Mutex<BTreeMap<String, bool>>,
    calls: Mutex<Vec<(String, bool, String)>>,
    fail: bool,
}

impl GateTarget for Arc<FakeGates> {
    fn name(&self) -> &str {
        "fake"
    }
    fn set_gate(&self, gate: &str, enable: bool, reason: &str) -> GateFuture<String> {
        let me = self.clone();
        let (gate, reason) = (gate.to_owned(), reason.to_owned());
        Box::pin(async move {
            me.calls
                .lock()
                .unwrap()
                .push((gate.clone(), enable, reason));
            if me.fail {
                return Err("the gate service answered 503 after 3 attempts".into());
            }
            me.on.lock().unwrap().insert(gate, enable);
            Ok("ok".into())
        })
    }
    fn gate_enabled(&self, gate: &str) -> GateFuture<bool> {
        let v = self.on.lock().unwrap().get(gate).copied().unwrap_or(false);
        Box::pin(async move { Ok(v) })
    }
}

fn gate(g: &str, enable: bool) -> Action {
    Action::Gate {
        target: None,
        gate: g.into(),
        enable,
    }
}

fn actions(fake: &Arc<FakeGates>, dry_run: bool) -> (Actions, Arc<Mutex<Vec<TimelineEvent>>>) {
    let a = Actions::builder("run-42", dry_run)
        .target(Arc::new(fake.clone()))
        .build();
    let tl = Arc::new(Mutex::new(Vec::new()));
    a.attach(TimelineHandle::new(tl.clone(), Instant::now()));
    (a, tl)
}

#[tokio::test]
async fn a_guard_switches_a_gate_once_with_a_reason_naming_the_run() {
    let fake = Arc::new(FakeGates::default());
    let (a, tl) = actions(&fake, false);
    a.guard(
        "threshold `p95 < 1ms` failed: observed 3 ms",
        &gate("checkout", false),
    );
    a.guard("monitor 1234 is in Alert", &gate("checkout", false));
    let (records, late) = a.finish(Duration::from_secs(5)).await;
    let calls = fake.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].0, "checkout");
    assert!(!calls[0].1);
    assert_eq!(
        calls[0].2,
        "loadlens run run-42: threshold `p95 < 1ms` failed: observed 3 ms"
    );
    let statuses: Vec<Status> = records.iter().map(|r| r.status).collect();
    assert!(statuses.contains(&Status::Done) && statuses.contains(&Status::Skipped));
    assert_eq!(records.len(), 2);
    let done = records.iter().find(|r| r.status == Status::Done).unwrap();
    assert_eq!(done.action, "disable gate checkout (fake)");
    // Both outcomes are on the run's timeline, none after it.
    let events = tl.lock().unwrap().clone();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events.iter().all(|e| e.kind == EventKind::Action));
    assert!(late.is_empty());
}

#[tokio::test]
async fn a_dry_run_records_and_does_nothing() {
    let fake = Arc::new(FakeGates::default());
    let (a, _) = actions(&fake, true);
    a.guard("threshold failed", &gate("checkout", false));
    a.planned("planned at 5 s", &gate("checkout", true), true);
    let (records, _) = a.finish(Duration::from_secs(5)).await;
    assert!(fake.calls.lock().unwrap().is_empty());
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r.status == Status::DryRun));
    assert!(
        records[0].line().contains("dry run, not done"),
        "{:?}",
        records[0]
    );
}

#[tokio::test]
async fn a_failed_action_is_recorded_as_failed_and_a_missing_target_says_why() {
    let fake = Arc::new(FakeGates {
        fail: true,
        ..FakeGates::default()
    });
    let (a, tl) = actions(&fake, false);
    a.guard("threshold failed", &gate("checkout", false));
    let (records, _) = a.finish(Duration::from_secs(5)).await;
    assert_eq!(records[0].status, Status::Failed);
    assert!(records[0].detail.contains("503"), "{:?}", records[0]);
    assert!(tl.lock().unwrap()[0].message.contains("FAILED"));

    let none = Actions::builder("r", false)
        .unavailable("statsig", "the key was refused (401)")
        .build();
    none.guard("threshold failed", &gate("checkout", false));
    let (records, late) = none.finish(Duration::from_secs(1)).await;
    assert_eq!(records[0].status, Status::Failed);
    assert_eq!(
        records[0].detail,
        "statsig is off: the key was refused (401)"
    );
    // Never attached to a run: the event is handed back for the summary's timeline.
    assert_eq!(late.len(), 1);
}

#[tokio::test]
async fn a_planned_flip_with_restore_puts_the_gate_back_at_the_end() {
    let fake = Arc::new(FakeGates::default());
    let (a, _) = actions(&fake, false);
    a.planned("planned at 5 s", &gate("checkout", true), true);
    let (records, _) = a.finish(Duration::from_secs(5)).await;
    let calls: Vec<(String, bool)> = fake
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|(g, e, _)| (g.clone(), *e))
        .collect();
    assert_eq!(
        calls,
        [
            ("checkout".to_owned(), true),
            ("checkout".to_owned(), false)
        ]
    );
    assert_eq!(records.len(), 2);
    assert_eq!(records[1].cause, "restore at the end of the run");
    assert_eq!(records[1].action, "disable gate checkout (fake)");
    assert!(!fake.on.lock().unwrap()["checkout"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flips_cut_the_run_into_segments_and_a_breach_asks_for_its_action() {
    let srv = testutil::http1().await;
    let fake = Arc::new(FakeGates::default());
    let a = Actions::builder("run-7", false)
        .target(Arc::new(fake.clone()))
        .build();
    let plan = Plan::single(
        &srv.url("/"),
        http::Method::GET,
        Default::default(),
        &PlanOptions::default(),
    )
    .unwrap();
    let client = crate::client::ClientShared::new(ClientConfig::default()).unwrap();
    let info = RunInfo {
        id: "run-7".into(),
        scenario: "flips".into(),
        tags: Default::default(),
    };
    let load = LoadSettings {
        run_time: Some(Duration::from_millis(1200)),
        ..LoadSettings::closed(2)
    };
    let threshold = crate::thresholds::parse("requests < 1, disable_gate checkout").unwrap();
    let flip = Flip {
        at: Duration::from_millis(500),
        cause: "planned at 0.5 s".into(),
        action: gate("pricing", true),
        restore: false,
    };
    let mut out = Executor::new(Arc::new(plan), load.clone(), client, info.clone())
        .tick(Duration::from_millis(100))
        .thresholds(vec![threshold])
        .actions(a.clone(), vec![flip])
        .run(Controls::new())
        .await;
    let (records, late) = a.finish(Duration::from_secs(5)).await;
    let mut summary = Summary::new(info, load, None, &mut out);
    summary.outcome.actions = records;
    summary.timeline.extend(late);
    let gates: Vec<String> = fake
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.0.clone())
        .collect();
    assert!(gates.contains(&"checkout".to_owned()), "{gates:?}");
    assert!(gates.contains(&"pricing".to_owned()), "{gates:?}");
    assert_eq!(
        gates.len(),
        2,
        "the breach seen on every tick acts once: {gates:?}"
    );
    let c = summary.comparison();
    assert_eq!(c.len(), 1);
    let f = &c[0];
    assert!(f.at_s >= 0.5 && f.at_s < 1.2, "{f:?}");
    let (b, af) = (f.aggregate.before.unwrap(), f.aggregate.after.unwrap());
    assert!(b.requests > 0 && af.requests > 0, "{f:?}");
    // The segments share the run's requests between them, none lost or counted twice.
    assert_eq!(
        b.requests + af.requests,
        summary.total().request_count,
        "{f:?}"
    );
    assert!(f.aggregate.diff.is_some());
    let text = crate::report::text::render(&summary);
    assert!(text.contains("Before/after planned at 0.5 s"), "{text}");
    assert!(text.contains("Actions"), "{text}");
    // Every report shows both: the JSON result (read back), its HTML report, the Markdown.
    let doc = crate::report::json::ResultDoc::of(&summary);
    let back: crate::report::json::ResultDoc =
        serde_json::from_str(&serde_json::to_string(&doc).unwrap()).unwrap();
    assert_eq!(back.comparison.len(), 1);
    assert_eq!(back.comparison[0].flip, c[0].flip);
    assert_eq!(
        back.comparison[0].aggregate.after.map(|a| a.requests),
        Some(af.requests)
    );
    assert_eq!(back.actions.len(), 2);
    let html = crate::report::html::render(&doc);
    assert!(html.contains(r#"<section id="comparison"><h2>Before/after</h2>"#));
    assert!(html.contains(r#"<section id="actions"><h2>Actions</h2>"#));
    let md = crate::report::markdown::render(&summary);
    assert!(md.contains("### Before/after: planned at 0.5 s"), "{md}");
    assert!(md.contains("### Actions"), "{md}");
}

#[tokio::test]
async fn a_flip_that_failed_is_not_restored() {
    let fake = Arc::new(FakeGates {
        fail: true,
        ..FakeGates::default()
    });
    let (a, _) = actions(&fake, false);
    a.planned("planned at 5 s", &gate("checkout", true), true);
    let (records, _) = a.finish(Duration::from_secs(5)).await;
    assert_eq!(fake.calls.lock().unwrap().len(), 1);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, Status::Failed);
}
