//! The executor: runs one or more scenarios ("lanes"), each with its own load model and start
//! offset, until their run times, the iteration budget or a stop request; stops virtual users
//! gracefully within the stop timeout. Beside the users runs the aggregator (`aggregator.rs`,
//! its own task): users → recorder → aggregator → sinks and guards, as docs/architecture.md draws it. It
//! turns recorded samples into one [`Snapshot`] per second, measures the generator's own health
//! ([`crate::health`]), checks the thresholds and feeds the sinks and live views.
//!
//! Load models, all driven by the one loop in [`Executor::run`] through its lanes (`lane.rs`):
//! - closed: N users (optionally started at a spawn rate), or `stages` ramping the user count;
//! - open: arrivals per second, constant or ramping through `stages`, served by pre-allocated
//!   VUs up to `max_vus`; an arrival with no VU free is a dropped iteration (`open.rs`).
//!
//! Stopping is two-staged like Locust: [`Controls::stop`] lets in-flight requests finish
//! (bounded by the stop timeout), [`Controls::kill`] ends everything at once. Either way the
//! caller gets a complete [`RunOutput`] to write every report from. The load can be changed
//! during the run ([`Controls::set_users`], [`Controls::set_arrival_rate`]): the driver loop
//! wakes on each change and hands it to every lane.

mod aggregator;
mod lane;
mod open;
mod stop;
mod vu;

// The run's inputs and results are defined in the lower layers that also use them (see the
// crate's layers); the executor re-exports them where its callers look for them.
pub use crate::health::GeneratorHealth;
pub use crate::load::{profile, ArrivalReport, ArrivalSettings, LoadSettings, Stage};
pub use crate::report::ScenarioOutput;
pub use crate::run::{describe, Controls, LoadTarget, StopReason};

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::client::ClientShared;
use crate::plan::Plan;
use crate::report::{Outcome, Summary};
use crate::run::{EventKind, RunInfo, TimelineEvent};
use crate::sink::{SampleTap, Sink, SinkContext, TimelineHandle};
use crate::stats::{LatencyHistogram, Recorder, Snapshot, StatsSet, TimeSeries};
use crate::thresholds::{Breach, NameTags, Threshold};

/// One named scenario of a run: its plan, load model and start offset (k6's `startTime`).
#[derive(Debug, Clone)]
pub struct ScenarioRun {
    /// Name in reports (empty for the single scenario of a plain run).
    pub name: String,
    /// What its users do.
    pub plan: Arc<Plan>,
    /// Its load model.
    pub load: LoadSettings,
    /// When it starts, from the start of the run.
    pub start_time: Duration,
}

/// A planned action at a moment of the run: the aggregator asks for it and starts a new
/// segment of the before/after comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Flip {
    /// When, from the start of the run (taken at the first tick at or after it).
    pub at: Duration,
    /// Why, for the record and the segment (`planned at 30 s`).
    pub cause: String,
    /// What.
    pub action: crate::action::Action,
    /// Put the gate back at the end of the run.
    pub restore: bool,
}

/// Everything the run produced, for reports.
pub struct RunOutput {
    /// Wall-clock start.
    pub started_at: SystemTime,
    /// Wall-clock end.
    pub ended_at: SystemTime,
    /// Time the load ran.
    pub duration: Duration,
    /// Why it stopped.
    pub stop_reason: StopReason,
    /// Whether users were abandoned (kill, or stop timeout exceeded).
    pub killed: bool,
    /// `(method, name)` pairs in `NameId` order.
    pub names: Vec<(String, String)>,
    /// Cumulative stats.
    pub stats: StatsSet,
    /// Time series.
    pub series: TimeSeries,
    /// Timeline.
    pub timeline: Vec<TimelineEvent>,
    /// Sinks, to be finished by the caller with the summary.
    pub sinks: Vec<Box<dyn Sink>>,
    /// Samples dropped by sample taps.
    pub dropped_samples: u64,
    /// Open model: arrivals that found no free VU, over every scenario.
    pub dropped_iterations: u64,
    /// Open model figures over every open-model scenario (`None`: closed model only).
    pub arrivals: Option<ArrivalReport>,
    /// The generator's own CPU and memory, and whether its results can be trusted.
    pub generator: GeneratorHealth,
    /// Thresholds seen failing during the run (and the one that aborted it).
    pub breaches: Vec<Breach>,
    /// Per named scenario (empty for a plain single-scenario run).
    pub scenarios: Vec<ScenarioOutput>,
    /// Reasons a guard failed the run for ([`Controls::fail`]).
    pub failures: Vec<String>,
    /// The task tags of each request name, for thresholds scoped by tag.
    pub name_tags: NameTags,
    /// The run cut at its planned flips (empty without flips).
    pub segments: Vec<crate::report::Segment>,
    /// Where the time went (from a trace receiver's sink), `None` without one.
    pub breakdown: Option<Arc<crate::breakdown::Breakdown>>,
}

/// State shared by the driver and every VU of one scenario.
pub(crate) struct Shared {
    plan: Arc<Plan>,
    client: Arc<ClientShared>,
    recorder: Arc<Recorder>,
    users: AtomicU64,
    iterations_left: Option<AtomicU64>,
    taps: Vec<SampleTap>,
    seed: u64,
    /// Run-wide variables and counters of the scenario language.
    globals: crate::template::Globals,
    /// To stop the run from a VU (data feeder exhausted).
    controls: Controls,
    /// Trace context propagation, when on.
    tracing: Option<crate::sample::TraceSettings>,
    /// Index of this scenario in the run, put in every sample ([`crate::sample::Sample::scenario`]).
    scenario: u16,
    /// The share of the run this process runs: `unique` and `sequential` feeder rows are
    /// dealt out by it.
    segment: crate::load::Segment,
}

impl Shared {
    /// Take one iteration from the budget; false when spent.
    fn take_iteration(&self) -> bool {
        match &self.iterations_left {
            None => true,
            Some(left) => left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok(),
        }
    }
}

/// A run ready to start.
pub struct Executor {
    scenarios: Vec<ScenarioRun>,
    client: Arc<ClientShared>,
    run: RunInfo,
    sinks: Vec<Box<dyn Sink>>,
    snapshots: watch::Sender<Option<Arc<Snapshot>>>,
    tick: Duration,
    thresholds: Vec<Threshold>,
    tracing: Option<crate::sample::TraceSettings>,
    run_time_cap: Option<Duration>,
    config: serde_json::Value,
    actions: Option<crate::actions::Actions>,
    flips: Vec<Flip>,
}

impl Executor {
    /// Prepare a run of `plan` with `load`.
    pub fn new(
        plan: Arc<Plan>,
        load: LoadSettings,
        client: Arc<ClientShared>,
        run: RunInfo,
    ) -> Self {
        let one = ScenarioRun {
            name: String::new(),
            plan,
            load,
            start_time: Duration::ZERO,
        };
        Self::scenarios(vec![one], client, run)
    }

    /// Prepare a run of several named scenarios, each with its own load model and start
    /// offset, running side by side. Their plans must share one name table (compile one
    /// scenario file and select user types per scenario).
    pub fn scenarios(scenarios: Vec<ScenarioRun>, client: Arc<ClientShared>, run: RunInfo) -> Self {
        let (snapshots, _) = watch::channel(None);
        Executor {
            scenarios,
            client,
            run,
            sinks: Vec::new(),
            snapshots,
            tick: Duration::from_secs(1),
            thresholds: Vec::new(),
            tracing: None,
            run_time_cap: None,
            config: serde_json::Value::Null,
            actions: None,
            flips: Vec::new(),
        }
    }

    /// End the whole run `cap` after its start, whatever the scenarios' own run times (`-t`
    /// over several named scenarios): scenarios still running stop as at the end of their run
    /// time, and those whose start offset is not reached by then never start.
    pub fn run_time_cap(mut self, cap: Duration) -> Self {
        self.run_time_cap = Some(cap);
        self
    }

    /// Trace every request: W3C `traceparent` and `baggage` on the wire, trace ids in samples.
    pub fn tracing(mut self, settings: crate::sample::TraceSettings) -> Self {
        self.tracing = Some(settings);
        self
    }

    /// The run's resolved configuration, secrets removed, handed to sinks in
    /// [`SinkContext::config`] (a JSON-lines sink writes it in its first line).
    pub fn config(mut self, config: serde_json::Value) -> Self {
        self.config = config;
        self
    }

    /// Guard actions (thresholds' `on_fail`) and planned `flips`, through `actions`.
    pub fn actions(mut self, actions: crate::actions::Actions, flips: Vec<Flip>) -> Self {
        self.actions = Some(actions);
        self.flips = flips;
        self
    }

    /// Add a sink.
    pub fn sink(mut self, sink: Box<dyn Sink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// Aggregation interval (1 s by default; tests shorten it).
    pub fn tick(mut self, tick: Duration) -> Self {
        self.tick = tick.max(Duration::from_millis(10));
        self
    }

    /// Thresholds checked on every snapshot: failures become timeline events, and those with
    /// `abort_on_fail` stop the run (after their delay).
    pub fn thresholds(mut self, thresholds: Vec<Threshold>) -> Self {
        self.thresholds = thresholds;
        self
    }

    /// A receiver of the latest snapshot, for live views.
    pub fn snapshots(&self) -> watch::Receiver<Option<Arc<Snapshot>>> {
        self.snapshots.subscribe()
    }

    /// Run to the end.
    pub async fn run(mut self, controls: Controls) -> RunOutput {
        let names = self
            .scenarios
            .first()
            .map(|s| s.plan.names.pairs().to_vec())
            .unwrap_or_default();
        let taps: Vec<SampleTap> = self
            .sinks
            .iter_mut()
            .filter_map(|s| s.sample_tap())
            .collect();
        let breakdown = self.sinks.iter_mut().find_map(|s| s.breakdown_source());
        let seed = fastrand::u64(..);
        let name_tags = NameTags::of(self.scenarios.iter().map(|s| &*s.plan));
        let vu_stop = stop::Stop::new();
        let mut lanes = Vec::new();
        for (i, sc) in self.scenarios.iter().enumerate() {
            // Default headers are added once here rather than on every request.
            let mut plan = (*sc.plan).clone();
            for ut in &mut plan.user_types {
                for r in ut.requests_mut() {
                    if let Some(t) = &self.tracing {
                        t.prepare(&mut r.request.headers);
                    }
                    if r.template.is_none() {
                        self.client.prepare(&mut r.request);
                    }
                }
            }
            let segment = sc.load.segment;
            let globals = crate::template::Globals::new(plan.globals.len(), plan.counters)
                .segment(segment.index(), segment.count());
            *globals.vars.write().unwrap_or_else(|p| p.into_inner()) =
                plan.globals.iter().map(|(_, v)| v.clone()).collect();
            let shared = Arc::new(Shared {
                plan: Arc::new(plan),
                client: self.client.clone(),
                recorder: Recorder::new(names.len()),
                users: AtomicU64::new(0),
                iterations_left: sc.load.iterations.map(|n| AtomicU64::new(segment.share(n))),
                taps: taps.clone(),
                seed: seed ^ (i as u64).wrapping_mul(0xA24B_AED4_963E_E407),
                globals,
                controls: controls.clone(),
                tracing: self.tracing.clone(),
                scenario: u16::try_from(i).unwrap_or(u16::MAX),
                segment,
            });
            lanes.push(lane::Lane::new(
                i,
                sc.name.clone(),
                shared,
                sc.load.clone(),
                sc.start_time,
                &vu_stop,
            ));
        }
        let started_at = SystemTime::now();
        let start = Instant::now();
        crate::wall::reanchor();
        let timeline = Arc::new(Mutex::new(Vec::new()));
        let ctx = SinkContext {
            run: self.run.clone(),
            names: names.clone(),
            controls: controls.clone(),
            timeline: TimelineHandle::new(timeline.clone(), start),
            config: self.config.clone(),
        };
        if let Some(a) = &self.actions {
            a.attach(ctx.timeline.clone());
            // Guards outside the core (a sink's monitor) ask through the controls.
            let a = a.clone();
            controls.on_action(move |cause, action| a.guard(cause, action));
        }
        for s in &mut self.sinks {
            s.on_start(&ctx);
        }
        let push_events = {
            let timeline = timeline.clone();
            move |e: &mut Vec<TimelineEvent>| {
                if !e.is_empty() {
                    timeline.lock().unwrap_or_else(|p| p.into_inner()).append(e);
                }
            }
        };
        push_events(&mut vec![TimelineEvent::now(
            Duration::ZERO,
            EventKind::RunStarted,
            format!("run {} of {} started", self.run.id, self.run.scenario),
        )]);

        // Aggregator: its own task, so a slow sink hook never delays spawning or stopping.
        let agg_stop = CancellationToken::new();
        let aggregator = aggregator::spawn(
            aggregator::Inputs {
                lanes: lanes
                    .iter()
                    .map(|l| aggregator::LaneView {
                        name: l.name.clone(),
                        shared: l.shared.clone(),
                        dropped: l.open.as_ref().map(|o| o.dropped.clone()),
                        started: l.open.as_ref().map(|o| o.started_counter()),
                    })
                    .collect(),
                names: names.clone(),
                breakdown: breakdown.clone(),
                thresholds: self.thresholds.clone(),
                name_tags: name_tags.clone(),
                controls: controls.clone(),
                sinks: std::mem::take(&mut self.sinks),
                snapshots: self.snapshots.clone(),
                timeline: timeline.clone(),
                client: self.client.clone(),
                tick: self.tick,
                start,
                actions: self.actions.clone(),
                flips: std::mem::take(&mut self.flips),
            },
            agg_stop.clone(),
        );

        // The driver: one loop for every load model. Each wake-up (10 ms tick, a batch of
        // arrivals from the pacers, a VU ending, a lane's start or end) steps every lane.
        let mut vus: JoinSet<lane::VuDone> = JoinSet::new();
        let (arrival_tx, mut arrival_rx) =
            tokio::sync::mpsc::unbounded_channel::<(usize, Instant)>();
        let mut arrivals = Vec::with_capacity(1024);
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut events = Vec::new();
        let mut load_changes = controls.load.subscribe();
        let stop_reason = loop {
            let now = start.elapsed();
            let capped = self.run_time_cap.filter(|cap| now >= *cap);
            // Open-model lanes whose arrivals end now (run time or cap): every arrival intended
            // before the end is issued, however late the pacer or this loop ran — first those
            // already sent, then those the pacer still owed.
            let owed: Vec<(usize, Vec<Instant>)> = lanes
                .iter_mut()
                .filter_map(|l| {
                    let end = l.arrivals_end_due(now, capped)?;
                    Some((l.index, l.take_owed(start + end)))
                })
                .collect();
            if !owed.is_empty() {
                let before = capped.map(|c| start + c);
                while let Ok((i, at)) = arrival_rx.try_recv() {
                    if before.is_none_or(|b| at < b) {
                        lanes[i].arrive(at);
                    }
                }
                for (i, late) in owed {
                    for at in late {
                        lanes[i].arrive(at);
                    }
                    // Arrivals waiting for a new VU get it now rather than after the grace.
                    lanes[i].spawn_pending(Instant::now() + open::SPAWN_GRACE, &mut vus);
                }
            }
            if let Some(cap) = capped {
                for l in &mut lanes {
                    l.finish(StopReason::RunTime, cap);
                }
                break StopReason::RunTime;
            }
            for l in &mut lanes {
                l.step(now, start, &mut vus, &arrival_tx, &mut events);
            }
            push_events(&mut events);
            if let Some(why) = all_ended(&lanes) {
                break why;
            }
            // The next lane start or end, so run times are kept to the millisecond.
            let next = lanes
                .iter()
                .filter_map(|l| match l.state {
                    lane::State::Pending => Some(l.start_time),
                    lane::State::Running => l.end,
                    lane::State::Ended(_) => None,
                })
                .chain(self.run_time_cap)
                .min()
                .map(|d| tokio::time::Instant::from_std(start + d));
            let spawn_at = lanes.iter().filter_map(lane::Lane::next_spawn_at).min();
            tokio::select! {
                _ = controls.stop.cancelled() => break controls.reason().unwrap_or(StopReason::Interrupted),
                n = arrival_rx.recv_many(&mut arrivals, 1024) => {
                    if n > 0 {
                        // Arrivals intended at or after the cap are not the run's, even when
                        // this loop sees them before it sees the cap.
                        let cap = self.run_time_cap.map(|c| start + c);
                        for (i, at) in arrivals.drain(..) {
                            if cap.is_none_or(|c| at < c) {
                                lanes[i].arrive(at);
                            }
                        }
                    }
                }
                // Arrivals no VU was free for get new VUs after a short grace, in which VUs
                // about to finish may take them instead (see `open::OpenLane`).
                _ = tokio::time::sleep_until(
                    spawn_at.map_or_else(tokio::time::Instant::now, tokio::time::Instant::from_std)
                ), if spawn_at.is_some() => {
                    let now = Instant::now();
                    for l in &mut lanes {
                        l.spawn_pending(now, &mut vus);
                    }
                }
                Some(done) = vus.join_next(), if !vus.is_empty() => {
                    if let Ok((i, id)) = done {
                        lanes[i].vu_done(id);
                    }
                }
                Ok(()) = load_changes.changed() => {
                    let target = *load_changes.borrow_and_update();
                    let now = start.elapsed();
                    for l in &mut lanes {
                        l.retarget(target, now, start, &arrival_tx, &mut events);
                    }
                }
                _ = tokio::time::sleep_until(next.unwrap_or_else(tokio::time::Instant::now)), if next.is_some() => {}
                _ = tick.tick() => {}
            }
        };
        let stopped_at = start.elapsed();
        for l in &mut lanes {
            l.finish(stop_reason.clone(), stopped_at);
        }
        push_events(&mut vec![TimelineEvent::now(
            stopped_at,
            EventKind::StopRequested,
            describe(&stop_reason),
        )]);

        // Graceful stop: users finish their current request (and on_stop) within the timeout.
        vu_stop.stop();
        let grace = lanes
            .iter()
            .filter_map(|l| l.load.stop_timeout)
            .max()
            .unwrap_or(crate::plan::DEFAULT_STOP_TIMEOUT);
        let mut killed = false;
        let grace_deadline = tokio::time::Instant::now() + grace;
        while !vus.is_empty() {
            tokio::select! {
                _ = vus.join_next() => {}
                _ = tokio::time::sleep_until(grace_deadline) => { killed = true; break; }
                _ = controls.kill.cancelled() => { killed = true; break; }
            }
        }
        vus.abort_all();
        while vus.join_next().await.is_some() {}
        for l in &lanes {
            l.shared.users.store(0, Ordering::Relaxed);
        }
        let duration = start.elapsed();
        push_events(&mut vec![TimelineEvent::now(
            duration,
            EventKind::RunFinished,
            if killed {
                "run finished (users stopped without waiting)".to_owned()
            } else {
                "run finished".to_owned()
            },
        )]);

        // Open-model figures, per lane and over all of them.
        let mut reports = Vec::new();
        let (mut intended, mut delays) = (0.0, LatencyHistogram::new());
        let mut total_arrivals: Option<ArrivalReport> = None;
        for l in &lanes {
            let r = l.arrival_report(stopped_at);
            if let Some((r, i, d)) = &r {
                intended += i;
                delays.merge(d);
                let t = total_arrivals.get_or_insert_with(ArrivalReport::default);
                t.started += r.started;
                t.dropped_iterations += r.dropped_iterations;
                t.vus_allocated += r.vus_allocated;
                t.max_vus += r.max_vus;
            }
            reports.push(r.map(|r| r.0));
        }
        if let Some(t) = &mut total_arrivals {
            t.intended = intended.round() as u64;
            t.achieved_pct = open::achieved_pct(t.started, intended);
            t.schedule_delay_ms = delays.percentiles();
        }

        agg_stop.cancel();
        let aggregator::Finished {
            total,
            lanes: views,
            sinks,
            guard,
            health,
            segments,
            events_fanned_out,
        } = match aggregator.await {
            Ok(x) => x,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        // The spans of the last requests may still be on their way: the source waits for them
        // within its join window. Meanwhile the sinks' last reads (a poller's) reach the
        // timeline before the summary is made.
        let mut sinks = sinks;
        let mut last_reads = tokio::task::JoinSet::new();
        for read in sinks.iter_mut().filter_map(|s| s.stopping()) {
            last_reads.spawn(read);
        }
        let last_reads = tokio::time::timeout(crate::sink::STOPPING_LIMIT, async {
            while last_reads.join_next().await.is_some() {}
        });
        let settle = async {
            match &breakdown {
                Some(b) => b.settle().await,
                None => None,
            }
        };
        let (_, breakdown) = tokio::join!(last_reads, settle);
        // What those last reads put on the timeline goes to the sinks too (a config change
        // becomes a Datadog event, a JSON line, a span event).
        {
            let tl = timeline.lock().unwrap_or_else(|p| p.into_inner());
            for e in tl.iter().skip(events_fanned_out) {
                for s in &mut sinks {
                    s.on_event(e);
                }
            }
        }
        let (stats, series) = total.into_parts();
        let scenarios = views
            .into_iter()
            .zip(lanes.iter().zip(reports))
            .filter_map(|((name, agg), (l, arrivals))| {
                let stats = match agg {
                    Some(a) => a.into_parts().0,
                    // One named scenario: its figures are the run's.
                    None if !name.is_empty() => stats.clone(),
                    None => return None,
                };
                Some(ScenarioOutput {
                    name,
                    start_time: l.start_time,
                    load: l.load.clone(),
                    stats,
                    arrivals,
                })
            })
            .collect();
        // Actions still under way record into the summary's timeline from here on.
        if let Some(a) = &self.actions {
            a.detach();
        }
        let timeline = std::mem::take(&mut *timeline.lock().unwrap_or_else(|p| p.into_inner()));
        RunOutput {
            started_at,
            ended_at: SystemTime::now(),
            duration,
            stop_reason,
            killed,
            names,
            stats,
            series,
            timeline,
            sinks,
            dropped_samples: taps.iter().map(SampleTap::dropped).sum(),
            dropped_iterations: total_arrivals.as_ref().map_or(0, |a| a.dropped_iterations),
            generator: health.report(total_arrivals.as_ref().map(|a| a.achieved_pct)),
            arrivals: total_arrivals,
            breaches: guard.into_breaches(),
            failures: controls.failures(),
            breakdown,
            scenarios,
            name_tags,
            segments,
        }
    }
}

// Built here rather than in `report`: the reports sit below the sinks, which finish with a
// `Summary`, and the executor, whose `RunOutput` holds the sinks.
impl Summary {
    /// Build from the executor's output (sinks are finished separately).
    pub fn new(
        run: RunInfo,
        load: LoadSettings,
        host: Option<String>,
        out: &mut RunOutput,
    ) -> Self {
        Summary {
            run,
            load,
            host,
            started_at: out.started_at,
            ended_at: out.ended_at,
            duration: out.duration,
            stop_reason: out.stop_reason.clone(),
            killed: out.killed,
            names: out.names.clone(),
            stats: std::mem::take(&mut out.stats),
            series: std::mem::replace(&mut out.series, TimeSeries::new(2)),
            timeline: std::mem::take(&mut out.timeline),
            sinks: Vec::new(),
            dropped_samples: out.dropped_samples,
            outcome: Outcome {
                dropped_iterations: out.dropped_iterations,
                arrivals: out.arrivals.take(),
                generator: out.generator.clone(),
                breaches: std::mem::take(&mut out.breaches),
                scenarios: std::mem::take(&mut out.scenarios),
                thresholds: Vec::new(),
                name_tags: std::mem::take(&mut out.name_tags),
                failures: std::mem::take(&mut out.failures),
                segments: std::mem::take(&mut out.segments),
                actions: Vec::new(),
                breakdown: out.breakdown.take(),
                scenario_hash: None,
                workers: Vec::new(),
            },
        }
    }
}

/// The run's stop reason once every lane has ended, `None` while one still runs.
fn all_ended(lanes: &[lane::Lane]) -> Option<StopReason> {
    let mut reasons = Vec::new();
    for l in lanes {
        match &l.state {
            lane::State::Ended(r) if l.live == 0 || *r == StopReason::RunTime => reasons.push(r),
            _ => return None,
        }
    }
    Some(if reasons.iter().all(|r| **r == StopReason::RunTime) {
        StopReason::RunTime
    } else if reasons.contains(&&StopReason::Iterations) {
        StopReason::Iterations
    } else {
        StopReason::UsersFinished
    })
}

impl std::fmt::Debug for RunOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOutput")
            .field("duration", &self.duration)
            .field("stop_reason", &self.stop_reason)
            .field("killed", &self.killed)
            .field("sinks", &self.sinks.len())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// True if the iteration budget still has iterations (without taking one).
    fn has_iterations_left(&self) -> bool {
        self.iterations_left
            .as_ref()
            .is_none_or(|l| l.load(Ordering::Relaxed) > 0)
    }
}

#[cfg(test)]
mod tests;
