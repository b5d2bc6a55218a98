use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::client::{ClientConfig, ClientShared};
use crate::plan::{Plan, PlanOptions};
use crate::run::EventKind;
use crate::testutil;

fn info() -> RunInfo {
    RunInfo {
        id: "test-run".into(),
        scenario: "test".into(),
        tags: Default::default(),
    }
}

fn load(users: u64) -> LoadSettings {
    LoadSettings {
        users,
        spawn_rate: None,
        run_time: None,
        iterations: None,
        stop_timeout: None,
    }
}

async fn run(url: &str, load: LoadSettings, controls: Controls) -> RunOutput {
    let plan = Plan::single(
        url,
        http::Method::GET,
        Default::default(),
        &PlanOptions::default(),
    )
    .unwrap();
    let client = ClientShared::new(ClientConfig::default()).unwrap();
    Executor::new(Arc::new(plan), load, client, info())
        .tick(Duration::from_millis(100))
        .run(controls)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iteration_budget_is_exact_across_users() {
    let srv = testutil::http1().await;
    let out = run(
        &srv.url("/"),
        LoadSettings {
            iterations: Some(1000),
            ..load(7)
        },
        Controls::new(),
    )
    .await;
    let total = out.stats.aggregate();
    assert_eq!(total.count, 1000);
    assert_eq!(total.failures, 0);
    assert_eq!(
        srv.requests.load(std::sync::atomic::Ordering::Relaxed),
        1000
    );
    assert_eq!(out.stop_reason, StopReason::Iterations);
    // Each user opened exactly one keep-alive connection.
    assert_eq!(total.new_connections, 7);
    assert_eq!(total.connect.len(), 7);
    assert_eq!(total.ttfb.len(), 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_time_bounds_the_run_and_the_series_has_points() {
    let srv = testutil::http1().await;
    let out = run(
        &srv.url("/slow?ms=20"),
        LoadSettings {
            run_time: Some(Duration::from_millis(1000)),
            ..load(4)
        },
        Controls::new(),
    )
    .await;
    assert_eq!(out.stop_reason, StopReason::RunTime);
    assert!(
        out.duration >= Duration::from_millis(1000) && out.duration < Duration::from_millis(1500),
        "{:?}",
        out.duration
    );
    let n = out.stats.aggregate().count;
    // 4 users × 1 s / ~21 ms per request ≈ 190; allow for a slow machine.
    assert!((60..=210).contains(&n), "{n}");
    let points = out.series.points();
    assert!(points.len() >= 8, "{}", points.len());
    assert_eq!(points.iter().map(|p| p.requests).sum::<u64>(), n);
    let kinds: Vec<EventKind> = out.timeline.iter().map(|e| e.kind).collect();
    assert_eq!(kinds.first(), Some(&EventKind::RunStarted));
    assert!(kinds.contains(&EventKind::UsersSpawned) && kinds.contains(&EventKind::StopRequested));
    assert_eq!(kinds.last(), Some(&EventKind::RunFinished));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_lets_in_flight_requests_finish() {
    let srv = testutil::http1().await;
    let out = run(
        &srv.url("/slow?ms=400"),
        LoadSettings {
            run_time: Some(Duration::from_millis(100)),
            stop_timeout: Some(Duration::from_secs(5)),
            ..load(3)
        },
        Controls::new(),
    )
    .await;
    let t = out.stats.aggregate();
    assert_eq!((t.count, t.failures), (3, 0));
    assert!(!out.killed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_timeout_abandons_slow_requests() {
    let srv = testutil::http1().await;
    let out = run(
        &srv.url("/slow?ms=3000"),
        LoadSettings {
            run_time: Some(Duration::from_millis(100)),
            stop_timeout: Some(Duration::from_millis(100)),
            ..load(3)
        },
        Controls::new(),
    )
    .await;
    assert!(out.killed);
    assert!(out.duration < Duration::from_secs(1), "{:?}", out.duration);
    assert_eq!(out.stats.aggregate().count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_then_kill_from_outside() {
    let srv = testutil::http1().await;
    let controls = Controls::new();
    let c2 = controls.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        c2.stop(StopReason::Interrupted);
        tokio::time::sleep(Duration::from_millis(100)).await;
        c2.kill();
    });
    let out = run(&srv.url("/slow?ms=5000"), load(2), controls).await;
    assert_eq!(out.stop_reason, StopReason::Interrupted);
    assert!(out.killed);
    assert!(out.duration < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_target_is_counted_not_fatal() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = run(
        &format!("http://127.0.0.1:{port}/"),
        LoadSettings {
            iterations: Some(50),
            ..load(2)
        },
        Controls::new(),
    )
    .await;
    let t = out.stats.aggregate();
    assert_eq!((t.count, t.failures), (50, 50));
    let kinds = out.stats.errors.by_kind();
    assert_eq!(kinds, vec![(crate::sample::ErrorKind::Refused, 50)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_errors_are_failures_with_readable_messages() {
    let srv = testutil::http1().await;
    let out = run(
        &srv.url("/status/503"),
        LoadSettings {
            iterations: Some(20),
            ..load(2)
        },
        Controls::new(),
    )
    .await;
    let errs = out.stats.errors.sorted();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].message, "HTTP 503 Service Unavailable");
    assert_eq!(errs[0].count, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_start_at_the_spawn_rate() {
    let srv = testutil::http1().await;
    let out = run(
        &srv.url("/slow?ms=10"),
        LoadSettings {
            spawn_rate: Some(10.0),
            run_time: Some(Duration::from_millis(1200)),
            ..load(6)
        },
        Controls::new(),
    )
    .await;
    let spawned = out
        .timeline
        .iter()
        .find(|e| e.kind == EventKind::UsersSpawned)
        .expect("all users spawned");
    // 6 users at 10/s: the last starts at 0.5 s.
    assert!(
        (0.45..0.9).contains(&spawned.elapsed_s),
        "{}",
        spawned.elapsed_s
    );
    let points = out.series.points();
    assert!(points.first().unwrap().users < 6, "{:?}", points.first());
    assert_eq!(points[points.len() - 2].users, 6);
}
