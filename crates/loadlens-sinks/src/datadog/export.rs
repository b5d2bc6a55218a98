//! The sender side: a bounded queue that the sink's hooks offer jobs to without ever waiting
//! (a full queue drops the job and counts its items), and one task that delivers them — over
//! the HTTP API with [`Api::deliver`]'s retries, or to a local agent over DogStatsD (UDP: a
//! datagram handed to the socket counts as delivered).
//!
//! Counts are in *items*: one per event and one per metric point ([`MetricsBatch::points`]),
//! whatever the transport, so `delivered + failed + dropped` is what the run produced.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use loadlens_core::sink::SinkReport;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::api::{Api, Call, Deadline};
use super::encode::{self, MetricsBatch};
use loadlens_core::client::Client;

/// Distinct error messages kept for the report.
const MAX_ERRORS: usize = 10;

/// Largest DogStatsD datagram: fits a 1,500-byte Ethernet MTU, as Datadog's clients do by default.
pub const STATSD_PACKET: usize = 1432;

/// What the sink did, shared by its tasks.
#[derive(Debug, Default)]
pub struct Stats {
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    queued: AtomicU64,
    errors: Mutex<Vec<String>>,
}

impl Stats {
    /// Record an error message (distinct ones, at most 10).
    pub fn error(&self, message: impl std::fmt::Display) {
        let m = message.to_string();
        let mut e = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if e.len() < MAX_ERRORS && !e.contains(&m) {
            e.push(m);
        }
    }

    /// Items queued and not yet delivered or failed count as failed (the end-of-run timeout
    /// cut them off).
    pub fn give_up_queued(&self, why: &str) {
        let n = self.queued.swap(0, Ordering::Relaxed);
        if n > 0 {
            self.failed.fetch_add(n, Ordering::Relaxed);
            self.error(format!("{n} items not delivered: {why}"));
        }
    }

    /// Count `n` items dropped without a queue (e.g. the sink never started).
    pub fn dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    fn unqueue(&self, n: u64) {
        let _ = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |q| {
                Some(q.saturating_sub(n))
            });
    }

    fn settle(&self, n: u64, ok: bool) {
        self.unqueue(n);
        if ok {
            self.delivered.fetch_add(n, Ordering::Relaxed);
        } else {
            self.failed.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The report for the summary.
    pub fn report(&self) -> SinkReport {
        SinkReport {
            name: "datadog".into(),
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            errors: self
                .errors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}

/// Work for the sender task.
#[derive(Debug)]
pub enum Job {
    /// A `POST /api/v1/events` body.
    Event(Vec<u8>),
    /// One interval's metrics.
    Metrics(MetricsBatch),
}

impl Job {
    /// Items in the job.
    pub fn items(&self) -> u64 {
        match self {
            Job::Event(_) => 1,
            Job::Metrics(b) => b.points(),
        }
    }
}

/// The sending end of the bounded queue; offering never waits.
#[derive(Debug, Clone)]
pub struct Queue {
    tx: mpsc::Sender<Job>,
    stats: Arc<Stats>,
}

impl Queue {
    /// A queue with room for `capacity` jobs, and its receiving end.
    pub fn new(capacity: usize, stats: Arc<Stats>) -> (Queue, mpsc::Receiver<Job>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (Queue { tx, stats }, rx)
    }

    /// Queue `job`, or count its items as dropped when the queue is full or closed.
    pub fn offer(&self, job: Job) {
        let n = job.items();
        self.stats.queued.fetch_add(n, Ordering::Relaxed);
        if self.tx.try_send(job).is_err() {
            self.stats.unqueue(n);
            self.stats.dropped.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Where metrics go.
#[derive(Debug)]
pub enum MetricsOut {
    /// The HTTP API.
    Api,
    /// A DogStatsD socket, connected to the agent.
    Statsd(UdpSocket),
    /// Nowhere (events only).
    Off,
}

/// The sender task's state.
#[derive(Debug)]
pub struct Exporter {
    /// The API (absent without an API key).
    pub api: Option<(Api, Client)>,
    /// Metrics transport.
    pub metrics: MetricsOut,
    /// Tags on every metric.
    pub base_tags: Vec<String>,
    /// Metric name prefix.
    pub prefix: String,
    /// Latency values per name and interval before sampling.
    pub max_values: usize,
    /// Shared counters.
    pub stats: Arc<Stats>,
    /// End of the delivery window.
    pub deadline: Deadline,
}

impl Exporter {
    /// Deliver jobs until every [`Queue`] is dropped.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        while let Some(job) = rx.recv().await {
            match job {
                Job::Event(body) => self.post("/api/v1/events", body, false, 1).await,
                Job::Metrics(batch) => self.metrics(&batch).await,
            }
        }
    }

    async fn metrics(&mut self, batch: &MetricsBatch) {
        match &self.metrics {
            MetricsOut::Api => {
                let (body, n) = encode::series(batch, &self.base_tags, &self.prefix);
                self.post("/api/v2/series", body, true, n).await;
                let (body, n) =
                    encode::distributions(batch, &self.base_tags, &self.prefix, self.max_values);
                if n > 0 {
                    self.post("/api/v1/distribution_points", body, true, n)
                        .await;
                }
            }
            MetricsOut::Statsd(sock) => {
                let (packets, n) = encode::statsd(
                    batch,
                    &self.base_tags,
                    &self.prefix,
                    self.max_values,
                    STATSD_PACKET,
                );
                let mut ok = true;
                for p in &packets {
                    if let Err(e) = sock.send(p).await {
                        self.stats.error(format!("DogStatsD: {e}"));
                        ok = false;
                        break;
                    }
                }
                self.stats.settle(n, ok);
            }
            MetricsOut::Off => self.stats.settle(batch.points(), true),
        }
    }

    async fn post(&mut self, path: &str, body: Vec<u8>, gzip: bool, items: u64) {
        let Some((api, client)) = &mut self.api else {
            self.stats.settle(items, false);
            return;
        };
        let call = Call::post(path, body, gzip);
        match api.deliver(client, &call, &self.deadline).await {
            Ok(_) => self.stats.settle(items, true),
            Err(e) => {
                tracing::warn!(sink = "datadog", error = %e, "Export failed.");
                self.stats.error(&e);
                self.stats.settle(items, false);
            }
        }
    }
}
