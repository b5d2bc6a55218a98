//! Sending encoded OTLP requests: OTLP/HTTP (protobuf bodies over HTTP/1.1) or OTLP/gRPC
//! (unary `Export` calls over HTTP/2, h2c on `http://`), on hyper's connection API with one
//! kept-alive connection per signal, optional gzip, and retries with backoff for the answers the
//! OTLP specification calls retryable — all within the signal's timeout.
//!
//! Written on hyper rather than with `opentelemetry-otlp`'s tonic/reqwest clients: hyper is
//! already in the build, and a gRPC unary call is a 5-byte frame header and a trailer check.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::config::{Protocol, SignalConfig};

/// The OTLP service a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `TraceService/Export`.
    Traces,
    /// `MetricsService/Export`.
    Metrics,
}

impl Service {
    fn grpc_path(self) -> &'static str {
        match self {
            Service::Traces => "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            Service::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        }
    }
}

/// Why an export failed (after retries). Messages never include header values.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum SendError {
    /// Connecting or talking to the endpoint failed.
    #[error("{0}")]
    Transport(String),
    /// The endpoint answered with an HTTP error.
    #[error("HTTP {0}")]
    Status(u16),
    /// The gRPC call failed.
    #[error("gRPC status {code} ({})", grpc_name(*.code))]
    Grpc {
        /// gRPC status code.
        code: u32,
    },
    /// No answer within the timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The run is finishing: the attempt was abandoned so the final flush can start.
    #[error("abandoned for the final flush")]
    Cancelled,
}

impl SendError {
    fn retryable(&self) -> bool {
        match self {
            SendError::Transport(_) => true,
            SendError::Status(s) => matches!(s, 429 | 502 | 503 | 504),
            // CANCELLED, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED, OUT_OF_RANGE,
            // UNAVAILABLE, DATA_LOSS (OTLP specification, "Failures").
            SendError::Grpc { code } => matches!(code, 1 | 4 | 8 | 10 | 11 | 14 | 15),
            SendError::Timeout(_) | SendError::Cancelled => false,
        }
    }
}

fn grpc_name(code: u32) -> &'static str {
    match code {
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        16 => "UNAUTHENTICATED",
        _ => "other",
    }
}

enum Conn {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

/// One signal's exporter connection.
pub struct Sender {
    config: SignalConfig,
    service: Service,
    tls: Option<Arc<rustls::ClientConfig>>,
    conn: Option<Conn>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("endpoint", &self.config.endpoint)
            .field("protocol", &self.config.protocol)
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// A sender for `service` as `config` says (no connection is opened yet).
    pub fn new(config: SignalConfig, service: Service) -> Self {
        let tls = (config.endpoint.scheme_str() == Some("https")).then(|| {
            // `OTEL_EXPORTER_OTLP_CERTIFICATE` replaces the web PKI roots, as in the SDKs.
            let roots = match &config.certificate {
                Some(c) => (*c.roots).clone(),
                None => rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                },
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut c = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| b.with_root_certificates(roots).with_no_client_auth());
            if let Ok(c) = &mut c {
                c.alpn_protocols = match config.protocol {
                    Protocol::Grpc => vec![b"h2".to_vec()],
                    Protocol::HttpProtobuf => vec![b"http/1.1".to_vec()],
                };
            }
            c.map(Arc::new)
        });
        Sender {
            tls: tls.and_then(Result::ok),
            config,
            service,
            conn: None,
        }
    }

    /// Where this sender delivers, for messages (no credentials: headers are not part of it).
    pub fn target(&self) -> String {
        match self.config.protocol {
            Protocol::Grpc => format!("{} (grpc)", self.config.endpoint),
            Protocol::HttpProtobuf => format!("{} (http/protobuf)", self.config.endpoint),
        }
    }

    /// Send one encoded `Export…ServiceRequest`, retrying retryable failures with backoff until
    /// `deadline` or the signal's timeout, whichever is sooner. Returns the raw response message.
    /// `cancel` abandons the attempt (and its retries) at once.
    pub async fn export(
        &mut self,
        message: Vec<u8>,
        deadline: tokio::time::Instant,
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<Bytes, SendError> {
        let deadline = deadline.min(tokio::time::Instant::now() + self.config.timeout);
        let body = self.body(message);
        let mut backoff = Duration::from_millis(100);
        loop {
            let attempt = tokio::select! {
                r = tokio::time::timeout_at(deadline, self.attempt(body.clone())) => r,
                _ = cancel.cancelled() => {
                    self.conn = None;
                    return Err(SendError::Cancelled);
                }
            };
            let err = match attempt {
                Ok(Ok(b)) => return Ok(b),
                Ok(Err(e)) => e,
                Err(_) => {
                    self.conn = None;
                    return Err(SendError::Timeout(self.config.timeout));
                }
            };
            if !err.retryable() {
                return Err(err);
            }
            let jitter = Duration::from_millis(fastrand::u64(0..=backoff.as_millis() as u64 / 2));
            let wake = tokio::time::Instant::now() + backoff + jitter;
            if wake >= deadline {
                return Err(err);
            }
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                _ = cancel.cancelled() => return Err(SendError::Cancelled),
            }
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    fn body(&self, message: Vec<u8>) -> Bytes {
        let payload = if self.config.gzip {
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(message.len() / 4),
                flate2::Compression::fast(),
            );
            // Writing to a Vec cannot fail.
            let _ = gz.write_all(&message);
            gz.finish().unwrap_or(message)
        } else {
            message
        };
        match self.config.protocol {
            Protocol::HttpProtobuf => Bytes::from(payload),
            Protocol::Grpc => {
                // Length-prefixed message: compressed flag, 4-byte big-endian length.
                let mut b = BytesMut::with_capacity(payload.len() + 5);
                b.extend_from_slice(&[u8::from(self.config.gzip)]);
                b.extend_from_slice(&(payload.len() as u32).to_be_bytes());
                b.extend_from_slice(&payload);
                b.freeze()
            }
        }
    }

    async fn attempt(&mut self, body: Bytes) -> Result<Bytes, SendError> {
        let req = self.request(body)?;
        if self.conn.as_ref().is_none_or(|c| match c {
            Conn::H1(s) => s.is_closed(),
            Conn::H2(s) => s.is_closed(),
        }) {
            self.conn = Some(self.connect().await?);
        }
        let result = match self.conn.as_mut() {
            Some(Conn::H1(s)) => match s.ready().await {
                Ok(()) => s.send_request(req).await,
                Err(e) => Err(e),
            },
            Some(Conn::H2(s)) => match s.ready().await {
                Ok(()) => s.send_request(req).await,
                Err(e) => Err(e),
            },
            None => return Err(SendError::Transport("no connection".into())),
        };
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                self.conn = None;
                return Err(SendError::Transport(format!("request failed: {e}")));
            }
        };
        let status = resp.status();
        let header_grpc = grpc_status(resp.headers());
        let collected = resp.into_body().collect().await.map_err(|e| {
            self.conn = None;
            SendError::Transport(format!("reading the answer failed: {e}"))
        })?;
        let trailer_grpc = collected.trailers().and_then(grpc_status);
        let body = collected.to_bytes();
        match self.config.protocol {
            Protocol::HttpProtobuf => {
                if status.is_success() {
                    Ok(body)
                } else {
                    Err(SendError::Status(status.as_u16()))
                }
            }
            Protocol::Grpc => {
                if status != StatusCode::OK {
                    return Err(SendError::Status(status.as_u16()));
                }
                match header_grpc.or(trailer_grpc) {
                    Some(0) => Ok(body
                        .get(5..)
                        .map(Bytes::copy_from_slice)
                        .unwrap_or_default()),
                    Some(code) => Err(SendError::Grpc { code }),
                    None => Err(SendError::Transport("the answer has no grpc-status".into())),
                }
            }
        }
    }

    fn request(&self, body: Bytes) -> Result<Request<Full<Bytes>>, SendError> {
        let ep = &self.config.endpoint;
        let uri: Uri = match self.config.protocol {
            Protocol::HttpProtobuf => ep.clone(),
            Protocol::Grpc => {
                let authority = ep.authority().map(|a| a.as_str()).unwrap_or("localhost");
                let base = ep.path().trim_end_matches('/');
                format!(
                    "{}://{authority}{base}{}",
                    ep.scheme_str().unwrap_or("http"),
                    self.service.grpc_path()
                )
                .parse()
                .map_err(|e| SendError::Transport(format!("invalid endpoint: {e}")))?
            }
        };
        let mut b = Request::builder().method(Method::POST);
        b = match self.config.protocol {
            // HTTP/1.1 needs a Host header and an origin-form target.
            Protocol::HttpProtobuf => b
                .uri(
                    uri.path_and_query()
                        .map(|p| p.as_str())
                        .unwrap_or("/")
                        .to_owned(),
                )
                .header(
                    http::header::HOST,
                    uri.authority().map(|a| a.as_str()).unwrap_or("localhost"),
                )
                .header(CONTENT_TYPE, "application/x-protobuf"),
            Protocol::Grpc => b
                .uri(uri)
                .header(CONTENT_TYPE, "application/grpc")
                .header("te", "trailers"),
        };
        b = b.header(
            http::header::USER_AGENT,
            concat!("loadlens-otlp/", env!("CARGO_PKG_VERSION")),
        );
        if self.config.gzip {
            b = match self.config.protocol {
                Protocol::HttpProtobuf => b.header(CONTENT_ENCODING, "gzip"),
                Protocol::Grpc => b.header("grpc-encoding", "gzip"),
            };
        }
        let mut req = b
            .body(Full::new(body))
            .map_err(|e| SendError::Transport(format!("cannot build the request: {e}")))?;
        for (k, v) in &self.config.headers {
            req.headers_mut().insert(k.clone(), v.clone());
        }
        Ok(req)
    }

    async fn connect(&self) -> Result<Conn, SendError> {
        let ep = &self.config.endpoint;
        let host = ep.host().unwrap_or("localhost");
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let tls = ep.scheme_str() == Some("https");
        let port = ep.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| SendError::Transport(format!("cannot connect to {host}:{port}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let grpc = self.config.protocol == Protocol::Grpc;
        if tls {
            let Some(config) = self.tls.clone() else {
                return Err(SendError::Transport("TLS is not available".into()));
            };
            let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                .map_err(|_| SendError::Transport(format!("`{host}` is not a TLS server name")))?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| {
                    // A certificate from a private CA is the common case: say what to set.
                    let untrusted = e
                        .get_ref()
                        .and_then(|i| i.downcast_ref::<rustls::Error>())
                        .is_some_and(|r| matches!(r, rustls::Error::InvalidCertificate(_)));
                    let hint = if untrusted && self.config.certificate.is_none() {
                        " (for a private CA, set OTEL_EXPORTER_OTLP_CERTIFICATE to its PEM file)"
                    } else {
                        ""
                    };
                    SendError::Transport(format!("TLS handshake failed: {e}{hint}"))
                })?;
            handshake(TokioIo::new(stream), grpc).await
        } else {
            handshake(TokioIo::new(tcp), grpc).await
        }
    }
}

async fn handshake<T>(io: T, h2: bool) -> Result<Conn, SendError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let fail = |e: hyper::Error| SendError::Transport(format!("HTTP handshake failed: {e}"));
    if h2 {
        let (s, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(fail)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn::H2(s))
    } else {
        let (s, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(fail)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn::H1(s))
    }
}

fn grpc_status(h: &http::HeaderMap) -> Option<u32> {
    h.get("grpc-status")
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::super::config::ExporterKind;
    use super::*;

    fn grpc(gzip: bool) -> Sender {
        let config = SignalConfig {
            exporter: ExporterKind::Otlp,
            endpoint: "http://127.0.0.1:4317".parse().unwrap(),
            protocol: Protocol::Grpc,
            headers: Vec::new(),
            timeout: Duration::from_secs(1),
            gzip,
            certificate: None,
        };
        Sender::new(config, Service::Traces)
    }

    #[test]
    fn grpc_messages_are_gzipped_inside_the_length_prefixed_frame_and_say_so() {
        let msg = b"an encoded export request, ".repeat(40);
        let s = grpc(true);
        let body = s.body(msg.clone());
        assert_eq!(body[0], 1, "compressed flag");
        let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        assert_eq!(len, body.len() - 5);
        assert!(len < msg.len());
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[5..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, msg);
        let req = s.request(body).unwrap();
        assert_eq!(req.headers()["grpc-encoding"], "gzip");
        assert_eq!(req.uri().path(), Service::Traces.grpc_path());
        // Uncompressed: flag 0, the message as is, no encoding header.
        let s = grpc(false);
        let body = s.body(msg.clone());
        assert_eq!((body[0], &body[5..]), (0, &msg[..]));
        assert!(s
            .request(body)
            .unwrap()
            .headers()
            .get("grpc-encoding")
            .is_none());
    }
}
