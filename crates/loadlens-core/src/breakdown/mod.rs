//! Where the time went: per request name, the client's latency split into connection phases,
//! time outside the service, server self time and each downstream operation, from the service's
//! own spans joined to the client spans of sampled requests.
//!
//! This module holds the data model that reports and live views read ([`Breakdown`]); the
//! trace receiver (an integration) builds it and the executor hands the latest one to every
//! [`crate::stats::Snapshot`] and the final one to the [`crate::report::Summary`]. Every
//! figure comes from an HDR histogram, so memory stays constant for any run length.
//!
//! Components of one joined request, in the order reports show them:
//!
//! | component | value |
//! |---|---|
//! | `dns`, `connect`, `tls` | the client's connection phases (only when the request opened a connection) |
//! | `outside` | time outside the service: the client's time to first byte minus the server's root span |
//! | `server_self` | the root server span minus the time covered by its child spans |
//! | `operation` | each downstream operation's self time, keyed by `service.name` + span name (database spans: `db.system` + span name; HTTP server spans: `service.name` + method and `http.route`) |
//! | `download` | the client's body download |

mod join;
pub mod merge;
mod parts;
mod series;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use join::{Join, JoinSettings, Span};

use crate::stats::LatencyHistogram;

/// Where the executor reads the breakdown from: a trace receiver's sink hands one out
/// ([`crate::sink::Sink::breakdown_source`]).
pub trait BreakdownSource: Send + Sync {
    /// The latest breakdown, for the snapshot of this tick (cheap: no waiting).
    fn latest(&self) -> Option<Arc<Breakdown>>;

    /// After the last request: wait for the spans of the last requests (bounded by the
    /// source's join window), then the final breakdown.
    fn settle(&self) -> Pin<Box<dyn Future<Output = Option<Arc<Breakdown>>> + Send + '_>>;
}

/// The breakdown of a run (or of the run so far, live).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Breakdown {
    /// How many sampled requests found their server spans, and what happened to the spans.
    pub coverage: Coverage,
    /// Per request name with at least one sampled request, in the plan's name order.
    pub requests: Vec<RequestBreakdown>,
    /// Each downstream operation over every request name (what `span:` thresholds read).
    #[serde(default)]
    pub operations: Vec<Component>,
    /// Per `service.name`: the duration of that service's top spans (its entry points in each
    /// trace), over every request name (what `service:` thresholds read).
    #[serde(default)]
    pub services: Vec<ServiceFigures>,
    /// Link to a trace in the user's tracing UI, `{trace_id}` replaced by the trace id
    /// (`https://jaeger.example/trace/{trace_id}`); `None` when not configured.
    #[serde(default)]
    pub link_template: Option<String>,
    /// Length in seconds of one point of the components' `series`.
    #[serde(default)]
    pub interval_s: f64,
    /// The same breakdown in a form that merges exactly: counters and HDR histograms (V2,
    /// deflate, base64). Set on the final breakdown (the JSON result's `breakdown.histograms`,
    /// which `loadlens merge` adds up) and, on a coordinated worker, on each live one (it
    /// streams them to the coordinator); absent in results of older builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histograms: Option<Arc<merge::Histograms>>,
}

/// Trace coverage: how many sampled requests were joined, and the fate of the spans received.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    /// Requests sent sampled (their client span known to the join).
    pub sampled: u64,
    /// Sampled requests that found their service's spans.
    pub joined: u64,
    /// Spans received (OTLP) in total.
    pub spans_received: u64,
    /// Spans attributed to a joined request.
    pub spans_joined: u64,
    /// Spans of our traces that never matched within the join window (or did not fit the
    /// bounded table of pending traces), dropped.
    pub spans_dropped: u64,
    /// Spans that arrived after their request's join window had closed.
    pub spans_late: u64,
    /// Spans of traces that are not ours (other trace ids), ignored.
    pub spans_foreign: u64,
    /// Export requests refused because their body could not be decoded.
    #[serde(default)]
    pub rejected_exports: u64,
    /// Sampled requests still within their join window (not counted in the ratio yet; 0 at
    /// the end of the run).
    #[serde(default)]
    pub pending: u64,
}

impl Coverage {
    /// Joined sampled requests as a fraction of the sampled ones whose join window is over
    /// (0..=1); `None` before any is.
    pub fn ratio(&self) -> Option<f64> {
        let settled = self.sampled.saturating_sub(self.pending);
        (settled > 0).then(|| self.joined as f64 / settled as f64)
    }
}

/// The breakdown of one request name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestBreakdown {
    /// HTTP method.
    pub method: String,
    /// Request name.
    pub name: String,
    /// Requests of this name sent sampled.
    pub sampled: u64,
    /// Of those, requests joined to their server spans.
    pub joined: u64,
    /// The client's total response time of the joined requests.
    pub total: Figures,
    /// Its components: connection phases, outside, server self time, then the downstream
    /// operations by share (largest first), then download.
    pub components: Vec<Component>,
    /// The slowest joined requests (top k), slowest first.
    pub slowest: Vec<SlowRequest>,
}

/// One component of a request name's latency (or, in [`Breakdown::operations`], one
/// downstream operation over every name).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Component {
    /// What it is.
    pub key: ComponentKey,
    /// How reports name it: `dns`, `outside the service`, `server self time`,
    /// `inventory: SELECT orders`.
    pub label: String,
    /// Its values per joined request (a request where it did not occur has no value).
    pub figures: Figures,
    /// Its share of the total time of the joined requests (0..=1): the sum of its values over
    /// the sum of the requests' totals.
    pub share: f64,
    /// Spans of this operation with an error status (always 0 for the client's components).
    pub errors: u64,
    /// Its values per interval (at most a few hundred points; neighbours merge in long runs).
    #[serde(default)]
    pub series: Vec<SeriesPoint>,
}

/// Put a request name's components in the order reports show them: by kind, operations by
/// share (largest first), ties by label. The join and the merge of breakdowns both use it,
/// so a merged breakdown reads as a single run's.
pub(crate) fn sort_components(components: &mut [Component]) {
    components.sort_by(|x, y| {
        x.key.kind.cmp(&y.key.kind).then(
            y.share
                .total_cmp(&x.share)
                .then_with(|| x.label.cmp(&y.label)),
        )
    });
}

/// What a component is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ComponentKey {
    /// The kind of component.
    pub kind: ComponentKind,
    /// For an operation: the `service.name` of the spans, or for database spans their
    /// `db.system` (empty otherwise).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service: String,
    /// For an operation: the span name (a database span's query summary, `SELECT orders`),
    /// or for an HTTP server span `METHOD http.route` (empty otherwise).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub operation: String,
}

impl ComponentKey {
    /// The key of a component that is not an operation.
    pub fn of(kind: ComponentKind) -> Self {
        ComponentKey {
            kind,
            ..ComponentKey::default()
        }
    }

    /// The key of the downstream operation `operation` of `service`.
    pub fn operation(service: impl Into<String>, operation: impl Into<String>) -> Self {
        ComponentKey {
            kind: ComponentKind::Operation,
            service: service.into(),
            operation: operation.into(),
        }
    }

    /// How reports name it.
    pub fn label(&self) -> String {
        match self.kind {
            ComponentKind::Dns => "dns".into(),
            ComponentKind::Connect => "connect".into(),
            ComponentKind::Tls => "tls".into(),
            ComponentKind::Outside => "outside the service".into(),
            ComponentKind::ServerSelf => "server self time".into(),
            ComponentKind::Operation if self.service.is_empty() => self.operation.clone(),
            ComponentKind::Operation => format!("{}: {}", self.service, self.operation),
            ComponentKind::Download => "download".into(),
        }
    }
}

/// The kinds of components, in the order reports show them.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ComponentKind {
    /// Name resolution (client).
    Dns,
    /// TCP connect (client).
    Connect,
    /// TLS handshake (client).
    Tls,
    /// The client's time to first byte minus the server's root span: network and queueing.
    #[default]
    Outside,
    /// The server's root span minus the time its child spans cover.
    ServerSelf,
    /// A downstream operation (a span below the root): its self time.
    Operation,
    /// Body download (client).
    Download,
}

/// HDR figures of one component, milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Values recorded.
    pub count: u64,
    /// Mean.
    pub avg: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest value.
    pub max: f64,
}

impl Figures {
    /// The figures of `h`.
    pub fn of(h: &LatencyHistogram) -> Self {
        Figures {
            count: h.len(),
            avg: h.mean_ms(),
            p50: h.quantile_ms(0.5),
            p95: h.quantile_ms(0.95),
            p99: h.quantile_ms(0.99),
            max: h.max_ms(),
        }
    }

    /// The sum of the values (count × mean), milliseconds.
    pub fn sum(&self) -> f64 {
        self.count as f64 * self.avg
    }
}

/// A component's values over one interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Seconds since the start of the run, at the end of the interval.
    pub elapsed_s: f64,
    /// Values in the interval.
    pub count: u64,
    /// Mean, ms.
    pub avg_ms: f64,
    /// 95th percentile, ms (a merged point's is the count-weighted mean of its parts').
    pub p95_ms: f64,
}

/// The figures of one service's spans.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceFigures {
    /// `service.name`.
    pub service: String,
    /// Durations of its top spans.
    pub figures: Figures,
    /// Its spans with an error status.
    pub errors: u64,
}

/// One of the slowest joined requests of a name.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SlowRequest {
    /// The trace id, 32 lowercase hex digits.
    pub trace_id: String,
    /// Seconds since the start of the run when the request started.
    pub at_s: f64,
    /// The client's total response time, ms.
    pub total_ms: f64,
    /// The label of the component that took the most time in this request.
    pub dominant: String,
    /// That component's time, ms.
    pub dominant_ms: f64,
}

impl RequestBreakdown {
    /// The component with the largest share of this request name's time (the first of equals).
    pub fn top_contributor(&self) -> Option<&Component> {
        self.components
            .iter()
            .reduce(|best, c| if c.share > best.share { c } else { best })
    }
}

impl Breakdown {
    /// The link to `trace_id` from [`Breakdown::link_template`], if one is set.
    pub fn link(&self, trace_id: &str) -> Option<String> {
        self.link_template
            .as_ref()
            .map(|t| t.replace("{trace_id}", trace_id))
    }

    /// The breakdown of the request `(method, name)`.
    pub fn request(&self, method: &str, name: &str) -> Option<&RequestBreakdown> {
        self.requests
            .iter()
            .find(|r| r.method == method && r.name == name)
    }

    /// A small, consistent breakdown with made-up figures (two request names, a database
    /// query, a cache and a downstream call), for tests of what renders it.
    pub fn example() -> Breakdown {
        let fig = |count: u64, p50: f64| Figures {
            count,
            avg: p50 * 1.1,
            p50,
            p95: p50 * 1.8,
            p99: p50 * 2.5,
            max: p50 * 4.0,
        };
        let series = |p50: f64| {
            (1..=5)
                .map(|i| SeriesPoint {
                    elapsed_s: f64::from(i),
                    count: 20,
                    avg_ms: p50 * (1.0 + f64::from(i) / 10.0),
                    p95_ms: p50 * (1.8 + f64::from(i) / 10.0),
                })
                .collect()
        };
        let component =
            |key: ComponentKey, count: u64, p50: f64, share: f64, errors: u64| Component {
                label: key.label(),
                key,
                figures: fig(count, p50),
                share,
                errors,
                series: series(p50),
            };
        let select = ComponentKey::operation("postgresql", "SELECT orders");
        let cache = ComponentKey::operation("redis", "GET");
        let pricing = ComponentKey::operation("pricing", "GET /price/{sku}");
        let orders = RequestBreakdown {
            method: "GET".into(),
            name: "/orders".into(),
            sampled: 100,
            joined: 98,
            total: fig(98, 40.0),
            components: vec![
                component(ComponentKey::of(ComponentKind::Connect), 4, 0.2, 0.001, 0),
                component(ComponentKey::of(ComponentKind::Outside), 98, 0.6, 0.015, 0),
                component(
                    ComponentKey::of(ComponentKind::ServerSelf),
                    98,
                    3.0,
                    0.075,
                    0,
                ),
                component(select.clone(), 98, 22.0, 0.55, 2),
                component(pricing.clone(), 98, 11.0, 0.275, 0),
                component(cache.clone(), 98, 1.5, 0.037, 0),
                component(ComponentKey::of(ComponentKind::Download), 98, 0.1, 0.002, 0),
            ],
            slowest: vec![
                SlowRequest {
                    trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                    at_s: 3.2,
                    total_ms: 160.0,
                    dominant: select.label(),
                    dominant_ms: 120.0,
                },
                SlowRequest {
                    trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
                    at_s: 1.7,
                    total_ms: 110.0,
                    dominant: pricing.label(),
                    dominant_ms: 70.0,
                },
            ],
        };
        let search = RequestBreakdown {
            method: "GET".into(),
            name: "/search".into(),
            sampled: 50,
            joined: 50,
            total: fig(50, 12.0),
            components: vec![
                component(ComponentKey::of(ComponentKind::Outside), 50, 0.5, 0.04, 0),
                component(
                    ComponentKey::of(ComponentKind::ServerSelf),
                    50,
                    9.0,
                    0.75,
                    0,
                ),
                component(cache.clone(), 50, 2.0, 0.17, 0),
                component(ComponentKey::of(ComponentKind::Download), 50, 0.4, 0.04, 0),
            ],
            slowest: vec![SlowRequest {
                trace_id: "5b8aa5a2d2c872e8321cf37308d69df2".into(),
                at_s: 4.5,
                total_ms: 30.0,
                dominant: "server self time".into(),
                dominant_ms: 25.0,
            }],
        };
        Breakdown {
            coverage: Coverage {
                sampled: 150,
                joined: 148,
                spans_received: 650,
                spans_joined: 640,
                spans_dropped: 6,
                spans_late: 2,
                spans_foreign: 2,
                rejected_exports: 0,
                pending: 0,
            },
            requests: vec![orders, search],
            operations: vec![
                component(select, 98, 22.0, 0.0, 2),
                component(pricing, 98, 11.0, 0.0, 0),
                component(cache, 148, 1.8, 0.0, 0),
            ],
            services: vec![
                ServiceFigures {
                    service: "orders".into(),
                    figures: fig(148, 30.0),
                    errors: 2,
                },
                ServiceFigures {
                    service: "pricing".into(),
                    figures: fig(98, 11.5),
                    errors: 0,
                },
            ],
            link_template: Some("http://127.0.0.1:16686/trace/{trace_id}".into()),
            interval_s: 1.0,
            histograms: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_round_trips_through_json_and_links_its_traces() {
        let b = Breakdown::example();
        let json = serde_json::to_value(&b).unwrap();
        let back: Breakdown = serde_json::from_value(json.clone()).unwrap();
        // Compared as JSON: serde_json may read a float back one ulp away.
        assert_eq!(serde_json::to_value(&back).unwrap(), json);
        assert_eq!(back.requests.len(), 2);
        assert_eq!(b.coverage.ratio(), Some(148.0 / 150.0));
        assert_eq!(
            b.link("abc").as_deref(),
            Some("http://127.0.0.1:16686/trace/abc")
        );
        let orders = b.request("GET", "/orders").unwrap();
        assert_eq!(orders.components[3].label, "postgresql: SELECT orders");
        assert_eq!(Coverage::default().ratio(), None);
    }
}
