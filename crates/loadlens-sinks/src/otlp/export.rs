//! Exporting spans that some other part of loadlens produces itself (the demo target's server
//! spans), with the same OTLP encoding and sender as the run's own spans: the generated
//! `opentelemetry-proto` messages, prost, and the sink's hyper client (`send.rs`) with its retries.
//!
//! [`SpanExporter`] sends one batch at a time and never queues: batching, bounding and
//! counting drops is the caller's (it knows what may be lost).

use std::time::Duration;

use http::Uri;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message as _;

use super::config::{ExporterKind, Protocol, SignalConfig};
pub use super::encode::{kv, kv_int, nanos, resource, scope};
pub use super::send::SendError;
use super::send::{Finishing, Sender, Service};

/// An OTLP http/protobuf trace exporter to one endpoint, no headers, no TLS settings beyond the
/// web PKI roots.
#[derive(Debug)]
pub struct SpanExporter {
    sender: Sender,
    finishing: Finishing,
}

impl SpanExporter {
    /// Spans go to `endpoint`, the full URL (`http://127.0.0.1:4318/v1/traces`); one export,
    /// retries included, takes at most `timeout`.
    pub fn http_protobuf(endpoint: Uri, timeout: Duration) -> Self {
        let config = SignalConfig {
            exporter: ExporterKind::Otlp,
            endpoint,
            protocol: Protocol::HttpProtobuf,
            headers: Vec::new(),
            timeout,
            gzip: false,
            certificate: None,
            client_certificate: None,
        };
        Self {
            sender: Sender::new(config, Service::Traces),
            finishing: Finishing::default(),
        }
    }

    /// Where the spans go, for messages.
    pub fn target(&self) -> String {
        self.sender.target()
    }

    /// Sends one `ExportTraceServiceRequest` holding `resource_spans`, retrying what the OTLP
    /// specification calls retryable within the timeout.
    pub async fn export(&mut self, resource_spans: Vec<ResourceSpans>) -> Result<(), SendError> {
        let message = ExportTraceServiceRequest { resource_spans }.encode_to_vec();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
        self.sender
            .export(message, deadline, &self.finishing)
            .await
            .map(drop)
    }
}
