//! One virtual user: its client (connections, cookies), its variables, its random stream, and
//! the steps of its life — start (`on_start`), iterations (one task each: requests, loops,
//! think times), think time between iterations, stop (`on_stop`). The closed model drives them
//! in a loop ([`Vu::run`]); other load models call the steps directly.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::HeaderValue;

use super::stop::Stop;
use super::{Shared, StopReason};
use crate::client::{Client, Request};
use crate::feeder::{Mode, Row};
use crate::inspect::LazyJson;
use crate::plan::{LoopItems, RequestPlan, StepPlan};
use crate::prefetch::Warmed;
use crate::sample::{ErrorKind, Failure, Sample, BAGGAGE};
use crate::scenario::WaitTime;
use crate::sink::SampleTap;
use crate::template::{Ctx, Slot};

/// A virtual user.
pub(super) struct Vu {
    pub id: u64,
    pub user_type: usize,
    pub client: Client,
    pub rng: fastrand::Rng,
    vars: Vec<Option<String>>,
    iteration: u64,
    began: Instant,
    /// The user cannot go on (its data feeder ran out of rows).
    pub done: bool,
    /// Index of the running task ([`Sample::NO_TASK`] in `on_start`/`on_stop`).
    task: u16,
    /// Pause before the next request after the machine ran out of something (descriptors,
    /// ports, buffers): zero until then, doubled on each such failure up to [`MAX_BACKOFF`].
    backoff: Duration,
}

/// First pause after a failure of kind [`ErrorKind::Resource`].
const MIN_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause after failures of kind [`ErrorKind::Resource`]: short enough that the user
/// resumes soon after descriptors free up, long enough that a thousand starved users do not
/// spin on `connect` (each failure costs a syscall and a sample).
const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl Vu {
    pub fn new(shared: &Shared, id: u64) -> Self {
        let user_type = shared.plan.user_type_for(id);
        Vu {
            id,
            user_type,
            client: Client::new(shared.client.clone()),
            rng: fastrand::Rng::with_seed(shared.seed ^ id.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            vars: vec![None; shared.plan.user_types[user_type].vars],
            iteration: 0,
            began: Instant::now(),
            done: false,
            task: Sample::NO_TASK,
            backoff: Duration::ZERO,
        }
    }

    /// Closed model: start, iterate with think time until `stop` fires, the iteration budget is
    /// spent or the user runs out of data, then stop.
    pub async fn run(mut self, shared: Arc<Shared>, stop: Stop) {
        shared.users.fetch_add(1, Ordering::Relaxed);
        self.start(&shared).await;
        // The one read of `stop` per iteration of one step (`steps` reads it between steps,
        // and a think time that waits is cut short by it).
        while !stop.is_stopped() && !self.done && shared.take_iteration() {
            self.iteration(&shared, None, &stop).await;
            if self.done || !self.think(&shared, &stop).await {
                break;
            }
            // A scheduling point in every iteration: one that fails before any I/O (a template
            // with no value, an invalid URL, no descriptor left) and has no think time would
            // otherwise never return to the runtime, starving the driver, the timers and the
            // signal handlers, and the run would never end. Costs nothing until the task's
            // budget is spent.
            tokio::task::consume_budget().await;
        }
        self.stop(&shared).await;
        shared.users.fetch_sub(1, Ordering::Relaxed);
    }

    /// Take rows from the feeders of `mode` (or every other mode when `unique` is false).
    fn feed(&mut self, shared: &Shared, unique: bool) {
        // Borrowed, not cloned: a clone per iteration is an atomic add and sub on one counter
        // that every user on every core shares (a contended cache line on many cores).
        let plan = &shared.plan;
        for f in &plan.user_types[self.user_type].feeders {
            let feeder = &plan.feeders[f.feeder];
            if (feeder.mode == Mode::Unique) != unique {
                continue;
            }
            match feeder.next_row_of(
                &mut self.rng,
                shared.segment.index(),
                shared.segment.count(),
            ) {
                Row::Fields(fields) => {
                    for (slot, v) in f.slots.iter().zip(fields) {
                        self.vars[*slot] = Some(v.clone());
                    }
                }
                Row::StopVu => self.done = true,
                Row::StopRun => {
                    self.done = true;
                    shared
                        .controls
                        .stop(StopReason::DataExhausted(feeder.name.clone()));
                }
            }
        }
    }

    /// Run the user type's `on_start` steps (after taking its `unique` feeder rows).
    pub async fn start(&mut self, shared: &Shared) {
        self.feed(shared, true);
        if self.done {
            return;
        }
        let plan = shared.plan.clone();
        let never = Stop::new();
        self.steps(
            shared,
            &plan.user_types[self.user_type].on_start,
            &mut None,
            &never,
        )
        .await;
    }

    /// Open a connection to the host of the user type's first request (see
    /// [`crate::plan::UserTypePlan::first_static_url`]). A failure is left for that request to
    /// meet and count.
    pub async fn preconnect(&mut self, shared: &Shared) {
        let plan = shared.plan.clone();
        if let Some(url) = plan.user_types[self.user_type].first_static_url() {
            let _ = self.client.preconnect(url).await;
        }
    }

    /// Run the user type's `on_stop` steps.
    pub async fn stop(&mut self, shared: &Shared) {
        if self.done && self.iteration == 0 {
            return;
        }
        let plan = shared.plan.clone();
        let never = Stop::new();
        self.steps(
            shared,
            &plan.user_types[self.user_type].on_stop,
            &mut None,
            &never,
        )
        .await;
    }

    /// One iteration: take feeder rows, pick a task by weight and run its steps. `intended` is
    /// the time the iteration was scheduled for (open model): the first request's latency is
    /// measured from it, so queueing in the generator is not hidden (coordinated omission).
    pub async fn iteration(&mut self, shared: &Shared, intended: Option<Instant>, stop: &Stop) {
        // Only constant pacing needs the iteration's length (two clock reads per iteration).
        if matches!(
            shared.plan.user_types[self.user_type].wait,
            WaitTime::ConstantPacing(_)
        ) {
            self.began = Instant::now();
        }
        self.iteration += 1;
        self.feed(shared, false);
        if self.done {
            return;
        }
        let plan = &shared.plan;
        let ut = &plan.user_types[self.user_type];
        let task = ut.pick(&mut self.rng);
        self.task = ut
            .tasks
            .iter()
            .position(|t| std::ptr::eq(t, task))
            .map_or(0, |i| i as u16);
        let mut intended = intended;
        self.steps(shared, &task.steps, &mut intended, stop).await;
        self.task = Sample::NO_TASK;
    }

    /// Think time between iterations; false when `stop` fired while waiting (no wait reads
    /// nothing: the caller reads `stop` next).
    pub async fn think(&mut self, shared: &Shared, stop: &Stop) -> bool {
        let wait = &shared.plan.user_types[self.user_type].wait;
        let busy = match wait {
            WaitTime::ConstantPacing(_) => self.began.elapsed(),
            _ => Duration::ZERO,
        };
        let wait = wait.next(&mut self.rng, busy);
        sleep_unless(wait, stop).await
    }

    /// Run `steps` in order; returns false if `stop` fired. `stop` is read between steps, not
    /// before the first nor after the last: the caller reads it before and after.
    fn steps<'a>(
        &'a mut self,
        shared: &'a Shared,
        steps: &'a [StepPlan],
        intended: &'a mut Option<Instant>,
        stop: &'a Stop,
    ) -> Warmed<dyn Future<Output = bool> + Send + 'a> {
        // Boxed (the steps of a loop are steps too) and warmed: a user woken by its response
        // finds this state cold, and its client's (see `crate::prefetch`).
        let hints = self.client.hints();
        Warmed::new(
            Box::pin(async move {
                for (i, step) in steps.iter().enumerate() {
                    if i > 0 && stop.is_stopped() {
                        return false;
                    }
                    match step {
                        StepPlan::Request(r) => {
                            self.request(shared, r, intended.take()).await;
                            // Also inside one iteration: a `for` loop over many items whose
                            // requests all fail before any I/O must not hold the thread either.
                            tokio::task::consume_budget().await;
                            // Out of descriptors or ports: give the machine time to free some
                            // rather than failing again at once.
                            if !self.backoff.is_zero() && !sleep_unless(self.backoff, stop).await {
                                return false;
                            }
                        }
                        StepPlan::Think(w) => {
                            let d = w.next(&mut self.rng, Duration::ZERO);
                            if !sleep_unless(d, stop).await {
                                return false;
                            }
                        }
                        StepPlan::Loop { slot, items, steps } => {
                            let items: Vec<String> = match items {
                                LoopItems::List(l) => l.clone(),
                                LoopItems::Var(s, _) => {
                                    let v = self.read(shared, *s).unwrap_or_default();
                                    match serde_json::from_str::<serde_json::Value>(&v) {
                                        Ok(serde_json::Value::Array(a)) => {
                                            a.iter().map(crate::jsonpath::to_text).collect()
                                        }
                                        _ if v.is_empty() => Vec::new(),
                                        _ => vec![v],
                                    }
                                }
                            };
                            for (n, item) in items.into_iter().enumerate() {
                                if n > 0 && stop.is_stopped() {
                                    return false;
                                }
                                self.vars[*slot] = Some(item);
                                if !self.steps(shared, steps, intended, stop).await {
                                    return false;
                                }
                            }
                        }
                    }
                }
                true
            }),
            hints,
        )
    }

    fn read(&self, shared: &Shared, slot: Slot) -> Option<String> {
        match slot {
            Slot::Vu(i) => self.vars.get(i).cloned().flatten(),
            Slot::Global(i) => shared
                .globals
                .vars
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .get(i)
                .cloned()
                .flatten(),
        }
    }

    fn write(&mut self, shared: &Shared, slot: Slot, value: String) {
        match slot {
            Slot::Vu(i) => self.vars[i] = Some(value),
            Slot::Global(i) => {
                let mut g = shared
                    .globals
                    .vars
                    .write()
                    .unwrap_or_else(|p| p.into_inner());
                if let Some(v) = g.get_mut(i) {
                    *v = Some(value);
                }
            }
        }
    }

    /// Render what varies of a request (`None`: nothing varies, send it as compiled).
    fn render(&mut self, shared: &Shared, plan: &RequestPlan) -> Result<Option<Request>, Failure> {
        let Some(t) = &plan.template else {
            return Ok(None);
        };
        let fail = |m: String| Failure::new(ErrorKind::Request, m);
        let mut ctx = Ctx {
            vars: &self.vars,
            globals: &shared.globals,
            vu_id: self.id,
            iteration: self.iteration,
            rng: &mut self.rng,
        };
        let mut req = plan.request.clone();
        let url = t
            .url
            .render_string(&mut ctx)
            .map_err(|e| fail(e.to_string()))?;
        req.url = url
            .parse()
            .map_err(|e| fail(format!("invalid URL after templating `{url}`: {e}")))?;
        for (name, value) in &t.headers {
            // A header whose variable has no value yet is left out (e.g. `Authorization:
            // Bearer {{ token }}` on the user type, before the login captured the token).
            let Ok(v) = value.render_string(&mut ctx) else {
                continue;
            };
            let v = HeaderValue::from_str(&v).map_err(|_| {
                fail(format!(
                    "header `{name}` has an invalid value after templating"
                ))
            })?;
            req.headers.insert(name.clone(), v);
        }
        if let Some(b) = &t.body {
            req.body = Bytes::from(b.render_string(&mut ctx).map_err(|e| fail(e.to_string()))?);
        }
        if let Some(tracing) = &shared.tracing {
            // A templated `baggage` replaced the one prepared with the run's baggage.
            if t.headers.iter().any(|(name, _)| name == BAGGAGE) {
                tracing.merge_baggage(&mut req.headers);
            }
        }
        req.prepared = false;
        Ok(Some(req))
    }

    /// Update the back-off after a request: it grows while the machine is out of resources and
    /// ends with the first request that is not.
    fn note_outcome(&mut self, failure: Option<&Failure>) {
        self.backoff = match failure {
            Some(f) if f.kind == ErrorKind::Resource => {
                (self.backoff * 2).clamp(MIN_BACKOFF, MAX_BACKOFF)
            }
            _ => Duration::ZERO,
        };
    }

    /// Send one request, run its checks and captures, and record its sample.
    async fn request(&mut self, shared: &Shared, step: &RequestPlan, intended: Option<Instant>) {
        // Requests without templates are sent as compiled, without a copy.
        let rendered;
        let req = match self.render(shared, step) {
            Ok(None) => &step.request,
            Ok(Some(r)) => {
                rendered = r;
                &rendered
            }
            Err(f) => {
                let mut s = Sample::failed_before_send(step.name, f);
                (s.vu, s.scenario, s.user_type, s.task) =
                    (self.id, shared.scenario, self.user_type as u16, self.task);
                self.note_outcome(s.failure.as_ref());
                shared.recorder.record(&s);
                return;
            }
        };
        // Trace context: this request's client span ids go out in `traceparent` (the plan's
        // requests already carry `baggage` and a placeholder for it, see
        // `TraceSettings::prepare`); the client sets it in its own copy of the header map, so
        // the request is not cloned.
        let mut trace = shared.tracing.as_ref().map(|t| t.ids(&mut self.rng));
        // A sampled request first takes its span's place in the span exporter's queue: one that
        // finds it full goes out not sampled (and is counted), rather than telling the service
        // it is sampled and leaving the service's spans without their parent.
        let mut reserved = None;
        if let Some(ids) = trace.as_mut().filter(|t| t.sampled) {
            if let Some(i) = shared.taps.iter().position(SampleTap::sampled_only) {
                reserved = shared.taps[i].reserve().map(|r| (i, r));
                ids.sampled = reserved.is_some();
            }
        }
        let started = Instant::now();
        let in_flight = InFlight {
            shared,
            name: step.name,
            ids: (self.id, self.user_type as u16, self.task),
            started,
        };
        let out = match trace {
            None => self.client.send_from(req, started).await,
            Some(ids) => self.client.send_traced(req, &ids, started).await,
        };
        std::mem::forget(in_flight);
        let mut checks_passed = 0u16;
        let mut checks_failed = 0u16;
        let (status, failure) = match &out.result {
            Ok(r) => {
                let code = r.status.as_u16();
                let mut failure = (code >= 400 && !step.status_checked).then(|| {
                    Failure::new(
                        ErrorKind::Status,
                        format!(
                            "HTTP {} {}",
                            code,
                            r.status.canonical_reason().unwrap_or("")
                        )
                        .trim_end()
                        .to_owned(),
                    )
                });
                let mut json = LazyJson::default();
                for c in &step.checks {
                    match c.eval(r, &mut json, out.total) {
                        Ok(()) => checks_passed += 1,
                        Err(reason) => {
                            checks_failed += 1;
                            if failure.is_none() {
                                failure = Some(Failure::new(ErrorKind::Check, reason.to_string()));
                            }
                        }
                    }
                }
                for cap in &step.captures {
                    match cap.eval(r, &mut json, &self.client.cookies) {
                        Ok(v) => self.write(shared, cap.slot, v),
                        Err(reason) => {
                            if failure.is_none() {
                                failure = Some(Failure::new(ErrorKind::Check, reason.to_string()));
                            }
                        }
                    }
                }
                (Some(code), failure)
            }
            Err(f) => {
                checks_failed = step.checks.len() as u16;
                (None, Some(f.clone()))
            }
        };
        // Open model: the wait between the intended and the actual start counts as latency.
        let schedule_delay =
            intended.map_or(Duration::ZERO, |t| out.started.saturating_duration_since(t));
        let sample = Sample {
            name: step.name,
            started_at: out.started_at,
            total: out.total + schedule_delay,
            schedule_delay,
            phases: out.phases,
            status,
            bytes_sent: out.bytes_sent,
            bytes_received: out.bytes_received,
            content_length: out.content_length,
            new_connection: out.new_connection,
            failure,
            checks_passed,
            checks_failed,
            url: trace.filter(|t| t.sampled).map(|_| req.url.to_string()),
            trace,
            vu: self.id,
            scenario: shared.scenario,
            user_type: self.user_type as u16,
            task: self.task,
            protocol: out.result.as_ref().ok().map(|r| match r.version {
                http::Version::HTTP_2 => "2",
                http::Version::HTTP_10 => "1.0",
                _ => "1.1",
            }),
        };
        self.note_outcome(sample.failure.as_ref());
        shared.recorder.record(&sample);
        let reserved_at = reserved.as_ref().map(|(i, _)| *i);
        for (i, tap) in shared.taps.iter().enumerate() {
            if Some(i) != reserved_at {
                tap.offer(&sample);
            }
        }
        if let Some((_, r)) = reserved {
            r.send(sample);
        }
    }
}

/// A request on its way. Dropped before the response completed — the task was aborted when
/// the stop timeout ran out, or at a second Ctrl-C — it records the request as a failure of
/// kind [`ErrorKind::Interrupted`] with the time it had taken, so that requests cut off at the
/// end are counted rather than lost. A completed request `forget`s it.
struct InFlight<'a> {
    shared: &'a Shared,
    name: crate::sample::NameId,
    /// The user's id, user type and task.
    ids: (u64, u16, u16),
    started: Instant,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut s = Sample::failed_before_send(
            self.name,
            Failure::new(
                ErrorKind::Interrupted,
                "cut off when the run stopped (stop timeout ran out)".to_owned(),
            ),
        );
        s.total = self.started.elapsed();
        (s.vu, s.scenario, s.user_type, s.task) =
            (self.ids.0, self.shared.scenario, self.ids.1, self.ids.2);
        self.shared.recorder.record(&s);
        for tap in &self.shared.taps {
            tap.offer(&s);
        }
    }
}

/// Sleep `d` unless `stop` fires first; false if it did. No wait is true at once: every
/// caller reads `stop` itself next.
async fn sleep_unless(d: Duration, stop: &Stop) -> bool {
    if d.is_zero() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stop.stopped() => false,
    }
}

/// Run a VU task's future, turning a panic inside it into a failure of the run instead of a
/// lost task: the user stops, the others go on, and the reason is shown in the summary and
/// the JSON result (the verdict becomes failed, so a bug is never mistaken for a pass). With
/// the release profile's `panic = "unwind"`, nothing else of the run is lost.
///
/// The future comes boxed: a spawned task then holds a pointer instead of the user's whole
/// state, and tokio's task (aligned to 128 bytes, so the allocator rounds it up further) stays
/// small. Boxing it here instead kept both sizes in the task (issue #18's idle users).
pub(super) async fn guarded<F: Future<Output = ()> + Send>(
    fut: Pin<Box<F>>,
    controls: &super::Controls,
) {
    let caught = CatchUnwind(fut).await;
    if let Err(panic) = caught {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        tracing::error!(error = %what, "A virtual user stopped on an internal error.");
        controls.fail(format!(
            "a virtual user stopped on an internal error (a bug, please report it): {what}"
        ));
    }
}

/// Polls the inner future inside [`std::panic::catch_unwind`] (what `futures`' `catch_unwind`
/// does, without the dependency).
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future<Output = ()>> Future for CatchUnwind<F> {
    type Output = Result<(), Box<dyn std::any::Any + Send>>;

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        // The user's whole state: warmed, as its steps are (see `crate::prefetch`).
        crate::prefetch::warm(&*self.0);
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(())) => std::task::Poll::Ready(Ok(())),
            Err(panic) => std::task::Poll::Ready(Err(panic)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panic_in_a_user_fails_the_run_instead_of_ending_it() {
        let controls = super::super::Controls::new();
        guarded(Box::pin(async {}), &controls).await;
        assert!(controls.failures().is_empty());
        guarded(
            Box::pin(async {
                tokio::task::yield_now().await;
                panic!("index out of bounds");
            }),
            &controls,
        )
        .await;
        let f = controls.failures();
        assert_eq!(f.len(), 1);
        assert!(
            f[0].contains("internal error") && f[0].contains("index out of bounds"),
            "{f:?}"
        );
        assert!(!controls.is_stopping(), "the other users go on");
    }
}
