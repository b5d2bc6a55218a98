//! The HTTP client of one virtual user, on hyper 1's connection-level API.
//!
//! Each VU owns a [`Client`]: its own keep-alive connections (one per origin), its cookie jar,
//! and the phase timings of every request it sends. With [`ClientConfig::http2_streams`], the
//! VUs share HTTP/2 connections instead (the `pool` module), each carrying several VUs'
//! requests at once. A request that opens a connection is the one
//! charged with DNS, connect and TLS time (docs/architecture.md, invariants). HTTP/1.1 and HTTP/2 (ALPN on
//! https, prior knowledge on http when asked), redirects, decompression and timeouts are handled
//! here; what counts as a failure beyond transport errors is decided by the caller.
//!
//! Bodies are streamed (see the `decode` module): a body is counted as it arrives and kept only when the
//! request asks for it (checks and captures), up to [`ClientConfig::max_body_size`], so no
//! target can make a VU hold more than that, however long or compressed its bodies are.

mod conn;
mod cookies;
mod decode;
// Public for the micro-benchmarks (`benches/hot_path.rs`) only: not an interface to build on.
#[doc(hidden)]
pub mod h1;
mod h2;
mod pool;
mod tls;

#[cfg(test)]
mod h2_tests;
#[cfg(test)]
mod tests;

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri, Version};
use http_body_util::{BodyExt, Full};

pub use conn::Origin;
pub use cookies::CookieJar;
pub use decode::{format_size, parse_size, SizeError};
pub use tls::Alpn;

use crate::prefetch::Hint;
use crate::sample::{ErrorKind, Failure, Phases, TraceIds, TRACEPARENT};
use conn::{Conn, DialTimings, IoCounters, Sender};
use decode::{BodyError, BodySink, Decoder};

/// Default of [`ClientConfig::max_body_size`]: 4 MiB.
pub const DEFAULT_MAX_BODY_SIZE: u64 = 4 << 20;

/// Which HTTP versions to speak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/1.1 on http; ALPN (h2 or HTTP/1.1) on https.
    #[default]
    Auto,
    /// Only HTTP/1.1.
    Http1,
    /// HTTP/2 everywhere: ALPN `h2` on https, h2c by prior knowledge on http.
    Http2PriorKnowledge,
}

/// Which implementation speaks HTTP/1.1 (HTTP/2 is always hyper's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Http1Codec {
    /// loadlens's own codec on the connection (httparse for the head, own body framing): no
    /// dispatch channel and no task per request, a 4 KiB read buffer per connection.
    #[default]
    Lean,
    /// hyper's HTTP/1.1 client connection, kept to compare and to check the lean codec against.
    Hyper,
}

impl Http1Codec {
    /// `LOADLENS_HTTP1_CODEC=hyper` selects hyper; anything else (or nothing) the lean codec.
    pub fn from_env() -> Self {
        match std::env::var("LOADLENS_HTTP1_CODEC").as_deref() {
            Ok("hyper") => Http1Codec::Hyper,
            _ => Http1Codec::Lean,
        }
    }
}

/// Client settings shared by every VU of a run.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Limit for DNS + connect + TLS of a new connection.
    pub connect_timeout: Duration,
    /// Limit for a whole request (including redirects and body download), unless the request sets one.
    pub request_timeout: Duration,
    /// Redirects followed before giving up; 0 returns 3xx responses as they are.
    pub max_redirects: usize,
    /// Skip certificate verification.
    pub insecure: bool,
    /// Protocol choice.
    pub version: HttpVersion,
    /// Decode gzip/deflate/br bodies (and advertise them with `Accept-Encoding`).
    pub decompress: bool,
    /// Keep a cookie jar per VU.
    pub cookies: bool,
    /// `User-Agent` sent unless a request sets its own.
    pub user_agent: HeaderValue,
    /// Most bytes of a (decoded) response body kept for checks and captures; a larger body
    /// fails the request with [`ErrorKind::BodyTooLarge`]. Bodies that are not kept are only
    /// counted, whatever their size.
    pub max_body_size: u64,
    /// Keep connections open between requests (HTTP keep-alive). When off, every request opens
    /// a connection of its own, asks the server to close it (`Connection: close` on HTTP/1.1)
    /// and closes it after the response, as hey's and oha's `--disable-keepalive`.
    pub keep_alive: bool,
    /// HTTP/1.1 implementation; the default comes from `LOADLENS_HTTP1_CODEC` (see
    /// [`Http1Codec::from_env`]).
    pub http1: Http1Codec,
    /// Share HTTP/2 connections between the VUs, with at most this many requests in flight on
    /// each (fewer if the server's `SETTINGS_MAX_CONCURRENT_STREAMS` says so), as h2load's
    /// `-m` and oha's `-p`. `None` (the default): each VU its own connections, like browsers.
    /// Needs [`HttpVersion::Http2PriorKnowledge`] and keep-alive; without them it is ignored.
    pub http2_streams: Option<u32>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_redirects: 10,
            insecure: false,
            version: HttpVersion::Auto,
            decompress: true,
            cookies: true,
            user_agent: HeaderValue::from_static(concat!("loadlens/", env!("CARGO_PKG_VERSION"))),
            max_body_size: DEFAULT_MAX_BODY_SIZE,
            keep_alive: true,
            http1: Http1Codec::from_env(),
            http2_streams: None,
        }
    }
}

/// Errors building the shared client state.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// rustls refused the configuration.
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// What every VU's client shares: settings and the TLS configuration.
#[derive(Debug)]
pub struct ClientShared {
    /// Settings.
    pub config: ClientConfig,
    tls: Arc<rustls::ClientConfig>,
    connections: Arc<conn::ConnCount>,
    /// The shared HTTP/2 connections, when [`ClientConfig::http2_streams`] asks for them.
    pool: Option<Arc<pool::Pool>>,
}

impl ClientShared {
    /// Add the default headers to `req` once, so that sending it repeatedly does no header work
    /// beyond one copy of its header map.
    pub fn prepare(&self, req: &mut Request) {
        complete_headers(&self.config, &mut req.headers, &req.url, req.body.len());
        req.prepared = true;
    }

    /// Build the shared state (loads the root certificates once).
    pub fn new(config: ClientConfig) -> Result<Arc<Self>, ClientError> {
        let alpn = match config.version {
            HttpVersion::Auto => Alpn::Auto,
            HttpVersion::Http1 => Alpn::Http1,
            HttpVersion::Http2PriorKnowledge => Alpn::Http2,
        };
        let tls = tls::client_config(config.insecure, alpn)?;
        let pool = config
            .http2_streams
            .filter(|_| config.version == HttpVersion::Http2PriorKnowledge && config.keep_alive)
            .map(|n| pool::Pool::new(n as usize));
        Ok(Arc::new(ClientShared {
            config,
            tls,
            connections: Arc::default(),
            pool,
        }))
    }

    /// HTTP connections open now over every VU of this client (TCP connections, whatever the
    /// HTTP version): opened − closed, counted as sockets open and close.
    pub fn open_connections(&self) -> u64 {
        self.connections.open()
    }

    /// HTTP/2 connections in the shared pool now (0 without [`ClientConfig::http2_streams`]).
    pub fn pooled_connections(&self) -> usize {
        self.pool.as_ref().map_or(0, |p| p.connections())
    }
}

/// The port text of `uri` when it is not a port number. `http::Uri` takes any text there and
/// then reports no port at all, so `host:8o80` or `host:99999` would quietly mean port 80.
pub fn invalid_port(uri: &Uri) -> Option<&str> {
    let authority = uri.authority()?.as_str();
    // After the host: an IPv6 host is in brackets, with colons of its own.
    let after_host = authority.rsplit(']').next().unwrap_or_default();
    let (_, port) = after_host.rsplit_once(':')?;
    (!port.is_empty() && port.parse::<u16>().is_err()).then_some(port)
}

/// A request ready to send.
#[derive(Clone, Debug)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Absolute URL.
    pub url: Uri,
    /// Headers (`Host`, `User-Agent`, `Accept-Encoding`, `Cookie` are added when absent).
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
    /// Overrides the client's request timeout.
    pub timeout: Option<Duration>,
    /// Keep the response body (for checks and captures), up to the client's `max_body_size`;
    /// otherwise it is only counted.
    pub keep_body: bool,
    /// Keep every response header (for checks and captures that read one). Otherwise the
    /// HTTP/1.1 codec keeps only those the client itself reads — `Set-Cookie`, `Location`,
    /// `Content-Encoding` — and skips building the rest (issue #18: the header map was the
    /// largest cost of a response of our own). True unless a plan knows better.
    pub keep_headers: bool,
    /// Default headers were already added by [`ClientShared::prepare`].
    pub prepared: bool,
}

impl Request {
    /// A bodiless request.
    pub fn new(method: Method, url: Uri) -> Self {
        Request {
            method,
            url,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            timeout: None,
            keep_body: false,
            keep_headers: true,
            prepared: false,
        }
    }
}

/// A received response.
#[derive(Clone, Debug)]
pub struct Response {
    /// Status.
    pub status: StatusCode,
    /// Protocol version.
    pub version: Version,
    /// Headers.
    pub headers: HeaderMap,
    /// Decoded body, when the request asked to keep it.
    pub body: Bytes,
    /// The URL it came from when redirects were followed (`None`: the request's own URL, so
    /// that a response costs no copy of its URL).
    pub redirected: Option<Uri>,
}

/// The measurement and result of one [`Client::send`].
#[derive(Debug)]
pub struct Outcome {
    /// Wall-clock start.
    pub started_at: SystemTime,
    /// Monotonic start.
    pub started: Instant,
    /// From the start to the last byte (or to the failure).
    pub total: Duration,
    /// Phase timings, summed over redirects.
    pub phases: Phases,
    /// Wire bytes written.
    pub bytes_sent: u64,
    /// Wire bytes read (on a failure or timeout: what arrived before it).
    pub bytes_received: u64,
    /// Decoded body length (on a failure or timeout: what was decoded before it).
    pub content_length: u64,
    /// Whether a new connection was opened.
    pub new_connection: bool,
    /// The response, or why there is none.
    pub result: Result<Response, Failure>,
}

/// One VU's HTTP client.
pub struct Client {
    shared: Arc<ClientShared>,
    conns: Vec<Conn>,
    /// The `traceparent` of the request being sent, see [`Client::send_traced`].
    traceparent: Option<[u8; 55]>,
    /// The VU's cookies.
    pub cookies: CookieJar,
    /// The request timeout's timer, kept from one request to the next: moving a registered
    /// timer to a later deadline is one atomic store (tokio extends it in place), where a new
    /// `tokio::time::timeout` per request registered and removed a timer-wheel entry, two
    /// locks of the timer driver, on every request (issue #18's profile).
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Some(p) = &self.shared.pool {
            p.client_ended();
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("connections", &self.conns.len())
            .field("cookies", &self.cookies.len())
            .finish()
    }
}

/// `(written, read)` bytes of a connection.
type WireCount = (u64, u64);

/// Progress of one send, filled as it goes so a timeout still reports what completed.
#[derive(Default)]
struct Progress {
    phases: Phases,
    bytes_sent: u64,
    bytes_received: u64,
    content_length: u64,
    new_connection: bool,
    /// The connection of the exchange under way and its `(written, read)` counters when it
    /// started: a timeout drops the exchange, and this still tells what crossed the wire.
    /// Without a start (HTTP/2), the exchange claims the connection's unclaimed bytes
    /// ([`IoCounters::claim`]).
    live: Option<(Arc<IoCounters>, Option<WireCount>)>,
    /// The HTTP/2 request of the exchange reached the server before it failed: sending it again
    /// on another connection could run it twice.
    sent_h2: bool,
    /// When the last exchange's body ended: the end of the whole send when it succeeds, so the
    /// clock is read once there instead of twice.
    last_byte: Option<Instant>,
}

impl Progress {
    /// Add the wire bytes of the exchange under way (if any) to the totals, and end it.
    fn settle(&mut self) {
        if let Some((counters, start)) = self.live.take() {
            let (w, r) = match start {
                Some((w0, r0)) => {
                    let (w1, r1) = counters.get();
                    (w1 - w0, r1 - r0)
                }
                None => counters.claim(),
            };
            self.bytes_sent += w;
            self.bytes_received += r;
        }
    }
}

impl Client {
    /// A client with no connections yet.
    pub fn new(shared: Arc<ClientShared>) -> Self {
        if let Some(p) = &shared.pool {
            p.client_started();
        }
        Client {
            shared,
            conns: Vec::new(),
            traceparent: None,
            cookies: CookieJar::default(),
            deadline: None,
        }
    }

    /// Number of open connections.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Close every connection (the VU stops, or a scenario asks for fresh connections).
    pub fn close_connections(&mut self) {
        self.conns.clear();
    }

    /// Send `req` with the W3C `traceparent` of `ids`, without copying the request: the trace
    /// context changes on every request, the rest does not. Each hop of a redirect carries it.
    pub async fn send_traced(&mut self, req: &Request, ids: &TraceIds, start: Instant) -> Outcome {
        self.traceparent = Some(ids.traceparent_bytes());
        let out = self.send_from(req, start).await;
        self.traceparent = None;
        out
    }

    /// Where this client's state lives apart from its owner's: the request timer, the
    /// connections, the first one's byte counters. A user woken by a response warms them
    /// (see [`crate::prefetch`]).
    pub fn hints(&self) -> [Hint; 3] {
        [
            self.deadline.as_deref().map(Hint::of).unwrap_or_default(),
            Hint::of(&self.conns[..]),
            self.conns
                .first()
                .map(|c| Hint::of(&*c.counters))
                .unwrap_or_default(),
        ]
    }

    /// Send `req`, following redirects, and measure it.
    pub async fn send(&mut self, req: &Request) -> Outcome {
        self.send_from(req, Instant::now()).await
    }

    /// [`Client::send`], measured from `start`: the time the caller read just before (one
    /// clock read per request fewer than reading it twice).
    pub async fn send_from(&mut self, req: &Request, start: Instant) -> Outcome {
        let started_at = crate::wall::at(start);
        let limit = req.timeout.unwrap_or(self.shared.config.request_timeout);
        // What `tokio::time::timeout` does for a limit too far out to add.
        let until = start
            .checked_add(limit)
            .unwrap_or_else(|| start + Duration::from_secs(86_400 * 365 * 30));
        let until = tokio::time::Instant::from_std(until);
        let mut deadline = self.deadline.take();
        let timer = match &mut deadline {
            Some(t) => {
                t.as_mut().reset(until);
                t
            }
            None => deadline.insert(Box::pin(tokio::time::sleep_until(until))),
        };
        let mut progress = Progress::default();
        let timed_out = || {
            Failure::new(
                ErrorKind::Timeout,
                format!(
                    "request timed out after {}",
                    humantime::format_duration(limit)
                ),
            )
        };
        // Not boxed: a user's steps are (`Vu::steps`), so a user between iterations does not
        // carry this state, and a request costs no allocation, no move of it into one, and no
        // separate cold block to resume (issue #18's slow case, 1,000 users). The rare paths
        // inside it (dialling, hyper, h2) are boxed.
        let result = tokio::select! {
            biased;
            r = self.exchange(req, &mut progress) => r,
            () = timer.as_mut() => Err(timed_out()),
        };
        // Redirects, under the same timeout. Boxed: the state of the redirect loop (a copy of
        // the request, the last response) is not part of every request's future.
        let max = self.shared.config.max_redirects;
        let result = match result {
            Ok(resp) if max > 0 && resp.status.is_redirection() => tokio::select! {
                biased;
                r = Box::pin(self.follow_redirects(req, resp, &mut progress)) => r,
                () = timer.as_mut() => Err(timed_out()),
            },
            r => r,
        };
        self.deadline = deadline;
        progress.settle();
        let end = match (&result, progress.last_byte) {
            (Ok(_), Some(t)) => t,
            _ => Instant::now(),
        };
        Outcome {
            started_at,
            started: start,
            total: end.saturating_duration_since(start),
            phases: progress.phases,
            bytes_sent: progress.bytes_sent,
            bytes_received: progress.bytes_received,
            content_length: progress.content_length,
            new_connection: progress.new_connection,
            result,
        }
    }

    /// Follow the redirect of `resp`, the response to `first`, and those after it.
    async fn follow_redirects(
        &mut self,
        first: &Request,
        resp: Response,
        p: &mut Progress,
    ) -> Result<Response, Failure> {
        let max = self.shared.config.max_redirects;
        // Redirects are rare: only they pay for a copy of the request.
        let mut req = first.clone();
        if req.prepared {
            // The prepared Host header belongs to the first URL.
            req.headers.remove(http::header::HOST);
            req.prepared = false;
        }
        let mut resp = resp;
        let mut hops = 0;
        loop {
            let Some(next) = redirect_target(&req.url, &resp) else {
                return Ok(resp);
            };
            if hops == max {
                // Returning the last 3xx would count a redirect loop as a success.
                return Err(Failure::new(
                    ErrorKind::TooManyRedirects,
                    format!(
                        "more than {max} redirects (a redirect loop?); raise max_redirects \
                         (--max-redirects) to follow more, or 0 to get 3xx responses as they are"
                    ),
                ));
            }
            hops += 1;
            let code = resp.status.as_u16();
            if code == 303 || ((code == 301 || code == 302) && req.method == Method::POST) {
                req.method = Method::GET;
                req.body = Bytes::new();
                req.headers.remove(http::header::CONTENT_TYPE);
                req.headers.remove(http::header::CONTENT_LENGTH);
            }
            if Origin::of(&next).ok() != Origin::of(&req.url).ok() {
                // Never forward credentials to another origin.
                req.headers.remove(http::header::AUTHORIZATION);
                req.headers.remove(http::header::COOKIE);
            }
            req.url = next;
            resp = self.exchange(&req, p).await?;
            resp.redirected = Some(req.url.clone());
            if !resp.status.is_redirection() {
                return Ok(resp);
            }
        }
    }

    /// One request/response on one connection (a reused connection that turns out closed is
    /// replaced once).
    async fn exchange(&mut self, req: &Request, p: &mut Progress) -> Result<Response, Failure> {
        if let Some(pool) = &self.shared.pool {
            let pool = pool.clone();
            // Boxed: it would make every request's future larger (moved whole per request).
            return Box::pin(self.exchange_pooled(&pool, req, p)).await;
        }
        for attempt in 0..2 {
            let (idx, fresh) = self.connection(&req.url, p).await?;
            let counted = (p.bytes_sent, p.bytes_received);
            p.sent_h2 = false;
            match self.exchange_on(At::Own(idx), req, p).await {
                Err(f) if !fresh && attempt == 0 && f.kind == ErrorKind::Reset && !p.sent_h2 => {
                    // The server closed an idle keep-alive connection under us: nothing was
                    // answered, so retrying on a new connection is what a browser does too.
                    // The request written into the dead connection is not counted: hyper
                    // mostly sees the close before writing, and both codecs must report the
                    // same bytes.
                    (p.bytes_sent, p.bytes_received) = counted;
                    self.conns.swap_remove(idx);
                    continue;
                }
                Err(f) => {
                    if f.kind.is_transport() || !self.shared.config.keep_alive {
                        self.conns.swap_remove(idx);
                    }
                    return Err(f);
                }
                ok => {
                    if !self.shared.config.keep_alive {
                        // Dropping it closes the socket (its driver goes with it).
                        self.conns.swap_remove(idx);
                    }
                    return ok;
                }
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// Open a connection to the origin of `url` now, unless one is open, so that a later
    /// request to it does not wait for the connection.
    pub async fn preconnect(&mut self, url: &Uri) -> Result<(), Failure> {
        if let Some(pool) = &self.shared.pool {
            let pool = pool.clone();
            let origin = Origin::of(url)?;
            return self
                .lease(&pool, &origin, &mut Progress::default())
                .await
                .map(|_| ());
        }
        self.connection(url, &mut Progress::default())
            .await
            .map(|_| ())
    }

    /// One request/response on a stream of a shared HTTP/2 connection (a request the server
    /// never saw, on a connection that turned out closed, is sent once more on another).
    async fn exchange_pooled(
        &mut self,
        pool: &Arc<pool::Pool>,
        req: &Request,
        p: &mut Progress,
    ) -> Result<Response, Failure> {
        let origin = Origin::of(&req.url)?;
        for attempt in 0..2 {
            let lease = self.lease(pool, &origin, p).await?;
            let counted = (p.bytes_sent, p.bytes_received);
            p.sent_h2 = false;
            match self.exchange_on(At::Pool(&lease, &origin), req, p).await {
                Err(f) if f.kind == ErrorKind::Reset && !p.sent_h2 => {
                    lease.discard();
                    // The server never saw it (refused, or above a GOAWAY's last stream id),
                    // so it goes once more on another connection: even when this request had
                    // just opened this one, others' streams may have reached the server's
                    // limit on it first.
                    if attempt == 1 {
                        return Err(f);
                    }
                    (p.bytes_sent, p.bytes_received) = counted;
                }
                r => return r,
            }
        }
        unreachable!("the loop returns on its second attempt")
    }

    /// A stream on a shared connection to `origin`, opening the connection if it is this
    /// request's turn to (the request is then charged with its phases).
    async fn lease(
        &mut self,
        pool: &Arc<pool::Pool>,
        origin: &Origin,
        p: &mut Progress,
    ) -> Result<pool::Lease, Failure> {
        loop {
            match pool.take(origin) {
                pool::Take::Leased(l) => return Ok(l),
                // Time spent here is part of the request's total, in none of its phases.
                pool::Take::Wait(w) => w.wait().await,
                pool::Take::Dial(d) => {
                    let mut conn = self.dial(origin, p).await?;
                    let Sender::H2(handle) = &conn.sender else {
                        return Err(Failure::new(
                            ErrorKind::Protocol,
                            format!(
                                "{}:{} did not agree to HTTP/2 (ALPN): shared HTTP/2 \
                                 connections (--http2-streams) need a server that speaks it",
                                origin.host, origin.port
                            ),
                        ));
                    };
                    let handle = handle.clone();
                    let counters = conn.counters.clone();
                    let task = conn.task.take().expect("an HTTP/2 connection has a task");
                    return Ok(d.ready(handle, counters, task));
                }
            }
        }
    }

    /// Index of a usable connection to the origin of `url`, opening one if needed; `true` if new.
    async fn connection(&mut self, url: &Uri, p: &mut Progress) -> Result<(usize, bool), Failure> {
        if let Some(i) = self
            .conns
            .iter()
            .position(|c| c.serves(url) && !c.is_closed())
        {
            return Ok((i, false));
        }
        // Closed ones go only when a connection is opened: no pass over them per request.
        self.conns.retain(|c| !c.is_closed());
        let mut conn = self.dial(&Origin::of(url)?, p).await?;
        conn.authority = url.authority().cloned();
        // One slot per origin, not the four a `Vec` takes on its first push (208 bytes each,
        // for every user).
        self.conns.reserve_exact(1);
        self.conns.push(conn);
        Ok((self.conns.len() - 1, true))
    }

    /// Open a connection to `origin` within the connect timeout, charging its phases to `p`.
    async fn dial(&self, origin: &Origin, p: &mut Progress) -> Result<Conn, Failure> {
        let mut t = DialTimings::default();
        let limit = self.shared.config.connect_timeout;
        // Boxed: opening a connection (DNS, TLS, hyper's handshakes) takes a large future,
        // which every request's future would otherwise be as large as.
        let dial = Box::pin(conn::dial(origin, &self.shared, &mut t));
        let res = tokio::time::timeout(limit, dial).await;
        add(&mut p.phases.dns, t.dns);
        add(&mut p.phases.connect, t.connect);
        add(&mut p.phases.tls, t.tls);
        p.new_connection = true;
        match res {
            Ok(r) => r,
            Err(_) => Err(Failure::new(
                ErrorKind::ConnectTimeout,
                format!(
                    "connecting to {}:{} timed out after {}",
                    origin.host,
                    origin.port,
                    humantime::format_duration(limit)
                ),
            )),
        }
    }

    async fn exchange_on(
        &mut self,
        at: At<'_>,
        req: &Request,
        p: &mut Progress,
    ) -> Result<Response, Failure> {
        let cfg = &self.shared.config;
        let (origin, counters, via) = match at {
            At::Own(idx) => {
                let (origin, counters, sender, driver) = self.conns[idx].parts();
                (origin, counters, Via::Own(sender, driver))
            }
            At::Pool(lease, origin) => (origin, lease.counters(), Via::Pool(lease)),
        };
        let cookie = if cfg.cookies && !self.cookies.is_empty() {
            self.cookies
                .header_for(&origin.host, req.url.path(), origin.tls)
                .and_then(|c| HeaderValue::from_str(&c).ok())
        } else {
            None
        };
        let traceparent = self
            .traceparent
            .as_ref()
            .and_then(|tp| HeaderValue::from_bytes(tp).ok());
        let version = via.version();
        p.settle();
        // HTTP/2 streams share the connection's counters: see `IoCounters::claim`.
        let start = (version != Version::HTTP_2).then(|| counters.get());
        p.live = Some((counters.clone(), start));
        let (t0, status, version, headers, expected, mut body) =
            if let Via::Own(Sender::Lean(h), _) = via {
                write_lean_head(h, cfg, req, traceparent, cookie);
                let t0 = Instant::now();
                let head = match h.send(&req.body).await {
                    Ok(()) => h.read_head(&req.method, req.keep_headers).await,
                    Err(e) => Err(e),
                };
                let head = match head {
                    Ok(head) => head,
                    Err(e) => {
                        p.settle();
                        return Err(h1_failure(e));
                    }
                };
                (
                    t0,
                    head.status,
                    head.version,
                    head.headers,
                    head.content_length,
                    BodySource::Lean(h),
                )
            } else {
                // hyper's and h2's exchanges boxed: they would make every request's future
                // (the lean codec's too) as large as they are, and it is moved whole.
                let (t0, parts, body) =
                    Box::pin(other_head(via, cfg, req, traceparent, cookie, p)).await?;
                let expected = parts
                    .headers
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok()?.parse().ok());
                (
                    t0,
                    parts.status,
                    parts.version,
                    parts.headers,
                    expected,
                    body,
                )
            };
        // One clock read ends the wait for the head and starts the body's download.
        let t1 = Instant::now();
        add(&mut p.phases.ttfb, Some(t1.saturating_duration_since(t0)));
        let encoding = headers
            .get(http::header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .filter(|_| cfg.decompress);
        let sink = BodySink::new(req.keep_body, cfg.max_body_size, expected);
        let mut decoder = Decoder::new(encoding, sink);
        // Piece by piece: decoded, counted, kept only when asked, never beyond the limit.
        const DECODE_SLICE: usize = 4 << 10;
        const YIELD_AFTER: u64 = 4 << 20;
        let mut decoded_at_yield = 0;
        let body_result = loop {
            let data = match body.next().await {
                Ok(None) => break Ok(()),
                Ok(Some(data)) => data,
                Err(f) => break Err(f),
            };
            // Compressed data can decode to a thousand times its size: decode it in slices,
            // and let the other VUs (and this request's timeout) run whenever a few MiB came
            // out.
            let mut failed = None;
            let slice = if decoder.expands() {
                DECODE_SLICE
            } else {
                data.len().max(1)
            };
            for piece in data.chunks(slice) {
                let pushed = decoder.push(piece);
                p.content_length = decoder.decoded_len();
                if let Err(e) = pushed {
                    failed = Some(e);
                    break;
                }
                if p.content_length - decoded_at_yield > YIELD_AFTER {
                    decoded_at_yield = p.content_length;
                    tokio::task::yield_now().await;
                }
            }
            if let Some(e) = failed {
                break Err(body_failure(e));
            }
        };
        drop(body);
        let t2 = Instant::now();
        add(
            &mut p.phases.download,
            Some(t2.saturating_duration_since(t1)),
        );
        p.last_byte = Some(t2);
        p.settle();
        body_result?;
        let (body, len) = decoder.finish().map_err(body_failure)?;
        p.content_length = len;

        if cfg.cookies {
            let host = &origin.host;
            for sc in headers.get_all(http::header::SET_COOKIE) {
                if let Ok(s) = sc.to_str() {
                    self.cookies.store(host, req.url.path(), s);
                }
            }
        }
        Ok(Response {
            status,
            version,
            headers,
            body,
            redirected: None,
        })
    }
}

/// Where a response body comes from: hyper's body stream, or the lean connection itself.
enum BodySource<'a> {
    Hyper {
        body: hyper::body::Incoming,
        driver: &'a mut Option<conn::H1Driver>,
        /// The frame whose data was handed out last.
        frame: Bytes,
    },
    Lean(&'a mut h1::Connection<conn::Stream>),
    H2(h2::Body),
}

/// Where an exchange goes: a connection of the VU's own, or a stream of a shared one.
enum At<'a> {
    Own(usize),
    Pool(&'a pool::Lease, &'a Origin),
}

impl BodySource<'_> {
    /// The next piece of body data, `None` at its end.
    async fn next(&mut self) -> Result<Option<&[u8]>, Failure> {
        match self {
            BodySource::Hyper {
                body,
                driver,
                frame,
            } => loop {
                match Conn::drive(driver, body.frame()).await {
                    None => return Ok(None),
                    Some(Ok(f)) => {
                        if let Ok(data) = f.into_data() {
                            *frame = data;
                            return Ok(Some(&frame[..]));
                        }
                    }
                    Some(Err(e)) => return Err(conn::hyper_failure(&e)),
                }
            },
            BodySource::Lean(c) => c.next_data().await.map_err(h1_failure),
            BodySource::H2(b) => b.next().await,
        }
    }
}

/// Classify an error of the lean HTTP/1.1 codec as [`conn::hyper_failure`] classifies hyper's.
/// What an exchange goes on: a connection of the VU's own (with hyper's driver, for its
/// HTTP/1.1), or a stream of a shared HTTP/2 connection.
enum Via<'a> {
    Own(&'a mut Sender, &'a mut Option<conn::H1Driver>),
    Pool(&'a pool::Lease),
}

impl Via<'_> {
    fn version(&self) -> Version {
        match self {
            Via::Own(s, _) => s.version(),
            Via::Pool(_) => Version::HTTP_2,
        }
    }
}

/// Write the head of `req` into the lean connection `h`: the request's own header fields
/// (straight from its map: no copy), then the client's defaults it lacks.
fn write_lean_head(
    h: &mut h1::Connection<conn::Stream>,
    cfg: &ClientConfig,
    req: &Request,
    traceparent: Option<HeaderValue>,
    cookie: Option<HeaderValue>,
) {
    let target = req.url.path_and_query().map_or("/", |pq| pq.as_str());
    h.start_request(&req.method, target);
    h.frame_request(&req.headers, req.body.len());
    for (name, value) in &req.headers {
        if (traceparent.is_some() && name == TRACEPARENT)
            || (!cfg.keep_alive && name == http::header::CONNECTION)
        {
            continue;
        }
        h.header(name.as_str(), value.as_bytes());
    }
    if !req.prepared {
        let defaults = default_headers(cfg, &req.headers, &req.url, req.body.len());
        for (name, value) in defaults.iter().flatten() {
            h.header(name.as_str(), value.as_bytes());
        }
    }
    if let Some(tp) = &traceparent {
        h.header(TRACEPARENT.as_str(), tp.as_bytes());
    }
    if !cfg.keep_alive {
        h.header("connection", b"close");
    }
    if let Some(c) = cookie.filter(|_| !req.headers.contains_key(http::header::COOKIE)) {
        h.header("cookie", c.as_bytes());
    }
}

/// The head of the response to `req` through hyper (HTTP/1.1) or h2, and its body; `t0` is
/// when the request was handed over.
async fn other_head<'a>(
    via: Via<'a>,
    cfg: &ClientConfig,
    req: &Request,
    traceparent: Option<HeaderValue>,
    cookie: Option<HeaderValue>,
    p: &mut Progress,
) -> Result<(Instant, http::response::Parts, BodySource<'a>), Failure> {
    let version = via.version();
    let mut hreq = http::Request::new(Full::new(req.body.clone()));
    *hreq.method_mut() = req.method.clone();
    let mut headers = req.headers.clone();
    if let Some(v) = traceparent {
        // A traced plan's requests carry a placeholder (`TraceSettings::prepare`): replacing
        // it in place keeps the copied map from growing, which `insert` would do on a full
        // map even for a known name.
        match headers.get_mut(&TRACEPARENT) {
            Some(slot) => *slot = v,
            None => {
                headers.insert(TRACEPARENT, v);
            }
        }
    }
    if !req.prepared {
        complete_headers(cfg, &mut headers, &req.url, req.body.len());
    }
    if !cfg.keep_alive && version != Version::HTTP_2 {
        // HTTP/2 has no such header (one connection per request is what closes it).
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    if version == Version::HTTP_2 {
        *hreq.uri_mut() = req.url.clone();
        *hreq.version_mut() = Version::HTTP_2;
        // HTTP/2 carries the authority in its own pseudo-header.
        headers.remove(http::header::HOST);
    } else {
        *hreq.uri_mut() = req
            .url
            .path_and_query()
            .cloned()
            .map_or_else(|| Uri::from_static("/"), Uri::from);
    }
    if let Some(c) = cookie {
        if !headers.contains_key(http::header::COOKIE) {
            headers.insert(http::header::COOKIE, c);
        }
    }
    *hreq.headers_mut() = headers;
    let t0 = Instant::now();
    let mut pooled;
    let h2 = match via {
        Via::Own(Sender::H1(s), driver) => {
            Conn::drive(driver, s.ready())
                .await
                .map_err(|e| conn::hyper_failure(&e))?;
            let fut = s.send_request(hreq);
            return match Conn::drive(driver, fut).await {
                Ok(r) => {
                    let (parts, body) = r.into_parts();
                    let body = BodySource::Hyper {
                        body,
                        driver,
                        frame: Bytes::new(),
                    };
                    Ok((t0, parts, body))
                }
                Err(e) => {
                    p.settle();
                    Err(conn::hyper_failure(&e))
                }
            };
        }
        Via::Own(Sender::H2(h), _) => h,
        Via::Pool(lease) => {
            pooled = lease.handle();
            &mut pooled
        }
        Via::Own(Sender::Lean(_), _) => unreachable!("the lean codec has its own path"),
    };
    let (head, _) = hreq.into_parts();
    let hreq = http::Request::from_parts(head, ());
    match h2::send(h2, hreq, req.body.clone()).await {
        Ok(r) => Ok((t0, r.head, BodySource::H2(r.body))),
        Err(e) => {
            p.sent_h2 = !e.unsent;
            p.settle();
            Err(e.failure)
        }
    }
}

fn h1_failure(e: h1::Error) -> Failure {
    match e {
        h1::Error::Incomplete => Failure::new(
            ErrorKind::Reset,
            "connection closed before the response completed",
        ),
        h1::Error::Head(m) => {
            Failure::new(ErrorKind::Protocol, format!("invalid HTTP response: {m}"))
        }
        h1::Error::Body(m) => Failure::new(
            ErrorKind::Protocol,
            format!("invalid HTTP response body: {m}"),
        ),
        h1::Error::Io(e) => conn::io_failure(&e, "request"),
    }
}

/// The failure for a body that could not be taken.
fn body_failure(e: BodyError) -> Failure {
    match e {
        BodyError::TooLarge(limit) => Failure::new(
            ErrorKind::BodyTooLarge,
            format!(
                "response body larger than max_body_size ({}): checks and captures need it \
                 whole; raise max_body_size (--max-body-size)",
                format_size(limit)
            ),
        ),
        BodyError::Invalid(m) => Failure::new(ErrorKind::Protocol, m),
    }
}

/// Add the headers every request carries unless it sets its own: `Host` (HTTP/1.1; removed again
/// on HTTP/2), `User-Agent`, `Accept-Encoding` and `Content-Length`.
fn complete_headers(cfg: &ClientConfig, headers: &mut HeaderMap, url: &Uri, body_len: usize) {
    for (name, value) in default_headers(cfg, headers, url, body_len)
        .into_iter()
        .flatten()
    {
        headers.insert(name, value);
    }
}

/// The client's default header fields that `headers` lacks: `Host`, `User-Agent`,
/// `Accept-Encoding` (when decompressing) and `Content-Length` (for a body), in that order.
fn default_headers(
    cfg: &ClientConfig,
    headers: &HeaderMap,
    url: &Uri,
    body_len: usize,
) -> [Option<(HeaderName, HeaderValue)>; 4] {
    let host = url
        .authority()
        .filter(|_| !headers.contains_key(http::header::HOST))
        .and_then(|a| {
            let default_port = match url.scheme_str() {
                Some("https") => 443,
                _ => 80,
            };
            let host = if a.port_u16() == Some(default_port) {
                a.host()
            } else {
                a.as_str()
            };
            HeaderValue::from_str(host).ok()
        });
    [
        host.map(|v| (http::header::HOST, v)),
        (!headers.contains_key(http::header::USER_AGENT))
            .then(|| (http::header::USER_AGENT, cfg.user_agent.clone())),
        (cfg.decompress && !headers.contains_key(http::header::ACCEPT_ENCODING)).then(|| {
            (
                http::header::ACCEPT_ENCODING,
                HeaderValue::from_static("gzip, deflate, br"),
            )
        }),
        (body_len > 0 && !headers.contains_key(http::header::CONTENT_LENGTH))
            .then(|| (http::header::CONTENT_LENGTH, HeaderValue::from(body_len))),
    ]
}

fn add(slot: &mut Option<Duration>, d: Option<Duration>) {
    if let Some(d) = d {
        *slot = Some(slot.unwrap_or_default() + d);
    }
}

/// Where a 3xx response points, resolved against the request URL.
fn redirect_target(base: &Uri, resp: &Response) -> Option<Uri> {
    let loc = resp.headers.get(http::header::LOCATION)?.to_str().ok()?;
    resolve(base, loc)
}

/// Resolve a reference (absolute URL, `//host/path`, `/path`, or relative path) against `base`.
pub fn resolve(base: &Uri, reference: &str) -> Option<Uri> {
    if reference.contains("://") {
        return reference.parse().ok();
    }
    let scheme = base.scheme_str()?;
    if let Some(rest) = reference.strip_prefix("//") {
        return format!("{scheme}://{rest}").parse().ok();
    }
    let authority = base.authority()?.as_str();
    let path = if reference.starts_with('/') {
        reference.to_owned()
    } else {
        let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
        format!("{dir}/{reference}")
    };
    format!("{scheme}://{authority}{path}").parse().ok()
}

/// A `Name: value` header (`-H`) that cannot be sent. The value itself is never part of the
/// message: it may be a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// No `:` between name and value.
    #[error("header `{header}` must look like `Name: value`")]
    Form {
        /// The text as given.
        header: String,
    },
    /// A name with characters HTTP does not allow.
    #[error("invalid header name `{name}`")]
    Name {
        /// The name, trimmed.
        name: String,
    },
    /// A control character in the value (a newline would inject another header).
    #[error("invalid value for header `{name}`: it contains the control character {character:?}")]
    ControlCharacter {
        /// The header's name, trimmed.
        name: String,
        /// The first control character found.
        character: char,
    },
    /// Another byte HTTP does not allow in a value.
    #[error("invalid value for header `{name}`")]
    Value {
        /// The header's name, trimmed.
        name: String,
    },
}

/// A header name/value pair parsed from `Name: value`.
pub fn parse_header(s: &str) -> Result<(HeaderName, HeaderValue), HeaderError> {
    let (k, v) = s.split_once(':').ok_or_else(|| HeaderError::Form {
        header: s.to_owned(),
    })?;
    let k = k.trim();
    let name = HeaderName::from_bytes(k.as_bytes())
        .map_err(|_| HeaderError::Name { name: k.to_owned() })?;
    if let Some(c) = v.chars().find(|c| c.is_control() && *c != '\t') {
        // A newline here would end this header and start another one (header injection).
        return Err(HeaderError::ControlCharacter {
            name: k.to_owned(),
            character: c,
        });
    }
    let value =
        HeaderValue::from_str(v.trim()).map_err(|_| HeaderError::Value { name: k.to_owned() })?;
    Ok((name, value))
}

#[cfg(test)]
mod url_tests {
    use super::*;

    #[test]
    fn resolves_locations() {
        let base: Uri = "http://a.test:8080/x/y?q=1".parse().unwrap();
        assert_eq!(
            resolve(&base, "/z").unwrap().to_string(),
            "http://a.test:8080/z"
        );
        assert_eq!(
            resolve(&base, "z").unwrap().to_string(),
            "http://a.test:8080/x/z"
        );
        assert_eq!(
            resolve(&base, "//b.test/p").unwrap().to_string(),
            "http://b.test/p"
        );
        assert_eq!(
            resolve(&base, "https://c.test/").unwrap().to_string(),
            "https://c.test/"
        );
    }

    #[test]
    fn parses_headers() {
        let (k, v) = parse_header("X-Test: a b").unwrap();
        assert_eq!(k.as_str(), "x-test");
        assert_eq!(v, "a b");
        assert!(parse_header("nocolon").is_err());
        assert_eq!(
            parse_header("X: a\nb").unwrap_err(),
            HeaderError::ControlCharacter {
                name: "X".into(),
                character: '\n'
            }
        );
        assert_eq!(
            parse_header("X: a\nb").unwrap_err().to_string(),
            "invalid value for header `X`: it contains the control character '\\n'"
        );
    }
}
