//! The executor: starts virtual users at the spawn rate, runs them until the run time, the
//! iteration budget or a stop request, stops them gracefully within the stop timeout, and runs
//! the aggregator that turns recorded samples into one [`Snapshot`] per second.
//!
//! One driver loop serves every load model; the closed model (N users, spawn rate) is the one
//! implemented here. Stopping is two-staged like Locust: [`Controls::stop`] lets in-flight
//! requests finish (bounded by the stop timeout), [`Controls::kill`] ends everything at once.
//! Either way the caller gets a complete [`RunOutput`] to write every report from.

mod vu;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::client::ClientShared;
use crate::plan::Plan;
use crate::run::{EventKind, RunInfo, TimelineEvent};
use crate::sink::{SampleTap, Sink};
use crate::stats::{Aggregator, Recorder, Snapshot, StatsSet, TimeSeries};

/// How much load, for how long.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LoadSettings {
    /// Concurrent users at full load.
    pub users: u64,
    /// Users started per second (`None`: all at once).
    pub spawn_rate: Option<f64>,
    /// Run time (`None`: until iterations are done or the run is stopped).
    #[serde(with = "opt_secs")]
    pub run_time: Option<Duration>,
    /// Total task iterations across users.
    pub iterations: Option<u64>,
    /// Grace period for in-flight requests after the stop.
    #[serde(with = "opt_secs")]
    pub stop_timeout: Option<Duration>,
}

mod opt_secs {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.map(Duration::from_secs_f64))
    }
}

/// Why the run stopped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum StopReason {
    /// The run time elapsed.
    RunTime,
    /// The iteration budget was spent.
    Iterations,
    /// Every user finished on its own.
    UsersFinished,
    /// Ctrl-C (or the stop button): graceful.
    Interrupted,
    /// A guard (threshold, monitor) aborted the run.
    Aborted(String),
}

/// Stop handles given to the executor. Clone them to stop the run from elsewhere.
#[derive(Debug, Clone, Default)]
pub struct Controls {
    stop: CancellationToken,
    kill: CancellationToken,
    reason: Arc<Mutex<Option<StopReason>>>,
}

impl Controls {
    /// New, not stopped.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stop gracefully, for `reason` (the first reason given wins).
    pub fn stop(&self, reason: StopReason) {
        {
            let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
            r.get_or_insert(reason);
        }
        self.stop.cancel();
    }

    /// Stop now: in-flight requests are abandoned. Reports are still written.
    pub fn kill(&self) {
        self.stop(StopReason::Interrupted);
        self.kill.cancel();
    }

    /// True once a stop was requested.
    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// True once killed.
    pub fn is_killed(&self) -> bool {
        self.kill.is_cancelled()
    }

    fn reason(&self) -> Option<StopReason> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
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
}

/// State shared by the driver and every VU.
pub(crate) struct Shared {
    plan: Arc<Plan>,
    client: Arc<ClientShared>,
    recorder: Arc<Recorder>,
    users: AtomicU64,
    iterations_left: Option<AtomicU64>,
    taps: Vec<SampleTap>,
    seed: u64,
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
    plan: Arc<Plan>,
    load: LoadSettings,
    client: Arc<ClientShared>,
    run: RunInfo,
    sinks: Vec<Box<dyn Sink>>,
    snapshots: watch::Sender<Option<Arc<Snapshot>>>,
    tick: Duration,
}

impl Executor {
    /// Prepare a run of `plan` with `load`.
    pub fn new(
        plan: Arc<Plan>,
        load: LoadSettings,
        client: Arc<ClientShared>,
        run: RunInfo,
    ) -> Self {
        let (snapshots, _) = watch::channel(None);
        Executor {
            plan,
            load,
            client,
            run,
            sinks: Vec::new(),
            snapshots,
            tick: Duration::from_secs(1),
        }
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

    /// A receiver of the latest snapshot, for live views.
    pub fn snapshots(&self) -> watch::Receiver<Option<Arc<Snapshot>>> {
        self.snapshots.subscribe()
    }

    /// Run to the end.
    pub async fn run(mut self, controls: Controls) -> RunOutput {
        let names = self.plan.names.pairs().to_vec();
        // Default headers are added once here rather than on every request.
        let mut plan = (*self.plan).clone();
        for ut in &mut plan.user_types {
            let steps = ut.on_start.iter_mut().chain(ut.on_stop.iter_mut());
            for step in steps.chain(ut.tasks.iter_mut().flat_map(|t| t.steps.iter_mut())) {
                self.client.prepare(&mut step.request);
            }
        }
        self.plan = Arc::new(plan);
        let recorder = Recorder::new(names.len());
        let taps: Vec<SampleTap> = self
            .sinks
            .iter_mut()
            .filter_map(|s| s.sample_tap())
            .collect();
        let shared = Arc::new(Shared {
            plan: self.plan.clone(),
            client: self.client.clone(),
            recorder: recorder.clone(),
            users: AtomicU64::new(0),
            iterations_left: self.load.iterations.map(AtomicU64::new),
            taps: taps.clone(),
            seed: fastrand::u64(..),
        });
        let started_at = SystemTime::now();
        let start = Instant::now();
        for s in &mut self.sinks {
            s.on_start(&self.run);
        }
        let timeline = Arc::new(Mutex::new(Vec::new()));
        let push_event = {
            let timeline = timeline.clone();
            move |e: TimelineEvent| timeline.lock().unwrap_or_else(|p| p.into_inner()).push(e)
        };
        push_event(TimelineEvent::now(
            Duration::ZERO,
            EventKind::RunStarted,
            format!("run {} of {} started", self.run.id, self.run.scenario),
        ));

        // Aggregator: its own task, so a slow sink hook never delays spawning or stopping.
        let agg_stop = CancellationToken::new();
        let aggregator = {
            let mut agg = Aggregator::new(recorder.clone(), names.clone());
            let shared = shared.clone();
            let stop = agg_stop.clone();
            let tx = self.snapshots.clone();
            let mut sinks = std::mem::take(&mut self.sinks);
            let timeline = timeline.clone();
            let tick = self.tick;
            tokio::spawn(async move {
                let mut interval =
                    tokio::time::interval_at(tokio::time::Instant::now() + tick, tick);
                interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut seen_events = 0;
                loop {
                    let last = tokio::select! {
                        _ = interval.tick() => false,
                        _ = stop.cancelled() => true,
                    };
                    let snap =
                        Arc::new(agg.tick(start.elapsed(), shared.users.load(Ordering::Relaxed)));
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
                    tx.send_replace(Some(snap));
                    if last {
                        return (agg, sinks);
                    }
                }
            })
        };

        // Driver: spawn users at the spawn rate until the end condition.
        let vu_stop = CancellationToken::new();
        let mut vus = JoinSet::new();
        let target = self.load.users;
        let deadline = self
            .load
            .run_time
            .map(|d| tokio::time::Instant::from_std(start + d));
        let rate = self.load.spawn_rate.filter(|r| *r > 0.0 && r.is_finite());
        let mut spawned: u64 = 0;
        let mut spawn_tick = tokio::time::interval(Duration::from_millis(10));
        let stop_reason = loop {
            if spawned < target && shared.has_iterations_left() {
                let due = match rate {
                    None => target,
                    Some(r) => ((start.elapsed().as_secs_f64() * r).floor() as u64 + 1).min(target),
                };
                while spawned < due {
                    let vu = vu::Vu::new(&shared, spawned);
                    vus.spawn(vu.run(shared.clone(), vu_stop.clone()));
                    spawned += 1;
                }
                if spawned == target {
                    push_event(TimelineEvent::now(
                        start.elapsed(),
                        EventKind::UsersSpawned,
                        format!("all {target} users started"),
                    ));
                }
            }
            let sleep_deadline =
                deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                _ = spawn_tick.tick(), if spawned < target && shared.has_iterations_left() => {}
                _ = tokio::time::sleep_until(sleep_deadline), if deadline.is_some() => break StopReason::RunTime,
                _ = controls.stop.cancelled() => break controls.reason().unwrap_or(StopReason::Interrupted),
                Some(_) = vus.join_next(), if !vus.is_empty() => {
                    let budget_spent = !shared.has_iterations_left();
                    if vus.is_empty() && (spawned == target || budget_spent) {
                        break if budget_spent { StopReason::Iterations } else { StopReason::UsersFinished };
                    }
                }
            }
        };
        push_event(TimelineEvent::now(
            start.elapsed(),
            EventKind::StopRequested,
            describe(&stop_reason),
        ));

        // Graceful stop: users finish their current request (and on_stop) within the timeout.
        vu_stop.cancel();
        let grace = self
            .load
            .stop_timeout
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
        shared.users.store(0, Ordering::Relaxed);
        let duration = start.elapsed();
        push_event(TimelineEvent::now(
            duration,
            EventKind::RunFinished,
            if killed {
                "run finished (users stopped without waiting)".to_owned()
            } else {
                "run finished".to_owned()
            },
        ));

        agg_stop.cancel();
        let (agg, sinks) = match aggregator.await {
            Ok(x) => x,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        let (stats, series) = agg.into_parts();
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
        }
    }
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

/// Human-readable stop reason.
pub fn describe(r: &StopReason) -> String {
    match r {
        StopReason::RunTime => "run time elapsed".into(),
        StopReason::Iterations => "all iterations done".into(),
        StopReason::UsersFinished => "every user finished".into(),
        StopReason::Interrupted => "interrupted".into(),
        StopReason::Aborted(why) => format!("aborted: {why}"),
    }
}

#[cfg(test)]
mod tests;
