//! OTLP trace export bodies into the join's [`Span`]s: protobuf (`ExportTraceServiceRequest`,
//! decoded with the generated `opentelemetry-proto` messages), gzip undone first, bounded in
//! size so that a body cannot make the receiver allocate without limit.

use std::collections::HashMap;
use std::io::Read as _;
use std::sync::Arc;

use loadlens_core::breakdown::Span;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use prost::Message as _;

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

/// Interns the strings of one body: every span of a service shares one allocation.
#[derive(Default)]
struct Names(HashMap<String, Arc<str>>);

impl Names {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.get(s) {
            return a.clone();
        }
        let a: Arc<str> = s.into();
        self.0.insert(s.to_owned(), a.clone());
        a
    }
}

fn string<'a>(attrs: &'a [KeyValue], keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|k| {
        attrs
            .iter()
            .find(|a| a.key == *k)
            .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(s) if !s.is_empty() => Some(s.as_str()),
                _ => None,
            })
    })
}

/// The spans of a protobuf `ExportTraceServiceRequest`, and how many were skipped for ids of
/// the wrong length.
pub fn spans(body: &[u8]) -> Result<(Vec<Span>, u64), DecodeError> {
    let req = ExportTraceServiceRequest::decode(body)
        .map_err(|e| DecodeError::Protobuf(e.to_string()))?;
    let mut names = Names::default();
    let mut out = Vec::new();
    let mut skipped = 0;
    for rs in &req.resource_spans {
        let attrs = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        let service = names.get(string(attrs, &["service.name"]).unwrap_or("unknown_service"));
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                let (Ok(trace), Ok(id)) = (
                    <[u8; 16]>::try_from(&s.trace_id[..]),
                    <[u8; 8]>::try_from(&s.span_id[..]),
                ) else {
                    skipped += 1;
                    continue;
                };
                let parent =
                    <[u8; 8]>::try_from(&s.parent_span_id[..]).map_or(0, u64::from_be_bytes);
                let a = &s.attributes[..];
                // Database spans group under their system; an HTTP server span is named by
                // its route; anything else by its name.
                let (group, operation) = match string(a, &["db.system.name", "db.system"]) {
                    Some(system) => (
                        names.get(system),
                        names.get(
                            string(a, &["db.query.summary"])
                                .or((!s.name.is_empty()).then_some(s.name.as_str()))
                                .or(string(a, &["db.operation.name", "db.operation"]))
                                .unwrap_or(system),
                        ),
                    ),
                    None => match string(a, &["http.route"]) {
                        Some(route) => {
                            let op = match string(a, &["http.request.method", "http.method"]) {
                                Some(m) => format!("{m} {route}"),
                                None => route.to_owned(),
                            };
                            (service.clone(), names.get(&op))
                        }
                        None => (service.clone(), names.get(&s.name)),
                    },
                };
                out.push(Span {
                    trace_id: u128::from_be_bytes(trace),
                    span_id: u64::from_be_bytes(id),
                    parent_span_id: parent,
                    service: service.clone(),
                    group,
                    operation,
                    start_ns: s.start_time_unix_nano,
                    end_ns: s.end_time_unix_nano,
                    error: s
                        .status
                        .as_ref()
                        .is_some_and(|st| st.code == StatusCode::Error as i32),
                });
            }
        }
    }
    Ok((out, skipped))
}

#[cfg(test)]
pub(crate) mod tests {
    use opentelemetry_proto::tonic::common::v1::AnyValue;
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status};

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
