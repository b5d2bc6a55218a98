//! One lane of the driver: a scenario's load model over time. The driver loop in `mod.rs` calls
//! [`Lane::step`] on every wake-up (10 ms tick, arrivals, a VU ending) and [`Lane::arrive`]
//! for each open-model arrival; the lane starts at its offset, keeps the closed model's user
//! count on its stage ramp, routes arrivals to VUs, and ends at its run time. A load change
//! asked for during the run ([`Lane::retarget`]) replaces the user count, or restarts the
//! pacer at the new arrival rate from that moment.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::open::{self, OpenLane, PacerThread};
use super::stop::Stop;
use super::vu::Vu;
use super::{LoadSettings, LoadTarget, Shared, StopReason};
use crate::load::profile::{self, Pacer};
use crate::load::ArrivalReport;
use crate::run::{EventKind, TimelineEvent};
use crate::stats::LatencyHistogram;

/// Where a lane is in its life.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum State {
    /// Waiting for its start offset.
    Pending,
    /// Running.
    Running,
    /// Its load ended (its VUs may still be finishing).
    Ended(StopReason),
}

/// A VU task's result: its lane and closed-model id.
pub(super) type VuDone = (usize, u64);

pub(super) struct Lane {
    pub index: usize,
    pub name: String,
    pub shared: Arc<Shared>,
    pub load: LoadSettings,
    pub start_time: Duration,
    /// Offset at which the load itself began: `start_time`, or for the open model the moment its
    /// pre-allocated VUs were ready and the first arrival was due.
    load_start: Duration,
    /// Offset at which the lane's load ends (load start + run time or stages); for the open model
    /// unknown until its VUs are ready.
    pub end: Option<Duration>,
    /// Open model: the pacer has not started yet, pre-allocated VUs are still starting.
    warming_up: bool,
    pub state: State,
    /// When the lane started and stopped issuing load.
    pub ended_at: Option<Duration>,
    stop: Stop,
    /// Closed model: running VUs in start order (id, stop token).
    running: Vec<(u64, Stop)>,
    spawned: u64,
    /// VU tasks of this lane still alive.
    pub live: usize,
    stage: Option<usize>,
    all_spawned_reported: bool,
    pub open: Option<OpenLane>,
    /// Load asked for during the run; replaces the profile's where set.
    target: LoadTarget,
    /// Open model after a rate change: `(offset from the lane's start, arrivals intended
    /// before it, new rate)`, so intended arrivals stay the integral of the rate actually asked.
    rebased: Option<(Duration, f64, f64)>,
}

impl Lane {
    pub fn new(
        index: usize,
        name: String,
        shared: Arc<Shared>,
        load: LoadSettings,
        start_time: Duration,
        parent: &Stop,
    ) -> Self {
        let open = load
            .arrival
            .as_ref()
            .map(|a| OpenLane::new(load.segment.share(a.max_vus)));
        let end = match open {
            Some(_) => None,
            None => load.duration().map(|d| start_time + d),
        };
        Lane {
            index,
            name,
            shared,
            load,
            start_time,
            load_start: start_time,
            end,
            warming_up: false,
            state: State::Pending,
            ended_at: None,
            stop: parent.child(),
            running: Vec::new(),
            spawned: 0,
            live: 0,
            stage: None,
            all_spawned_reported: false,
            open,
            target: LoadTarget::default(),
            rebased: None,
        }
    }

    fn label(&self) -> String {
        if self.name.is_empty() {
            String::new()
        } else {
            format!("scenario {}: ", self.name)
        }
    }

    /// Advance to `now` (offset from `start`).
    pub fn step(
        &mut self,
        now: Duration,
        start: Instant,
        vus: &mut JoinSet<VuDone>,
        arrivals: &mpsc::UnboundedSender<(usize, Instant)>,
        events: &mut Vec<TimelineEvent>,
    ) {
        if self.state == State::Pending {
            if now < self.start_time {
                return;
            }
            self.state = State::Running;
            if !self.name.is_empty() {
                events.push(TimelineEvent::now(
                    now,
                    EventKind::Note,
                    format!("scenario {} started ({})", self.name, self.load.describe()),
                ));
            }
            if self.load.arrival.is_some() {
                self.start_open(vus);
            }
        }
        if self.state != State::Running {
            return;
        }
        if self.warming_up {
            self.warm_up(now, start, arrivals, events);
            if self.warming_up {
                return;
            }
        }
        if let Some(e) = self.end.filter(|e| now >= *e) {
            // Ended at its run time exactly, however late this step runs: the intended
            // arrivals are counted up to there.
            return self.finish(StopReason::RunTime, e);
        }
        let t = now - self.load_start;
        if !self.load.stages.is_empty() {
            let i = profile::stage_at(&self.load.stages, t);
            if self.stage != Some(i) && i < self.load.stages.len() {
                let s = self.load.stages[i];
                let what = if self.load.arrival.is_some() {
                    "arrivals/s"
                } else {
                    "users"
                };
                events.push(TimelineEvent::now(
                    now,
                    EventKind::StageChanged,
                    format!(
                        "{}stage {}/{}: to {} {what} over {}",
                        self.label(),
                        i + 1,
                        self.load.stages.len(),
                        s.target,
                        humantime::format_duration(s.duration)
                    ),
                ));
            }
            self.stage = Some(i);
        }
        if self.open.is_some() {
            if !self.shared.has_iterations_left() {
                if let Some(o) = &mut self.open {
                    o.close();
                }
                self.stop.stop();
                if self.live == 0 {
                    self.finish(StopReason::Iterations, now);
                }
            }
            return;
        }
        self.step_closed(t, now, vus, events);
    }

    fn step_closed(
        &mut self,
        t: Duration,
        now: Duration,
        vus: &mut JoinSet<VuDone>,
        events: &mut Vec<TimelineEvent>,
    ) {
        let load = &self.load;
        // The whole run's count, of which this process runs its segment's share (a count set
        // during the run is the whole run's too).
        let target = load
            .segment
            .share(self.target.users.unwrap_or_else(|| load.users_at(t)));
        let users = load.segment.share(load.users);
        let budget = self.shared.has_iterations_left();
        while (self.running.len() as u64) < target && budget {
            let id = self.spawned;
            self.spawned += 1;
            let token = self.stop.child();
            let vu = Vu::new(&self.shared, id);
            let (shared, lane) = (self.shared.clone(), self.index);
            // Boxed before it is spawned: the task then holds a pointer, not the user's whole
            // state (see `guarded`).
            let run = Box::pin(vu.run(shared.clone(), token.clone()));
            vus.spawn(async move {
                super::vu::guarded(run, &shared.controls).await;
                (lane, id)
            });
            self.live += 1;
            self.running.push((id, token));
        }
        // Ramp down: the most recently started users finish their iteration and stop.
        while self.running.len() as u64 > target {
            if let Some((_, token)) = self.running.pop() {
                token.stop();
            }
        }
        if load.stages.is_empty() && self.spawned == users && !self.all_spawned_reported {
            self.all_spawned_reported = true;
            events.push(TimelineEvent::now(
                now,
                EventKind::UsersSpawned,
                format!("{}all {users} users started", self.label()),
            ));
        }
        // Users that all finished by themselves end the lane, unless the user count was changed
        // during the run (0 users then means "pause", not "done").
        let own_end =
            load.stages.is_empty() && self.target.users.is_none() && self.spawned >= users;
        if self.live == 0 && (!budget || own_end) {
            let why = if budget {
                StopReason::UsersFinished
            } else {
                StopReason::Iterations
            };
            self.finish(why, now);
        }
    }

    /// Start the open model's pre-allocated VUs; arrivals begin once they are ready.
    fn start_open(&mut self, vus: &mut JoinSet<VuDone>) {
        let Some(a) = self.load.arrival.clone() else {
            return;
        };
        let seg = self.load.segment;
        for _ in 0..seg.share(a.pre_allocated_vus).min(seg.share(a.max_vus)) {
            self.spawn_open(None, vus);
        }
        self.warming_up = true;
    }

    /// Start the arrivals once every pre-allocated VU has run its `on_start` and waits for work,
    /// as k6 initialises pre-allocated VUs before the test starts: arrivals that come while VUs
    /// are still starting would find none idle and start more, and the run would begin with a
    /// burst of VUs and connections the rate does not need.
    fn warm_up(
        &mut self,
        now: Duration,
        start: Instant,
        arrivals: &mpsc::UnboundedSender<(usize, Instant)>,
        events: &mut Vec<TimelineEvent>,
    ) {
        let Some(o) = &self.open else { return };
        let ready = o.idle_count();
        if ready < self.live {
            return;
        }
        self.warming_up = false;
        self.load_start = now;
        self.end = self.load.duration().map(|d| now + d);
        if ready > 0 {
            events.push(TimelineEvent::now(
                now,
                EventKind::Note,
                format!(
                    "{}{ready} pre-allocated VUs ready after {}; arrivals start",
                    self.label(),
                    format_secs(now - self.start_time)
                ),
            ));
        }
        if let Some(rate) = self.target.rate_per_s {
            // The rate was changed before the arrivals started.
            self.rebased = Some((Duration::ZERO, 0.0, rate));
        }
        self.start_pacer(Duration::ZERO, start, arrivals, events, now);
    }

    /// Start the pacer thread at offset `from` (from the lane's start), replacing any running one.
    fn start_pacer(
        &mut self,
        from: Duration,
        start: Instant,
        arrivals: &mpsc::UnboundedSender<(usize, Instant)>,
        events: &mut Vec<TimelineEvent>,
        now: Duration,
    ) {
        let Some(a) = self.load.arrival.clone() else {
            return;
        };
        let left = self.load.duration().map(|d| d.saturating_sub(from));
        let pacer = match self.rebased {
            Some((_, _, rate)) => Pacer::new(rate, Vec::new(), left),
            None => Pacer::new(a.rate_per_s, self.load.stages.clone(), left),
        }
        .segment(self.load.segment);
        if let Some(old) = self.open.as_mut().and_then(|o| o.pacer.take()) {
            old.stop();
        }
        let at = start + self.load_start + from;
        match PacerThread::spawn(pacer, self.index, at, arrivals.clone()) {
            Ok(p) => {
                if let Some(o) = &mut self.open {
                    o.pacer = Some(p);
                }
            }
            Err(e) => {
                events.push(TimelineEvent::now(
                    now,
                    EventKind::Note,
                    format!("{}cannot start the pacer thread: {e}", self.label()),
                ));
                self.finish(StopReason::UsersFinished, now);
            }
        }
    }

    fn spawn_open(&mut self, first: Option<Instant>, vus: &mut JoinSet<VuDone>) {
        let Some(o) = &mut self.open else { return };
        let (id, rx) = o.add_slot();
        self.start_worker(id, rx, first, vus);
    }

    fn start_worker(
        &mut self,
        id: usize,
        rx: mpsc::Receiver<Instant>,
        first: Option<Instant>,
        vus: &mut JoinSet<VuDone>,
    ) {
        let Some(o) = &self.open else { return };
        let worker = o.worker(id);
        let vu = Vu::new(&self.shared, id as u64);
        let (shared, lane, stop) = (self.shared.clone(), self.index, self.stop.clone());
        let run = Box::pin(worker.run(vu, shared.clone(), rx, first, stop));
        vus.spawn(async move {
            super::vu::guarded(run, &shared.controls).await;
            (lane, id as u64)
        });
        self.live += 1;
    }

    /// Apply the load asked for during the run: the closed model follows `target.users` from
    /// its next step; the open model restarts its pacer at `target.rate_per_s` from `now`.
    pub fn retarget(
        &mut self,
        target: LoadTarget,
        now: Duration,
        start: Instant,
        arrivals: &mpsc::UnboundedSender<(usize, Instant)>,
        events: &mut Vec<TimelineEvent>,
    ) {
        let old = std::mem::replace(&mut self.target, target);
        if self.state == State::Pending {
            return;
        }
        if self.open.is_none() {
            if let Some(users) = target.users.filter(|u| old.users != Some(*u)) {
                if self.state == State::Running {
                    events.push(TimelineEvent::now(
                        now,
                        EventKind::StageChanged,
                        format!("{}load changed to {users} users", self.label()),
                    ));
                }
            }
            return;
        }
        let Some(rate) = target.rate_per_s.filter(|r| old.rate_per_s != Some(*r)) else {
            return;
        };
        if self.state != State::Running || self.warming_up {
            return;
        }
        let t = now.saturating_sub(self.load_start);
        self.rebased = Some((t, self.intended_by(t), rate));
        events.push(TimelineEvent::now(
            now,
            EventKind::StageChanged,
            format!("{}load changed to {rate} arrivals/s", self.label()),
        ));
        self.start_pacer(t, start, arrivals, events, now);
    }

    /// Arrivals intended in the lane's first `t`: the integral of the profile's rate, or of the
    /// rate asked for since the last change.
    fn intended_by(&self, t: Duration) -> f64 {
        let Some(a) = &self.load.arrival else {
            return 0.0;
        };
        match self.rebased {
            Some((at, before, rate)) if t >= at => before + rate * (t - at).as_secs_f64(),
            _ => profile::arrivals_by(a.rate_per_s, &self.load.stages, t),
        }
    }

    /// The offset at which this open-model lane's arrivals end, when that is now: its run
    /// time is reached, or the run's cap (`capped`) is.
    pub fn arrivals_end_due(&self, now: Duration, capped: Option<Duration>) -> Option<Duration> {
        if self.state != State::Running || self.warming_up || self.open.is_none() {
            return None;
        }
        match (self.end, capped) {
            (Some(e), cap) if now >= e => Some(cap.map_or(e, |c| c.min(e))),
            (_, Some(c)) => Some(c),
            _ => None,
        }
    }

    /// Stop the pacer and return the arrivals intended before `end` that it has not sent yet
    /// (it runs late on a loaded machine); the driver routes them after those already sent.
    pub fn take_owed(&mut self, end: Instant) -> Vec<Instant> {
        self.open
            .as_mut()
            .and_then(|o| o.pacer.take())
            .map(|p| p.finish_before(end))
            .unwrap_or_default()
    }

    /// One open-model arrival intended at `intended`.
    pub fn arrive(&mut self, intended: Instant) {
        if self.state != State::Running || self.warming_up || !self.shared.take_iteration() {
            return;
        }
        if let Some(o) = &mut self.open {
            o.dispatch(intended);
        }
    }

    /// When an arrival waiting for a VU gets a new one (see [`OpenLane`]).
    pub fn next_spawn_at(&self) -> Option<Instant> {
        self.open.as_ref().and_then(OpenLane::next_spawn_at)
    }

    /// Start a new VU for each arrival that has waited long enough for one to free up.
    pub fn spawn_pending(&mut self, now: Instant, vus: &mut JoinSet<VuDone>) {
        let Some(o) = &mut self.open else { return };
        for intended in o.take_pending(now) {
            self.spawn_open(Some(intended), vus);
        }
    }

    /// A VU task of this lane ended.
    pub fn vu_done(&mut self, id: u64) {
        self.live = self.live.saturating_sub(1);
        if let Some(i) = self.running.iter().position(|(v, _)| *v == id) {
            self.running.remove(i);
        }
    }

    /// Stop issuing load; the lane's VUs finish their current iteration.
    pub fn finish(&mut self, why: StopReason, now: Duration) {
        if matches!(self.state, State::Ended(_)) {
            return;
        }
        if let Some(o) = &mut self.open {
            o.close();
        }
        self.stop.stop();
        self.ended_at = Some(now);
        self.state = State::Ended(why);
    }

    /// The open model's figures at the end.
    pub fn arrival_report(
        &self,
        stopped_at: Duration,
    ) -> Option<(ArrivalReport, f64, LatencyHistogram)> {
        let (o, a) = (self.open.as_ref()?, self.load.arrival.as_ref()?);
        let until = self
            .ended_at
            .unwrap_or(stopped_at)
            .saturating_sub(self.load_start);
        let until = match self.load.duration() {
            _ if self.warming_up => Duration::ZERO,
            Some(d) => until.min(d),
            None => until,
        };
        // This segment's share of the whole run's intended arrivals.
        let intended = self
            .load
            .segment
            .share(arrivals_in(self.intended_by(until)) as u64) as f64;
        let started = o.started();
        let delays = open::delays(&o.delays);
        Some((
            ArrivalReport {
                intended: intended as u64,
                started,
                dropped_iterations: o.dropped.load(Ordering::Relaxed),
                achieved_pct: open::achieved_pct(started, intended),
                vus_allocated: o.allocated(),
                max_vus: self.load.segment.share(a.max_vus),
                schedule_delay_ms: delays.percentiles(),
            },
            intended,
            delays,
        ))
    }
}

/// The number of arrival instants in `[0, t)` when the integral of the rate over it is
/// `integral`: arrival `k` is intended where the integral reaches `k`, so 59.2 means arrivals
/// 0 to 59, sixty of them. The epsilon keeps a float rounding of an exact 60 from counting 61.
fn arrivals_in(integral: f64) -> f64 {
    (integral - 1e-9).ceil().max(0.0)
}

/// `0.42 s`.
fn format_secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}
