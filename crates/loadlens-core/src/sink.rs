//! Sinks: consumers of lifecycle events, snapshots and (when they need them) raw samples —
//! console, reports, OTLP, Datadog, JSON lines.
//!
//! Hooks are synchronous and must return at once: a sink that talks to a network hands the work
//! to its own task through a bounded queue and counts what it had to drop. Only [`Sink::finish`]
//! is async, and the run bounds it with a timeout, so a dead backend costs the run at most that.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::executor::Controls;
use crate::report::Summary;
use crate::run::{EventKind, RunInfo, TimelineEvent};
use crate::sample::Sample;
use crate::stats::Snapshot;

/// What a sink did, for the summary.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SinkReport {
    /// Sink name (`otlp`, `datadog`, …).
    pub name: String,
    /// Items delivered (spans, points, events).
    pub delivered: u64,
    /// Items that could not be delivered after retries.
    pub failed: u64,
    /// Items dropped because a queue was full.
    pub dropped: u64,
    /// Distinct error messages (secrets never included).
    pub errors: Vec<String>,
}

/// A boxed future returned by [`Sink::finish`].
pub type FinishFuture = Pin<Box<dyn Future<Output = SinkReport> + Send>>;

/// A consumer of the run's lifecycle, snapshots and samples. Only `name` and `finish` are required.
pub trait Sink: Send {
    /// Short name used in logs and the summary.
    fn name(&self) -> &str;

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

    /// Time since the run started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

/// Bounded, non-blocking delivery of samples to one sink; drops are counted.
#[derive(Debug, Clone)]
pub struct SampleTap {
    tx: mpsc::Sender<Sample>,
    dropped: Arc<AtomicU64>,
    sampled_only: bool,
}

impl SampleTap {
    /// A tap with room for `capacity` samples, and its receiving end.
    pub fn new(capacity: usize) -> (SampleTap, mpsc::Receiver<Sample>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            SampleTap {
                tx,
                dropped: Arc::new(AtomicU64::new(0)),
                sampled_only: false,
            },
            rx,
        )
    }

    /// A tap that only takes samples of sampled traces (span exporters): the others cost
    /// the request path one branch, not a copy and a channel send.
    pub fn sampled(capacity: usize) -> (SampleTap, mpsc::Receiver<Sample>) {
        let (mut tap, rx) = Self::new(capacity);
        tap.sampled_only = true;
        (tap, rx)
    }

    /// Offer a sample; never waits.
    #[inline]
    pub fn offer(&self, s: &Sample) {
        if self.sampled_only && !s.trace.is_some_and(|t| t.sampled) {
            return;
        }
        if self.tx.try_send(s.clone()).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Samples dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
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
