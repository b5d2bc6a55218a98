//! The live web dashboard (`--web`): one self-contained page (inline CSS and script, nothing
//! fetched from the network) served with hyper, fed by server-sent events — one event per
//! snapshot of the run, pushed from the [`hub`], never polled.
//!
//! Routes:
//! - `GET /` the page; `GET /events` the event stream (`event: state`, `data:` the page's whole
//!   state as JSON, first the current one, then one per snapshot or phase change);
//!   `GET /api/state` that JSON once.
//! - `POST /api/start` `{"users": N}` or `{"rate": R}`: start a run that waits for the page
//!   (without `--headless`); `POST /api/load` with the same fields changes the load of a
//!   running run; `POST /api/stop` stops it gracefully. Each answers 409 when the run is not in
//!   a phase where that makes sense, 400 on a malformed body.
//! - `GET /download/{result.json,report.html,stats.csv,failures.csv,stats_history.csv}`: the
//!   reports of the run so far (the final ones once it ended).
//!
//! `--web-auth user:pass` puts every route behind HTTP basic auth; the credentials are compared
//! in constant time and never logged. Other web pages are kept away ([`guard`]): DNS rebinding,
//! cross-site posts and framing are refused, and a connection that sends no request head within
//! [`HEAD_TIMEOUT`] is closed.

mod guard;
pub mod hub;
#[cfg(test)]
mod tests;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use loadlens_core::encoding::base64;
use loadlens_core::executor::{LoadSettings, StopReason};
use loadlens_core::report::Summary;
use loadlens_core::run::TimelineEvent;
use loadlens_core::sink::{FinishFuture, Sink, SinkReport};
use loadlens_core::stats::Snapshot;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

pub use hub::{Hub, Phase, RunMeta};

/// How long a connection may take to send a request head, also when idle between requests:
/// a connection that sends nothing does not hold a task forever.
pub const HEAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The page, with the report's style sheet inlined where it says `/*STYLE*/` and its hover
/// script where it says `/*HOVER*/`.
const PAGE: &str = include_str!("page.html");

/// The dashboard's flags, shared by `run` and `demo`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct WebArgs {
    /// Serve the live web dashboard. Without --headless the run waits for a start from the page.
    #[arg(long, env = "LOADLENS_WEB")]
    pub web: bool,
    /// Address the dashboard listens on.
    #[arg(long, env = "LOADLENS_WEB_HOST", default_value = "127.0.0.1")]
    pub web_host: Option<IpAddr>,
    /// Port of the dashboard (0 picks a free one; the address is printed).
    #[arg(long, env = "LOADLENS_WEB_PORT", default_value_t = 8089)]
    pub web_port: u16,
    /// Protect the dashboard with HTTP basic auth, `user:password`.
    #[arg(long, env = "LOADLENS_WEB_AUTH", value_name = "USER:PASS")]
    pub web_auth: Option<String>,
}

impl WebArgs {
    /// The address to bind (loopback when none was given).
    pub fn addr(&self) -> SocketAddr {
        let ip = self.web_host.unwrap_or(IpAddr::from([127, 0, 0, 1]));
        SocketAddr::new(ip, self.web_port)
    }
}

/// What the page asked for when it started the run.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadRequest {
    /// Users (closed model).
    #[serde(default)]
    pub users: Option<u64>,
    /// Arrivals per second (open model).
    #[serde(default)]
    pub rate: Option<f64>,
}

impl LoadRequest {
    /// `load` with this request's user count or rate applied.
    pub fn apply(&self, mut load: LoadSettings) -> LoadSettings {
        match (&mut load.arrival, self.rate, self.users) {
            (Some(a), Some(rate), _) => {
                a.rate_per_s = rate;
                load.stages.clear();
            }
            (None, _, Some(users)) => {
                load.users = users;
                load.stages.clear();
            }
            _ => {}
        }
        load
    }

    /// The request's values, checked like the same flags (`-u`, `--arrival-rate`) against
    /// what this machine can hold (`loadlens_core::limits`).
    fn valid(&self) -> Result<(), String> {
        use loadlens_core::limits;
        match (self.users, self.rate) {
            (None, None) => return Err("give `users` or `rate`".into()),
            (_, Some(r)) if !(r.is_finite() && r >= 0.0) => {
                return Err("`rate` must be 0 or more".into())
            }
            _ => {}
        }
        if let Some(u) = self.users {
            limits::check_users("`users`", u, limits::available_memory())
                .map_err(|e| e.to_string())?;
        }
        if let Some(r) = self.rate {
            limits::check_rate("`rate`", r).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// A running dashboard server.
pub struct Dashboard {
    /// The run's state as the pages see it.
    pub hub: Arc<Hub>,
    addr: SocketAddr,
    start_rx: Option<oneshot::Receiver<LoadRequest>>,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<()>,
}

impl Dashboard {
    /// Bind and serve. `waiting`: the run waits for a start from the page.
    pub async fn start(args: &WebArgs, meta: RunMeta, waiting: bool) -> std::io::Result<Dashboard> {
        let listener = TcpListener::bind(args.addr()).await?;
        let addr = listener.local_addr()?;
        let hub = Hub::new(
            meta,
            if waiting {
                Phase::Waiting
            } else {
                Phase::Running
            },
        );
        let (start_tx, start_rx) = oneshot::channel();
        let state = Arc::new(Server {
            hub: hub.clone(),
            auth: args
                .web_auth
                .as_deref()
                .map(|a| format!("Basic {}", base64(a.as_bytes()))),
            start: std::sync::Mutex::new(waiting.then_some(start_tx)),
        });
        let stop = CancellationToken::new();
        let server = tokio::spawn(accept_loop(listener, state, stop.clone()));
        Ok(Dashboard {
            hub,
            addr,
            start_rx: waiting.then_some(start_rx),
            stop,
            server,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Wait for the page's start (`None` when the dashboard does not wait, or went away).
    pub async fn wait_for_start(&mut self) -> Option<LoadRequest> {
        self.start_rx.take()?.await.ok()
    }

    /// Feed the hub from the executor's snapshots until the channel closes.
    pub fn follow(
        &self,
        mut rx: watch::Receiver<Option<Arc<Snapshot>>>,
    ) -> tokio::task::JoinHandle<()> {
        let hub = self.hub.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let snap = rx.borrow_and_update().clone();
                if let Some(s) = snap {
                    hub.on_snapshot(s);
                }
            }
        })
    }

    /// A sink that copies the run's timeline events to the hub (markers and the events list).
    /// It reports nothing; the caller leaves it out of the summary's sinks.
    pub fn events_sink(&self) -> Box<dyn Sink> {
        Box::new(EventsSink {
            events: self.hub.events.clone(),
        })
    }

    /// Stop serving.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), self.server).await;
    }

    /// The run ended with `summary`.
    pub fn finish(&self, summary: &Summary) {
        self.hub.finish(summary);
    }

    /// The run ended with `summary`: show it, keep serving it until Ctrl-C unless `headless`,
    /// then stop serving. The same end for a run and a coordinator.
    pub async fn finish_and_serve(self, summary: &Summary, headless: bool) {
        self.finish(summary);
        if !headless {
            say!(
                "The run is over; the dashboard at http://{}/ serves its final state and reports until Ctrl-C.",
                self.addr()
            );
            crate::signals::StopSignals::new().next().await;
        }
        self.shutdown().await;
    }
}

/// Name of the dashboard's sink, so that the runner can leave it out of reports.
pub const SINK_NAME: &str = "web-dashboard";

struct EventsSink {
    events: Arc<std::sync::Mutex<Vec<TimelineEvent>>>,
}

impl Sink for EventsSink {
    fn name(&self) -> &str {
        SINK_NAME
    }

    fn on_event(&mut self, event: &TimelineEvent) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(event.clone());
    }

    fn finish(self: Box<Self>, _summary: &Summary) -> FinishFuture {
        Box::pin(async {
            SinkReport {
                name: SINK_NAME.into(),
                ..SinkReport::default()
            }
        })
    }
}

struct Server {
    hub: Arc<Hub>,
    /// The whole expected `Authorization` value.
    auth: Option<String>,
    start: std::sync::Mutex<Option<oneshot::Sender<LoadRequest>>>,
}

async fn accept_loop(listener: TcpListener, state: Arc<Server>, stop: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => match a {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "Dashboard failed to accept a connection.");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let state = state.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move {
                    let mut r = handle(&state, req).await;
                    guard::harden(r.headers_mut());
                    Ok::<_, Infallible>(r)
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}

/// A response body: either whole, or streamed a chunk at a time (the dashboard's server-sent
/// events, the coordinator's commands to a worker).
pub enum WebBody {
    /// A complete body.
    Full(Full<Bytes>),
    /// One chunk per message, until the sender is dropped.
    Stream(mpsc::Receiver<Bytes>),
}

impl Body for WebBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            WebBody::Full(b) => Pin::new(b).poll_frame(cx),
            WebBody::Stream(rx) => rx.poll_recv(cx).map(|c| c.map(|b| Ok(Frame::data(b)))),
        }
    }
}

fn text(status: StatusCode, kind: &str, body: impl Into<Bytes>) -> Response<WebBody> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, kind)
        .header(header::CACHE_CONTROL, "no-store")
        .body(WebBody::Full(Full::new(body.into())))
        .unwrap_or_else(|_| Response::new(WebBody::Full(Full::default())))
}

fn plain(status: StatusCode, msg: &str) -> Response<WebBody> {
    text(status, "text/plain; charset=utf-8", format!("{msg}\n"))
}

async fn handle(s: &Server, req: Request<Incoming>) -> Response<WebBody> {
    if let Some(expected) = &s.auth {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if !constant_time_eq(given, expected.as_bytes()) {
            let mut r = plain(StatusCode::UNAUTHORIZED, "authentication required");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Basic realm=\"loadlens\", charset=\"UTF-8\""),
            );
            return r;
        }
    }
    if let Some((status, why)) = guard::refusal(req.method(), req.headers(), s.auth.is_some()) {
        return plain(status, why);
    }
    let path = req.uri().path().to_owned();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, "/") => text(
            StatusCode::OK,
            "text/html; charset=utf-8",
            PAGE.replace("/*STYLE*/", &loadlens_core::report::html::style())
                .replace("/*HOVER*/", loadlens_core::report::html::HOVER_JS),
        ),
        (Method::GET, "/events") => events(s),
        (Method::GET, "/api/state") => text(
            StatusCode::OK,
            "application/json",
            s.hub.payload().to_string(),
        ),
        (Method::POST, "/api/start") => match read_load(req).await {
            Err(r) => r,
            Ok(load) => {
                let tx = s.start.lock().unwrap_or_else(|p| p.into_inner()).take();
                match tx.map(|tx| tx.send(load)) {
                    Some(Ok(())) => plain(StatusCode::ACCEPTED, "starting"),
                    _ => plain(StatusCode::CONFLICT, "the run is not waiting for a start"),
                }
            }
        },
        (Method::POST, "/api/load") => match read_load(req).await {
            Err(r) => r,
            Ok(load) => match s.hub.controls().filter(|_| s.hub.phase() == Phase::Running) {
                None => plain(StatusCode::CONFLICT, "no run is running"),
                Some(c) => {
                    match (s.hub.is_open_model(), load.users, load.rate) {
                        (false, Some(u), _) => c.set_users(u),
                        (true, _, Some(r)) => c.set_arrival_rate(r),
                        (true, _, None) => {
                            return plain(
                                StatusCode::BAD_REQUEST,
                                "this run is of the open model: give `rate`",
                            )
                        }
                        (false, None, _) => {
                            return plain(
                                StatusCode::BAD_REQUEST,
                                "this run is of the closed model: give `users`",
                            )
                        }
                    }
                    plain(StatusCode::ACCEPTED, "load changed")
                }
            },
        },
        (Method::POST, "/api/stop") => {
            match s.hub.controls().filter(|_| s.hub.phase() == Phase::Running) {
                None => plain(StatusCode::CONFLICT, "no run is running"),
                Some(c) => {
                    c.stop(StopReason::Interrupted);
                    s.hub.stopping();
                    plain(StatusCode::ACCEPTED, "stopping")
                }
            }
        }
        (Method::GET, p) if p.starts_with("/download/") => {
            let file = &p["/download/".len()..];
            match s.hub.download(file) {
                None => plain(StatusCode::NOT_FOUND, "no such download"),
                Some((kind, body)) => {
                    let mut r = text(StatusCode::OK, kind, body);
                    if let Ok(v) = http::HeaderValue::from_str(&format!(
                        "attachment; filename=\"loadlens-{file}\""
                    )) {
                        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
                    }
                    r
                }
            }
        }
        (_, "/" | "/events" | "/api/state" | "/api/start" | "/api/load" | "/api/stop") => {
            plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => plain(StatusCode::NOT_FOUND, "not found"),
    }
}

/// The event stream: the current state at once, then one event per change. Each page has a
/// small queue; one that cannot keep up skips to the latest state (the watch channel keeps only
/// that), so it never holds back the others or the run.
fn events(s: &Server) -> Response<WebBody> {
    let (tx, rx) = mpsc::channel::<Bytes>(2);
    let mut updates = s.hub.subscribe();
    tokio::spawn(async move {
        loop {
            let data = updates.borrow_and_update().clone();
            let mut event = String::with_capacity(data.len() + 24);
            event.push_str("event: state\ndata: ");
            event.push_str(&data);
            event.push_str("\n\n");
            if tx.send(Bytes::from(event)).await.is_err() {
                return;
            }
            tokio::select! {
                r = updates.changed() => if r.is_err() { return },
                _ = tx.closed() => return,
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-store")
        .body(WebBody::Stream(rx))
        .unwrap_or_else(|_| Response::new(WebBody::Full(Full::default())))
}

async fn read_load(req: Request<Incoming>) -> Result<LoadRequest, Response<WebBody>> {
    let body = Limited::new(req.into_body(), 4096)
        .collect()
        .await
        .map_err(|_| plain(StatusCode::BAD_REQUEST, "unreadable body"))?
        .to_bytes();
    let load: LoadRequest = serde_json::from_slice(&body).map_err(|e| {
        plain(
            StatusCode::BAD_REQUEST,
            &format!("expected {{\"users\": N}} or {{\"rate\": R}}: {e}"),
        )
    })?;
    load.valid()
        .map_err(|e| plain(StatusCode::BAD_REQUEST, &e))?;
    Ok(load)
}

/// Compare in constant time (`subtle`), so the time taken does not tell how much of a guess was
/// right (only whether its length was).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

/// Whether binding `ip` exposes the dashboard beyond this machine.
pub fn is_exposed(ip: IpAddr) -> bool {
    !ip.is_loopback()
}
