//! Sending encoded OTLP requests: OTLP/HTTP (protobuf bodies over HTTP/1.1) or OTLP/gRPC
//! (unary `Export` calls over HTTP/2, h2c on `http://`), on hyper's connection API with one
//! kept-alive connection per signal, optional gzip, and retries with backoff for the answers the
//! OTLP specification calls retryable — all within the signal's timeout. `https://` endpoints
//! use rustls with the signal's trusted roots and, for mutual TLS, its client certificate; a
//! refused handshake says which setting to change.
//!
//! Written on hyper rather than with `opentelemetry-otlp`'s tonic/reqwest clients: hyper is
//! already in the build, and a gRPC unary call is a 5-byte frame header and a trailer check.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, CONTENT_ENCODING, CONTENT_TYPE};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use super::config::{Protocol, SignalConfig};
use super::tls::{client_config, TlsIo};

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
    /// The run is finishing: no request was in flight, and the export was left to the final
    /// flush.
    #[error("left to the final flush")]
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

/// How the end of the run reaches an export in progress: waits between attempts end at once
/// (the export is left to the final flush), while a request already sent runs to its answer,
/// within the final flush's deadline. Abandoning a request in flight would send its content a
/// second time in the final flush: the receiver may have it already.
#[derive(Debug, Clone, Default)]
pub struct Finishing {
    token: tokio_util::sync::CancellationToken,
    by: Arc<Mutex<Option<tokio::time::Instant>>>,
}

impl Finishing {
    /// The run is finishing; the final flush must be done by `by`.
    pub fn start(&self, by: tokio::time::Instant) {
        *self.by.lock().unwrap_or_else(|p| p.into_inner()) = Some(by);
        self.token.cancel();
    }

    /// Whether [`Finishing::start`] was called.
    pub fn started(&self) -> bool {
        self.token.is_cancelled()
    }

    /// `deadline`, or the final flush's deadline if that is sooner.
    fn bound(&self, deadline: tokio::time::Instant) -> tokio::time::Instant {
        self.by
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map_or(deadline, |b| b.min(deadline))
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
    /// For an `https://` endpoint: the TLS configuration, or why rustls refused to build it
    /// (reported by every export rather than a panic or a silent fallback).
    tls: Option<Result<Arc<rustls::ClientConfig>, rustls::Error>>,
    /// Whether the server of the current connection asked for a client certificate, so that
    /// a refused handshake can name the settings that fix it.
    asked_for_certificate: Arc<AtomicBool>,
    conn: Option<Conn>,
    /// The TLS error that failed the current connection, if one did (see [`TlsIo`]).
    conn_tls_error: Arc<Mutex<Option<rustls::Error>>>,
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
        let asked_for_certificate = Arc::<AtomicBool>::default();
        let tls = (config.endpoint.scheme_str() == Some("https"))
            .then(|| client_config(&config, asked_for_certificate.clone()));
        Sender {
            tls,
            asked_for_certificate,
            config,
            service,
            conn: None,
            conn_tls_error: Arc::default(),
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
    /// Once `finishing` has started, no new attempt is made ([`SendError::Cancelled`]), and an
    /// attempt in flight ends by the final flush's deadline (see [`Finishing`]).
    pub async fn export(
        &mut self,
        message: Vec<u8>,
        deadline: tokio::time::Instant,
        finishing: &Finishing,
    ) -> Result<Bytes, SendError> {
        let deadline = deadline.min(tokio::time::Instant::now() + self.config.timeout);
        let body = self.body(message);
        let mut backoff = Duration::from_millis(100);
        loop {
            if finishing.started() {
                return Err(SendError::Cancelled);
            }
            let attempt = {
                let attempt = tokio::time::timeout_at(deadline, self.attempt(body.clone()));
                tokio::pin!(attempt);
                tokio::select! {
                    r = &mut attempt => r.ok(),
                    _ = finishing.token.cancelled() => {
                        tokio::time::timeout_at(finishing.bound(deadline), &mut attempt)
                            .await
                            .ok()
                            .and_then(Result::ok)
                    }
                }
            };
            let err = match attempt {
                Some(Ok(b)) => return Ok(b),
                Some(Err(e)) => e,
                None => {
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
                _ = finishing.token.cancelled() => return Err(SendError::Cancelled),
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
        let fresh = self.conn.as_ref().is_none_or(|c| match c {
            Conn::H1(s) => s.is_closed(),
            Conn::H2(s) => s.is_closed(),
        });
        if fresh {
            self.conn_tls_error = Arc::default();
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
                // In TLS 1.3 the client's part of the handshake is over before the server has
                // checked the client's certificate: a refusal arrives with the first answer.
                let tls = self
                    .conn_tls_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                let asked = self.asked_for_certificate.load(Ordering::Relaxed);
                return Err(SendError::Transport(match tls {
                    Some(tls) if fresh => self.tls_failure(&tls, Some(&tls)),
                    // The refusal itself can be lost: a server that closes the connection with
                    // the request unread resets it, and the alert sent before may never be
                    // read. A server that asked for a client certificate and ended the
                    // connection before answering has refused it (or its absence).
                    None if fresh && asked => self
                        .tls_failure(&format_args!("the server ended the connection ({e})"), None),
                    _ => format!("request failed: {e}"),
                }));
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
            let config = match &self.tls {
                Some(Ok(c)) => c.clone(),
                Some(Err(e)) => {
                    return Err(SendError::Transport(format!("cannot set up TLS: {e}")))
                }
                None => return Err(SendError::Transport("TLS is not available".into())),
            };
            let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                .map_err(|_| SendError::Transport(format!("`{host}` is not a TLS server name")))?;
            self.asked_for_certificate.store(false, Ordering::Relaxed);
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| {
                    let rustls = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
                    SendError::Transport(self.tls_failure(&e, rustls))
                })?;
            let stream = TlsIo {
                inner: stream,
                error: self.conn_tls_error.clone(),
            };
            handshake(TokioIo::new(stream), grpc).await
        } else {
            handshake(TokioIo::new(tcp), grpc).await
        }
    }

    /// The message of a failed handshake (`cause`, with the `rustls` error when there is
    /// one), with what to change for the common causes: a collector certificate from a private
    /// CA, a collector that asks for a client certificate none is configured for, or one that
    /// refuses the client certificate given.
    fn tls_failure(&self, cause: &dyn std::fmt::Display, rustls: Option<&rustls::Error>) -> String {
        use rustls::AlertDescription as A;
        let asked = self.asked_for_certificate.load(Ordering::Relaxed);
        let hint = match (rustls, &self.config.client_certificate) {
            (Some(rustls::Error::InvalidCertificate(_)), _)
                if self.config.certificate.is_none() =>
            {
                " (for a private CA, set OTEL_EXPORTER_OTLP_CERTIFICATE to its PEM file)".to_owned()
            }
            // Refused by the server (an alert, or the connection ended) after it asked.
            (None | Some(rustls::Error::AlertReceived(_)), None) if asked => {
                " (the server asks for a client certificate: set \
                 OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY to PEM \
                 files)"
                    .to_owned()
            }
            // Once it has the client's certificate, that is the one a server can fault.
            (
                None
                | Some(rustls::Error::AlertReceived(
                    A::BadCertificate
                    | A::UnsupportedCertificate
                    | A::CertificateRevoked
                    | A::CertificateExpired
                    | A::CertificateUnknown
                    | A::UnknownCA
                    | A::AccessDenied,
                )),
                Some(client),
            ) if asked => format!(
                " (the server does not accept the client certificate in `{}`)",
                client.certificate_path.display()
            ),
            _ => String::new(),
        };
        format!("TLS handshake failed: {cause}{hint}")
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

    use super::super::config::{ClientCertificate, ExporterKind, TrustedCertificates};
    use super::super::test_ca::TestCa;
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
            client_certificate: None,
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

    /// A test CA with a client certificate it signed, written as PEM files the way a user hands
    /// them to the exporter.
    struct Pki {
        ca: TestCa,
        client: Arc<ClientCertificate>,
        client_der: rustls::pki_types::CertificateDer<'static>,
    }

    impl Pki {
        fn new() -> Pki {
            let ca = TestCa::new();
            let (client, client_key) = ca.issue(&["loadlens-client"]);
            let dir = std::env::temp_dir().join(format!("loadlens-send-{}", fastrand::u64(..)));
            std::fs::create_dir_all(&dir).unwrap();
            let (crt, key) = (dir.join("client.crt"), dir.join("client.key"));
            std::fs::write(&crt, client.pem()).unwrap();
            std::fs::write(&key, client_key.serialize_pem()).unwrap();
            let read = ClientCertificate::read(
                ("CERT", &crt.display().to_string()),
                ("KEY", &key.display().to_string()),
            );
            let _ = std::fs::remove_dir_all(&dir);
            Pki {
                ca,
                client: Arc::new(read.unwrap()),
                client_der: client.der().clone(),
            }
        }

        /// Settings of an exporter to `endpoint` trusting the CA, with or without the client
        /// certificate.
        fn signal(&self, endpoint: &str, protocol: Protocol, client: bool) -> SignalConfig {
            SignalConfig {
                exporter: ExporterKind::Otlp,
                endpoint: endpoint.parse().unwrap(),
                protocol,
                headers: Vec::new(),
                timeout: Duration::from_secs(5),
                gzip: false,
                certificate: Some(TrustedCertificates {
                    path: "ca.pem".into(),
                    roots: Arc::new(self.ca.roots()),
                }),
                client_certificate: client.then(|| self.client.clone()),
            }
        }
    }

    /// What the collector saw of one accepted connection: the ALPN protocol, the client's
    /// certificate and the path of its request.
    type Seen = (Option<Vec<u8>>, Option<Vec<u8>>, String);

    /// An OTLP/gRPC collector on 127.0.0.1:0 over TLS that requires a client certificate signed
    /// by the test CA, answering every call with gRPC status 0.
    async fn mtls_collector(pki: &Pki) -> (String, tokio::sync::mpsc::UnboundedReceiver<Seen>) {
        use hyper::service::service_fn;
        let server = pki.ca.server_config(true, b"h2");
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                // A client without a certificate is refused here, by rustls.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let conn = tls.get_ref().1;
                let alpn = conn.alpn_protocol().map(<[u8]>::to_vec);
                let peer = conn.peer_certificates().map(|c| c[0].to_vec());
                let tx = tx.clone();
                let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let _ = tx.send((alpn.clone(), peer.clone(), req.uri().path().to_owned()));
                    async {
                        http::Response::builder()
                            .header(CONTENT_TYPE, "application/grpc")
                            .header("grpc-status", "0")
                            .body(Full::new(Bytes::new()))
                    }
                });
                tokio::spawn(
                    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service),
                );
            }
        });
        (url, rx)
    }

    #[test]
    fn a_grpc_https_config_offers_h2_and_the_client_certificate() {
        let pki = Pki::new();
        let tls = |protocol, client| {
            let s = Sender::new(
                pki.signal("https://collector.internal:4317", protocol, client),
                Service::Traces,
            );
            s.tls
                .expect("an https endpoint")
                .expect("a valid TLS config")
        };
        let c = tls(Protocol::Grpc, true);
        assert_eq!(c.alpn_protocols, [b"h2".to_vec()]);
        let offered = c
            .client_auth_cert_resolver
            .resolve(&[], &[rustls::SignatureScheme::ECDSA_NISTP256_SHA256])
            .expect("the client certificate is offered");
        assert_eq!(offered.end_entity_cert().unwrap(), &pki.client_der);
        let c = tls(Protocol::HttpProtobuf, false);
        assert_eq!(c.alpn_protocols, [b"http/1.1".to_vec()]);
        assert!(!c.client_auth_cert_resolver.has_certs());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn grpc_over_tls_delivers_to_a_collector_that_requires_the_client_certificate() {
        let pki = Pki::new();
        let (url, mut seen) = mtls_collector(&pki).await;
        // A refused handshake is retried until the deadline: a short one for that case.
        let export = |client: bool, seconds: u64| {
            let mut s = Sender::new(pki.signal(&url, Protocol::Grpc, client), Service::Metrics);
            async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
                let none = Finishing::default();
                s.export(b"metrics".to_vec(), deadline, &none).await
            }
        };
        assert_eq!(export(true, 5).await, Ok(Bytes::new()));
        let (alpn, peer, path) = seen.try_recv().expect("the call reached the collector");
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
        assert_eq!(peer.as_deref(), Some(pki.client_der.as_ref()));
        assert_eq!(path, Service::Metrics.grpc_path());

        let Err(SendError::Transport(e)) = export(false, 1).await else {
            panic!("delivered without a client certificate");
        };
        assert!(
            e.starts_with("TLS handshake failed")
                && e.contains("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
            "{e}"
        );
        // A certificate of another CA: refused, and the message names its file.
        let mut config = pki.signal(&url, Protocol::Grpc, true);
        config.client_certificate = Some(Pki::new().client);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        let none = Finishing::default();
        let sent = Sender::new(config, Service::Metrics)
            .export(b"metrics".to_vec(), deadline, &none)
            .await;
        let Err(SendError::Transport(e)) = sent else {
            panic!("delivered with a certificate of another CA");
        };
        assert!(
            e.starts_with("TLS handshake failed")
                && e.contains("does not accept the client certificate in `")
                && e.contains("client.crt"),
            "{e}"
        );
        assert!(seen.try_recv().is_err());
    }
}
