//! The open model: a pacer thread issues arrivals at their intended instants; the driver hands
//! each to an idle VU, starts a new VU while under `max_vus`, or counts a dropped iteration.
//!
//! Why a thread: tokio's timer has a 1 ms resolution, so a pacer task would start arrivals up
//! to 1 ms late (p99 of the scheduling delay ≈ 1 ms at any rate). A dedicated thread parks
//! until the next arrival with the OS's timer precision (tens of µs) and sends its intended
//! instant over a channel; the VU measures latency from that instant, so any delay in the
//! generator itself shows up in the corrected latency (coordinated omission) and in the
//! scheduling-delay histogram reported beside it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::mpsc;

use super::stop::Stop;
use super::vu::Vu;
use super::Shared;
use crate::load::profile::Pacer;
use crate::stats::LatencyHistogram;

/// How long an arrival with no idle VU waits for one to finish before a new VU is started.
pub(super) const SPAWN_GRACE: std::time::Duration = std::time::Duration::from_millis(2);

/// The pacer thread of one open-model lane.
pub(super) struct PacerThread {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
    /// Shared with the thread, which locks it only to take due arrivals: at the end of the
    /// lane, the arrivals it has not sent yet (because it ran late) are taken from here.
    pacer: Arc<Mutex<Pacer>>,
    /// The instant the pacer's offsets count from.
    start: Instant,
}

impl PacerThread {
    /// Issue `pacer`'s arrivals from `start` on, as `(lane, intended)` messages.
    pub fn spawn(
        pacer: Pacer,
        lane: usize,
        start: Instant,
        tx: mpsc::UnboundedSender<(usize, Instant)>,
    ) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let pacer = Arc::new(Mutex::new(pacer));
        let (flag, shared) = (stop.clone(), pacer.clone());
        let handle = std::thread::Builder::new()
            .name(format!("loadlens-pacer-{lane}"))
            .spawn(move || {
                // Arrivals leave in batches at most every QUANTUM: each hand-off wakes the
                // runtime's thread (a futex and an eventfd round trip, ~10 µs of CPU), so one
                // wake per arrival cost more than the requests themselves at 10,000/s. An
                // arrival waits at most QUANTUM plus the OS's timer slack, and is never early.
                const QUANTUM: std::time::Duration = std::time::Duration::from_micros(200);
                let lock = || shared.lock().unwrap_or_else(|p| p.into_inner());
                let mut last_wake = std::time::Duration::ZERO;
                loop {
                    // The stop flag is read under the lock, so once `finish` holds it, nothing
                    // more is sent.
                    let next = {
                        let p = lock();
                        if flag.load(Ordering::Relaxed) {
                            return;
                        }
                        p.next_at()
                    };
                    let Some(at) = next else { return };
                    let now = start.elapsed();
                    let wake = at.max(last_wake + QUANTUM);
                    if wake > now {
                        // Wakes early on `stop` (unpark) and re-checks.
                        std::thread::park_timeout(wake - now);
                        continue;
                    }
                    last_wake = now;
                    let mut p = lock();
                    if flag.load(Ordering::Relaxed) {
                        return;
                    }
                    while let Some(due) = p.take_due(now) {
                        if tx.send((lane, start + due)).is_err() {
                            return;
                        }
                    }
                }
            })?;
        Ok(PacerThread {
            stop,
            handle,
            pacer,
            start,
        })
    }

    /// Stop issuing arrivals.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.thread().unpark();
    }

    /// Stop, and return the arrivals intended before `end` that the thread has not sent yet:
    /// on a loaded machine it can run late, and an arrival intended before the lane's end must
    /// still be issued (or counted as dropped), not lost.
    pub fn finish_before(&self, end: Instant) -> Vec<Instant> {
        self.stop();
        let mut p = self.pacer.lock().unwrap_or_else(|p| p.into_inner());
        let end = end.saturating_duration_since(self.start);
        let mut late = Vec::new();
        while let Some(at) = p.next_at().filter(|at| *at < end) {
            let _ = p.take_due(at);
            late.push(self.start + at);
        }
        late
    }
}

impl Drop for PacerThread {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Arrivals waiting for a VU and VUs waiting for an arrival; never both at once.
#[derive(Default)]
struct Queue {
    /// Indices of VUs waiting for an arrival (most recent last: its connection is warmest).
    idle: Vec<usize>,
    /// Arrivals no VU was free for (intended start, when queued), oldest first. A VU that
    /// finishes its iteration takes the oldest; those still waiting after [`SPAWN_GRACE`] get
    /// new VUs.
    pending: VecDeque<(Instant, Instant)>,
}

/// The VUs of one open-model lane and what happened to its arrivals.
///
/// An arrival goes to an idle VU if there is one. If not, it waits up to [`SPAWN_GRACE`] for a
/// VU to finish rather than starting a new VU at once: when the generator runs a little behind,
/// VUs whose responses have arrived but who have not been polled yet are about to be free, and
/// a new VU costs a connection and fresh memory (page faults measured at half the CPU during
/// such bursts) — starting VUs eagerly turns a short hiccup into a burst of connections that
/// delays everything further, until `max_vus` is reached and arrivals are dropped. What is still
/// pending after the grace gets new VUs (up to `max_vus`); the wait shows in the scheduling
/// delay like any other.
pub(super) struct OpenLane {
    /// Each VU's arrival slot, by VU index.
    slots: Vec<mpsc::Sender<Instant>>,
    queue: Arc<Mutex<Queue>>,
    pub max_vus: u64,
    allocated: u64,
    started: Arc<AtomicU64>,
    pub dropped: Arc<AtomicU64>,
    pub delays: Arc<Mutex<LatencyHistogram>>,
    pub pacer: Option<PacerThread>,
}

impl OpenLane {
    pub fn new(max_vus: u64) -> Self {
        OpenLane {
            slots: Vec::new(),
            queue: Arc::default(),
            max_vus,
            allocated: 0,
            started: Arc::default(),
            dropped: Arc::default(),
            delays: Arc::new(Mutex::new(LatencyHistogram::new())),
            pacer: None,
        }
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// VUs started so far.
    pub fn allocated(&self) -> u64 {
        self.allocated
    }

    /// The counter of iterations started, for the aggregator's arrival rate.
    pub fn started_counter(&self) -> Arc<AtomicU64> {
        self.started.clone()
    }

    /// Iterations started so far.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// VUs waiting for an arrival.
    pub fn idle_count(&self) -> usize {
        self.queue().idle.len()
    }

    /// When the oldest arrival waiting for a VU gets a new one, if any waits.
    pub fn next_spawn_at(&self) -> Option<Instant> {
        self.queue()
            .pending
            .front()
            .map(|(_, queued)| *queued + SPAWN_GRACE)
    }

    /// A new VU slot: its index and the receiver its worker listens on.
    pub fn add_slot(&mut self) -> (usize, mpsc::Receiver<Instant>) {
        let (tx, rx) = mpsc::channel(1);
        self.allocated += 1;
        self.slots.push(tx);
        (self.slots.len() - 1, rx)
    }

    /// Route one arrival: to an idle VU, else into the pending queue while VUs may still be
    /// added for it, else it is dropped.
    pub fn dispatch(&mut self, intended: Instant) {
        loop {
            let mut q = self.queue();
            if let Some(id) = q.idle.pop() {
                drop(q);
                // The VU is idle, so its one-slot channel is empty; failing means it exited.
                if self.slots[id].try_send(intended).is_ok() {
                    self.started.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                continue;
            }
            if self.allocated + (q.pending.len() as u64) < self.max_vus {
                q.pending.push_back((intended, Instant::now()));
            } else {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
    }

    /// The arrivals that have waited [`SPAWN_GRACE`] by `now`, each for a new VU.
    pub fn take_pending(&mut self, now: Instant) -> Vec<Instant> {
        let mut q = self.queue();
        let mut taken = Vec::new();
        while let Some(&(intended, queued)) = q.pending.front() {
            if queued + SPAWN_GRACE > now {
                break;
            }
            q.pending.pop_front();
            taken.push(intended);
        }
        drop(q);
        self.started
            .fetch_add(taken.len() as u64, Ordering::Relaxed);
        taken
    }

    /// Close every slot: idle VUs stop; arrivals still pending are not started.
    pub fn close(&mut self) {
        if let Some(p) = &self.pacer {
            p.stop();
        }
        self.slots.clear();
        self.queue().pending.clear();
    }

    /// Worker context for VU `id`.
    pub fn worker(&self, id: usize) -> Worker {
        Worker {
            id,
            queue: self.queue.clone(),
            started: self.started.clone(),
            delays: self.delays.clone(),
        }
    }
}

/// What an open-model VU task needs besides the VU.
pub(super) struct Worker {
    id: usize,
    queue: Arc<Mutex<Queue>>,
    started: Arc<AtomicU64>,
    delays: Arc<Mutex<LatencyHistogram>>,
}

impl Worker {
    /// Run VU `vu`: start, serve arrivals (the first one given, then pending ones or from `rx`)
    /// until the slot closes or `stop` fires, then stop.
    pub async fn run(
        self,
        mut vu: Vu,
        shared: Arc<Shared>,
        mut rx: mpsc::Receiver<Instant>,
        first: Option<Instant>,
        stop: Stop,
    ) {
        shared.users.fetch_add(1, Ordering::Relaxed);
        vu.start(&shared).await;
        if first.is_none() {
            // A pre-allocated VU connects before the arrivals start: a thousand first requests
            // each opening a connection in the first 50 ms would delay every one of them, and
            // the delay would start more VUs opening more connections.
            vu.preconnect(&shared).await;
        }
        let mut next = first;
        loop {
            if let Some(intended) = next.take() {
                // One lane-wide histogram, locked once per iteration (uncontended: a few tens of
                // ns). A histogram per VU cost ~150 kB each once delays reached seconds, and
                // thousands of VUs spent a quarter of the CPU faulting in fresh pages.
                self.delays
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .record(Instant::now().saturating_duration_since(intended));
                vu.iteration(&shared, Some(intended), &stop).await;
                // A scheduling point per iteration, as in the closed model (`Vu::run`): with
                // arrivals always pending, an iteration failing before any I/O would loop here
                // without ever returning to the runtime.
                tokio::task::consume_budget().await;
            }
            if stop.is_stopped() {
                break;
            }
            {
                let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                match q.pending.pop_front() {
                    Some((t, _)) => {
                        drop(q);
                        self.started.fetch_add(1, Ordering::Relaxed);
                        next = Some(t);
                        continue;
                    }
                    None => q.idle.push(self.id),
                }
            }
            next = tokio::select! {
                // An arrival handed over just before the stop is still served.
                biased;
                t = rx.recv() => match t {
                    Some(t) => Some(t),
                    None => break,
                },
                _ = stop.stopped() => break,
            };
        }
        vu.stop(&shared).await;
        shared.users.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A copy of the scheduling delays recorded so far.
pub(super) fn delays(h: &Mutex<LatencyHistogram>) -> LatencyHistogram {
    h.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// `started` as a percent of `intended` (100 before anything was due).
pub(super) fn achieved_pct(started: u64, intended: f64) -> f64 {
    if intended < 1.0 {
        100.0
    } else {
        started as f64 / intended * 100.0
    }
}
