//! The demo target's own spans: for each request whose `traceparent` is sampled, a server span
//! and a child span per simulated operation (a cache, a database, a call to a downstream pricing
//! service), exported over OTLP http/protobuf (`--otlp-endpoint`) so that a trace receiver (a
//! Collector, or `loadlens --trace-receiver`) can explain where the time went.
//!
//! The operations are real, tunable sleeps ([`Operation`], `--op-latency`, `--slow`) and happen
//! whether or not spans are exported, so a slow database makes requests slow in every case.
//! Span names and attributes follow the semantic conventions: `{method} {http.route}` server
//! spans, `db.system` and `db.operation.name` on database and cache spans, a client span and the
//! pricing service's own server span (its `service.name` is `pricing`) for the downstream call.
//!
//! Spans never hold up a response: a finished request's spans go to a bounded queue with
//! `try_send` (drops counted), and one task of the server's batches and sends them with the
//! OTLP sink's encoding and sender (`loadlens_sinks::otlp::export`). The counts are in
//! `GET /__stats` (`spans`).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, Uri};
use loadlens_sinks::otlp::export::{kv, kv_int, nanos, resource, SpanExporter};
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::trace::v1::{
    span, status, ResourceSpans, ScopeSpans, Span, Status,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::api::Endpoint;
use super::config::Latency;

/// `service.name` of the demo target's own spans.
pub const SERVICE: &str = "storefront";
/// `service.name` of the simulated downstream pricing service.
pub const PRICING_SERVICE: &str = "pricing";

/// Requests whose spans may wait for the exporter; past it their spans are dropped and counted.
const QUEUE: usize = 4096;
/// Spans per export request.
const BATCH: usize = 2048;
/// How long a span waits at most for its batch to fill.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// One export's limit, retries included.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the spans still queued at shutdown get to go out.
const FINAL_FLUSH: Duration = Duration::from_secs(2);

/// A simulated operation the demo target's handlers perform, each with its own latency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A Redis cache lookup or write (`db.system` `redis`).
    Cache,
    /// A PostgreSQL query (`db.system` `postgresql`).
    Db,
    /// An HTTP call to the pricing service (`service.name` `pricing`, route `/v1/price`).
    Pricing,
}

impl Operation {
    /// Every operation, in the order of [`Operation::index`].
    pub const ALL: [Operation; 3] = [Operation::Cache, Operation::Db, Operation::Pricing];

    /// The name flags use: `cache`, `db`, `pricing`.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Cache => "cache",
            Operation::Db => "db",
            Operation::Pricing => "pricing",
        }
    }

    /// Parses a name of [`Operation::name`].
    pub fn parse(name: &str) -> Option<Operation> {
        Self::ALL.into_iter().find(|o| o.name() == name.trim())
    }

    /// The operation's index in per-operation arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Built-in latency: fast enough to leave the route's own time visible.
    pub fn realistic(self) -> Latency {
        let ms = Duration::from_millis;
        match self {
            Operation::Cache => Latency::LogNormal(ms(1), ms(4)),
            Operation::Db => Latency::LogNormal(ms(4), ms(20)),
            Operation::Pricing => Latency::LogNormal(ms(8), ms(40)),
        }
    }

    /// What `--slow OPERATION` sets: slow enough to dominate every request that performs it.
    pub fn slow() -> Latency {
        Latency::LogNormal(Duration::from_millis(150), Duration::from_millis(300))
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One step of a handler: which operation, and how its span is named.
#[derive(Clone, Copy, Debug)]
pub(super) enum Step {
    /// A cache command (`GET`, `SET`).
    Cache(&'static str),
    /// A database statement: operation and table (`SELECT`, `products`).
    Db(&'static str, &'static str),
    /// `POST /v1/price` on the pricing service.
    Pricing,
}

impl Step {
    pub(super) fn operation(self) -> Operation {
        match self {
            Step::Cache(_) => Operation::Cache,
            Step::Db(..) => Operation::Db,
            Step::Pricing => Operation::Pricing,
        }
    }
}

/// What each endpoint does, in order.
pub(super) fn steps(endpoint: Endpoint) -> &'static [Step] {
    use Endpoint::*;
    const CATALOGUE: &[Step] = &[Step::Cache("GET"), Step::Db("SELECT", "products")];
    const BUY: &[Step] = &[
        Step::Cache("GET"),
        Step::Pricing,
        Step::Db("INSERT", "orders"),
    ];
    match endpoint {
        Index | Health => &[],
        Products | Product | ProductPage | Search => CATALOGUE,
        SearchFilters => &[Step::Cache("GET")],
        Login | Authenticate => &[Step::Db("SELECT", "users")],
        Profile => &[Step::Db("SELECT", "customers")],
        ListOrders => &[Step::Db("SELECT", "orders")],
        CreateOrder => &[Step::Pricing, Step::Db("INSERT", "orders")],
        CartSummary => &[Step::Cache("GET"), Step::Pricing],
        CartAdd => &[Step::Cache("SET")],
        ShippingRates => &[Step::Pricing],
        Checkout | CheckoutConfirm => BUY,
    }
}

/// The sampled parent of an incoming request: its W3C `traceparent`, when its sampled flag is
/// set (only sampled requests can be joined, so the others produce nothing).
pub(super) fn sampled_parent(headers: &HeaderMap) -> Option<(u128, u64)> {
    let value = headers.get("traceparent")?.to_str().ok()?.trim();
    let mut parts = value.split('-');
    let (version, trace, parent, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || version == "ff" || trace.len() != 32 || parent.len() != 16 {
        return None;
    }
    let trace = u128::from_str_radix(trace, 16).ok().filter(|&t| t != 0)?;
    let parent = u64::from_str_radix(parent, 16).ok().filter(|&p| p != 0)?;
    let flags = u8::from_str_radix(flags.get(..2)?, 16).ok()?;
    (flags & 1 == 1).then_some((trace, parent))
}

/// Which service a span belongs to (its resource).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Service {
    Storefront,
    Pricing,
}

/// The spans of one request under way.
pub(super) struct Recorder {
    trace_id: Vec<u8>,
    server_id: u64,
    parent: u64,
    started: SystemTime,
    spans: Vec<(Service, Span)>,
}

impl Recorder {
    /// Starts the server span of a request with the sampled `parent`, now.
    pub(super) fn start((trace_id, parent): (u128, u64)) -> Self {
        Self {
            trace_id: trace_id.to_be_bytes().to_vec(),
            server_id: span_id(),
            parent,
            started: SystemTime::now(),
            spans: Vec::with_capacity(4),
        }
    }

    /// Records `step`, which ran from `start` to `end`, as a child of the server span.
    pub(super) fn step(&mut self, step: Step, start: SystemTime, end: SystemTime) {
        let (start, end) = (nanos(start), nanos(end));
        let id = span_id();
        let (name, attributes) = match step {
            Step::Cache(command) => (
                command.to_owned(),
                vec![
                    kv("db.system", "redis"),
                    kv("db.operation.name", command),
                    kv("server.address", "cache"),
                ],
            ),
            Step::Db(operation, table) => (
                format!("{operation} {table}"),
                vec![
                    kv("db.system", "postgresql"),
                    kv("db.operation.name", operation),
                    kv("db.collection.name", table),
                    kv("db.namespace", "shop"),
                    kv("server.address", "db"),
                ],
            ),
            Step::Pricing => {
                // The pricing service's own server span, inside the call's client span.
                let server = Span {
                    name: "POST /v1/price".into(),
                    kind: span::SpanKind::Server as i32,
                    attributes: vec![
                        kv("http.request.method", "POST"),
                        kv("http.route", "/v1/price"),
                        kv("url.path", "/v1/price"),
                        kv_int("http.response.status_code", 200),
                    ],
                    ..self.span(span_id(), id, start, end)
                };
                self.spans.push((Service::Pricing, server));
                (
                    "POST".to_owned(),
                    vec![
                        kv("http.request.method", "POST"),
                        kv("server.address", "pricing"),
                        kv_int("server.port", 80),
                        kv("url.full", "http://pricing/v1/price"),
                        kv_int("http.response.status_code", 200),
                    ],
                )
            }
        };
        let kind = span::SpanKind::Client as i32;
        let child = Span {
            name,
            kind,
            attributes,
            ..self.span(id, self.server_id, start, end)
        };
        self.spans.push((Service::Storefront, child));
    }

    /// Ends the server span now, with the response's status, and hands every span over.
    pub(super) fn finish(
        mut self,
        endpoint: Endpoint,
        path: &str,
        status: u16,
    ) -> Vec<(Service, Span)> {
        let end = nanos(SystemTime::now());
        let route = endpoint.pattern();
        let mut server = Span {
            name: format!("{} {route}", endpoint.method()),
            kind: span::SpanKind::Server as i32,
            attributes: vec![
                kv("http.request.method", endpoint.method()),
                kv("http.route", route),
                kv("url.path", path),
                kv_int("http.response.status_code", i64::from(status)),
            ],
            ..self.span(self.server_id, self.parent, nanos(self.started), end)
        };
        if status >= 500 {
            server.attributes.push(kv("error.type", status.to_string()));
            server.status = Some(Status {
                code: status::StatusCode::Error as i32,
                ..Default::default()
            });
        }
        self.spans.push((Service::Storefront, server));
        self.spans
    }

    fn span(&self, id: u64, parent: u64, start: u64, end: u64) -> Span {
        Span {
            trace_id: self.trace_id.clone(),
            span_id: id.to_be_bytes().to_vec(),
            parent_span_id: parent.to_be_bytes().to_vec(),
            start_time_unix_nano: start,
            end_time_unix_nano: end.max(start),
            ..Default::default()
        }
    }
}

fn span_id() -> u64 {
    fastrand::u64(1..)
}

/// What happened to the spans, for `/__stats`.
#[derive(Debug, Default)]
pub(super) struct Counts {
    exported: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

impl Counts {
    pub(super) fn json(&self) -> String {
        format!(
            r#"{{"exported":{},"dropped":{},"failed":{}}}"#,
            self.exported.load(Relaxed),
            self.dropped.load(Relaxed),
            self.failed.load(Relaxed)
        )
    }
}

/// The request path's end of the span queue.
pub(super) struct Spans {
    queue: mpsc::Sender<Vec<(Service, Span)>>,
    pub(super) counts: Arc<Counts>,
}

impl Spans {
    /// A queue and the exporter that will drain it once [`Exporter::run`] is spawned.
    pub(super) fn new(endpoint: Uri) -> (Spans, Exporter) {
        let (queue, rx) = mpsc::channel(QUEUE);
        let counts = Arc::new(Counts::default());
        let exporter = Exporter {
            rx,
            sender: SpanExporter::http_protobuf(endpoint, EXPORT_TIMEOUT),
            counts: Arc::clone(&counts),
        };
        (Spans { queue, counts }, exporter)
    }

    /// Queues one request's spans, or drops and counts them when the exporter is behind.
    pub(super) fn push(&self, spans: Vec<(Service, Span)>) {
        if let Err(e) = self.queue.try_send(spans) {
            let lost = match e {
                mpsc::error::TrySendError::Full(s) | mpsc::error::TrySendError::Closed(s) => s,
            };
            self.counts.dropped.fetch_add(lost.len() as u64, Relaxed);
        }
    }
}

/// The task that batches queued spans and exports them.
pub(super) struct Exporter {
    rx: mpsc::Receiver<Vec<(Service, Span)>>,
    sender: SpanExporter,
    counts: Arc<Counts>,
}

impl Exporter {
    /// Exports batches until `stop`, then what is still queued, within [`FINAL_FLUSH`].
    pub(super) async fn run(mut self, stop: CancellationToken) {
        let mut batch: Vec<(Service, Span)> = Vec::with_capacity(BATCH);
        loop {
            let deadline = tokio::time::sleep(FLUSH_EVERY);
            tokio::pin!(deadline);
            let stopping = loop {
                tokio::select! {
                    () = stop.cancelled() => break true,
                    () = &mut deadline => break false,
                    got = self.rx.recv() => match got {
                        Some(spans) => {
                            batch.extend(spans);
                            if batch.len() >= BATCH {
                                break false;
                            }
                        }
                        None => break true,
                    },
                }
            };
            if stopping {
                break;
            }
            self.export(&mut batch).await;
        }
        self.rx.close();
        let flush = async {
            while let Some(spans) = self.rx.recv().await {
                batch.extend(spans);
                if batch.len() >= BATCH {
                    self.export(&mut batch).await;
                }
            }
            self.export(&mut batch).await;
        };
        if tokio::time::timeout(FINAL_FLUSH, flush).await.is_err() {
            tracing::warn!(
                target = %self.sender.target(),
                "Demo target: spans still queued at shutdown were not all exported."
            );
        }
    }

    async fn export(&mut self, batch: &mut Vec<(Service, Span)>) {
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        let (mut storefront, mut pricing) = (Vec::new(), Vec::new());
        for (service, span) in batch.drain(..) {
            match service {
                Service::Storefront => storefront.push(span),
                Service::Pricing => pricing.push(span),
            }
        }
        let resources = [(SERVICE, storefront), (PRICING_SERVICE, pricing)]
            .into_iter()
            .filter(|(_, spans)| !spans.is_empty())
            .map(|(name, spans)| resource_spans(name, spans))
            .collect();
        match self.sender.export(resources).await {
            Ok(()) => self.counts.exported.fetch_add(n, Relaxed),
            Err(e) => {
                tracing::debug!(error = %e, target = %self.sender.target(), "Demo target: span export failed.");
                self.counts.failed.fetch_add(n, Relaxed)
            }
        };
    }
}

fn resource_spans(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(resource(&[
            ("service.name".to_owned(), service.to_owned()),
            ("service.namespace".to_owned(), "loadlens-demo".to_owned()),
        ])),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "loadlens-demo-target".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                ..Default::default()
            }),
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// `BASE` of `--otlp-endpoint` (as `OTEL_EXPORTER_OTLP_ENDPOINT`) → `BASE/v1/traces`; a URL
/// already ending in `/v1/traces` is kept.
pub fn traces_url(base: &str) -> Result<Uri, String> {
    let base = base.trim();
    let full = if base.trim_end_matches('/').ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{}/v1/traces", base.trim_end_matches('/'))
    };
    let uri: Uri = full
        .parse()
        .map_err(|e| format!("not a URL ({e}); expected e.g. `http://127.0.0.1:4318`"))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(uri),
        _ => Err("expected an http:// or https:// URL, e.g. `http://127.0.0.1:4318`".into()),
    }
}
