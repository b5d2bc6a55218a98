//! Datadog: what the seed scripts post by hand in every locustfile, as configuration.
//!
//! - **Events** (`POST /api/v1/events`): run started, threshold breached, stage changed, run
//!   aborted, monitor state changed, run stopped (with requests, failure rate, p95/p99,
//!   thresholds and verdict). Tagged `test_run:<run id>` plus the run's tags (`env`, `service`,
//!   `team`, `git_sha`, user tags) and `scenario:<name>`, with `aggregation_key` = run id,
//!   `source_type_name: loadlens` and an `alert_type` that matches the outcome.
//! - **Metrics** every interval (10 s), see [`encode`]: counts and gauges through
//!   `POST /api/v2/series` (gzip), latency as distribution points
//!   (`POST /api/v1/distribution_points`, gzip) — or everything over DogStatsD to a local agent.
//!   Per request name (`request:<name>`, `method:<M>`), at most
//!   [`Config::max_request_names`] names; later names share the tag [`OVERFLOW_TAG`].
//! - **Monitor guards** ([`monitors`]): polled from one task; transitions on the run's
//!   timeline; `mark`, `abort` or `fail` on Alert.
//!
//! At the start, [`DatadogSink::connect`] checks the API key (`GET /api/v1/validate`), the
//! application key and the monitor ids (one `GET /api/v1/monitor/{id}` each), and the agent
//! address; the integration ([`Datadog`]: the `--datadog*` flags, the `datadog:` section, the
//! `DD_*` environment) turns a failure into one clear line and a run without Datadog, or
//! refuses to run when Datadog is required (`--datadog-required`). During the run the hooks only fold snapshots into counters and
//! offer jobs to bounded queues ([`export`]): events and metrics have a queue and a sender task
//! each, so that an event never waits behind a metric payload that is being retried (a 429 with
//! a long reset, a failing `/api/v2/series`), and each gets the whole end-of-run timeout. What
//! could not be delivered is counted in the [`loadlens_core::sink::SinkReport`].
//!
//! Datadog keeps one point per series and timestamp second (the last one written), so the sink
//! never sends two: flushes are due on the grid of the metric interval (`2 s` means at 2, 4, 6 s
//! into the run, whatever the jitter of the snapshot ticks); one that would land in the second
//! of the previous flush is merged into the next one, and the final flush at the end of the run
//! takes the next second when the current one is taken.

pub mod api;
mod config;
pub mod encode;
pub mod export;
mod integration;
pub mod monitors;
#[cfg(any(test, feature = "testing"))]
pub mod stub;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use loadlens_core::executor::describe;
use loadlens_core::report::{Summary, Verdict};
use loadlens_core::run::{EventKind, TimelineEvent};
use loadlens_core::sink::{FinishFuture, Sink, SinkContext};
use loadlens_core::stats::{Snapshot, StatsSet};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use api::ApiError;
pub use config::{
    Config, ConfigError, DatadogMonitor, DatadogSettings, MetricsTransport, MonitorAction,
    MonitorSpec, Overrides, Secret, KNOWN_SITES, OVERFLOW_TAG,
};
pub use integration::Datadog;

use api::{Api, Call, Deadline};
use encode::{tag, Event, MetricsBatch, NameMetrics};
use export::{Exporter, Job, MetricsOut, Queue, Stats};
use monitors::{short, unix_now, Poller};

/// Why the sink could not start. Messages name the site or URL, never a key.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `GET /api/v1/validate` said no.
    #[error("Datadog rejected the API key ({status} from GET {url}): check DD_API_KEY (or DATADOG_API_KEY) and that DD_SITE is your account's site (now {site})")]
    KeyRejected {
        /// HTTP status.
        status: u16,
        /// The validate URL.
        url: String,
        /// Site.
        site: String,
    },
    /// A monitor could not be read with the application key.
    #[error("Datadog rejected the application key reading monitor {id} ({status} from GET {url}): check DD_APP_KEY (or DATADOG_APP_KEY) and its monitors_read scope")]
    AppKeyRejected {
        /// Monitor id.
        id: u64,
        /// HTTP status.
        status: u16,
        /// The monitor URL.
        url: String,
    },
    /// A watched monitor does not exist.
    #[error("Datadog monitor {id} does not exist (404 from GET {url})")]
    MonitorNotFound {
        /// Monitor id.
        id: u64,
        /// The monitor URL.
        url: String,
    },
    /// No usable answer from the API.
    #[error("cannot reach Datadog: {0}")]
    Unreachable(String),
    /// The DogStatsD agent address cannot be used.
    #[error("cannot use the Datadog agent at {host}:{port} for DogStatsD: {message}")]
    Agent {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// What failed.
        message: String,
    },
}

/// The Datadog sink. Build it with [`DatadogSink::connect`], then hand it to the executor.
pub struct DatadogSink {
    cfg: Config,
    api: Option<Api>,
    statsd: Option<UdpSocket>,
    stats: Arc<Stats>,
    /// End of the delivery window of events and of metrics: each sender has its own, so that a
    /// struggling metrics endpoint cannot use up the events' time.
    deadlines: [Deadline; 2],
    /// Events (start, breaches, monitor changes, stop) and their sender task.
    events: Option<Queue>,
    /// One interval's metrics at a time, and their sender task.
    metrics: Option<Queue>,
    senders: Vec<JoinHandle<()>>,
    poller: Option<(CancellationToken, JoinHandle<()>)>,
    run_id: String,
    event_tags: Vec<String>,
    acc: Accumulator,
    /// Run time of the last flush.
    last_flush: Duration,
    /// Run time at which the next regular flush is due (a multiple of the metric interval).
    next_flush: Duration,
    /// Timestamp (Unix seconds) of the last metrics sent; no series gets a second point in it.
    last_timestamp: i64,
    /// Timeline events seen during the run: those the summary has beyond them were added after
    /// the run (guard actions at its end) and are sent at finish.
    events_seen: usize,
}

impl std::fmt::Debug for DatadogSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatadogSink")
            .field("base_url", &self.cfg.base_url)
            .field("metrics", &self.cfg.metrics)
            .field("monitors", &self.cfg.monitors.len())
            .finish_non_exhaustive()
    }
}

impl DatadogSink {
    /// Check the keys, the monitors and the agent address, and prepare the sink.
    pub async fn connect(cfg: Config) -> Result<DatadogSink, StartError> {
        let api = match &cfg.api_key {
            Some(_) => Some(Api::new(&cfg).map_err(|e| StartError::Unreachable(e.to_string()))?),
            None => None,
        };
        if let Some(api) = &api {
            let mut client = api.client();
            let path = "/api/v1/validate";
            let rejected = |status| StartError::KeyRejected {
                status,
                url: api.url(path),
                site: cfg.site.clone(),
            };
            match api.once(&mut client, &Call::get(path, false)).await {
                Ok(a) => {
                    let valid = serde_json::from_slice::<serde_json::Value>(&a.body)
                        .ok()
                        .and_then(|v| v.get("valid").and_then(|b| b.as_bool()));
                    if valid == Some(false) {
                        return Err(rejected(a.status));
                    }
                }
                Err(ApiError::Status {
                    status: status @ (401 | 403),
                    ..
                }) => return Err(rejected(status)),
                Err(e) => return Err(StartError::Unreachable(e.to_string())),
            }
            for m in &cfg.monitors {
                let url = api.url(&format!("/api/v1/monitor/{}", m.id));
                match monitors::fetch(api, &mut client, m.id).await {
                    Ok(_) => {}
                    Err(ApiError::Status {
                        status: status @ (401 | 403),
                        ..
                    }) => {
                        return Err(StartError::AppKeyRejected {
                            id: m.id,
                            status,
                            url,
                        })
                    }
                    Err(ApiError::Status { status: 404, .. }) => {
                        return Err(StartError::MonitorNotFound { id: m.id, url })
                    }
                    Err(e) => return Err(StartError::Unreachable(e.to_string())),
                }
            }
        }
        let statsd = match &cfg.dogstatsd {
            Some((host, port)) if cfg.metrics == MetricsTransport::DogStatsd => {
                let agent = |message: String| StartError::Agent {
                    host: host.clone(),
                    port: *port,
                    message,
                };
                let addr = tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .map_err(|e| agent(e.to_string()))?
                    .next()
                    .ok_or_else(|| agent("the name has no address".into()))?;
                let local = if addr.is_ipv4() {
                    "0.0.0.0:0"
                } else {
                    "[::]:0"
                };
                let sock = UdpSocket::bind(local)
                    .await
                    .map_err(|e| agent(e.to_string()))?;
                sock.connect(addr).await.map_err(|e| agent(e.to_string()))?;
                Some(sock)
            }
            _ => None,
        };
        Ok(Self::build(cfg, api, statsd))
    }

    /// The sink without the start-time checks, talking to the API only (no DogStatsD): for
    /// tests, and for callers that checked the keys already.
    pub fn unchecked(cfg: Config) -> DatadogSink {
        let api = cfg.api_key.as_ref().and_then(|_| Api::new(&cfg).ok());
        Self::build(cfg, api, None)
    }

    fn build(cfg: Config, api: Option<Api>, statsd: Option<UdpSocket>) -> DatadogSink {
        DatadogSink {
            acc: Accumulator::new(cfg.max_request_names),
            next_flush: cfg.metric_interval,
            cfg,
            api,
            statsd,
            stats: Arc::new(Stats::default()),
            deadlines: Default::default(),
            events: None,
            metrics: None,
            senders: Vec::new(),
            poller: None,
            run_id: String::new(),
            event_tags: Vec::new(),
            last_flush: Duration::ZERO,
            last_timestamp: 0,
            events_seen: 0,
        }
    }

    fn event(&self, title: String, text: String, alert_type: &'static str) {
        self.event_tagged(title, text, alert_type, &[]);
    }

    /// [`Self::event`] with tags beyond the run's (the feature flag of a config change).
    fn event_tagged(
        &self,
        title: String,
        text: String,
        alert_type: &'static str,
        extra: &[String],
    ) {
        if !self.cfg.events {
            return;
        }
        if let Some(q) = &self.events {
            let e = Event {
                title: short(&title),
                text,
                alert_type,
                date: unix_now(),
            };
            let tags: Vec<String> = self.event_tags.iter().chain(extra).cloned().collect();
            q.offer(Job::Event(encode::event(&e, &tags, &self.run_id)));
        }
    }

    /// Send what was accumulated since the last flush, stamped `timestamp` (Unix seconds, later
    /// than the last one sent); `last` at the end of the run.
    fn flush(&mut self, elapsed: Duration, timestamp: i64, last: bool) {
        let span = elapsed.saturating_sub(self.last_flush);
        self.last_flush = elapsed;
        self.last_timestamp = timestamp;
        if self.cfg.metrics == MetricsTransport::Off {
            return;
        }
        let batch = self
            .acc
            .take(timestamp, span.as_secs_f64().round().max(1.0) as i64, last);
        if let (Some(q), true) = (&self.metrics, batch.points() > 0) {
            q.offer(Job::Metrics(batch));
        }
    }
}

impl Sink for DatadogSink {
    fn name(&self) -> &str {
        "datadog"
    }

    fn on_start(&mut self, ctx: &SinkContext) {
        let run = &ctx.run;
        self.run_id = run.id.clone();
        let mut tags = vec![tag("test_run", &run.id), tag("scenario", &run.scenario)];
        tags.extend(run.tags.iter().map(|(k, v)| tag(k, v)));
        tags.extend(self.cfg.tags.iter().map(|(k, v)| tag(k, v)));
        tags.dedup();
        self.event_tags = tags.clone();
        self.acc.names = ctx.names.clone();
        let metrics = match (self.cfg.metrics, self.statsd.take()) {
            (MetricsTransport::Api, _) => MetricsOut::Api,
            (MetricsTransport::DogStatsd, Some(s)) => MetricsOut::Statsd(s),
            _ => MetricsOut::Off,
        };
        // Two senders, each with its own queue, connection and deadline.
        let mut queues = Vec::with_capacity(2);
        for (out, deadline) in [MetricsOut::Off, metrics].into_iter().zip(&self.deadlines) {
            let (queue, rx) = Queue::new(self.cfg.queue, self.stats.clone());
            let exporter = Exporter {
                api: self.api.as_ref().map(|a| (a.clone(), a.client())),
                metrics: out,
                base_tags: tags.clone(),
                prefix: self.cfg.prefix.clone(),
                max_values: self.cfg.max_values,
                stats: self.stats.clone(),
                deadline: deadline.clone(),
            };
            self.senders.push(tokio::spawn(exporter.run(rx)));
            queues.push(queue);
        }
        let (events, metrics) = (queues.remove(0), queues.remove(0));
        if let (Some(api), false) = (&self.api, self.cfg.monitors.is_empty()) {
            let poller = Poller {
                api: api.clone(),
                monitors: self.cfg.monitors.clone(),
                interval: self.cfg.monitor_interval,
                controls: ctx.controls.clone(),
                timeline: ctx.timeline.clone(),
                events: self.cfg.events.then(|| events.clone()),
                event_tags: self.event_tags.clone(),
                run_id: run.id.clone(),
                stats: self.stats.clone(),
            };
            let cancel = CancellationToken::new();
            self.poller = Some((cancel.clone(), tokio::spawn(poller.run(cancel))));
        }
        self.events = Some(events);
        self.metrics = Some(metrics);
        let mut text = format!("Run {} of {} started.\n", run.id, run.scenario);
        for d in &self.cfg.details {
            text.push_str(d);
            text.push('\n');
        }
        if !self.cfg.monitors.is_empty() {
            let m: Vec<String> = self
                .cfg
                .monitors
                .iter()
                .map(|m| format!("{} ({:?} on Alert)", m.id, m.action).to_lowercase())
                .collect();
            text.push_str(&format!("Monitors watched: {}\n", m.join(", ")));
        }
        text.push_str(&format!("Tags: {}", self.event_tags.join(" ")));
        self.event(
            format!("loadlens run {} started: {}", run.id, run.scenario),
            text,
            "info",
        );
    }

    fn on_event(&mut self, e: &TimelineEvent) {
        self.events_seen += 1;
        let id = &self.run_id;
        let (title, alert) = match e.kind {
            EventKind::ThresholdBreached if e.message.starts_with("aborting") => {
                (format!("loadlens run {id}: {}", e.message), "error")
            }
            EventKind::ThresholdBreached => (
                format!("loadlens run {id}: threshold breached: {}", e.message),
                "warning",
            ),
            EventKind::StageChanged | EventKind::ConfigChanged => {
                (format!("loadlens run {id}: {}", e.message), "info")
            }
            // A guard action or a planned flip, with its outcome.
            EventKind::Action if e.message.contains(": FAILED") => {
                (format!("loadlens run {id}: action {}", e.message), "error")
            }
            EventKind::Action => (format!("loadlens run {id}: action {}", e.message), "info"),
            EventKind::StopRequested if e.message.starts_with("aborted") => {
                (format!("loadlens run {id} {}", e.message), "error")
            }
            // Monitor changes were sent by the poller; start and stop have their own events.
            _ => return,
        };
        let text = format!("{} (at {:.1} s into the run)", e.message, e.elapsed_s);
        // A config change is tagged with its flag, so that a monitor's graph can overlay the
        // changes of one gate (Statsig's own "config changes" integration does the same).
        let extra: Vec<String> = e
            .flag
            .iter()
            .flat_map(|f| {
                [
                    format!("feature_flag:{}", f.key),
                    format!("{}_{}:{}", f.provider, f.entity, f.key),
                ]
            })
            .collect();
        self.event_tagged(title, text, alert, &extra);
    }

    fn on_snapshot(&mut self, s: &Arc<Snapshot>) {
        self.acc.add(&s.interval);
        // The gauge reports the interval's peak: the last tick of a run has no users left.
        self.acc.users = self.acc.users.max(s.users);
        self.acc.current_users = s.users;
        self.acc.health = s.health.clone();
        if s.elapsed < self.next_flush {
            return;
        }
        // Due on the interval's grid: a tick a millisecond early or late does not move the
        // next flush by a whole tick.
        while self.next_flush <= s.elapsed {
            self.next_flush += self.cfg.metric_interval;
        }
        let timestamp =
            s.at.duration_since(std::time::UNIX_EPOCH)
                .map_or_else(|_| unix_now(), |d| d.as_secs() as i64);
        // A second point in the second of the last flush would replace it in Datadog: these
        // figures go with the next flush instead.
        if timestamp > self.last_timestamp {
            self.flush(s.elapsed, timestamp, false);
        }
    }

    fn finish(mut self: Box<Self>, summary: &Summary) -> FinishFuture {
        if self.metrics.is_some() {
            // Its own second, even when the last regular flush was a moment ago (a point up to
            // a second ahead is accepted: Datadog takes points up to 10 minutes in the future).
            let timestamp = unix_now().max(self.last_timestamp + 1);
            self.flush(
                summary
                    .duration
                    .max(self.last_flush + Duration::from_secs(1)),
                timestamp,
                true,
            );
        }
        if self.events.is_some() {
            // Actions at the end of the run (a failed run's `disable_gate`, restores) came to
            // the timeline after the run's last event was fanned out.
            for e in summary.timeline.iter().skip(self.events_seen) {
                if e.kind == EventKind::Action {
                    self.on_event(e);
                }
            }
            let (title, text, alert) = stop_event(summary);
            self.event(title, text, alert);
        }
        let timeout = self.cfg.timeout;
        Box::pin(async move {
            let stats = self.stats.clone();
            if let Some((cancel, handle)) = self.poller.take() {
                cancel.cancel();
                let _ = handle.await;
            }
            // Dropping the last queue handles lets the sender tasks end once they sent all.
            self.events = None;
            self.metrics = None;
            let deadline = tokio::time::Instant::now() + timeout;
            for d in &self.deadlines {
                d.set(deadline);
            }
            // A little past the deadline: the tasks' own retries stop at it.
            let grace = deadline + Duration::from_millis(200);
            let mut late = false;
            for mut handle in std::mem::take(&mut self.senders) {
                if tokio::time::timeout_at(grace, &mut handle).await.is_err() {
                    handle.abort();
                    late = true;
                }
            }
            if late {
                stats.give_up_queued(&format!(
                    "Datadog did not take them within the end-of-run timeout of {}",
                    humantime::format_duration(timeout)
                ));
            }
            stats.give_up_queued("the sender stopped");
            stats.report()
        })
    }
}

/// Title, text and alert type of the stop event.
fn stop_event(s: &Summary) -> (String, String, &'static str) {
    let verdict = s.verdict();
    let (word, alert) = match verdict {
        Verdict::Passed => ("passed", "success"),
        Verdict::Failed => ("failed", "error"),
        Verdict::Aborted => ("aborted", "error"),
        Verdict::Interrupted => ("interrupted", "warning"),
    };
    let t = s.total();
    let mut text = format!(
        "Run {} of {}: {word} after {:.1} s ({}).\nRequests: {}, failures: {} ({:.2}%), {:.1} req/s\nLatency: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms\n",
        s.run.id,
        s.run.scenario,
        s.duration.as_secs_f64(),
        describe(&s.stop_reason),
        t.request_count,
        t.failure_count,
        t.error_rate * 100.0,
        t.rps,
        t.latency_ms.p50,
        t.latency_ms.p95,
        t.latency_ms.p99,
    );
    let th = &s.outcome.thresholds;
    if !th.is_empty() {
        let passed = th.iter().filter(|r| r.passed).count();
        text.push_str(&format!("Thresholds: {passed} of {} passed\n", th.len()));
        for r in th {
            let mark = if r.passed { "PASS" } else { "FAIL" };
            text.push_str(&format!("- {mark} {}: {}\n", r.expression, r.detail));
        }
    }
    for f in &s.outcome.failures {
        text.push_str(&format!("Failed by a guard: {f}\n"));
    }
    (
        format!("loadlens run {} {word}: {}", s.run.id, s.run.scenario),
        text,
        alert,
    )
}

/// Per-request-name figures since the last flush, with the cardinality cap applied.
#[derive(Debug, Default)]
struct Accumulator {
    names: Vec<(String, String)>,
    /// `NameId` index → slot in `pending`.
    slots: Vec<Option<usize>>,
    pending: Vec<NameMetrics>,
    overflow: Option<usize>,
    tagged: usize,
    max: usize,
    /// Peak active users since the last flush.
    users: u64,
    /// Active users in the latest snapshot.
    current_users: u64,
    /// The generator's health in the latest snapshot.
    health: loadlens_core::stats::HealthSample,
}

impl Accumulator {
    fn new(max: usize) -> Self {
        Accumulator {
            max,
            ..Accumulator::default()
        }
    }

    fn slot(&mut self, i: usize) -> usize {
        if i >= self.slots.len() {
            self.slots.resize(i + 1, None);
        }
        if let Some(s) = self.slots[i] {
            return s;
        }
        let s = if self.tagged < self.max {
            self.tagged += 1;
            let (method, name) = self.names.get(i).cloned().unwrap_or_default();
            let mut tags = vec![tag("request", &name)];
            if !method.is_empty() {
                tags.push(tag("method", &method));
            }
            self.pending.push(NameMetrics {
                tags,
                ..NameMetrics::default()
            });
            self.pending.len() - 1
        } else if let Some(o) = self.overflow {
            o
        } else {
            self.pending.push(NameMetrics {
                tags: vec![OVERFLOW_TAG.to_owned()],
                ..NameMetrics::default()
            });
            self.overflow = Some(self.pending.len() - 1);
            self.pending.len() - 1
        };
        self.slots[i] = Some(s);
        s
    }

    fn add(&mut self, interval: &StatsSet) {
        for (i, r) in interval.requests.iter().enumerate() {
            if r.count == 0 {
                continue;
            }
            let s = self.slot(i);
            let p = &mut self.pending[s];
            p.count += r.count;
            p.failures += r.failures;
            p.bytes_sent += r.bytes_sent;
            p.bytes_received += r.bytes_received;
            p.latency.merge(&r.latency);
        }
    }

    /// The interval's figures, and a new interval; `last` at the end of the run.
    fn take(&mut self, timestamp: i64, interval_s: i64, last: bool) -> MetricsBatch {
        let names = self
            .pending
            .iter_mut()
            .filter(|p| p.count > 0)
            .map(|p| {
                let out = p.clone();
                p.count = 0;
                p.failures = 0;
                p.bytes_sent = 0;
                p.bytes_received = 0;
                p.latency.clear();
                out
            })
            .collect();
        MetricsBatch {
            timestamp,
            interval_s,
            // The users active at the end of this interval are active at the start of the
            // next one: its peak starts there (the last snapshot of a run, with no users left,
            // does not make the gauge's last point 0).
            users: Some(std::mem::replace(&mut self.users, self.current_users))
                .filter(|&u| u > 0 || !last),
            names,
            health: self.health.clone(),
        }
    }
}
