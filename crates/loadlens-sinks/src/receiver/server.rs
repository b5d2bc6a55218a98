//! The OTLP endpoints: `POST /v1/traces` (OTLP/HTTP, protobuf, HTTP/1.1) and the gRPC
//! `TraceService/Export` call (OTLP/gRPC over h2c), both optionally gzip-compressed. Each
//! accepted body is decoded into spans and handed to the join through a bounded queue (a full
//! queue drops the batch and counts it: the exporter is never made to wait), and, when
//! forwarding is on, the body itself to the forwarder's queue.
//!
//! Answers follow the OTLP specification: 200 with an empty `ExportTraceServiceResponse` (or
//! gRPC status 0 with the empty message); a body that cannot be decoded is 400 (gRPC
//! `INVALID_ARGUMENT`), one too large 413 (`RESOURCE_EXHAUSTED`), OTLP/JSON 415: none of them
//! is retried by a conforming exporter.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf as _, Bytes};
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Limited};
use hyper::body::{Body, Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use loadlens_core::breakdown::Span;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::decode::{self, DecodeError, MAX_BODY};

/// The gRPC method of trace exports.
pub const GRPC_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// What the endpoints count; read by the sink for the summary.
#[derive(Debug, Default)]
pub struct Counters {
    /// Export requests accepted.
    pub exports: AtomicU64,
    /// Export requests refused (bad body, too large, wrong content type).
    pub rejected: AtomicU64,
    /// Spans accepted by an endpoint but dropped because the join's queue was full.
    pub queue_dropped: AtomicU64,
    /// Spans skipped for ids of the wrong length.
    pub invalid: AtomicU64,
    /// Bodies not forwarded because the forwarder's queue was full.
    pub forward_dropped: AtomicU64,
}

/// Where accepted exports go.
#[derive(Debug, Clone)]
pub struct Intake {
    /// To the join.
    pub spans: mpsc::Sender<Vec<Span>>,
    /// To the forwarder, when forwarding.
    pub forward: Option<mpsc::Sender<Bytes>>,
    /// Counts.
    pub counters: Arc<Counters>,
}

/// An export refused: the HTTP status, the gRPC code, and why.
struct Refused(StatusCode, u8, String);

impl From<DecodeError> for Refused {
    fn from(e: DecodeError) -> Self {
        match e {
            DecodeError::TooLarge => Refused(StatusCode::PAYLOAD_TOO_LARGE, 8, e.to_string()),
            _ => Refused(StatusCode::BAD_REQUEST, 3, e.to_string()),
        }
    }
}

impl Intake {
    /// Take one export body (protobuf, decompressed already).
    fn take(&self, body: Bytes) -> Result<(), Refused> {
        let (spans, invalid) = decode::spans(&body)?;
        let c = &self.counters;
        c.exports.fetch_add(1, Ordering::Relaxed);
        c.invalid.fetch_add(invalid, Ordering::Relaxed);
        if !spans.is_empty() {
            let n = spans.len() as u64;
            if self.spans.try_send(spans).is_err() {
                c.queue_dropped.fetch_add(n, Ordering::Relaxed);
            }
        }
        if let Some(f) = &self.forward {
            if f.try_send(body).is_err() {
                c.forward_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    fn refuse(&self, r: Refused) -> Refused {
        self.counters.rejected.fetch_add(1, Ordering::Relaxed);
        r
    }
}

/// A response body: at most one data frame, then optional trailers (gRPC's status).
#[derive(Debug, Default)]
pub struct Answer {
    data: Option<Bytes>,
    trailers: Option<HeaderMap>,
}

impl Body for Answer {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(d) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none() && self.trailers.is_none()
    }
}

fn plain(status: StatusCode, text: String) -> Response<Answer> {
    let mut r = Response::new(Answer {
        data: Some(Bytes::from(text + "\n")),
        trailers: None,
    });
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn read(body: Incoming) -> Result<Bytes, Refused> {
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => Ok(b.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(DecodeError::TooLarge.into()),
        Err(e) => Err(Refused(
            StatusCode::BAD_REQUEST,
            3,
            format!("the body could not be read: {e}"),
        )),
    }
}

/// Answer one OTLP/HTTP request.
async fn http_export(intake: &Intake, req: Request<Incoming>) -> Response<Answer> {
    if req.uri().path() != "/v1/traces" {
        return plain(
            StatusCode::NOT_FOUND,
            "not found: loadlens receives OTLP traces at POST /v1/traces".into(),
        );
    }
    if req.method() != Method::POST {
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "OTLP exports are POST requests".into(),
        );
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.starts_with("application/json") {
        intake.counters.rejected.fetch_add(1, Ordering::Relaxed);
        return plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "OTLP/JSON is not supported: export with the http/protobuf or grpc protocol".into(),
        );
    }
    let gzip = match req
        .headers()
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?"))
    {
        None | Some("identity") => false,
        Some("gzip") => true,
        Some(other) => {
            intake.counters.rejected.fetch_add(1, Ordering::Relaxed);
            return plain(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("content encoding `{other}` is not supported: use gzip or none"),
            );
        }
    };
    let outcome = async {
        let body = read(req.into_body()).await?;
        let body = if gzip {
            Bytes::from(decode::gunzip(&body)?)
        } else {
            body
        };
        intake.take(body)
    };
    match outcome.await {
        Ok(()) => {
            let mut r = Response::new(Answer::default());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-protobuf"),
            );
            r
        }
        Err(r) => {
            let Refused(status, _, why) = intake.refuse(r);
            plain(status, why)
        }
    }
}

fn grpc_answer(code: u8, message: &str) -> Response<Answer> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(u16::from(code)));
    if !message.is_empty() {
        // grpc-message is percent-encoded; keep it to what needs no encoding.
        let safe: String = message
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .map(|c| if c == '%' { '?' } else { c })
            .collect();
        if let Ok(v) = HeaderValue::from_str(&safe) {
            trailers.insert("grpc-message", v);
        }
    }
    let mut r = Response::new(Answer {
        // A unary call answers one message: the empty ExportTraceServiceResponse.
        data: (code == 0).then(|| Bytes::from_static(&[0, 0, 0, 0, 0])),
        trailers: Some(trailers),
    });
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    r
}

/// Answer one OTLP/gRPC call.
async fn grpc_export(intake: &Intake, req: Request<Incoming>) -> Response<Answer> {
    if req.uri().path() != GRPC_PATH {
        return grpc_answer(12, "loadlens receives only TraceService/Export");
    }
    let gzip = req
        .headers()
        .get("grpc-encoding")
        .is_some_and(|v| v.as_bytes() == b"gzip");
    let outcome = async {
        let mut body = read(req.into_body()).await?;
        let bad = |why: &str| Refused(StatusCode::BAD_REQUEST, 3, why.to_owned());
        if body.len() < 5 {
            return Err(bad("the call carries no gRPC message"));
        }
        let compressed = body.get_u8();
        let len = body.get_u32() as usize;
        if len != body.len() {
            return Err(bad("the gRPC message length does not match the body"));
        }
        let message = match (compressed, gzip) {
            (0, _) => body,
            (1, true) => Bytes::from(decode::gunzip(&body)?),
            _ => {
                return Err(bad(
                    "the message is compressed with an encoding other than gzip",
                ))
            }
        };
        intake.take(message)
    };
    match outcome.await {
        Ok(()) => grpc_answer(0, ""),
        Err(r) => {
            let Refused(_, code, why) = intake.refuse(r);
            grpc_answer(code, &why)
        }
    }
}

/// Which protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/HTTP on HTTP/1.1.
    Http,
    /// OTLP/gRPC on HTTP/2 without TLS.
    Grpc,
}

/// How long open connections may take to finish the answer they are writing once the
/// receiver stops.
const DRAIN: Duration = Duration::from_millis(500);

/// Serve `protocol` on `listener` until `stop`. Call within a tokio runtime.
pub async fn serve(
    listener: tokio::net::TcpListener,
    protocol: Protocol,
    intake: Intake,
    stop: CancellationToken,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            () = stop.cancelled() => break,
        };
        let Ok((stream, _)) = conn else {
            // Out of file descriptors or similar: back off rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (intake, stop) = (intake.clone(), stop.clone());
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let intake = intake.clone();
                async move {
                    Ok::<_, Infallible>(match protocol {
                        Protocol::Http => http_export(&intake, req).await,
                        Protocol::Grpc => grpc_export(&intake, req).await,
                    })
                }
            });
            let io = TokioIo::new(stream);
            match protocol {
                Protocol::Http => {
                    let conn =
                        hyper::server::conn::http1::Builder::new().serve_connection(io, service);
                    let mut conn = std::pin::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => return,
                        () = stop.cancelled() => {}
                    }
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(DRAIN, conn).await;
                }
                Protocol::Grpc => {
                    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(io, service);
                    let mut conn = std::pin::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => return,
                        () = stop.cancelled() => {}
                    }
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(DRAIN, conn).await;
                }
            }
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN + Duration::from_millis(100), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
}
