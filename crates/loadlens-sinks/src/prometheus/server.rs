//! The scrape endpoint: `GET /metrics` on a listener bound when the sink starts, answered from
//! the latest published [`Metrics`] in the format the scraper accepts.
//!
//! The aggregator publishes by swapping an `Arc` under a mutex ([`Endpoint::publish`]); a
//! scrape clones the `Arc` under the same mutex and renders without it, so neither waits on
//! the other for longer than a pointer copy, and the request path never sees either.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::exposition::{render, Format, Metrics};

/// What scrapes read, and what they report back.
#[derive(Debug)]
struct Shared {
    /// The latest metrics, and whether they are the run's final ones.
    current: Mutex<(Arc<Metrics>, bool)>,
    /// Scrapes answered.
    scrapes: AtomicU64,
    /// Signalled when a scrape served the final metrics.
    final_served: Notify,
}

/// A running scrape endpoint.
#[derive(Debug)]
pub struct Endpoint {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: CancellationToken,
}

impl Endpoint {
    /// Serve `/metrics` on `listener` (already bound, so that a port in use was an error at
    /// start-up) until [`Endpoint::stop`]. Must be called within a tokio runtime.
    pub fn serve(listener: std::net::TcpListener, first: Arc<Metrics>) -> std::io::Result<Self> {
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let shared = Arc::new(Shared {
            current: Mutex::new((first, false)),
            scrapes: AtomicU64::new(0),
            final_served: Notify::new(),
        });
        let stop = CancellationToken::new();
        tokio::spawn(accept(listener, shared.clone(), stop.clone()));
        Ok(Endpoint { shared, addr, stop })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Scrapes answered so far.
    pub fn scrapes(&self) -> u64 {
        self.shared.scrapes.load(Ordering::Relaxed)
    }

    /// Make `metrics` what the next scrape sees; `last` marks the run's final metrics.
    pub fn publish(&self, metrics: Arc<Metrics>, last: bool) {
        *self
            .shared
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = (metrics, last);
    }

    /// Wait until a scrape has served the final metrics, at most `linger`; `false` when none
    /// did in time. Returns at once when `linger` is zero.
    pub async fn linger(&self, linger: Duration) -> bool {
        if linger.is_zero() {
            return false;
        }
        tokio::time::timeout(linger, self.shared.final_served.notified())
            .await
            .is_ok()
    }

    /// Stop listening and close every connection.
    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept(listener: tokio::net::TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            () = stop.cancelled() => return,
        };
        let Ok((stream, _)) = conn else {
            // Out of file descriptors or similar: back off rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (shared, stop) = (shared.clone(), stop.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(answer(&shared, &req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                () = stop.cancelled() => {}
            }
        });
    }
}

fn answer(shared: &Shared, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let plain = |status: StatusCode, text: &'static str| {
        let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
        *r.status_mut() = status;
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            header::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are served\n",
        );
    }
    match req.uri().path() {
        "/metrics" => {}
        "/" => return plain(StatusCode::OK, "loadlens: metrics are at /metrics\n"),
        _ => {
            return plain(
                StatusCode::NOT_FOUND,
                "not found: metrics are at /metrics\n",
            )
        }
    }
    let format = Format::negotiate(
        req.headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok()),
    );
    let (metrics, last) = shared
        .current
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let text = render(&metrics.families(), format);
    shared.scrapes.fetch_add(1, Ordering::Relaxed);
    if last {
        shared.final_served.notify_waiters();
        // A linger that starts after this scrape still learns of it.
        shared.final_served.notify_one();
    }
    let mut r = Response::new(Full::new(Bytes::from(text)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(format.content_type()),
    );
    r
}
