//! The exporter thread: it drains the sample tap and the sink's queue, builds and encodes
//! spans and metric points, and sends them with retries; at the end it flushes within the
//! deadline and reports what was delivered.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use loadlens_core::run::TimelineEvent;
use loadlens_core::sink::{SampleReceiver, SinkReport};
use loadlens_core::stats::Snapshot;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, ScopeMetrics};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span};
use prost::Message as _;
use tokio::sync::{mpsc, oneshot};

use super::encode::{self, Metrics, SpanContext};
use super::send::{self, Sender, Service};
use super::{config, event_attributes, Config, ExporterKind, RUN_SPAN_PREFIX};

pub(super) enum Msg {
    Snapshot(Arc<Snapshot>),
    Event(TimelineEvent),
    Finish {
        /// The run's count (open model only).
        dropped_iterations: Option<u64>,
        outcome: String,
        /// When everything must be flushed (counted from the call to `finish`).
        deadline: std::time::Instant,
        done: oneshot::Sender<SinkReport>,
    },
}

/// What the exporter thread has done so far, readable by `finish` when the thread does not
/// answer in time (a starved or stuck exporter still reports what it held).
#[derive(Debug, Default)]
pub(super) struct Progress {
    pub(super) report: std::sync::Mutex<SinkReport>,
    /// Items held by the exporter and not yet counted as delivered or failed.
    pub(super) held: std::sync::atomic::AtomicU64,
}

/// How often the exporter takes what the request path queued.
pub(super) const DRAIN_EVERY: Duration = Duration::from_millis(10);

/// Spans encoded between two yields to the runtime (on one CPU the VUs share it).
pub(super) const YIELD_EVERY: usize = 64;

/// Most timeline events kept on the run span; later ones are counted as dropped events.
pub(super) const MAX_RUN_EVENTS: usize = 128;

/// One signal's destination.
pub(super) enum Exporter {
    Otlp(Box<Sender>),
    Console,
    None,
}

impl Exporter {
    pub(super) fn new(c: &config::SignalConfig, service: Service) -> Self {
        match c.exporter {
            ExporterKind::Otlp => Exporter::Otlp(Box::new(Sender::new(c.clone(), service))),
            ExporterKind::Console => Exporter::Console,
            ExporterKind::None => Exporter::None,
        }
    }
}

/// The span of the whole run: the timeline's events are its events, request spans link to it.
pub(super) struct RunSpan {
    pub(super) trace_id: u128,
    pub(super) span_id: u64,
    pub(super) start: SystemTime,
    /// Exported at the end (false in a worker of a coordinated run: the coordinator's).
    pub(super) export: bool,
    pub(super) events: Vec<span::Event>,
    pub(super) dropped_events: u32,
}

/// The exporter thread's state.
pub(super) struct Worker {
    pub(super) config: Config,
    pub(super) resource: Resource,
    pub(super) spans: SpanContext,
    pub(super) run_span: RunSpan,
    pub(super) metrics: Metrics,
    pub(super) traces: Exporter,
    pub(super) metrics_out: Exporter,
    pub(super) batch: Vec<Span>,
    pub(super) report: SinkReport,
    pub(super) finishing: send::Finishing,
    /// Never started: the final flush runs to its deadline.
    pub(super) no_cancel: send::Finishing,
    pub(super) progress: Arc<Progress>,
}

impl Worker {
    pub(super) async fn run(
        mut self,
        mut samples: Option<SampleReceiver>,
        mut rx: mpsc::Receiver<Msg>,
    ) {
        let mut batch_tick = tokio::time::interval(self.config.batch_delay);
        let mut metric_tick = tokio::time::interval(self.config.metric_interval);
        // The sample queue is drained on a short timer rather than awaited: a receiver parked
        // on it would be woken by every request, a cross-thread wake-up (and on a generator
        // pinned to one CPU, a context switch) per traced request.
        let mut drain_tick = tokio::time::interval(DRAIN_EVERY);
        drain_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        batch_tick.tick().await;
        metric_tick.tick().await;
        let mut pending = Vec::with_capacity(self.config.queue);
        loop {
            tokio::select! {
                _ = drain_tick.tick(), if samples.is_some() => {
                    if let Some(r) = samples.as_mut() {
                        while let Ok(s) = r.try_recv() {
                            pending.push(s);
                        }
                    }
                    for (i, s) in pending.drain(..).enumerate() {
                        encode::spans(&s, &self.spans, &mut self.batch);
                        if i % YIELD_EVERY == YIELD_EVERY - 1 {
                            // Beside the VUs (one CPU), let them run between spans.
                            tokio::task::yield_now().await;
                        }
                    }
                    self.publish(self.batch.len());
                    if self.batch.len() >= self.config.batch {
                        let deadline = tokio::time::Instant::now() + self.config.traces.timeout;
                        self.flush_spans(deadline, false).await;
                    }
                }
                m = rx.recv() => match m {
                    Some(Msg::Snapshot(s)) => self.metrics.fold(&s),
                    Some(Msg::Event(e)) => self.event(&e),
                    Some(Msg::Finish { dropped_iterations, outcome, deadline, done }) => {
                        let deadline = tokio::time::Instant::from_std(deadline);
                        let half = tokio::time::Instant::now()
                            + deadline.saturating_duration_since(tokio::time::Instant::now()) / 2;
                        if let Some(r) = samples.as_mut() {
                            while let Ok(s) = r.try_recv() {
                                encode::spans(&s, &self.spans, &mut self.batch);
                            }
                        }
                        // Metrics first (one small request) with at most half the time, then
                        // the spans with what is left.
                        if let Some(n) = dropped_iterations {
                            self.metrics.set_dropped_iterations(n);
                        }
                        let tracing = !matches!(self.traces, Exporter::None);
                        self.export_metrics(if tracing { half } else { deadline }, true)
                            .await;
                        if tracing && self.run_span.export {
                            let run = self.run_span(&outcome);
                            self.batch.push(run);
                        }
                        self.flush_spans(deadline, true).await;
                        let _ = done.send(std::mem::take(&mut self.report));
                        return;
                    }
                    None => return,
                },
                _ = batch_tick.tick() => {
                    if !self.batch.is_empty() {
                        let deadline = tokio::time::Instant::now() + self.config.traces.timeout;
                        self.flush_spans(deadline, false).await;
                    }
                }
                _ = metric_tick.tick() => {
                    let deadline = tokio::time::Instant::now() + self.config.metrics.timeout;
                    self.export_metrics(deadline, false).await;
                }
            }
        }
    }

    /// Make the report so far and the items held visible to `finish`.
    pub(super) fn publish(&self, held: usize) {
        self.progress
            .held
            .store(held as u64, std::sync::atomic::Ordering::Relaxed);
        *self
            .progress
            .report
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = self.report.clone();
    }

    pub(super) fn event(&mut self, e: &TimelineEvent) {
        let r = &mut self.run_span;
        if r.events.len() >= MAX_RUN_EVENTS {
            r.dropped_events += 1;
            self.report.dropped += 1;
            return;
        }
        let at = r.start + Duration::from_secs_f64(e.elapsed_s.max(0.0));
        let attributes = event_attributes(e);
        r.events.push(span::Event {
            time_unix_nano: encode::nanos(at),
            name: format!("{:?}", e.kind),
            attributes,
            ..Default::default()
        });
    }

    pub(super) fn run_span(&mut self, outcome: &str) -> Span {
        let r = &mut self.run_span;
        Span {
            trace_id: r.trace_id.to_be_bytes().to_vec(),
            span_id: r.span_id.to_be_bytes().to_vec(),
            flags: 0x101,
            name: format!("{RUN_SPAN_PREFIX} {}", self.spans.scenario),
            kind: span::SpanKind::Internal as i32,
            start_time_unix_nano: encode::nanos(r.start),
            end_time_unix_nano: encode::nanos(SystemTime::now()),
            attributes: vec![
                encode::kv("loadtest.run_id", self.spans.run_id.clone()),
                encode::kv("loadtest.scenario", self.spans.scenario.clone()),
                encode::kv("loadtest.outcome", outcome.to_owned()),
            ],
            events: std::mem::take(&mut r.events),
            dropped_events_count: r.dropped_events,
            ..Default::default()
        }
    }

    pub(super) fn error(&mut self, msg: String) {
        if !self.report.errors.contains(&msg) && self.report.errors.len() < 10 {
            tracing::warn!(sink = "otlp", error = %msg, "Export failed.");
            self.report.errors.push(msg);
        }
    }

    /// Export the buffered spans in batches until done or `deadline`. In the final flush
    /// (`last`), a failed batch ends it: the endpoint is not retried batch after batch.
    pub(super) async fn flush_spans(&mut self, deadline: tokio::time::Instant, last: bool) {
        while !self.batch.is_empty() {
            let n = self.batch.len().min(self.config.batch);
            let spans: Vec<Span> = self.batch.drain(..n).collect();
            let count = spans.len() as u64;
            if tokio::time::Instant::now() >= deadline {
                self.report.failed += count + self.batch.len() as u64;
                self.batch.clear();
                self.error("traces: the flush time ran out; the rest was dropped".into());
                self.publish(0);
                return;
            }
            self.publish(self.batch.len() + n);
            match &mut self.traces {
                Exporter::None => {}
                Exporter::Console => {
                    let mut out = std::io::stdout().lock();
                    for s in &spans {
                        let _ = writeln!(
                            out,
                            "span {} {} parent={} {:?} {:.6}s",
                            hex(&s.trace_id),
                            hex(&s.span_id),
                            hex(&s.parent_span_id),
                            s.name,
                            (s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano)) as f64
                                / 1e9
                        );
                    }
                    self.report.delivered += count;
                }
                Exporter::Otlp(sender) => {
                    let mut req = ExportTraceServiceRequest {
                        resource_spans: vec![ResourceSpans {
                            resource: Some(self.resource.clone()),
                            scope_spans: vec![ScopeSpans {
                                scope: Some(encode::scope()),
                                spans,
                                ..Default::default()
                            }],
                            ..Default::default()
                        }],
                    };
                    let target = sender.target();
                    let cancel = if last {
                        &self.no_cancel
                    } else {
                        &self.finishing
                    };
                    match sender.export(req.encode_to_vec(), deadline, cancel).await {
                        Err(send::SendError::Cancelled) => {
                            // Back in the queue for the final flush.
                            let spans =
                                std::mem::take(&mut req.resource_spans[0].scope_spans[0].spans);
                            self.batch.splice(0..0, spans);
                            return;
                        }
                        Ok(body) => {
                            let rejected = ExportTraceServiceResponse::decode(body)
                                .ok()
                                .and_then(|r| r.partial_success)
                                .map_or(0, |p| p.rejected_spans.max(0) as u64)
                                .min(count);
                            self.report.delivered += count - rejected;
                            self.report.failed += rejected;
                            if rejected > 0 {
                                self.error(format!("traces: {target} rejected {rejected} spans"));
                            }
                        }
                        Err(e) => {
                            self.report.failed += count;
                            self.error(format!("traces: {target}: {e}"));
                            if last {
                                self.report.failed += self.batch.len() as u64;
                                self.batch.clear();
                            }
                        }
                    }
                }
            }
        }
        self.publish(self.batch.len());
    }

    pub(super) async fn export_metrics(&mut self, deadline: tokio::time::Instant, last: bool) {
        if self.metrics.is_empty() {
            return;
        }
        let metrics = self.metrics.export(SystemTime::now());
        let points: u64 = metrics.iter().map(|m| points(m) as u64).sum();
        if tokio::time::Instant::now() >= deadline {
            self.report.failed += points;
            self.error("metrics: the flush time ran out before they could be sent".into());
            self.publish(self.batch.len());
            return;
        }
        self.publish(self.batch.len() + points as usize);
        match &mut self.metrics_out {
            Exporter::None => {}
            Exporter::Console => {
                let mut out = std::io::stdout().lock();
                for m in &metrics {
                    let _ = writeln!(out, "metric {} ({} points)", m.name, self::points(m));
                }
                self.report.delivered += points;
            }
            Exporter::Otlp(sender) => {
                let req = ExportMetricsServiceRequest {
                    resource_metrics: vec![ResourceMetrics {
                        resource: Some(self.resource.clone()),
                        scope_metrics: vec![ScopeMetrics {
                            scope: Some(encode::scope()),
                            metrics,
                            ..Default::default()
                        }],
                        ..Default::default()
                    }],
                };
                let target = sender.target();
                let cancel = if last {
                    &self.no_cancel
                } else {
                    &self.finishing
                };
                match sender.export(req.encode_to_vec(), deadline, cancel).await {
                    // Cumulative: the final export sends the same totals again. Delta: these
                    // points are gone, and counted as failed.
                    Err(send::SendError::Cancelled) => {
                        if self.config.temporality == config::Temporality::Delta {
                            self.report.failed += points;
                        }
                    }
                    Ok(body) => {
                        let rejected = ExportMetricsServiceResponse::decode(body)
                            .ok()
                            .and_then(|r| r.partial_success)
                            .map_or(0, |p| p.rejected_data_points.max(0) as u64)
                            .min(points);
                        self.report.delivered += points - rejected;
                        self.report.failed += rejected;
                        if rejected > 0 {
                            self.error(format!(
                                "metrics: {target} rejected {rejected} data points"
                            ));
                        }
                    }
                    Err(e) => {
                        self.report.failed += points;
                        self.error(format!("metrics: {target}: {e}"));
                    }
                }
            }
        }
        self.publish(self.batch.len());
    }
}

pub(super) fn points(m: &opentelemetry_proto::tonic::metrics::v1::Metric) -> usize {
    use opentelemetry_proto::tonic::metrics::v1::metric::Data;
    match &m.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        _ => 0,
    }
}

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
