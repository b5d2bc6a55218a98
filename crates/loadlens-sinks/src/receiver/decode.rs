//! OTLP trace export bodies into the join's [`Span`]s: protobuf (`ExportTraceServiceRequest`),
//! gzip undone first, bounded in size so that a body cannot make the receiver allocate without
//! limit.
//!
//! The body is read in place (`wire.rs`): per span, the ids, the name, the times, the
//! status code and the handful of attributes the join groups by; everything else is skipped by
//! its length. Strings are checked for UTF-8 only where they are read. Names are interned per
//! body, so a span costs no allocation of its own beyond its place in the output.

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::Arc;

use loadlens_core::breakdown::Span;

use super::wire::{Fields, Malformed};

/// Largest body accepted, compressed or not (the OpenTelemetry Collector's default limit for
/// an OTLP/HTTP request body is smaller than this).
pub const MAX_BODY: usize = 16 << 20;

/// Why an export body was refused; the message goes back to the exporter.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Not valid gzip.
    #[error("the body is not valid gzip: {0}")]
    Gzip(String),
    /// Larger than [`MAX_BODY`] once decompressed.
    #[error("the body is larger than {MAX_BODY} bytes once decompressed")]
    TooLarge,
    /// Not an `ExportTraceServiceRequest`.
    #[error("the body is not an OTLP ExportTraceServiceRequest (protobuf): {0}")]
    Protobuf(String),
}

impl From<Malformed> for DecodeError {
    fn from(m: Malformed) -> Self {
        DecodeError::Protobuf(m.0.to_owned())
    }
}

/// Undo gzip, at most [`MAX_BODY`] bytes out.
pub fn gunzip(body: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(MAX_BODY));
    flate2::read::GzDecoder::new(body)
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Gzip(e.to_string()))?;
    if out.len() > MAX_BODY {
        return Err(DecodeError::TooLarge);
    }
    Ok(out)
}

/// Interns the strings of one body: every span of a service shares one allocation. A name
/// made of two parts (`METHOD route`) is keyed by its parts, so it is formatted once.
#[derive(Default)]
struct Names<'a>(HashMap<(&'a str, &'a str), Arc<str>>);

impl<'a> Names<'a> {
    fn get(&mut self, s: &'a str) -> Arc<str> {
        self.joined(s, "")
    }

    /// `a b`, or `a` when `b` is empty.
    fn joined(&mut self, a: &'a str, b: &'a str) -> Arc<str> {
        self.0
            .entry((a, b))
            .or_insert_with(|| {
                if b.is_empty() {
                    a.into()
                } else {
                    format!("{a} {b}").into()
                }
            })
            .clone()
    }
}

/// The span attributes the join reads.
const KEYS: [&str; 8] = [
    "db.system.name",
    "db.system",
    "db.query.summary",
    "db.operation.name",
    "db.operation",
    "http.route",
    "http.request.method",
    "http.method",
];
const DB_SYSTEM_NAME: usize = 0;
const DB_SYSTEM: usize = 1;
const DB_QUERY_SUMMARY: usize = 2;
const DB_OPERATION_NAME: usize = 3;
const DB_OPERATION: usize = 4;
const HTTP_ROUTE: usize = 5;
const HTTP_REQUEST_METHOD: usize = 6;
const HTTP_METHOD: usize = 7;

/// Of a list of `KeyValue`s, per key of `keys`: the first attribute's value if that is a
/// non-empty string (a later attribute of the same key is not looked at, as before).
struct Attributes<'a, const N: usize> {
    keys: &'static [&'static str; N],
    seen: [bool; N],
    values: [Option<&'a str>; N],
}

impl<'a, const N: usize> Attributes<'a, N> {
    fn new(keys: &'static [&'static str; N]) -> Self {
        Attributes {
            keys,
            seen: [false; N],
            values: [None; N],
        }
    }

    /// Read one `KeyValue`.
    fn read(&mut self, kv: &'a [u8]) -> Result<(), Malformed> {
        let (mut key, mut value): (&[u8], &[u8]) = (&[], &[]);
        for f in Fields::new(kv) {
            match f? {
                (1, v) => key = v.bytes()?,
                (2, v) => value = v.bytes()?,
                _ => {}
            }
        }
        let Some(k) = self.keys.iter().position(|k| k.as_bytes() == key) else {
            return Ok(());
        };
        if std::mem::replace(&mut self.seen[k], true) {
            return Ok(());
        }
        let mut string = None;
        for f in Fields::new(value) {
            // `AnyValue` is a oneof: the last of its fields is the value.
            string = match f? {
                (1, v) => Some(v.str()?),
                _ => None,
            };
        }
        self.values[k] = string.filter(|s| !s.is_empty());
        Ok(())
    }

    /// The value of the first of `keys` (indexes into its keys) that has one.
    fn get(&self, keys: &[usize]) -> Option<&'a str> {
        keys.iter().find_map(|&k| self.values[k])
    }
}

/// The span fields the join reads.
struct RawSpan<'a> {
    trace_id: &'a [u8],
    span_id: &'a [u8],
    parent_span_id: &'a [u8],
    name: &'a str,
    start_ns: u64,
    end_ns: u64,
    error: bool,
    attributes: Attributes<'a, 8>,
}

/// `Status.code` of an error.
const STATUS_ERROR: u64 = 2;

impl<'a> RawSpan<'a> {
    fn read(buf: &'a [u8]) -> Result<Self, Malformed> {
        let mut s = RawSpan {
            trace_id: &[],
            span_id: &[],
            parent_span_id: &[],
            name: "",
            start_ns: 0,
            end_ns: 0,
            error: false,
            attributes: Attributes::new(&KEYS),
        };
        for f in Fields::new(buf) {
            match f? {
                (1, v) => s.trace_id = v.bytes()?,
                (2, v) => s.span_id = v.bytes()?,
                (4, v) => s.parent_span_id = v.bytes()?,
                (5, v) => s.name = v.str()?,
                (7, v) => s.start_ns = v.fixed64()?,
                (8, v) => s.end_ns = v.fixed64()?,
                (9, v) => s.attributes.read(v.bytes()?)?,
                (15, v) => {
                    for f in Fields::new(v.bytes()?) {
                        if let (3, v) = f? {
                            s.error = v.varint()? == STATUS_ERROR;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(s)
    }
}

/// The spans of a protobuf `ExportTraceServiceRequest`, and how many were skipped for ids of
/// the wrong length.
pub fn spans(body: &[u8]) -> Result<(Vec<Span>, u64), DecodeError> {
    let mut names = Names::default();
    let mut out = Vec::new();
    let mut skipped = 0;
    for f in Fields::new(body) {
        let (1, resource_spans) = f? else { continue };
        let resource_spans = resource_spans.bytes()?;
        // The resource may come after its spans: find it first.
        let mut service = Attributes::new(&["service.name"]);
        for f in Fields::new(resource_spans) {
            let (1, resource) = f? else { continue };
            for f in Fields::new(resource.bytes()?) {
                if let (1, kv) = f? {
                    service.read(kv.bytes()?)?;
                }
            }
        }
        let service = names.get(service.get(&[0]).unwrap_or("unknown_service"));
        for f in Fields::new(resource_spans) {
            let (2, scope_spans) = f? else { continue };
            for f in Fields::new(scope_spans.bytes()?) {
                let (2, span) = f? else { continue };
                let s = RawSpan::read(span.bytes()?)?;
                let (Ok(trace), Ok(id)) = (
                    <[u8; 16]>::try_from(s.trace_id),
                    <[u8; 8]>::try_from(s.span_id),
                ) else {
                    skipped += 1;
                    continue;
                };
                let parent = <[u8; 8]>::try_from(s.parent_span_id).map_or(0, u64::from_be_bytes);
                let a = &s.attributes;
                // Database spans group under their system; an HTTP server span is named by
                // its route; anything else by its name.
                let (group, operation) = match a.get(&[DB_SYSTEM_NAME, DB_SYSTEM]) {
                    Some(system) => (
                        names.get(system),
                        names.get(
                            a.get(&[DB_QUERY_SUMMARY])
                                .or((!s.name.is_empty()).then_some(s.name))
                                .or(a.get(&[DB_OPERATION_NAME, DB_OPERATION]))
                                .unwrap_or(system),
                        ),
                    ),
                    None => match a.get(&[HTTP_ROUTE]) {
                        Some(route) => {
                            let op = match a.get(&[HTTP_REQUEST_METHOD, HTTP_METHOD]) {
                                Some(m) => names.joined(m, route),
                                None => names.get(route),
                            };
                            (service.clone(), op)
                        }
                        None => (service.clone(), names.get(s.name)),
                    },
                };
                out.push(Span {
                    trace_id: u128::from_be_bytes(trace),
                    span_id: u64::from_be_bytes(id),
                    parent_span_id: parent,
                    service: service.clone(),
                    group,
                    operation,
                    start_ns: s.start_ns,
                    end_ns: s.end_ns,
                    error: s.error,
                });
            }
        }
    }
    Ok((out, skipped))
}

#[cfg(test)]
pub(crate) mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status};
    use prost::Message as _;

    use super::*;

    pub(crate) fn kv(k: &str, v: &str) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    /// An OTLP span.
    pub(crate) fn otlp_span(
        trace: u128,
        id: u64,
        parent: u64,
        name: &str,
        attrs: Vec<KeyValue>,
        start_ns: u64,
        end_ns: u64,
    ) -> opentelemetry_proto::tonic::trace::v1::Span {
        opentelemetry_proto::tonic::trace::v1::Span {
            trace_id: trace.to_be_bytes().to_vec(),
            span_id: id.to_be_bytes().to_vec(),
            parent_span_id: if parent == 0 {
                Vec::new()
            } else {
                parent.to_be_bytes().to_vec()
            },
            name: name.into(),
            attributes: attrs,
            start_time_unix_nano: start_ns,
            end_time_unix_nano: end_ns,
            ..Default::default()
        }
    }

    /// An export request of `spans` from `service`.
    pub(crate) fn export(
        service: &str,
        spans: Vec<opentelemetry_proto::tonic::trace::v1::Span>,
    ) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", service)],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    #[test]
    fn spans_are_grouped_by_service_database_system_or_route() {
        let mut error = otlp_span(
            7,
            3,
            1,
            "SELECT orders",
            vec![kv("db.system", "postgresql")],
            10,
            20,
        );
        error.status = Some(Status {
            code: StatusCode::Error as i32,
            ..Default::default()
        });
        let body = export(
            "orders",
            vec![
                otlp_span(
                    7,
                    1,
                    0xc1,
                    "GET /orders/{id}",
                    vec![
                        kv("http.route", "/orders/{id}"),
                        kv("http.request.method", "GET"),
                    ],
                    0,
                    30,
                ),
                otlp_span(7, 2, 1, "load", vec![], 1, 5),
                error,
                // Ids of the wrong length: skipped, counted.
                opentelemetry_proto::tonic::trace::v1::Span {
                    trace_id: vec![1, 2, 3],
                    span_id: vec![1],
                    ..Default::default()
                },
            ],
        );
        let (spans, skipped) = spans(&body).unwrap();
        assert_eq!(skipped, 1);
        let seen: Vec<(&str, &str, &str, u64, bool)> = spans
            .iter()
            .map(|s| {
                (
                    &*s.service,
                    &*s.group,
                    &*s.operation,
                    s.parent_span_id,
                    s.error,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("orders", "orders", "GET /orders/{id}", 0xc1, false),
                ("orders", "orders", "load", 1, false),
                ("orders", "postgresql", "SELECT orders", 1, true),
            ]
        );
        assert_eq!(spans[0].trace_id, 7);
        assert!(
            Arc::ptr_eq(&spans[0].service, &spans[1].service),
            "interned"
        );
    }

    /// A decoded span, compared field by field: ids, service, group, operation, times, error.
    type Seen = (u128, u64, u64, String, String, String, u64, u64, bool);

    /// The generated messages' decoding, as the receiver did before it read in place: the
    /// oracle of the test below.
    fn by_generated_messages(body: &[u8]) -> Vec<Seen> {
        let first = |attrs: &[KeyValue], keys: &[&str]| -> Option<String> {
            keys.iter().find_map(|k| {
                attrs.iter().find(|a| a.key == *k).and_then(|a| {
                    match a.value.as_ref()?.value.as_ref()? {
                        any_value::Value::StringValue(s) if !s.is_empty() => Some(s.clone()),
                        _ => None,
                    }
                })
            })
        };
        let req = ExportTraceServiceRequest::decode(body).unwrap();
        let mut out = Vec::new();
        for rs in &req.resource_spans {
            let attrs = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
            let service = first(attrs, &["service.name"]).unwrap_or("unknown_service".into());
            for s in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
                let a = &s.attributes[..];
                let (group, op) = match first(a, &["db.system.name", "db.system"]) {
                    Some(system) => {
                        let op = first(a, &["db.query.summary"])
                            .or((!s.name.is_empty()).then(|| s.name.clone()))
                            .or(first(a, &["db.operation.name", "db.operation"]))
                            .unwrap_or(system.clone());
                        (system, op)
                    }
                    None => match first(a, &["http.route"]) {
                        Some(route) => match first(a, &["http.request.method", "http.method"]) {
                            Some(m) => (service.clone(), format!("{m} {route}")),
                            None => (service.clone(), route),
                        },
                        None => (service.clone(), s.name.clone()),
                    },
                };
                let id = |b: &[u8]| b.try_into().map_or(0, u64::from_be_bytes);
                out.push((
                    u128::from_be_bytes(s.trace_id[..].try_into().unwrap()),
                    id(&s.span_id),
                    id(&s.parent_span_id),
                    service.clone(),
                    group,
                    op,
                    s.start_time_unix_nano,
                    s.end_time_unix_nano,
                    s.status
                        .as_ref()
                        .is_some_and(|st| st.code == StatusCode::Error as i32),
                ));
            }
        }
        out
    }

    #[test]
    fn only_what_the_join_reads_is_read_and_the_rest_skipped() {
        use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
        use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
        let int = |k: &str, v: i64| KeyValue {
            key: k.into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::IntValue(v)),
            }),
            ..Default::default()
        };
        let mut server = otlp_span(
            9,
            1,
            0xc1,
            "GET /items/{id}",
            vec![
                kv("url.path", "/items/7"),
                // Not a string: the route is looked for no further, the method falls back.
                int("http.response.status_code", 200),
                kv("http.route", "/items/{id}"),
                kv("http.route", "/ignored"),
                kv("http.method", "GET"),
            ],
            5,
            50,
        );
        server.kind = 2;
        server.trace_state = "vendor=x".into();
        server.flags = 0x301;
        server.dropped_attributes_count = 3;
        server.events = vec![Event {
            time_unix_nano: 7,
            name: "exception".into(),
            attributes: vec![kv("exception.message", "boom")],
            ..Default::default()
        }];
        server.links = vec![Link {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            ..Default::default()
        }];
        server.status = Some(Status {
            code: StatusCode::Error as i32,
            message: "failed".into(),
        });
        let list = vec![
            server,
            // `db.system.name` not a string, `db.system` is; no summary, no name: the operation.
            otlp_span(
                9,
                2,
                1,
                "",
                vec![
                    int("db.system.name", 1),
                    kv("db.system", "redis"),
                    kv("db.operation.name", "GET"),
                ],
                10,
                12,
            ),
            // An empty string is no value.
            otlp_span(
                9,
                3,
                1,
                "load",
                vec![kv("http.route", ""), kv("db.system", "")],
                12,
                20,
            ),
            otlp_span(
                9,
                4,
                1,
                "q",
                vec![
                    kv("db.system.name", "postgresql"),
                    kv("db.query.summary", "SELECT items"),
                ],
                20,
                30,
            ),
        ];
        // The resource after its spans (a merge of two messages), a scope, a schema URL.
        let mut rs = ResourceSpans {
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    version: "1".into(),
                    attributes: vec![kv("service.name", "not this one")],
                    ..Default::default()
                }),
                spans: list,
                schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
            }],
            ..Default::default()
        }
        .encode_to_vec();
        rs.extend(
            ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        int("service.name", 3),
                        kv("service.name", "later"),
                        kv("host.name", "h"),
                    ],
                    ..Default::default()
                }),
                ..Default::default()
            }
            .encode_to_vec(),
        );
        let mut body = vec![0x0a];
        prost::encoding::encode_varint(rs.len() as u64, &mut body);
        body.extend(rs);
        body.extend(export(
            "items",
            vec![otlp_span(10, 1, 0, "tick", vec![], 1, 2)],
        ));
        let (ours, skipped) = spans(&body).unwrap();
        assert_eq!(skipped, 0);
        let ours: Vec<_> = ours
            .iter()
            .map(|s| {
                (
                    s.trace_id,
                    s.span_id,
                    s.parent_span_id,
                    s.service.to_string(),
                    s.group.to_string(),
                    s.operation.to_string(),
                    s.start_ns,
                    s.end_ns,
                    s.error,
                )
            })
            .collect();
        assert_eq!(ours, by_generated_messages(&body));
        let seen: Vec<(&str, &str, &str, bool)> =
            ours.iter().map(|s| (&*s.3, &*s.4, &*s.5, s.8)).collect();
        assert_eq!(
            seen,
            [
                (
                    "unknown_service",
                    "unknown_service",
                    "GET /items/{id}",
                    true
                ),
                ("unknown_service", "redis", "GET", false),
                ("unknown_service", "unknown_service", "load", false),
                ("unknown_service", "postgresql", "SELECT items", false),
                ("items", "items", "tick", false),
            ]
        );
    }

    #[test]
    fn bad_bodies_say_what_is_wrong() {
        assert!(matches!(
            spans(b"\xff\xff\xff not protobuf"),
            Err(DecodeError::Protobuf(_))
        ));
        assert!(matches!(gunzip(b"not gzip"), Err(DecodeError::Gzip(_))));
        // A gzip bomb: 32 MiB of zeros in a few kilobytes.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, &vec![0u8; 32 << 20]).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 100_000);
        assert_eq!(gunzip(&bomb), Err(DecodeError::TooLarge));
        // An empty body is an empty export.
        assert_eq!(spans(b"").unwrap().0, vec![]);
    }
}
