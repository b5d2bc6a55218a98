//! Sinks: consumers of lifecycle events, snapshots and (when they need them) raw samples —
//! console, reports, OTLP, Datadog, JSON lines.
//!
//! Hooks are synchronous and must return at once: a sink that talks to a network hands the work
//! to its own task through a bounded queue and counts what it had to drop. Only [`Sink::finish`]
//! is async, and the run bounds it with a timeout, so a dead backend costs the run at most that.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::breakdown::BreakdownSource;
pub use crate::report::SinkReport;
use crate::report::Summary;
use crate::run::{Controls, EventKind, FlagChange, RunInfo, TimelineEvent};
use crate::sample::Sample;
use crate::stats::Snapshot;

/// A boxed future returned by [`Sink::finish`].
pub type FinishFuture = Pin<Box<dyn Future<Output = SinkReport> + Send>>;

/// A boxed future returned by [`Sink::stopping`].
pub type StoppingFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// How long the executor waits for the sinks' [`Sink::stopping`] work, all together.
pub const STOPPING_LIMIT: Duration = Duration::from_secs(5);

/// A consumer of the run's lifecycle, snapshots and samples. Only `name` and `finish` are required.
pub trait Sink: Send {
    /// Short name used in logs and the summary.
    fn name(&self) -> &str;

    /// Its line for the start banner once started, when that says more than its configuration
    /// did (an address bound with port 0 shows the port taken); `None` keeps the configured one.
    fn describe(&self) -> Option<String> {
        None
    }

    /// The run starts. `ctx` carries the run's identity and the handles through which a sink
    /// may act on the run (stop it, fail it, add to its timeline); clone what it keeps.
    fn on_start(&mut self, _ctx: &SinkContext) {}

    /// Something happened on the timeline.
    fn on_event(&mut self, _event: &TimelineEvent) {}

    /// A new snapshot (once per second).
    fn on_snapshot(&mut self, _snapshot: &Arc<Snapshot>) {}

    /// A sender for raw samples, if this sink needs every request (traces). Called once.
    fn sample_tap(&mut self) -> Option<SampleTap> {
        None
    }

    /// Where the time went, for a sink that joins the service's spans (the trace receiver):
    /// the executor puts its latest breakdown in every snapshot and its settled one in the
    /// summary. Called once, at the start of the run.
    fn breakdown_source(&mut self) -> Option<Arc<dyn BreakdownSource>> {
        None
    }

    /// The load stopped and the last snapshot was taken, the summary is not made yet: the last
    /// chance to put what happened up to now on the timeline (a poller's final read). The
    /// executor waits for every sink's future together, at most [`STOPPING_LIMIT`].
    fn stopping(&mut self) -> Option<StoppingFuture> {
        None
    }

    /// The run ended: flush and report.
    fn finish(self: Box<Self>, summary: &Summary) -> FinishFuture;
}

/// What a sink is given when the run starts.
#[derive(Debug, Clone)]
pub struct SinkContext {
    /// Identity and tags of the run.
    pub run: RunInfo,
    /// `(method, name)` pairs in `NameId` order: what indexes `Snapshot::interval.requests`.
    pub names: Vec<(String, String)>,
    /// Stop the run ([`Controls::stop`]) or fail its verdict ([`Controls::fail`]), e.g. when a
    /// monitor the sink watches goes to Alert.
    pub controls: Controls,
    /// Adds events to the run's timeline (summary, JSON result, HTML report, other sinks).
    pub timeline: TimelineHandle,
    /// The run's resolved configuration (load, target, thresholds, client settings, the
    /// integrations on), secrets removed, as the caller described it to
    /// [`Executor::config`](crate::executor::Executor::config); `null` when it gave none.
    pub config: serde_json::Value,
}

/// A cloneable handle that appends events to the run's timeline, stamped with the time since
/// the run started. Pushing never waits on anything but a short lock.
#[derive(Debug, Clone)]
pub struct TimelineHandle {
    events: Arc<Mutex<Vec<TimelineEvent>>>,
    start: Instant,
}

impl TimelineHandle {
    /// A handle appending to `events`, with times measured from `start`.
    pub fn new(events: Arc<Mutex<Vec<TimelineEvent>>>, start: Instant) -> Self {
        TimelineHandle { events, start }
    }

    /// Append an event of `kind` now.
    pub fn push(&self, kind: EventKind, message: impl Into<String>) {
        let e = TimelineEvent::now(self.start.elapsed(), kind, message);
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e);
    }

    /// Append an event of `kind` about a feature flag or config now.
    pub fn push_flag(&self, kind: EventKind, message: impl Into<String>, flag: FlagChange) {
        let mut e = TimelineEvent::now(self.start.elapsed(), kind, message);
        e.flag = Some(flag);
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(e);
    }

    /// Time since the run started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// Bounded, non-blocking delivery of samples to one sink; drops are counted.
///
/// A span exporter's tap ([`SampleTap::sampled`]) is also where a request's sampling is
/// settled: before a sampled request is sent, [`SampleTap::reserve`] takes its span's place in
/// the queue, so that a request that told the service it is sampled always has its span
/// exported. A request that finds the queue full is sent not sampled, and counted as dropped:
/// the service's spans are never left without their parent. Places taken by requests in flight
/// do not count against the bound until their samples arrive, so many users do not crowd out
/// sampling while the exporter keeps up; the queue may then exceed its bound by at most the
/// requests in flight (one per virtual user).
#[derive(Debug, Clone)]
pub struct SampleTap {
    tx: mpsc::UnboundedSender<Sample>,
    /// Samples in the queue, received or not yet: the bound applies to it.
    queued: Arc<AtomicUsize>,
    capacity: usize,
    dropped: Arc<AtomicU64>,
    sampled_only: bool,
}

/// The receiving end of a [`SampleTap`].
#[derive(Debug)]
pub struct SampleReceiver {
    rx: mpsc::UnboundedReceiver<Sample>,
    queued: Arc<AtomicUsize>,
}

impl SampleReceiver {
    /// The next sample, waiting for one; `None` once every tap is dropped.
    pub async fn recv(&mut self) -> Option<Sample> {
        let s = self.rx.recv().await?;
        self.queued.fetch_sub(1, Ordering::Relaxed);
        Some(s)
    }

    /// The next sample if one is queued.
    pub fn try_recv(&mut self) -> Result<Sample, mpsc::error::TryRecvError> {
        let s = self.rx.try_recv()?;
        self.queued.fetch_sub(1, Ordering::Relaxed);
        Ok(s)
    }
}

/// A place in a [`SampleTap`]'s queue, taken before the request is sent: its sample is
/// accepted whatever the queue holds by then.
#[derive(Debug)]
pub struct Reservation<'a> {
    tap: &'a SampleTap,
}

impl Reservation<'_> {
    /// Queue the request's sample in the place taken for it.
    pub fn send(self, s: Sample) {
        self.tap.queued.fetch_add(1, Ordering::Relaxed);
        if self.tap.tx.send(s).is_err() {
            // The sink is gone: nothing will read it.
            self.tap.queued.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl SampleTap {
    /// A tap with room for `capacity` samples, and its receiving end.
    pub fn new(capacity: usize) -> (SampleTap, SampleReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        (
            SampleTap {
                tx,
                queued: queued.clone(),
                capacity: capacity.max(1),
                dropped: Arc::new(AtomicU64::new(0)),
                sampled_only: false,
            },
            SampleReceiver { rx, queued },
        )
    }

    /// A tap that only takes samples of sampled traces (span exporters): the others cost
    /// the request path one branch, not a copy and a channel send.
    pub fn sampled(capacity: usize) -> (SampleTap, SampleReceiver) {
        let (mut tap, rx) = Self::new(capacity);
        tap.sampled_only = true;
        (tap, rx)
    }

    /// Whether it takes only the samples of sampled traces (a span exporter's tap).
    pub fn sampled_only(&self) -> bool {
        self.sampled_only
    }

    /// A place in the queue for a request about to be sent, or `None` (counted as dropped)
    /// when the queue is full.
    #[inline]
    pub fn reserve(&self) -> Option<Reservation<'_>> {
        if self.queued.load(Ordering::Relaxed) >= self.capacity {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(Reservation { tap: self })
    }

    fn take_place(&self) -> bool {
        if self.queued.fetch_add(1, Ordering::Relaxed) >= self.capacity {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Offer a sample; never waits.
    #[inline]
    pub fn offer(&self, s: &Sample) {
        if self.sampled_only && !s.trace.is_some_and(|t| t.sampled) {
            return;
        }
        if self.take_place() && self.tx.send(s.clone()).is_err() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Samples dropped so far (for a span exporter's tap: requests sent not sampled because
    /// the queue was full).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Sinks fed from outside an executor: the coordinator of a distributed run drives its
/// integrations' sinks with the merged snapshots and the whole run's timeline, in the order an
/// executor does — [`Sink::on_start`], then per snapshot the new timeline events and the
/// snapshot, [`Sink::stopping`] when the load stopped, and [`Sink::finish`] with the summary.
pub struct Fanout {
    sinks: Vec<Box<dyn Sink>>,
    timeline: Arc<Mutex<Vec<TimelineEvent>>>,
    start: Instant,
    /// Timeline events handed to the sinks so far.
    seen: usize,
}

impl Fanout {
    /// Sinks for a run that starts now (the timeline's times count from here), with an empty
    /// timeline.
    pub fn new(sinks: Vec<Box<dyn Sink>>) -> Self {
        Fanout {
            sinks,
            timeline: Arc::default(),
            start: Instant::now(),
            seen: 0,
        }
    }

    /// Add a sink (before [`Fanout::start`]).
    pub fn push(&mut self, sink: Box<dyn Sink>) {
        self.sinks.push(sink);
    }

    /// A handle that appends to the run's timeline, stamped from the run's start.
    pub fn timeline(&self) -> TimelineHandle {
        TimelineHandle::new(self.timeline.clone(), self.start)
    }

    /// The run starts now: every sink's [`Sink::on_start`] with `ctx` (whose timeline should
    /// be [`Fanout::timeline`]).
    pub fn start(&mut self, ctx: &SinkContext) {
        for s in &mut self.sinks {
            s.on_start(ctx);
        }
    }

    /// The timeline events added since the last call, to every sink.
    pub fn events(&mut self) {
        let tl = self.timeline.lock().unwrap_or_else(|p| p.into_inner());
        for e in &tl[self.seen.min(tl.len())..] {
            for s in &mut self.sinks {
                s.on_event(e);
            }
        }
        self.seen = tl.len();
    }

    /// A new snapshot: the new timeline events first, then the snapshot, to every sink.
    pub fn snapshot(&mut self, snapshot: &Arc<Snapshot>) {
        self.events();
        for s in &mut self.sinks {
            s.on_snapshot(snapshot);
        }
    }

    /// The load stopped: the sinks' last reads (at most [`STOPPING_LIMIT`] together), and
    /// what they put on the timeline to every sink.
    pub async fn stopping(&mut self) {
        let mut reads = tokio::task::JoinSet::new();
        for read in self.sinks.iter_mut().filter_map(|s| s.stopping()) {
            reads.spawn(read);
        }
        let _ = tokio::time::timeout(STOPPING_LIMIT, async {
            while reads.join_next().await.is_some() {}
        })
        .await;
        self.events();
    }

    /// The timeline so far.
    pub fn events_so_far(&self) -> Vec<TimelineEvent> {
        self.timeline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Finish every sink with the run's `summary`, each within `limit` ([`finish_all`]).
    pub async fn finish(self, summary: &Summary, limit: Duration) -> Vec<SinkReport> {
        finish_all(self.sinks, summary, limit).await
    }
}

/// Finish every sink, each within `limit`; a sink that does not finish in time is reported as such.
pub async fn finish_all(
    sinks: Vec<Box<dyn Sink>>,
    summary: &Summary,
    limit: Duration,
) -> Vec<SinkReport> {
    let mut reports = Vec::with_capacity(sinks.len());
    let mut pending = Vec::new();
    for s in sinks {
        let name = s.name().to_owned();
        pending.push((name, s.finish(summary)));
    }
    let results = futures_join(pending, limit).await;
    reports.extend(results);
    reports
}

async fn futures_join(pending: Vec<(String, FinishFuture)>, limit: Duration) -> Vec<SinkReport> {
    let handles: Vec<(String, tokio::task::JoinHandle<SinkReport>)> = pending
        .into_iter()
        .map(|(n, f)| (n, tokio::spawn(f)))
        .collect();
    let deadline = tokio::time::Instant::now() + limit;
    let mut out = Vec::new();
    for (name, h) in handles {
        let abort = h.abort_handle();
        match tokio::time::timeout_at(deadline, h).await {
            Ok(Ok(r)) => out.push(r),
            Ok(Err(_)) => out.push(SinkReport {
                name,
                errors: vec!["the sink panicked while finishing".into()],
                ..SinkReport::default()
            }),
            Err(_) => {
                abort.abort();
                out.push(SinkReport {
                    name,
                    errors: vec![format!(
                        "did not finish within {}; buffered data was dropped",
                        humantime::format_duration(limit)
                    )],
                    ..SinkReport::default()
                });
            }
        }
    }
    out
}
