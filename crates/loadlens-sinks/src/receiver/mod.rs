//! The trace receiver: the service under test (or a Collector that fans out) sends its own
//! spans to loadlens over OTLP, and loadlens joins them to the client samples of its sampled
//! requests to say, per request name, where the time went ([`loadlens_core::breakdown`]).
//!
//! - [`Receiver`] is the integration (`integration.rs`, with `config.rs`): the `traces:`
//!   section and the flags `--trace-receiver [ADDR]`, `--trace-receiver-grpc ADDR`,
//!   `--trace-join-window`, `--trace-forward URL`, `--trace-top N`, `--trace-link TEMPLATE`,
//!   `--trace-sample RATIO`;
//! - [`server`]: OTLP/HTTP `POST /v1/traces` and OTLP/gRPC `TraceService/Export` (h2c), gzip
//!   accepted, bodies bounded; [`decode`]: OTLP protobuf into spans, read in place (`wire.rs`);
//! - `forward.rs`: what arrives, forwarded as it came to the user's own collector (OTLP/HTTP),
//!   so that the service's normal pipeline keeps its data.
//!
//! It runs apart from the virtual users: its endpoints, its decoding and the join live on one
//! thread of their own (a single-threaded tokio runtime), fed by bounded queues — the sampled
//! requests' samples through a [`SampleTap`] like the OTLP exporter's, the spans from the
//! endpoints — so a burst of spans costs the load test at most one core, and never a wait.
//! Memory is bounded by the join ([`loadlens_core::breakdown::Join`]): a join window, a
//! table of pending requests, a bound on unclaimed spans; what does not fit is counted.
//!
//! Once a second the join publishes its [`Breakdown`]; the executor puts the latest in each
//! snapshot. When the last request has ended, [`BreakdownSource::settle`] waits for the
//! stragglers: until every sampled request has spans and none arrived for a moment, at most
//! the join window; then every pending request is final and the breakdown goes in the
//! summary, with its counters and HDR histograms in the form that merges
//! (`Breakdown::histograms`: the JSON result's `breakdown.histograms`, which `loadlens merge`
//! adds up). A coordinated worker's receiver adds that form (without the series) to every
//! breakdown it publishes, which the worker streams to the coordinator for the span
//! thresholds checked live.

mod config;
pub mod decode;
mod forward;
mod integration;
pub mod server;
#[cfg(test)]
mod tests;
mod wire;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use loadlens_core::breakdown::{Breakdown, BreakdownSource, Join, Span};
use loadlens_core::report::Summary;
use loadlens_core::sink::{FinishFuture, SampleReceiver, SampleTap, Sink, SinkContext, SinkReport};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use config::{Config, FileSettings, DEFAULT_GRPC, DEFAULT_HTTP, DEFAULT_WINDOW};
pub use integration::Receiver;
use server::{Counters, Intake, Protocol};

/// Why the receiver could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// An endpoint's address could not be bound.
    #[error("cannot receive OTLP traces on {addr} ({protocol}): {source} (choose another address with {flag} ADDR, or `off`)")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// `http` or `grpc`.
        protocol: &'static str,
        /// The flag that sets it.
        flag: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The receiver's thread could not be started.
    #[error("cannot start the trace receiver's thread: {0}")]
    Thread(std::io::Error),
}

/// Batches of spans that may wait for the join (a full queue drops the batch, counted).
const SPAN_QUEUE: usize = 1024;
/// Bodies that may wait to be forwarded.
const FORWARD_QUEUE: usize = 256;
/// At the end, how long no span must arrive before the stragglers are deemed all in.
const QUIET: Duration = Duration::from_millis(300);
/// How often the queued samples of sampled requests are given to the join. The queue is
/// drained on a timer rather than awaited: a thread parked on it would be woken by every
/// sampled request, a cross-thread wake-up (and on a generator pinned to one CPU, a context
/// switch) per request.
const DRAIN_EVERY: Duration = Duration::from_millis(10);
/// How often the join expires requests and checks the end.
const EXPIRE_EVERY: Duration = Duration::from_millis(100);
/// How often it publishes its breakdown during the run.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// How long finishing may take (the forwarder's last bodies).
const FINISH: Duration = Duration::from_secs(4);

/// What the run gives the join when it starts.
struct Begin {
    names: Vec<(String, String)>,
    run_start: SystemTime,
    samples: SampleReceiver,
}

type Latest = Arc<Mutex<Option<Arc<Breakdown>>>>;
type SettleReply = oneshot::Sender<Arc<Breakdown>>;

/// The receiver's sink: its endpoints are bound and serving from [`ReceiverSink::start`].
pub struct ReceiverSink {
    addrs: Vec<(Protocol, SocketAddr)>,
    tap: SampleTap,
    samples: Option<SampleReceiver>,
    begin: Option<oneshot::Sender<Begin>>,
    feed: Arc<Feed>,
    counters: Arc<Counters>,
    stop: CancellationToken,
    done: Option<oneshot::Receiver<forward::Outcome>>,
}

impl std::fmt::Debug for ReceiverSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverSink")
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

impl ReceiverSink {
    /// Bind the endpoints (a port in use is an error here) and start the receiver's thread.
    pub fn start(config: Config) -> Result<Self, StartError> {
        let mut listeners = Vec::new();
        for (addr, protocol, name, flag) in [
            (config.http, Protocol::Http, "http", "--trace-receiver"),
            (config.grpc, Protocol::Grpc, "grpc", "--trace-receiver-grpc"),
        ] {
            let Some(addr) = addr else { continue };
            let bound = std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|source| StartError::Bind {
                    addr,
                    protocol: name,
                    flag,
                    source,
                })?;
            listeners.push((bound, protocol));
        }
        let addrs = listeners
            .iter()
            .filter_map(|(l, p)| l.local_addr().ok().map(|a| (*p, a)))
            .collect();
        let (spans_tx, spans_rx) = mpsc::channel(SPAN_QUEUE);
        let (forward_tx, forward_rx) = match &config.forward {
            Some(_) => {
                let (tx, rx) = mpsc::channel(FORWARD_QUEUE);
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let counters = Arc::new(Counters::default());
        let intake = Intake {
            spans: spans_tx,
            forward: forward_tx,
            counters: counters.clone(),
        };
        let (settle_tx, settle_rx) = mpsc::channel(4);
        let feed = Arc::new(Feed {
            latest: Latest::default(),
            settle: settle_tx,
            bound: config.join.window + Duration::from_secs(2),
        });
        let (tap, samples) = SampleTap::sampled(config.queue);
        let (begin_tx, begin_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let stop = CancellationToken::new();
        let thread = Thread {
            listeners,
            intake,
            spans: spans_rx,
            forward: forward_rx.zip(config.forward.clone()),
            begin: begin_rx,
            settle: settle_rx,
            latest: feed.latest.clone(),
            counters: counters.clone(),
            config,
            stop: stop.clone(),
        };
        std::thread::Builder::new()
            .name("loadlens-traces".into())
            .spawn(move || {
                let outcome = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(thread.run()),
                    Err(e) => forward::Outcome::failed(format!("no runtime: {e}")),
                };
                let _ = done_tx.send(outcome);
            })
            .map_err(StartError::Thread)?;
        Ok(ReceiverSink {
            addrs,
            tap,
            samples: Some(samples),
            begin: Some(begin_tx),
            feed,
            counters,
            stop,
            done: Some(done_rx),
        })
    }

    /// The bound address of the OTLP/HTTP endpoint, if on.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.addr(Protocol::Http)
    }

    /// The bound address of the OTLP/gRPC endpoint, if on.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.addr(Protocol::Grpc)
    }

    fn addr(&self, p: Protocol) -> Option<SocketAddr> {
        self.addrs.iter().find(|(q, _)| *q == p).map(|(_, a)| *a)
    }
}

impl Drop for ReceiverSink {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Sink for ReceiverSink {
    fn name(&self) -> &str {
        "traces"
    }

    fn on_start(&mut self, ctx: &SinkContext) {
        let run_start = SystemTime::now() - ctx.timeline.elapsed();
        if let (Some(begin), Some(samples)) = (self.begin.take(), self.samples.take()) {
            let _ = begin.send(Begin {
                names: ctx.names.clone(),
                run_start,
                samples,
            });
        }
    }

    fn sample_tap(&mut self) -> Option<SampleTap> {
        Some(self.tap.clone())
    }

    fn breakdown_source(&mut self) -> Option<Arc<dyn BreakdownSource>> {
        Some(self.feed.clone())
    }

    fn finish(mut self: Box<Self>, _summary: &Summary) -> FinishFuture {
        self.stop.cancel();
        let done = self.done.take();
        let counters = self.counters.clone();
        Box::pin(async move {
            let outcome = match done {
                Some(d) => tokio::time::timeout(FINISH + Duration::from_secs(1), d)
                    .await
                    .ok()
                    .and_then(Result::ok),
                None => None,
            }
            .unwrap_or_else(|| {
                forward::Outcome::failed("the receiver did not stop in time".into())
            });
            SinkReport {
                name: "traces".into(),
                delivered: outcome.forwarded,
                failed: outcome.failed,
                dropped: counters.forward_dropped.load(Ordering::Relaxed),
                errors: outcome.errors,
            }
        })
    }
}

/// The executor's handle on the join: the latest breakdown, and the end-of-run wait.
struct Feed {
    latest: Latest,
    settle: mpsc::Sender<SettleReply>,
    /// The longest the end of the run waits (the join window and a margin).
    bound: Duration,
}

impl BreakdownSource for Feed {
    fn latest(&self) -> Option<Arc<Breakdown>> {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn settle(&self) -> Pin<Box<dyn Future<Output = Option<Arc<Breakdown>>> + Send + '_>> {
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            if self.settle.send(tx).await.is_ok() {
                if let Ok(Ok(b)) = tokio::time::timeout(self.bound, rx).await {
                    return Some(b);
                }
            }
            self.latest()
        })
    }
}

/// Everything the receiver's thread owns.
struct Thread {
    listeners: Vec<(std::net::TcpListener, Protocol)>,
    intake: Intake,
    spans: mpsc::Receiver<Vec<Span>>,
    forward: Option<(mpsc::Receiver<bytes::Bytes>, http::Uri)>,
    begin: oneshot::Receiver<Begin>,
    settle: mpsc::Receiver<SettleReply>,
    latest: Latest,
    counters: Arc<Counters>,
    config: Config,
    stop: CancellationToken,
}

impl Thread {
    async fn run(self) -> forward::Outcome {
        let Thread {
            listeners,
            intake,
            spans,
            forward,
            begin,
            settle,
            latest,
            counters,
            config,
            stop,
        } = self;
        let mut servers = tokio::task::JoinSet::new();
        for (l, protocol) in listeners {
            match tokio::net::TcpListener::from_std(l) {
                Ok(l) => {
                    servers.spawn(server::serve(l, protocol, intake.clone(), stop.clone()));
                }
                Err(e) => tracing::warn!(sink = "traces", error = %e, "Cannot listen."),
            }
        }
        // The endpoints hold the queues' senders: once they stop, the queues close.
        drop(intake);
        let forwarder = forward.map(|(rx, url)| tokio::spawn(forward::run(rx, url, stop.clone())));
        let begin = tokio::select! {
            b = begin => b.ok(),
            () = stop.cancelled() => None,
        };
        if let Some(b) = begin {
            let join = Join::new(config.join.clone(), b.names, b.run_start);
            let out = Publish {
                latest: &latest,
                counters: &counters,
                live_histograms: config.live_histograms,
            };
            join_loop(join, b.samples, spans, settle, &out, &stop).await;
        }
        while servers.join_next().await.is_some() {}
        match forwarder {
            Some(f) => f
                .await
                .unwrap_or_else(|_| forward::Outcome::failed("the forwarder panicked".into())),
            None => forward::Outcome::default(),
        }
    }
}

/// Where the join's breakdown goes: the latest one, read by each snapshot.
struct Publish<'a> {
    latest: &'a Latest,
    counters: &'a Counters,
    /// Every breakdown also in the form that merges, not only the last ([`Config`]).
    live_histograms: bool,
}

impl Publish<'_> {
    /// Publish the join's breakdown, with what the endpoints counted before the join saw it;
    /// the `last` one (and each one, for a coordinated worker) also in the form that merges.
    fn publish(&self, join: &Join, last: bool) -> Arc<Breakdown> {
        let counters = self.counters;
        let mut b = join.breakdown();
        let lost = counters.queue_dropped.load(Ordering::Relaxed)
            + counters.invalid.load(Ordering::Relaxed);
        b.coverage.spans_received += lost;
        b.coverage.spans_dropped += lost;
        b.coverage.rejected_exports = counters.rejected.load(Ordering::Relaxed);
        if last || self.live_histograms {
            // Live, without the series: they are most of the size, and only the end's
            // reports show them.
            let mut h = join.histograms(last);
            h.coverage = b.coverage.clone();
            b.histograms = Some(Arc::new(h));
        }
        let b = Arc::new(b);
        *self.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(b.clone());
        b
    }
}

async fn join_loop(
    mut join: Join,
    mut samples: SampleReceiver,
    mut spans: mpsc::Receiver<Vec<Span>>,
    mut settle: mpsc::Receiver<SettleReply>,
    out: &Publish<'_>,
    stop: &CancellationToken,
) {
    let mut tick = tokio::time::interval(EXPIRE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut published = Instant::now();
    let mut last_span = Instant::now();
    let mut settling: Option<(SettleReply, Instant)> = None;
    let mut samples_open = true;
    let mut drain = tokio::time::interval(DRAIN_EVERY);
    drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = drain.tick(), if samples_open => {
                samples_open = drain_samples(&mut join, &mut samples);
            }
            Some(batch) = spans.recv() => {
                // The samples sent before these spans first, so that they find their
                // requests waiting rather than wait as orphans.
                if samples_open {
                    samples_open = drain_samples(&mut join, &mut samples);
                }
                last_span = Instant::now();
                join.spans(batch, last_span);
            }
            Some(reply) = settle.recv() => {
                let deadline = Instant::now() + join_window(&join);
                settling = Some((reply, deadline));
            }
            _ = tick.tick() => {
                if samples_open {
                    samples_open = drain_samples(&mut join, &mut samples);
                }
                let now = Instant::now();
                join.expire(now);
                if let Some((_, deadline)) = &settling {
                    // Every sampled request has spans and none came for a moment, or the
                    // window is over: the stragglers are in.
                    let quiet = join.waiting_without_spans() == 0 && now - last_span >= QUIET;
                    if quiet || now >= *deadline {
                        join.flush();
                        let b = out.publish(&join, true);
                        if let Some((reply, _)) = settling.take() {
                            let _ = reply.send(b);
                        }
                        published = now;
                    }
                }
                if now - published >= PUBLISH_EVERY {
                    out.publish(&join, false);
                    published = now;
                }
            }
            () = stop.cancelled() => break,
        }
    }
    drain_samples(&mut join, &mut samples);
    join.flush();
    out.publish(&join, true);
}

/// Give the join every queued sample; whether more may come.
fn drain_samples(join: &mut Join, samples: &mut SampleReceiver) -> bool {
    let now = Instant::now();
    loop {
        match samples.try_recv() {
            Ok(s) => join.client(&s, now),
            Err(mpsc::error::TryRecvError::Empty) => return true,
            Err(mpsc::error::TryRecvError::Disconnected) => return false,
        }
    }
}

fn join_window(join: &Join) -> Duration {
    join.window()
}
