//! OpenTelemetry export (`--otel`): a CLIENT span per sampled request that the service's own
//! spans continue, connection phases as child spans, and OTLP metrics built from the
//! per-second HDR snapshots — over OTLP/gRPC or OTLP/HTTP (protobuf), configured by the
//! standard `OTEL_*` environment ([`config`]). [`Otlp`] is the integration: `--otel`, the
//! `otel:` section, and the sink built from them.
//!
//! # Spans
//!
//! The core picks each request's trace and span ids and sends them in `traceparent` (with the
//! sampled flag of a `TraceIdRatioBased` decision on `OTEL_TRACES_SAMPLER(_ARG)`) and
//! `loadtest.run_id`/`loadtest.synthetic=true` in `baggage`; this sink exports, for sampled
//! requests only, a span with exactly those ids:
//!
//! | span | kind | parent | times |
//! |---|---|---|---|
//! | `{METHOD} {request name}` | CLIENT | none (the root of the trace) | actual send → last byte |
//! | `DNS lookup` | INTERNAL | the request span | from the request start, its DNS time |
//! | `socket connect` | INTERNAL | the request span | after DNS, the TCP connect time |
//! | `TLS handshake` | INTERNAL | the request span | after the connect, the handshake time |
//! | `loadtest {scenario}` | INTERNAL | none (a trace of its own) | the run; its events are the timeline's |
//!
//! Every request span links to the run span. The three connection spans (names as .NET's HttpClient instrumentation uses them) exist
//! only for a request that opened a new connection, and only for the phases that happened; the
//! phase that failed (DNS, connect or TLS) is status ERROR with the reason and `error.type`.
//! Request span attributes: `http.request.method`, `url.full`, `server.address`,
//! `server.port`, `http.response.status_code`, `network.protocol.version`, `error.type` (the
//! status code for HTTP errors, else the failure kind: `timeout`, `refused`, `check`, …),
//! `loadtest.run_id`, `loadtest.scenario`, `loadtest.request_name`, `loadtest.user_type`,
//! `loadtest.vu`, `loadtest.task` (`on_start/on_stop` outside tasks), and in the open model
//! `loadtest.intended_start_unix_nano` and `loadtest.schedule_delay_s`. The status is ERROR
//! for 5xx answers, transport errors and failed checks, with the reason as its message.
//!
//! `loadtest.scenario` on a request span is the scenario that sent it: under `scenarios:` the
//! named scenario (as k6 tags its samples), else the run's scenario (`name:` or the file
//! name), which is also the value on the resource and the run span. `loadtest.user_type` and
//! `loadtest.task` are that scenario's.
//!
//! # Metrics
//!
//! Every `OTEL_METRIC_EXPORT_INTERVAL` (default 60 s) and at the end, cumulative by default
//! (`OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta` for delta):
//!
//! | metric | type | attributes |
//! |---|---|---|
//! | `http.client.request.duration` (s) | histogram, semconv buckets 5 ms … 10 s | `http.request.method`, `loadtest.request_name`, `server.address`, `server.port` (when the name's URL is not templated), `http.response.status_code`, `error.type` (status code of 4xx/5xx or the transport error kind) |
//! | `loadtest.requests` | counter | + `http.response.status_code` (absent when no answer came) |
//! | `loadtest.failures` | counter | + `error.type` |
//! | `loadtest.users` | gauge | — |
//! | `loadtest.dropped_iterations` | counter, open model only | — |
//! | `process.cpu.time` (s) | counter | `cpu.mode` = `user`/`system` |
//! | `process.memory.usage` (By) | gauge | — |
//! | `process.cpu.utilization`, `system.cpu.utilization` (1) | gauge, 0–1 | — |
//! | `system.network.io` (By) | counter | `network.io.direction` = `transmit`/`receive` |
//! | `loadtest.connections.open` ({connection}), `loadtest.scheduling.delay` (s) | gauge | — |
//!
//! The utilization gauges, `system.network.io` and the two `loadtest.*` gauges are the
//! generator's own health per interval (`Snapshot::health`, see `health.rs`), and so is
//! `process.memory.usage` when the snapshot has it (else it is read from `/proc` at export).
//!
//! The histogram comes from the core's interval HDR histograms, which are kept per request
//! name, not per status: its points therefore carry the method and request name only; the
//! status and error breakdown is on the two counters. Past `max_request_names` (default 100)
//! request names, the rest share the method and name [`OVERFLOW_NAME`] with
//! `otel.metric.overflow=true`. The resource has `service.name` (`OTEL_SERVICE_NAME`, default
//! `loadlens`), `service.instance.id`, `loadtest.run_id`, `loadtest.scenario`, the run tags as
//! `loadtest.tag.<key>` (`env` also as `deployment.environment.name`) and
//! `OTEL_RESOURCE_ATTRIBUTES`.
//!
//! # Connection and credentials
//!
//! Per signal (`OTEL_EXPORTER_OTLP_TRACES_…`/`METRICS_…` over `OTEL_EXPORTER_OTLP_…`):
//! `ENDPOINT`, `PROTOCOL` (`http/protobuf` or `grpc`), `HEADERS` (percent-encoded
//! `key=value,…`, often credentials, never shown), `TIMEOUT`, `COMPRESSION`, and for
//! `https://` endpoints `CERTIFICATE` (a PEM file whose certificates replace the web PKI roots)
//! and `CLIENT_CERTIFICATE` with `CLIENT_KEY` (PEM files of the certificate and key presented to
//! a collector that requires mutual TLS). `user:password@` in an endpoint is sent as basic
//! auth and shown nowhere: the `otel:` line and export errors show the URL without it.
//!
//! # Never in the way
//!
//! Samples reach the exporter through the core's bounded sample tap, snapshots through a
//! bounded queue; both drop (and count) rather than wait. Encoding and sending run on a
//! thread of their own (on a generator given one CPU, whose runtime is single-threaded, in a
//! task beside the VUs, yielding to them between spans). Failed exports are retried with backoff within
//! `OTEL_EXPORTER_OTLP_TIMEOUT`; at the end what is buffered is flushed within the flush
//! timeout (default 5 s), and what could not be delivered is a line in the summary. An export
//! in flight when the run ends is waited for within that timeout, never abandoned and sent
//! again (the collector may have it already: it would count those spans twice).

pub mod config;
#[cfg(test)]
mod delivery_tests;
mod encode;
pub mod export;
mod health;
mod integration;
mod names;
pub(crate) mod send;
#[cfg(any(test, feature = "testing"))]
pub mod test_ca;
#[cfg(test)]
mod tests;
mod tls;
mod worker;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use loadlens_core::report::Summary;
use loadlens_core::run::TimelineEvent;
use loadlens_core::sample::TraceSettings;
use loadlens_core::sink::{FinishFuture, SampleReceiver, SampleTap, Sink, SinkContext, SinkReport};
use loadlens_core::stats::Snapshot;

use crate::integration::Role;
use tokio::sync::{mpsc, oneshot};

pub use config::{Config, ConfigError, ExporterKind, FileSettings, Protocol};
pub use encode::{CONNECT_SPAN, DNS_SPAN, DURATION_BOUNDS_S, TLS_SPAN};
pub use integration::Otlp;
pub use names::{Names, ScenarioNames};

use encode::{Metrics, SpanContext};
use send::Service;
use worker::{Exporter, Msg, Progress, RunSpan, Worker};

/// Method and request name of the metric series that collects the request names past the
/// cardinality cap.
pub const OVERFLOW_NAME: &str = "_OTHER";

/// The OTLP sink. Build it with [`OtlpSink::new`], give the executor
/// [`OtlpSink::trace_settings`] and the sink itself.
pub struct OtlpSink {
    config: Config,
    names: Names,
    tap: Option<(SampleTap, SampleReceiver)>,
    tap_handle: Option<SampleTap>,
    tx: mpsc::Sender<Msg>,
    rx: Option<mpsc::Receiver<Msg>>,
    /// Started by `finish`: an export in progress makes no further attempt, so that the final
    /// flush starts as soon as a request in flight is answered.
    finishing: send::Finishing,
    dropped_msgs: Arc<std::sync::atomic::AtomicU64>,
    progress: Arc<Progress>,
    /// Whether the exporter (a thread, or a task on a single-threaded runtime) started.
    started: bool,
    /// Which part of a coordinated run's telemetry it sends (see [`OtlpSink::role`]).
    role: Role,
}

impl std::fmt::Debug for OtlpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpSink")
            .field("traces", &self.config.traces.exporter)
            .field("metrics", &self.config.metrics.exporter)
            .finish_non_exhaustive()
    }
}

impl OtlpSink {
    /// A sink for a run of the plan whose names are `names`. Nothing is started before
    /// the run starts.
    pub fn new(config: Config, names: Names) -> Self {
        let (tx, rx) = mpsc::channel(64);
        let tap = (config.traces.exporter != ExporterKind::None)
            .then(|| SampleTap::sampled(config.queue));
        OtlpSink {
            tap_handle: tap.as_ref().map(|t| t.0.clone()),
            tap,
            config,
            names,
            tx,
            rx: Some(rx),
            finishing: Default::default(),
            dropped_msgs: Arc::default(),
            progress: Arc::default(),
            started: false,
            role: Role::Whole,
        }
    }

    /// Keep to `role`'s part of a coordinated run: a worker ([`Role::Requests`]) exports its
    /// request spans and no metrics and no run span; the coordinator ([`Role::Run`]) the run
    /// span, with the whole run's timeline as its events, and the metrics of the merged
    /// snapshots. In both, the run span's ids come from the run id ([`run_span_ids`]), so that
    /// every worker's request spans link to the one span the coordinator exports.
    pub fn role(mut self, role: Role) -> Self {
        if role == Role::Requests {
            self.config.metrics.exporter = ExporterKind::None;
        }
        self.role = role;
        self
    }

    /// What the executor needs to put this sink's trace context on the wire (`None` when
    /// traces are not exported, so requests carry no `traceparent` claiming a span that
    /// will never arrive).
    pub fn trace_settings(&self, run_id: &str) -> Option<TraceSettings> {
        (self.config.traces.exporter != ExporterKind::None)
            .then(|| TraceSettings::new(run_id, self.config.sample_ratio))
    }

    /// A one-line description for the run header.
    pub fn describe(&self) -> String {
        let sig = |s: &config::SignalConfig| match s.exporter {
            ExporterKind::None => "off".to_owned(),
            ExporterKind::Console => "console".to_owned(),
            ExporterKind::Otlp => format!(
                "{} ({})",
                s.endpoint,
                match s.protocol {
                    Protocol::Grpc => "grpc",
                    Protocol::HttpProtobuf => "http/protobuf",
                }
            ),
        };
        format!(
            "otel: traces {} at {:.0}% sampling, metrics {} every {}",
            sig(&self.config.traces),
            self.config.sample_ratio * 100.0,
            sig(&self.config.metrics),
            humantime::format_duration(self.config.metric_interval)
        )
    }
}

impl OtlpSink {
    fn offer(&self, m: Msg) {
        if self.tx.try_send(m).is_err() {
            self.dropped_msgs
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl Sink for OtlpSink {
    fn name(&self) -> &str {
        "otlp"
    }

    fn sample_tap(&mut self) -> Option<SampleTap> {
        self.tap.as_ref().map(|t| t.0.clone())
    }

    fn on_start(&mut self, ctx: &SinkContext) {
        let Some(rx) = self.rx.take() else { return };
        let samples = self.tap.take().map(|t| t.1);
        let mut attrs = vec![
            ("service.name".to_owned(), self.config.service_name.clone()),
            ("service.instance.id".to_owned(), instance_id()),
            ("telemetry.sdk.name".to_owned(), "loadlens".to_owned()),
            ("telemetry.sdk.language".to_owned(), "rust".to_owned()),
            (
                "telemetry.sdk.version".to_owned(),
                env!("CARGO_PKG_VERSION").to_owned(),
            ),
            ("loadtest.run_id".to_owned(), ctx.run.id.clone()),
            ("loadtest.scenario".to_owned(), ctx.run.scenario.clone()),
        ];
        for (k, v) in &ctx.run.tags {
            if k == "env" {
                attrs.push(("deployment.environment.name".to_owned(), v.clone()));
            }
            attrs.push((format!("loadtest.tag.{k}"), v.clone()));
        }
        for (k, v) in &self.config.resource {
            attrs.retain(|(n, _)| n != k);
            attrs.push((k.clone(), v.clone()));
        }
        let (trace_id, span_id) = match self.role {
            Role::Whole => (fastrand::u128(1..), fastrand::u64(1..)),
            Role::Requests | Role::Run => run_span_ids(&ctx.run.id),
        };
        let run_span = RunSpan {
            trace_id,
            span_id,
            export: self.role.run_level(),
            start: SystemTime::now(),
            events: Vec::new(),
            dropped_events: 0,
        };
        let worker = Worker {
            resource: encode::resource(&attrs),
            spans: SpanContext {
                names: self.names.clone(),
                run_id: ctx.run.id.clone(),
                scenario: ctx.run.scenario.clone(),
                run_link: Some((run_span.trace_id, run_span.span_id)),
            },
            run_span,
            metrics: Metrics::new(
                self.names.clone(),
                self.config.max_request_names,
                self.config.temporality,
                SystemTime::now(),
            ),
            traces: Exporter::new(&self.config.traces, Service::Traces),
            metrics_out: Exporter::new(&self.config.metrics, Service::Metrics),
            batch: Vec::with_capacity(self.config.batch * 2),
            config: self.config.clone(),
            report: SinkReport {
                name: "otlp".into(),
                ..SinkReport::default()
            },
            finishing: self.finishing.clone(),
            no_cancel: Default::default(),
            progress: self.progress.clone(),
        };
        let work = worker.run(samples, rx);
        // A generator given one CPU runs a single-threaded runtime: there the exporter is a
        // task beside the VUs. A thread of its own could only take turns with them on that
        // CPU, and would make the process multi-threaded, which costs every system call of
        // every request a little. With more CPUs it has a thread, so that encoding and
        // sending never delay a VU.
        let flavor = tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor());
        if flavor.is_ok_and(|f| f == tokio::runtime::RuntimeFlavor::CurrentThread) {
            tokio::spawn(work);
            self.started = true;
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("loadlens-otlp".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::warn!(sink = "otlp", error = %e, "Cannot start the exporter.");
                        return;
                    }
                };
                rt.block_on(work);
            });
        match spawned {
            Ok(_) => self.started = true,
            Err(e) => tracing::warn!(sink = "otlp", error = %e, "Cannot start the exporter."),
        }
    }

    fn on_snapshot(&mut self, snapshot: &Arc<Snapshot>) {
        self.offer(Msg::Snapshot(snapshot.clone()));
    }

    fn on_event(&mut self, event: &TimelineEvent) {
        self.offer(Msg::Event(event.clone()));
    }

    fn finish(self: Box<Self>, summary: &Summary) -> FinishFuture {
        let (done, report) = oneshot::channel();
        let deadline = std::time::Instant::now() + self.config.flush_timeout;
        let msg = Msg::Finish {
            dropped_iterations: summary
                .outcome
                .arrivals
                .is_some()
                .then_some(summary.outcome.dropped_iterations),
            outcome: format!(
                "{:?}: {}",
                summary.verdict(),
                loadlens_core::executor::describe(&summary.stop_reason)
            ),
            deadline,
            done,
        };
        self.finishing
            .start(tokio::time::Instant::from_std(deadline));
        let tx = self.tx.clone();
        let limit = self.config.flush_timeout + Duration::from_millis(500);
        let tap_dropped = self.tap_handle.as_ref().map_or(0, SampleTap::dropped);
        let msgs_dropped = self.dropped_msgs.load(std::sync::atomic::Ordering::Relaxed);
        let started = self.started;
        let progress = self.progress.clone();
        Box::pin(async move {
            let mut r = if !started {
                SinkReport {
                    name: "otlp".into(),
                    errors: vec!["the exporter did not start".into()],
                    ..SinkReport::default()
                }
            } else {
                let sent = tx.send(msg).await.is_ok();
                match tokio::time::timeout(limit, report).await {
                    Ok(Ok(r)) if sent => r,
                    _ => {
                        // What it did so far; what it still held counts as failed.
                        let mut r = progress
                            .report
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .clone();
                        r.name = "otlp".into();
                        r.failed += progress.held.load(std::sync::atomic::Ordering::Relaxed);
                        r.errors.push(format!(
                            "the exporter did not finish within {}; what it held was dropped",
                            humantime::format_duration(limit)
                        ));
                        r
                    }
                }
            };
            r.dropped += tap_dropped + msgs_dropped;
            if tap_dropped > 0 {
                r.errors.push(format!(
                    "{tap_dropped} requests were not traced (sent not sampled): the span queue was full"
                ));
            }
            r
        })
    }
}

/// The trace and span ids of a coordinated run's run span, the same in every process of the
/// run: FNV-1a of the run id (128 bits for the trace, 64 for the span; never 0). The processes
/// of one run run the same loadlens version (the coordinator checks it), so they agree.
pub fn run_span_ids(run_id: &str) -> (u128, u64) {
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013B;
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in run_id.bytes().chain(*b"/loadtest") {
        h ^= u128::from(b);
        h = h.wrapping_mul(PRIME);
    }
    let span = (h as u64) ^ ((h >> 64) as u64);
    (h.max(1), span.max(1))
}

/// A random 128-bit id in UUID form, for `service.instance.id`.
fn instance_id() -> String {
    let v = fastrand::u128(..);
    let h = format!("{v:032x}");
    format!(
        "{}-{}-4{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Name of the span of the whole run (`loadtest {scenario}`); request spans link to it.
pub const RUN_SPAN_PREFIX: &str = "loadtest";

/// The attributes of a timeline event on the run span: its message and, for a feature flag's
/// state or change, the feature-flag semantic conventions — the flag, its provider and its
/// value now; who changed it and the value before have no convention and keep a `loadlens.`
/// prefix.
pub(crate) fn event_attributes(
    e: &TimelineEvent,
) -> Vec<opentelemetry_proto::tonic::common::v1::KeyValue> {
    let mut attributes = vec![encode::kv("message", e.message.clone())];
    if let Some(f) = &e.flag {
        attributes.push(encode::kv("feature_flag.key", f.key.clone()));
        attributes.push(encode::kv("feature_flag.provider.name", f.provider.clone()));
        let more = [
            ("feature_flag.result.value", &f.new_value),
            ("loadlens.feature_flag.previous_value", &f.old_value),
            ("loadlens.feature_flag.changed_by", &f.by),
            ("loadlens.feature_flag.action", &f.action),
        ];
        for (k, v) in more {
            if let Some(v) = v {
                attributes.push(encode::kv(k, v.clone()));
            }
        }
        attributes.push(encode::kv("loadlens.feature_flag.entity", f.entity.clone()));
    }
    attributes
}
