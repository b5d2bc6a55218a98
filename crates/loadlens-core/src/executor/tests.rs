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
    LoadSettings::closed(users)
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
    // The 3 requests cut off are counted, as failures of kind `interrupted`, not lost.
    let agg = out.stats.aggregate();
    assert_eq!((agg.count, agg.failures), (3, 3));
    let kinds = out.stats.errors.by_kind();
    assert_eq!(
        kinds,
        vec![(crate::sample::ErrorKind::Interrupted, 3)],
        "{kinds:?}"
    );
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
    assert!(points.iter().any(|p| p.users == 6), "{points:?}");
}

fn plan(url: &str) -> Arc<Plan> {
    Arc::new(
        Plan::single(
            url,
            http::Method::GET,
            Default::default(),
            &PlanOptions::default(),
        )
        .unwrap(),
    )
}

fn open_load(rate: f64, pre: u64, max: u64, run_time: Duration) -> LoadSettings {
    LoadSettings {
        run_time: Some(run_time),
        arrival: Some(ArrivalSettings {
            rate_per_s: rate,
            pre_allocated_vus: pre,
            max_vus: max,
        }),
        ..LoadSettings::default()
    }
}

/// The runtime's one thread is blocked for 600 ms near the end of the run: the pacer thread
/// goes on issuing arrivals (1,800 of them) that the driver only sees when its run time is
/// already over. Each arrival intended before the end is still issued or counted as dropped;
/// none is lost.
#[tokio::test]
async fn arrivals_intended_before_the_end_are_issued_however_late_the_driver_sees_them() {
    let srv = testutil::http1().await;
    tokio::spawn(async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        std::thread::sleep(Duration::from_millis(600));
    });
    let out = run(
        &srv.url("/"),
        open_load(3000.0, 50, 2000, Duration::from_millis(1000)),
        Controls::new(),
    )
    .await;
    let a = out.arrivals.as_ref().expect("open-model report");
    assert_eq!(a.intended, 3000, "{a:?}");
    assert_eq!(a.started + a.dropped_iterations, 3000, "{a:?}");
    assert_eq!(out.stats.aggregate().count, a.started, "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn constant_arrival_rate_is_held_with_latency_from_the_intended_start() {
    let srv = testutil::http1().await;
    let out = run(
        &srv.url("/slow?ms=20"),
        open_load(200.0, 10, 50, Duration::from_millis(1500)),
        Controls::new(),
    )
    .await;
    assert_eq!(out.stop_reason, StopReason::RunTime);
    let a = out.arrivals.as_ref().expect("open-model report");
    // 200/s for 1.5 s = 300 arrivals; every one started, none dropped (those still in the
    // channel when the run time ends are issued too).
    assert_eq!(a.intended, 300);
    assert_eq!(a.started, 300, "{a:?}");
    assert_eq!(a.dropped_iterations, 0);
    assert_eq!(out.dropped_iterations, 0);
    assert!(a.achieved_pct >= 95.0, "{a:?}");
    let t = out.stats.aggregate();
    // 20 ms per request at 200/s needs ~4 VUs: the 10 pre-allocated ones serve it. A stall of
    // the machine (other work on both CPUs) holds back arrivals that then need a VU each at
    // once: at most the arrivals of the longest stall plus the slowest request, measured.
    let stall_s = (a.schedule_delay_ms.max + t.latency.quantile_ms(1.0)) / 1000.0;
    let bound = 10 + (200.0 * stall_s).ceil() as u64;
    assert!(a.vus_allocated <= bound.clamp(20, 50), "{a:?}");
    assert_eq!(t.count, a.started);
    assert_eq!(
        srv.requests.load(std::sync::atomic::Ordering::Relaxed),
        t.count
    );
    // The pacer thread starts iterations close to their intended time: the median well within
    // one 5 ms arrival gap on a quiet machine; under other work on both CPUs, within a few gaps.
    assert!(a.schedule_delay_ms.p50 < 25.0, "{:?}", a.schedule_delay_ms);
    // Corrected latency is never below the uncorrected one.
    assert!(t.latency.quantile_ms(0.5) >= 20.0);
    assert!(out.generator.achieved_pct.unwrap() >= 95.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrivals_without_a_free_vu_are_dropped_and_counted() {
    let srv = testutil::http1().await;
    // 100/s against a 300 ms endpoint needs ~30 VUs; only 5 may exist.
    let plan = Plan::single(
        &srv.url("/slow?ms=300"),
        http::Method::GET,
        Default::default(),
        &PlanOptions::default(),
    )
    .unwrap();
    let load = LoadSettings {
        stop_timeout: Some(Duration::from_secs(2)),
        ..open_load(100.0, 1, 5, Duration::from_millis(1000))
    };
    let client = ClientShared::new(ClientConfig::default()).unwrap();
    let ex = Executor::new(Arc::new(plan), load, client, info()).tick(Duration::from_millis(100));
    let mut snapshots = ex.snapshots();
    // Every snapshot carries the count so far (sinks export it per interval).
    let seen = tokio::spawn(async move {
        let mut seen = Vec::new();
        while snapshots.changed().await.is_ok() {
            if let Some(s) = snapshots.borrow_and_update().as_ref() {
                seen.push(s.dropped_iterations);
            }
        }
        seen
    });
    let out = ex.run(Controls::new()).await;
    let seen = seen.await.unwrap();
    assert!(seen.len() >= 5, "{seen:?}");
    assert!(seen.iter().all(Option::is_some), "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
    assert!(
        seen[..seen.len() - 1].iter().any(|d| d.unwrap() > 0),
        "{seen:?}"
    );
    // The last snapshot is taken after the lanes ended: its count is the run's.
    assert_eq!(seen.last().copied().flatten(), Some(out.dropped_iterations));
    let a = out.arrivals.as_ref().unwrap();
    assert_eq!(a.vus_allocated, 5);
    assert_eq!(a.started + a.dropped_iterations, 100, "{a:?}");
    // 5 VUs × ~3.3 iterations/s each over 1 s ≈ 20 started; the rest dropped.
    assert!((15..=30).contains(&a.started), "{a:?}");
    assert_eq!(out.dropped_iterations, a.dropped_iterations);
    assert!(!out.generator.healthy);
    assert!(
        out.generator
            .reasons
            .iter()
            .any(|r| r.contains("intended arrivals")),
        "{:?}",
        out.generator.reasons
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ramping_arrival_rate_follows_its_stages() {
    let srv = testutil::http1().await;
    // 0 → 200/s over 1 s (100 arrivals), then 200/s for 0.5 s (100 more).
    let out = run(
        &srv.url("/"),
        LoadSettings {
            stages: profile::parse_stages("1s:200,500ms:200").unwrap(),
            arrival: Some(ArrivalSettings {
                rate_per_s: 0.0,
                pre_allocated_vus: 5,
                max_vus: 20,
            }),
            ..LoadSettings::default()
        },
        Controls::new(),
    )
    .await;
    let a = out.arrivals.as_ref().unwrap();
    assert_eq!(a.intended, 200);
    assert!((195..=200).contains(&a.started), "{a:?}");
    let points = out.series.points();
    // The rate rises: fewer requests in the first interval than in the last full one.
    let first = points.first().unwrap().requests;
    let late = points[points.len() - 3].requests;
    assert!(first < late, "{first} vs {late}: {points:?}");
    let stages = out
        .timeline
        .iter()
        .filter(|e| e.kind == EventKind::StageChanged)
        .count();
    assert_eq!(stages, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_stages_ramp_users_up_and_down() {
    let srv = testutil::http1().await;
    let out = run(
        &srv.url("/slow?ms=10"),
        LoadSettings {
            stages: profile::parse_stages("500ms:10,500ms:10,500ms:0").unwrap(),
            ..LoadSettings::default()
        },
        Controls::new(),
    )
    .await;
    assert_eq!(out.stop_reason, StopReason::RunTime);
    assert!(
        out.duration >= Duration::from_millis(1500) && out.duration < Duration::from_millis(2200),
        "{:?}",
        out.duration
    );
    let users: Vec<u64> = out.series.points().iter().map(|p| p.users).collect();
    // Ticks every 100 ms: rising, holding at 10, falling.
    let peak = users.iter().copied().max().unwrap();
    assert_eq!(peak, 10, "{users:?}");
    assert!(users[0] < 10, "{users:?}");
    let at_peak = users.iter().position(|u| *u == 10).unwrap();
    assert!(users[at_peak..].iter().any(|u| *u < 5), "{users:?}");
    let kinds: Vec<EventKind> = out.timeline.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == EventKind::StageChanged)
            .count(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_scenarios_run_side_by_side_with_offsets_and_report_separately() {
    let srv = testutil::http1().await;
    let client = ClientShared::new(ClientConfig::default()).unwrap();
    let p = plan(&srv.url("/"));
    let scenarios = vec![
        ScenarioRun {
            name: "steady".into(),
            plan: p.clone(),
            load: open_load(100.0, 2, 10, Duration::from_millis(1000)),
            start_time: Duration::ZERO,
        },
        ScenarioRun {
            name: "late".into(),
            plan: p,
            load: LoadSettings {
                iterations: Some(40),
                ..LoadSettings::closed(2)
            },
            start_time: Duration::from_millis(500),
        },
    ];
    let out = Executor::scenarios(scenarios, client, info())
        .tick(Duration::from_millis(100))
        .run(Controls::new())
        .await;
    assert_eq!(out.scenarios.len(), 2);
    let steady = &out.scenarios[0];
    let late = &out.scenarios[1];
    assert_eq!(late.stats.aggregate().count, 40);
    let s = steady.stats.aggregate().count;
    assert!((95..=100).contains(&s), "{s}");
    assert_eq!(out.stats.aggregate().count, s + 40);
    assert!(steady.arrivals.is_some() && late.arrivals.is_none());
    let started = out
        .timeline
        .iter()
        .find(|e| e.message.starts_with("scenario late started"))
        .expect("late start event");
    assert!(started.elapsed_s >= 0.5, "{}", started.elapsed_s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_threshold_with_abort_stops_the_run_after_its_delay() {
    let srv = testutil::http1().await;
    let client = ClientShared::new(ClientConfig::default()).unwrap();
    let out = Executor::new(
        plan(&srv.url("/status/500")),
        LoadSettings {
            run_time: Some(Duration::from_secs(10)),
            ..LoadSettings::closed(2)
        },
        client,
        info(),
    )
    .tick(Duration::from_millis(100))
    .thresholds(vec![
        crate::thresholds::parse("error_rate < 10%, abort after 400ms").unwrap(),
        crate::thresholds::parse("p99 < 10s").unwrap(),
    ])
    .run(Controls::new())
    .await;
    let StopReason::Aborted(why) = &out.stop_reason else {
        panic!("{:?}", out.stop_reason)
    };
    assert!(why.contains("error_rate < 10%"), "{why}");
    assert!(
        out.duration >= Duration::from_millis(400) && out.duration < Duration::from_secs(2),
        "{:?}",
        out.duration
    );
    assert_eq!(out.breaches.len(), 1);
    assert!(out.breaches[0].aborted);
    let breached = out
        .timeline
        .iter()
        .filter(|e| e.kind == EventKind::ThresholdBreached)
        .count();
    assert_eq!(breached, 2, "{:?}", out.timeline);
}

/// Collects every sample through a tap, like a trace exporter would.
struct Collect(Arc<std::sync::Mutex<Vec<crate::sample::Sample>>>);

impl crate::sink::Sink for Collect {
    fn name(&self) -> &str {
        "collect"
    }
    fn sample_tap(&mut self) -> Option<crate::sink::SampleTap> {
        let (tap, mut rx) = crate::sink::SampleTap::new(10_000);
        let out = self.0.clone();
        tokio::spawn(async move {
            while let Some(s) = rx.recv().await {
                out.lock().unwrap().push(s);
            }
        });
        Some(tap)
    }
    fn finish(self: Box<Self>, _: &crate::report::Summary) -> crate::sink::FinishFuture {
        Box::pin(async { crate::sink::SinkReport::default() })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_gives_every_request_its_own_span_ids() {
    let srv = testutil::http1().await;
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let client = ClientShared::new(ClientConfig::default()).unwrap();
    let out = Executor::new(
        plan(&srv.url("/")),
        LoadSettings {
            iterations: Some(50),
            ..load(2)
        },
        client,
        info(),
    )
    .tracing(crate::sample::TraceSettings::new("test-run", 1.0))
    .sink(Box::new(Collect(got.clone())))
    .run(Controls::new())
    .await;
    assert_eq!(out.stats.aggregate().count, 50);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let samples = got.lock().unwrap().clone();
    assert_eq!(samples.len(), 50);
    let mut spans: Vec<u64> = samples.iter().map(|s| s.trace.unwrap().span_id).collect();
    spans.sort();
    spans.dedup();
    assert_eq!(spans.len(), 50, "distinct span ids");
    assert!(samples
        .iter()
        .all(|s| s.trace.unwrap().sampled && s.url.as_deref() == Some(srv.url("/").as_str())));
    assert!(samples
        .iter()
        .all(|s| s.protocol == Some("1.1") && s.task == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_user_count_can_be_changed_during_the_run() {
    let srv = testutil::http1().await;
    let controls = Controls::new();
    let c = controls.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.set_users(8);
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.set_users(0);
    });
    let out = run(
        &srv.url("/slow?ms=10"),
        LoadSettings {
            run_time: Some(Duration::from_millis(1500)),
            ..load(2)
        },
        controls.clone(),
    )
    .await;
    // Zero users pause the load; the run still lasts its run time.
    assert_eq!(out.stop_reason, StopReason::RunTime);
    assert_eq!(controls.load_target().users, Some(0));
    let users: Vec<u64> = out.series.points().iter().map(|p| p.users).collect();
    assert_eq!(users[0], 2, "{users:?}");
    assert_eq!(users.iter().copied().max(), Some(8), "{users:?}");
    assert_eq!(*users.last().unwrap(), 0, "{users:?}");
    let changes: Vec<&str> = out
        .timeline
        .iter()
        .filter(|e| e.kind == EventKind::StageChanged)
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(
        changes,
        ["load changed to 8 users", "load changed to 0 users"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_arrival_rate_can_be_changed_during_the_run() {
    let srv = testutil::http1().await;
    let controls = Controls::new();
    let c = controls.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        c.set_arrival_rate(300.0);
    });
    let out = run(
        &srv.url("/"),
        open_load(100.0, 10, 50, Duration::from_millis(2000)),
        controls,
    )
    .await;
    let a = out.arrivals.as_ref().unwrap();
    // 100/s until the change (about 1 s in; later on a loaded machine), then 300/s: what is
    // intended is the integral of the rate actually asked for.
    let at = out
        .timeline
        .iter()
        .find(|e| e.message == "load changed to 300 arrivals/s")
        .expect("the change is on the timeline")
        .elapsed_s;
    let expected = 100.0 * at + 300.0 * (2.0 - at);
    assert!(
        (a.intended as f64 - expected).abs() <= 10.0,
        "changed at {at:.3}s, expected {expected:.0}: {a:?}"
    );
    // How many of them started depends on the machine (a stalled one drops some); that the
    // rate changed shows in what completed before and after.
    // `intended` is the rounded integral of the rate; arrivals leave at discrete instants (the
    // first at 0 s), so a couple more may have left by the stop.
    assert!(a.started + a.dropped_iterations <= a.intended + 3, "{a:?}");
    let rate = |from: f64, to: f64| {
        let pts: Vec<_> = out
            .series
            .points()
            .into_iter()
            .filter(|p| p.elapsed_s > from && p.elapsed_s <= to)
            .collect();
        pts.iter().map(|p| p.requests).sum::<u64>() as f64
            / pts.iter().map(|p| p.span_s).sum::<f64>()
    };
    let (before, after) = (rate(0.2, at), rate(at + 0.3, 2.0));
    assert!(after > before * 2.0, "{before:.0}/s then {after:.0}/s");
    assert!(out
        .timeline
        .iter()
        .any(|e| e.message == "load changed to 300 arrivals/s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_time_cap_ends_every_scenario_and_later_ones_never_start() {
    let srv = testutil::http1().await;
    let client = ClientShared::new(ClientConfig::default()).unwrap();
    let p = plan(&srv.url("/"));
    let scenarios = vec![
        ScenarioRun {
            name: "long".into(),
            plan: p.clone(),
            load: open_load(50.0, 2, 10, Duration::from_secs(10)),
            start_time: Duration::ZERO,
        },
        ScenarioRun {
            name: "after".into(),
            plan: p,
            load: LoadSettings {
                run_time: Some(Duration::from_secs(1)),
                ..LoadSettings::closed(2)
            },
            start_time: Duration::from_secs(2),
        },
    ];
    let out = Executor::scenarios(scenarios, client, info())
        .tick(Duration::from_millis(100))
        .run_time_cap(Duration::from_millis(800))
        .run(Controls::new())
        .await;
    assert_eq!(out.stop_reason, StopReason::RunTime);
    assert!(
        out.duration >= Duration::from_millis(800) && out.duration < Duration::from_millis(1500),
        "{:?}",
        out.duration
    );
    // Arrivals begin once the pre-allocated VUs are ready (a tick or two after the start); the
    // cap counts from the run's start.
    let ready = out
        .timeline
        .iter()
        .find(|e| e.message.contains("pre-allocated VUs ready"))
        .map_or(0.0, |e| e.elapsed_s);
    assert!(ready < 0.2, "{ready}");
    let expected = 50.0 * (0.8 - ready);
    // None after the cap. (Fewer may complete on a loaded machine, where late VUs turn some
    // arrivals into dropped iterations; the arrivals themselves are counted exactly below.)
    let long = out.scenarios[0].stats.aggregate().count;
    assert!(
        long as f64 <= expected + 2.0 && long as f64 >= expected / 2.0,
        "50/s for {:.3} s: {long}",
        0.8 - ready
    );
    let a = out.scenarios[0].arrivals.as_ref().unwrap();
    assert!(
        (a.intended as f64 - expected).abs() <= 1.0,
        "intended arrivals stop at the cap: {} vs {expected:.1}",
        a.intended
    );
    assert_eq!(out.scenarios[1].stats.aggregate().count, 0);
    assert!(!out
        .timeline
        .iter()
        .any(|e| e.message.starts_with("scenario after started")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_scoped_by_tag_aborts_when_only_the_tagged_requests_are_slow() {
    let srv = testutil::http1().await;
    let text = format!(
        r#"
host: {}
user_types:
  - name: u
    tasks:
      - {{ tags: [checkout], request: {{ path: "/slow?ms=150", name: pay }} }}
      - {{ weight: 9, request: {{ path: /, name: home }} }}
"#,
        srv.url("")
    );
    let s = crate::scenario::Scenario::from_str_named(&text, "t.yaml").unwrap();
    let plan = Arc::new(Plan::compile(&s, &PlanOptions::default()).unwrap());
    let client = ClientShared::new(ClientConfig::default()).unwrap();
    let out = Executor::new(
        plan,
        LoadSettings {
            run_time: Some(Duration::from_secs(10)),
            ..LoadSettings::closed(4)
        },
        client,
        info(),
    )
    .tick(Duration::from_millis(100))
    .thresholds(vec![
        crate::thresholds::parse("p50 < 100ms").unwrap(),
        crate::thresholds::parse("p50{tag:checkout} < 100ms, abort after 500ms").unwrap(),
    ])
    .run(Controls::new())
    .await;
    let StopReason::Aborted(why) = &out.stop_reason else {
        panic!("{:?}", out.stop_reason)
    };
    assert!(why.contains("{tag:checkout}"), "{why}");
    assert!(
        out.duration >= Duration::from_millis(500) && out.duration < Duration::from_secs(3),
        "{:?}",
        out.duration
    );
    // The aggregate p50 stayed fast: only the tag's figures merged the slow name.
    assert_eq!(out.breaches.len(), 1, "{:?}", out.breaches);
    assert_eq!(out.breaches[0].index, 1);
    assert_eq!(out.name_tags.requests("checkout"), ["GET pay"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrivals_start_once_the_pre_allocated_vus_have_run_on_start() {
    let srv = testutil::http1().await;
    // Each VU logs in for 300 ms first. Arrivals that came during the login would find no VU
    // idle, start more VUs (each logging in for 300 ms too) and begin 300 ms late.
    let yaml = r#"
name: login-first
user_types:
  - name: u
    on_start:
      - request: { path: "/slow?ms=300", name: login }
    tasks:
      - request: { path: "/slow?ms=10", name: work }
"#;
    let scenario = crate::scenario::Scenario::from_str_named(yaml, "login.yaml").unwrap();
    let plan = Plan::compile(
        &scenario,
        &PlanOptions {
            host: Some(srv.url("")),
            ..PlanOptions::default()
        },
    )
    .unwrap();
    let client = ClientShared::new(ClientConfig::default()).unwrap();
    let out = Executor::new(
        Arc::new(plan),
        open_load(50.0, 5, 50, Duration::from_millis(1000)),
        client,
        info(),
    )
    .tick(Duration::from_millis(100))
    .run(Controls::new())
    .await;
    let a = out.arrivals.as_ref().expect("open-model report");
    assert_eq!(a.intended, 50, "{a:?}");
    assert_eq!(a.dropped_iterations, 0);
    // 50/s of 10 ms requests keep less than one VU busy: the five logged-in VUs serve them all,
    // with their p50 on time. Only a stall of the machine (other work on both CPUs) holds
    // arrivals back so that they need more VUs at once: at most one per arrival of the longest
    // stall, measured. Arrivals during the logins would need ~15 more and start 300 ms late.
    let stalled = (50.0 * a.schedule_delay_ms.max / 1000.0).ceil() as u64;
    assert!(a.vus_allocated <= 5 + stalled, "{a:?}");
    assert!(a.schedule_delay_ms.p50 < 100.0, "{:?}", a.schedule_delay_ms);
    // The run time counts from the first arrival, after the logins.
    assert!(
        out.duration >= Duration::from_millis(1300),
        "{:?}",
        out.duration
    );
    let ready = out
        .timeline
        .iter()
        .find(|e| e.message.contains("5 pre-allocated VUs ready after"))
        .unwrap_or_else(|| panic!("no readiness event in {:?}", out.timeline));
    assert!(ready.elapsed_s >= 0.3, "{ready:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pre_allocated_vus_connect_before_the_first_arrival() {
    let srv = testutil::http1().await;
    let out = run(
        &srv.url("/"),
        open_load(50.0, 3, 10, Duration::from_millis(600)),
        Controls::new(),
    )
    .await;
    let a = out.arrivals.as_ref().expect("open-model report");
    assert_eq!(a.dropped_iterations, 0);
    // The three pre-allocated VUs serve 50/s of fast requests; only a stall of the machine
    // (other work on both CPUs) holds arrivals back so that they need more VUs at once: at
    // most one per arrival of the longest stall, measured.
    let stalled = (50.0 * a.schedule_delay_ms.max / 1000.0).ceil() as u64;
    assert!(a.vus_allocated <= 3 + stalled, "{a:?}");
    // Every request went out on a connection its VU opened while waiting for work.
    let t = out.stats.aggregate();
    assert_eq!(t.count, a.started);
    assert!(t.count >= 25, "{a:?}");
    assert_eq!(t.new_connections, 0, "requests opened connections");
    assert!(t.connect.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traced_requests_carry_their_own_traceparent_and_the_run_baggage_joins_theirs() {
    let srv = testutil::http1().await;
    // `/echo-headers` answers with the headers it received; the checks read them.
    let yaml = r#"
name: baggage
vars: { team: checkout }
user_types:
  - name: u
    tasks:
      - name: t
        steps:
          - request:
              path: /echo-headers
              name: plain
              check:
                - body_contains: "baggage: loadtest.run_id=run%201,loadtest.synthetic=true\n"
                # A trace id that is not all zeros: the plan's placeholder never goes out.
                - body_matches: "traceparent: 00-[0-9a-f]*[1-9a-f][0-9a-f]*-[0-9a-f]{16}-0[01]\n"
          - request:
              path: /echo-headers
              name: fixed
              headers: { baggage: "team=search" }
              check: [{ body_contains: "baggage: team=search,loadtest.run_id=run%201,loadtest.synthetic=true\n" }]
          - request:
              path: /echo-headers
              name: templated
              headers: { baggage: "team={{ team }}" }
              check: [{ body_contains: "baggage: team=checkout,loadtest.run_id=run%201,loadtest.synthetic=true\n" }]
"#;
    let scenario = crate::scenario::Scenario::from_str_named(yaml, "baggage.yaml").unwrap();
    let plan = Plan::compile(
        &scenario,
        &PlanOptions {
            host: Some(srv.url("")),
            ..PlanOptions::default()
        },
    )
    .unwrap();
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let client = ClientShared::new(ClientConfig::default()).unwrap();
    let out = Executor::new(
        Arc::new(plan),
        LoadSettings {
            iterations: Some(10),
            ..load(2)
        },
        client,
        info(),
    )
    .tracing(crate::sample::TraceSettings::new("run 1", 0.5))
    .sink(Box::new(Collect(got.clone())))
    .run(Controls::new())
    .await;
    let agg = out.stats.aggregate();
    assert_eq!((agg.count, agg.failures), (30, 0), "{:?}", out.stats);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let samples = got.lock().unwrap().clone();
    assert_eq!(samples.len(), 30);
    let mut sampled = 0;
    for s in &samples {
        let ids = s.trace.expect("trace ids");
        assert_ne!(ids.trace_id, 0);
        sampled += usize::from(ids.sampled);
    }
    assert!(
        sampled > 0 && sampled < 30,
        "{sampled} of 30 sampled at 50 %"
    );
}

/// `stop` is read between the steps of a task and between the items of a loop (not after
/// every request): a user in a long task or loop still stops after the request in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_stops_between_steps_and_between_loop_items() {
    let srv = testutil::http1().await;
    let slow = r#"- request: { path: "/slow?ms=100" }"#;
    let items: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    let a_loop = format!(
        "- for: i\n  in: [{}]\n  steps:\n    {slow}",
        items.join(", ")
    );
    let forty_steps = vec![slow; 40].join("\n");
    for steps in [a_loop, forty_steps] {
        let steps = steps.replace('\n', "\n          ");
        let yaml = format!(
            "host: {}\nuser_types:\n  - name: u\n    tasks:\n      - steps:\n          {steps}\n",
            srv.url("")
        );
        let s = crate::scenario::Scenario::from_str_named(&yaml, "t.yaml").unwrap();
        let plan = Plan::compile(&s, &PlanOptions::default()).unwrap();
        let client = ClientShared::new(ClientConfig::default()).unwrap();
        let out = Executor::new(
            Arc::new(plan),
            LoadSettings {
                run_time: Some(Duration::from_millis(250)),
                stop_timeout: Some(Duration::from_secs(10)),
                ..load(2)
            },
            client,
            info(),
        )
        .tick(Duration::from_millis(100))
        .run(Controls::new())
        .await;
        // Each user is in its third request when the run stops at 250 ms: it finishes that
        // one (a graceful stop) and takes no other. Running on would take 40 requests of
        // 100 ms each.
        let t = out.stats.aggregate();
        assert!((2..=8).contains(&t.count), "{} requests\n{yaml}", t.count);
        assert_eq!(t.failures, 0);
        assert!(!out.killed);
        assert!(out.duration < Duration::from_secs(2), "{:?}", out.duration);
    }
}
