//! The aggregator: the executor's second half, in a task of its own so that a slow sink hook
//! never delays spawning or stopping users. Once per tick (1 s by default) it
//!
//! 1. drains every lane's [`Recorder`] into one [`Snapshot`] (per-scenario figures too when
//!    the run has several scenarios), through [`stats::Aggregator`](crate::stats::Aggregator);
//! 2. samples the generator's own health ([`HealthMonitor`]) into [`Snapshot::health`];
//! 3. checks the guards (thresholds) on it: breaches become timeline events, an abort stops the
//!    run through [`Controls`];
//! 4. with planned flips (`actions:`), adds the interval to the current segment and, at a
//!    flip's time (an extra tick then, outside the schedule), starts the next segment and asks for the flip ([`Actions::planned`]); the
//!    segments' own HDR histograms make the before/after comparison exact. A threshold with
//!    `on_fail` asks for its actions when it first fails ([`Actions::guard`]); neither waits;
//! 5. fans the new timeline events and the snapshot out to the sinks, then publishes the
//!    snapshot to the live views (`watch` channel).
//!
//! When the executor stops it (after every user ended), it takes one last snapshot, so the
//! final one holds the run's complete figures, and hands back what the reports need.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Controls, Flip, Shared, StopReason};
use crate::actions::Actions;
use crate::breakdown::BreakdownSource;
use crate::client::ClientShared;
use crate::health::HealthMonitor;
use crate::report::Segment;
use crate::run::{EventKind, TimelineEvent};
use crate::sink::Sink;
use crate::stats::{self, Recorder, RequestSummary, Snapshot, StatsSet};
use crate::thresholds::{Guard, NameTags, Observed, Scope, Threshold};

/// The aggregator's view of one lane.
pub(super) struct LaneView {
    /// Scenario name (empty for a plain run).
    pub name: String,
    /// Its users count and recorder.
    pub shared: Arc<Shared>,
    /// Open model: its dropped-iterations counter.
    pub dropped: Option<Arc<AtomicU64>>,
    /// Open model: its started-iterations counter (with `dropped`, the arrivals issued).
    pub started: Option<Arc<AtomicU64>>,
}

/// Everything the aggregator task needs, handed over when it starts.
pub(super) struct Inputs {
    /// One view per lane, in lane order.
    pub lanes: Vec<LaneView>,
    /// `(method, name)` pairs in `NameId` order.
    pub names: Vec<(String, String)>,
    /// Where the breakdown of joined spans comes from (a trace receiver), if any.
    pub breakdown: Option<Arc<dyn BreakdownSource>>,
    /// The thresholds checked on every snapshot.
    pub thresholds: Vec<Threshold>,
    /// The task tags of each request name, for thresholds scoped by tag.
    pub name_tags: NameTags,
    /// To abort the run when a threshold says so.
    pub controls: Controls,
    /// The sinks, given back at the end.
    pub sinks: Vec<Box<dyn Sink>>,
    /// The live views' channel.
    pub snapshots: watch::Sender<Option<Arc<Snapshot>>>,
    /// The run's timeline, shared with the driver and the sinks.
    pub timeline: Arc<Mutex<Vec<TimelineEvent>>>,
    /// The client, for its open connections.
    pub client: Arc<ClientShared>,
    /// Aggregation interval.
    pub tick: Duration,
    /// When the run started.
    pub start: Instant,
    /// Guard actions and planned flips (none: no action configured).
    pub actions: Option<Actions>,
    /// Planned flips, by time.
    pub flips: Vec<Flip>,
}

/// What the aggregator hands back after its last snapshot.
pub(super) struct Finished {
    /// The run's aggregator: cumulative stats and time series.
    pub total: stats::Aggregator,
    /// Per lane: its name and, with several scenarios, its own aggregator.
    pub lanes: Vec<(String, Option<stats::Aggregator>)>,
    /// The sinks, to be finished by the caller.
    pub sinks: Vec<Box<dyn Sink>>,
    /// The thresholds' breaches.
    pub guard: Guard,
    /// The generator's health over the run.
    pub health: HealthMonitor,
    /// The run cut at its planned flips (empty without flips).
    pub segments: Vec<Segment>,
    /// How many timeline events were fanned out to the sinks.
    pub events_fanned_out: usize,
}

/// Start the aggregator task. Cancelling `stop` makes it take its last snapshot and return.
pub(super) fn spawn(inputs: Inputs, stop: CancellationToken) -> JoinHandle<Finished> {
    tokio::spawn(run(inputs, stop))
}

async fn run(inputs: Inputs, stop: CancellationToken) -> Finished {
    let Inputs {
        lanes,
        names,
        breakdown,
        thresholds,
        name_tags,
        controls,
        mut sinks,
        snapshots,
        timeline,
        client,
        tick,
        start,
        actions,
        mut flips,
    } = inputs;
    flips.sort_by_key(|f| f.at);
    let mut next_flip = 0;
    let mut segments: Vec<Segment> = if flips.is_empty() {
        Vec::new()
    } else {
        vec![Segment {
            start: Duration::ZERO,
            end: Duration::ZERO,
            cause: String::new(),
            stats: StatsSet::new(names.len()),
        }]
    };
    let single = lanes.len() == 1;
    let n_names = names.len();
    // With several scenarios each lane has its own aggregator and the run's merges them.
    let mut views: Vec<(LaneView, Option<stats::Aggregator>)> = lanes
        .into_iter()
        .map(|v| {
            let agg =
                (!single).then(|| stats::Aggregator::new(v.shared.recorder.clone(), names.clone()));
            (v, agg)
        })
        .collect();
    let total_recorder = if single {
        views[0].0.shared.recorder.clone()
    } else {
        Recorder::new(n_names)
    };
    let mut agg = stats::Aggregator::new(total_recorder, names);
    let mut guard = Guard::new(thresholds.clone());
    // Tag scopes merge their names' cumulative figures on each tick (none: no cost).
    let by_tag: Vec<Threshold> = thresholds
        .into_iter()
        .filter(|t| matches!(t.scope, Scope::Tag(_)))
        .collect();

    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut health = HealthMonitor::new();
    let mut seen_events = 0;
    // Arrivals issued (started + dropped) at the previous tick, for the interval's rate.
    let mut arrivals_before: Option<(u64, std::time::Duration)> = None;
    loop {
        // How late a scheduled tick fired; the final snapshot is not a scheduled tick.
        // A planned flip gets a tick of its own at its time, so that its segments begin there.
        let flip_due = flips
            .get(next_flip)
            .map(|f| tokio::time::Instant::from_std(start + f.at));
        let (last, sched_delay) = tokio::select! {
            due = interval.tick() => (false, Some(tokio::time::Instant::now().saturating_duration_since(due))),
            _ = stop.cancelled() => (true, None),
            _ = tokio::time::sleep_until(flip_due.unwrap_or_else(tokio::time::Instant::now)), if flip_due.is_some() => (false, None),
        };
        let elapsed = start.elapsed();
        // Requests' wall-clock starts follow a step of the system clock from here on.
        crate::wall::reanchor();
        let users = views
            .iter()
            .map(|(v, _)| v.shared.users.load(Ordering::Relaxed))
            .sum();
        let mut per_scenario: Vec<(String, RequestSummary)> = Vec::new();
        let mut scenario_intervals = Vec::new();
        let mut snap = if single {
            let snap = agg.tick(elapsed, users);
            // One named scenario (picked with --scenario) is the whole run.
            if !views[0].0.name.is_empty() {
                per_scenario.push((views[0].0.name.clone(), snap.total.clone()));
                scenario_intervals.push((views[0].0.name.clone(), snap.interval.clone()));
            }
            snap
        } else {
            let mut merged = StatsSet::new(n_names);
            for (v, a) in &mut views {
                let Some(a) = a.as_mut() else { continue };
                let s = a.tick(elapsed, v.shared.users.load(Ordering::Relaxed));
                merged.merge(&s.interval);
                per_scenario.push((v.name.clone(), s.total.clone()));
                scenario_intervals.push((v.name.clone(), s.interval.clone()));
            }
            agg.tick_with(merged, elapsed, users)
        };
        snap.scenarios = scenario_intervals;
        // The open-model lanes' counters: in the last snapshot, taken after every lane
        // ended, this is the run's final count.
        snap.dropped_iterations = views
            .iter()
            .filter_map(|(v, _)| v.dropped.as_ref())
            .map(|d| d.load(Ordering::Relaxed))
            .reduce(|a, b| a + b);
        let arrivals = views
            .iter()
            .filter_map(|(v, _)| v.started.as_ref())
            .map(|s| s.load(Ordering::Relaxed))
            .reduce(|a, b| a + b)
            .map(|started| started + snap.dropped_iterations.unwrap_or(0));
        snap.arrival_rate = arrivals.map(|now| {
            let (before, at) = arrivals_before.unwrap_or_default();
            let span = elapsed.saturating_sub(at).as_secs_f64();
            arrivals_before = Some((now, elapsed));
            if span > 0.0 {
                now.saturating_sub(before) as f64 / span
            } else {
                0.0
            }
        });
        snap.health = health.sample(Some(client.open_connections()), sched_delay);
        snap.breakdown = breakdown.as_ref().and_then(|b| b.latest());
        let snap = Arc::new(snap);
        if !guard.is_empty() {
            let gh = health.report(None);
            let tags = name_tags.summaries(&by_tag, agg.cumulative(), elapsed);
            let observed = Observed {
                aggregate: &snap.total,
                requests: &snap.requests,
                scenarios: &per_scenario,
                tags: &tags,
                dropped_iterations: snap.dropped_iterations.unwrap_or(0),
                generator: Some(&gh),
                breakdown: snap.breakdown.as_deref(),
            };
            let seen = guard.breaches().len();
            let (breached, abort) = guard.check(&observed, elapsed);
            // New breaches come in the order of their messages: ask for their actions.
            if let Some(a) = &actions {
                for (b, why) in guard.breaches()[seen..].iter().zip(&breached) {
                    for action in &guard.thresholds()[b.index].on_fail {
                        a.guard(why, action);
                    }
                }
            }
            let mut events: Vec<TimelineEvent> = breached
                .into_iter()
                .map(|m| TimelineEvent::now(elapsed, EventKind::ThresholdBreached, m))
                .collect();
            if let Some(why) = abort {
                events.push(TimelineEvent::now(
                    elapsed,
                    EventKind::ThresholdBreached,
                    format!("aborting the run: {why}"),
                ));
                controls.stop(StopReason::Aborted(why));
            }
            timeline
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .append(&mut events);
        }
        if let Some(seg) = segments.last_mut() {
            seg.stats.merge(&snap.interval);
            seg.end = elapsed;
        }
        while let Some(f) = flips.get(next_flip).filter(|f| !last && elapsed >= f.at) {
            next_flip += 1;
            segments.push(Segment {
                start: elapsed,
                end: elapsed,
                cause: f.cause.clone(),
                stats: StatsSet::new(n_names),
            });
            if let Some(a) = &actions {
                a.planned(&f.cause, &f.action, f.restore);
            }
        }
        {
            let tl = timeline.lock().unwrap_or_else(|p| p.into_inner());
            for e in &tl[seen_events..] {
                for s in &mut sinks {
                    s.on_event(e);
                }
            }
            seen_events = tl.len();
        }
        for s in &mut sinks {
            s.on_snapshot(&snap);
        }
        snapshots.send_replace(Some(snap));
        if last {
            return Finished {
                total: agg,
                lanes: views.into_iter().map(|(v, a)| (v.name, a)).collect(),
                sinks,
                guard,
                health,
                segments,
                events_fanned_out: seen_events,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientConfig;
    use crate::executor::{Executor, LoadSettings, RunOutput};
    use crate::plan::{Plan, PlanOptions};
    use crate::run::RunInfo;
    use crate::testutil;

    /// Keeps every snapshot the aggregator publishes.
    struct Keep(Arc<Mutex<Vec<Arc<Snapshot>>>>);

    impl Sink for Keep {
        fn name(&self) -> &str {
            "keep"
        }
        fn on_snapshot(&mut self, s: &Arc<Snapshot>) {
            self.0.lock().unwrap().push(s.clone());
        }
        fn finish(self: Box<Self>, _: &crate::report::Summary) -> crate::sink::FinishFuture {
            Box::pin(async { crate::sink::SinkReport::default() })
        }
    }

    /// Run `users` closed-model users against `url` for `run_time`, ticking every 100 ms.
    async fn run(url: &str, users: u64, run_time: Duration) -> (RunOutput, Vec<Arc<Snapshot>>) {
        let load = LoadSettings {
            run_time: Some(run_time),
            ..LoadSettings::closed(users)
        };
        run_with(url, load).await
    }

    async fn run_with(url: &str, load: LoadSettings) -> (RunOutput, Vec<Arc<Snapshot>>) {
        let plan = Plan::single(
            url,
            http::Method::GET,
            Default::default(),
            &PlanOptions::default(),
        )
        .unwrap();
        let client = ClientShared::new(ClientConfig::default()).unwrap();
        let info = RunInfo {
            id: "health".into(),
            scenario: "health".into(),
            tags: Default::default(),
        };
        let kept = Arc::new(Mutex::new(Vec::new()));
        let out = Executor::new(Arc::new(plan), load, client, info)
            .tick(Duration::from_millis(100))
            .sink(Box::new(Keep(kept.clone())))
            .run(Controls::new())
            .await;
        let snaps = std::mem::take(&mut *kept.lock().unwrap());
        (out, snaps)
    }

    /// A sink with a breakdown source: its latest breakdown counts the snapshots read so far;
    /// its settled one is the example, after a short wait.
    struct Joins {
        read: Arc<std::sync::atomic::AtomicU64>,
        kept: Arc<Mutex<Vec<Arc<Snapshot>>>>,
    }

    struct Source(Arc<std::sync::atomic::AtomicU64>);

    impl BreakdownSource for Source {
        fn latest(&self) -> Option<Arc<crate::breakdown::Breakdown>> {
            let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
            let mut b = crate::breakdown::Breakdown::default();
            b.coverage.sampled = n;
            Some(Arc::new(b))
        }
        fn settle(
            &self,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<Output = Option<Arc<crate::breakdown::Breakdown>>>
                    + Send
                    + '_,
            >,
        > {
            Box::pin(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Some(Arc::new(crate::breakdown::Breakdown::example()))
            })
        }
    }

    impl Sink for Joins {
        fn name(&self) -> &str {
            "joins"
        }
        fn on_snapshot(&mut self, s: &Arc<Snapshot>) {
            self.kept.lock().unwrap().push(s.clone());
        }
        fn breakdown_source(&mut self) -> Option<Arc<dyn BreakdownSource>> {
            Some(Arc::new(Source(self.read.clone())))
        }
        fn finish(self: Box<Self>, _: &crate::report::Summary) -> crate::sink::FinishFuture {
            Box::pin(async { crate::sink::SinkReport::default() })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_snapshot_carries_the_latest_breakdown_and_the_output_the_settled_one() {
        let srv = testutil::http1().await;
        let plan = Plan::single(
            &srv.url("/"),
            http::Method::GET,
            Default::default(),
            &PlanOptions::default(),
        )
        .unwrap();
        let client = ClientShared::new(ClientConfig::default()).unwrap();
        let info = RunInfo {
            id: "joins".into(),
            scenario: "joins".into(),
            tags: Default::default(),
        };
        let kept = Arc::new(Mutex::new(Vec::new()));
        let load = LoadSettings {
            run_time: Some(Duration::from_millis(500)),
            ..LoadSettings::closed(1)
        };
        let out = Executor::new(Arc::new(plan), load, client, info)
            .tick(Duration::from_millis(100))
            .sink(Box::new(Joins {
                read: Arc::default(),
                kept: kept.clone(),
            }))
            .run(Controls::new())
            .await;
        let snaps = kept.lock().unwrap().clone();
        assert!(snaps.len() >= 2);
        let sampled: Vec<u64> = snaps
            .iter()
            .map(|s| {
                s.breakdown
                    .as_ref()
                    .expect("a breakdown in every snapshot")
                    .coverage
                    .sampled
            })
            .collect();
        // Read once per tick, in order.
        assert_eq!(sampled, (1..=snaps.len() as u64).collect::<Vec<_>>());
        assert_eq!(
            out.breakdown.as_deref(),
            Some(&crate::breakdown::Breakdown::example())
        );
    }

    /// Whether this platform has the `/proc` files the health figures come from.
    fn has_proc() -> bool {
        ["/proc/self/stat", "/proc/stat", "/proc/self/net/dev"]
            .iter()
            .all(|p| std::path::Path::new(p).exists())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn open_connections_equal_the_users_of_a_closed_model_run() {
        let srv = testutil::http1().await;
        let (out, snaps) = run(&srv.url("/"), 5, Duration::from_millis(800)).await;
        // Keep-alive held: each user opened one connection for the whole run.
        assert_eq!(out.stats.aggregate().new_connections, 5);
        let (last, scheduled) = snaps.split_last().expect("snapshots");
        let open: Vec<u64> = scheduled
            .iter()
            .map(|s| s.health.open_connections.expect("open connections"))
            .collect();
        assert!(open.iter().all(|n| *n <= 5), "{open:?}");
        assert!(open.contains(&5), "{open:?}");
        // The last snapshot comes after every user ended and closed its connection.
        assert_eq!(last.health.open_connections, Some(0));
    }

    /// The open model's arrival rate per interval adds up, over the run, to exactly the arrivals
    /// issued (started or dropped); the closed model has none.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn arrival_rates_add_up_to_the_arrivals_issued_and_the_closed_model_has_none() {
        let srv = testutil::http1().await;
        let load = LoadSettings {
            run_time: Some(Duration::from_millis(900)),
            arrival: Some(crate::load::ArrivalSettings {
                rate_per_s: 200.0,
                pre_allocated_vus: 2,
                max_vus: 4,
            }),
            ..LoadSettings::default()
        };
        let (out, snaps) = run_with(&srv.url("/"), load).await;
        let a = out.arrivals.expect("open model");
        let issued = (a.started + a.dropped_iterations) as f64;
        assert!(issued > 50.0, "{a:?}");
        let mut summed = 0.0;
        let mut at = Duration::ZERO;
        for s in &snaps {
            let span = s.elapsed.saturating_sub(at).as_secs_f64();
            at = s.elapsed;
            summed += s
                .arrival_rate
                .expect("every snapshot of an open run has a rate")
                * span;
        }
        assert!(
            (summed - issued).abs() < 0.5,
            "rates sum to {summed}, {issued} issued"
        );

        let (_, closed) = run(&srv.url("/"), 2, Duration::from_millis(300)).await;
        assert!(closed.iter().all(|s| s.arrival_rate.is_none()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn network_bytes_per_second_cover_the_runs_own_traffic() {
        assert!(has_proc(), "this test needs Linux's /proc");
        let srv = testutil::http1().await;
        let (out, snaps) = run(&srv.url("/"), 2, Duration::from_millis(800)).await;
        let total = out.stats.aggregate();
        // Client and server both send over loopback: every byte of the run is sent once and
        // received once there, plus TCP/IP headers (other traffic can only add to it).
        let own = (total.bytes_sent + total.bytes_received) as f64;
        assert!(own > 10_000.0, "{own}");
        let mut sent = 0.0;
        let mut received = 0.0;
        for s in &snaps {
            let span = s.point.span_s;
            sent += s.health.net_sent_bytes_per_s.unwrap_or(0.0) * span;
            received += s.health.net_received_bytes_per_s.unwrap_or(0.0) * span;
        }
        assert!(sent >= own, "sent {sent} < the run's own {own} bytes");
        assert!(
            received >= own,
            "received {received} < the run's own {own} bytes"
        );
    }

    /// CPU time (user + system) in seconds of this thread (`thread-self`) or this process
    /// (`self`), read here independently of the code under test.
    fn cpu_s(of: &str) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{of}/stat")).expect("Linux /proc");
        let rest = &stat[stat.rfind(')').unwrap() + 1..];
        let f: Vec<u64> = rest
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|v| v.parse().unwrap())
            .collect();
        (f[0] + f[1]) as f64 / 100.0
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burned_cpu_shows_in_process_cpu() {
        assert!(has_proc(), "this test needs Linux's /proc");
        let srv = testutil::http1().await;
        let process_before = cpu_s("self");
        // A short burn inside the run (other tests of this binary run beside it, some of them
        // timing-sensitive: a whole burned CPU for the whole run would starve them).
        // It starts a little after the run, so that all of it falls after the run's first
        // CPU reading even when a loaded machine is slow to start the run.
        let burner = std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(200));
            // 100 ms of CPU, or what the machine gives in 1 s (a loaded machine gives less:
            // a wall-clock burn of 250 ms once got 20 ms). Either way it ends by 1.2 s, in
            // the run.
            let before = cpu_s("thread-self");
            let t = std::time::Instant::now();
            let mut x = 0u64;
            while t.elapsed() < Duration::from_secs(1) && cpu_s("thread-self") - before < 0.1 {
                for _ in 0..100_000 {
                    x = x.wrapping_mul(31).wrapping_add(7);
                }
                std::hint::black_box(x);
            }
            std::hint::black_box(x);
            cpu_s("thread-self") - before
        });
        let (_, snaps) = run(&srv.url("/"), 1, Duration::from_millis(1500)).await;
        let burned = burner.join().unwrap();
        let process = cpu_s("self") - process_before;
        assert!(burned > 0.02, "the burner got {burned} s of CPU");
        let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
        let mut measured = 0.0;
        for s in &snaps {
            let h = &s.health;
            let Some(pct) = h.process_cpu_pct else {
                continue;
            };
            assert!((0.0..=100.0).contains(&pct), "{h:?}");
            let machine = h.machine_cpu_pct.expect("machine CPU");
            assert!((0.0..=100.0 + 1e-6).contains(&machine), "{h:?}");
            assert!(h.rss_bytes.expect("RSS") > 1 << 20, "{h:?}");
            measured += pct / 100.0 * cores * s.point.span_s;
        }
        // The snapshots account for the burn (the process's figure includes it, plus the
        // run's own and other tests') and for no more than the process used around the run
        // (CPU time is counted in 10 ms ticks per thread: a few ticks of slack).
        assert!(
            measured >= burned * 0.7,
            "snapshots show {measured:.3} CPU s, the burner alone used {burned:.3}"
        );
        assert!(
            measured <= process * 1.2 + 0.05,
            "snapshots show {measured:.3} CPU s, the process used {process:.3} around the run"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scheduled_ticks_report_their_delay_and_the_final_one_none() {
        let srv = testutil::http1().await;
        let (out, snaps) = run(&srv.url("/"), 1, Duration::from_millis(500)).await;
        let (last, scheduled) = snaps.split_last().expect("snapshots");
        assert!(!scheduled.is_empty());
        for s in scheduled {
            let d = s.health.sched_delay_ms.expect("a scheduled tick's delay");
            // Never negative, and never more than the whole run.
            assert!(d >= 0.0 && d <= out.duration.as_secs_f64() * 1000.0, "{d}");
        }
        assert_eq!(last.health.sched_delay_ms, None);
    }
}
