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
    /// The accept loop; it ends once the listener is closed and its connections are done.
    task: Option<tokio::task::JoinHandle<()>>,
}

/// How long connections may take, once the endpoint stops, to finish the answer they are
/// writing (the final scrape's, typically).
const DRAIN: Duration = Duration::from_secs(1);

impl Endpoint {
    /// Serve `/metrics` on `listener` (already bound, so that a port in use was an error at
    /// start-up) until [`Endpoint::shutdown`]. Must be called within a tokio runtime.
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
        let task = tokio::spawn(accept(listener, shared.clone(), stop.clone()));
        Ok(Endpoint {
            shared,
            addr,
            stop,
            task: Some(task),
        })
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

    /// Stop listening, let answers being written finish (at most 1 s), then close every
    /// connection. Returns the scrapes answered in all.
    pub async fn shutdown(mut self) -> u64 {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.scrapes()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn accept(listener: tokio::net::TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
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
        let (shared, stop) = (shared.clone(), stop.clone());
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(answer(&shared, &req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                () = stop.cancelled() => {}
            }
            // The answer being written (the final scrape's, say) still goes out; then close.
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN, conn).await;
        });
    }
    // No new connection from here on; the open ones finish their answer or are dropped.
    drop(listener);
    let drained = tokio::time::timeout(DRAIN + Duration::from_millis(100), async {
        while connections.join_next().await.is_some() {}
    });
    let _ = drained.await;
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
