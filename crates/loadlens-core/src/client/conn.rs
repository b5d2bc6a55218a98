//! Opening one connection with phase timings: DNS, TCP connect, TLS handshake, then loadlens's
//! own HTTP/1.1 codec (`h1`), hyper's HTTP/1.1 handshake on the connection-level API, or
//! HTTP/2 on the `h2` crate (`super::h2`).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Version;
use http_body_util::Full;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::{h1, ClientShared, Http1Codec, HttpVersion};
use crate::sample::{ErrorKind, Failure};

/// Scheme, host and port: what a connection is keyed by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    /// `https`?
    pub tls: bool,
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Origin {
    /// Whether `uri` points at this origin (no allocation: this runs for every request).
    pub fn matches(&self, uri: &http::Uri) -> bool {
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return false,
        };
        let Some(host) = uri.host() else { return false };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        tls == self.tls
            && uri.port_u16().unwrap_or(if tls { 443 } else { 80 }) == self.port
            && host == self.host
    }

    /// The origin of an absolute URI.
    pub fn of(uri: &http::Uri) -> Result<Origin, Failure> {
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            Some(other) => {
                return Err(Failure::new(
                    ErrorKind::Request,
                    format!("unsupported scheme `{other}` (use http or https)"),
                ))
            }
            None => {
                return Err(Failure::new(
                    ErrorKind::Request,
                    format!(
                        "URL `{uri}` has no scheme: set a host (-H/--host) or use an absolute URL"
                    ),
                ))
            }
        };
        let host = uri
            .host()
            .ok_or_else(|| Failure::new(ErrorKind::Request, format!("URL `{uri}` has no host")))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if let Some(p) = super::invalid_port(uri) {
            return Err(Failure::new(
                ErrorKind::Request,
                format!("URL `{uri}` has the port `{p}`: expected a number from 0 to 65535"),
            ));
        }
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Origin { tls, host, port })
    }
}

/// Bytes read and written on one connection, on the wire.
#[derive(Debug, Default)]
pub struct IoCounters {
    read: AtomicU64,
    written: AtomicU64,
    /// Of those, what requests have been charged with (HTTP/2, see [`IoCounters::claim`]).
    claimed_read: AtomicU64,
    claimed_written: AtomicU64,
}

impl IoCounters {
    /// `(written, read)` so far.
    pub fn get(&self) -> (u64, u64) {
        (
            self.written.load(Ordering::Relaxed),
            self.read.load(Ordering::Relaxed),
        )
    }

    /// `(written, read)` that no request was charged with yet, now charged to the caller.
    ///
    /// HTTP/2 streams share a connection's bytes, interleaved in frames: which stream a byte
    /// belonged to is not known below TLS. So a request that ends takes every byte of the
    /// connection since the last one ended: the sum over requests is the connection's exact
    /// total (after its handshake), and each request's figure is exact when requests do not
    /// overlap and an average over its neighbours when they do.
    pub fn claim(&self) -> (u64, u64) {
        let (w, r) = self.get();
        // `fetch_max`: of two requests ending at once, the one that read the counters earlier
        // takes nothing more, and no byte is charged twice.
        let w0 = self.claimed_written.fetch_max(w, Ordering::Relaxed);
        let r0 = self.claimed_read.fetch_max(r, Ordering::Relaxed);
        (w.saturating_sub(w0), r.saturating_sub(r0))
    }
}

/// Connections opened and closed through one [`ClientShared`], for the generator's health
/// figures: two relaxed atomic adds per connection, none per request.
#[derive(Debug, Default)]
pub struct ConnCount {
    opened: AtomicU64,
    closed: AtomicU64,
}

impl ConnCount {
    /// Connections open now (opened − closed).
    pub fn open(&self) -> u64 {
        // Closed first: a connection is counted opened before it can be counted closed, so
        // this order never sees more closed than opened.
        let closed = self.closed.load(Ordering::Relaxed);
        self.opened.load(Ordering::Relaxed).saturating_sub(closed)
    }

    fn opened(self: &Arc<Self>) -> OpenConn {
        self.opened.fetch_add(1, Ordering::Relaxed);
        OpenConn(self.clone())
    }
}

/// One open connection: counted closed when dropped, which is when its socket closes.
struct OpenConn(Arc<ConnCount>);

impl Drop for OpenConn {
    fn drop(&mut self) {
        self.0.closed.fetch_add(1, Ordering::Relaxed);
    }
}

/// A TCP stream that counts bytes.
pub struct Counting {
    inner: TcpStream,
    counters: Arc<IoCounters>,
    _open: OpenConn,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            self.counters.read.fetch_add(n, Ordering::Relaxed);
        }
        r
    }
}

impl AsyncWrite for Counting {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            self.counters
                .written
                .fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &r {
            self.counters
                .written
                .fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Plain or TLS stream.
pub enum Stream {
    Plain(Counting),
    Tls(Box<tokio_rustls::client::TlsStream<Counting>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

impl h1::ReadReady for Stream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Plain(s) => s.inner.poll_read_ready(cx),
            // rustls may hold decrypted bytes whatever the socket says: always ready.
            Stream::Tls(_) => Poll::Ready(Ok(())),
        }
    }
}

/// The request half of an open connection.
pub enum Sender {
    /// HTTP/1.1.
    H1(http1::SendRequest<Full<Bytes>>),
    /// HTTP/2.
    H2(super::h2::Handle),
    /// HTTP/1.1 on loadlens's own codec (the default, see [`Http1Codec`]).
    Lean(h1::Connection<Stream>),
}

/// hyper's HTTP/1.1 connection future, polled by the VU's own task (see [`Conn::drive`]).
pub(super) type H1Driver = Pin<Box<http1::Connection<TokioIo<Stream>, Full<Bytes>>>>;

/// An open connection owned by one VU.
///
/// HTTP/1.1 connections are driven inline: the VU's task polls hyper's connection future
/// together with the request it waits for, instead of a separate task per connection. A VU has
/// at most one request in flight per connection, so nothing needs the connection while the VU
/// is not waiting on it, and each request saves two cross-task wake-ups. HTTP/2 connections
/// must answer pings and window updates at any time, so they keep a task of their own.
pub struct Conn {
    /// Where it goes.
    pub origin: Origin,
    /// Where requests go.
    pub sender: Sender,
    /// Wire byte counters.
    pub counters: Arc<IoCounters>,
    /// The authority of the URL it was opened for, as written there: a request whose URL has
    /// the very same one needs no parsing of its host and port to find this connection.
    pub authority: Option<http::uri::Authority>,
    driver: Option<H1Driver>,
    /// The HTTP/2 connection's task, aborted when the connection is dropped.
    pub(super) task: Option<tokio::task::JoinHandle<()>>,
}

impl Conn {
    /// Whether a request to `url` can go on this connection's origin (runs for every request:
    /// the URL's authority compared as it is before its host and port are parsed).
    pub fn serves(&self, url: &http::Uri) -> bool {
        let scheme = if self.origin.tls { "https" } else { "http" };
        (self.authority.is_some()
            && url.authority() == self.authority.as_ref()
            && url.scheme_str() == Some(scheme))
            || self.origin.matches(url)
    }

    /// True when the connection can no longer carry requests.
    pub fn is_closed(&self) -> bool {
        match &self.sender {
            Sender::H1(s) => s.is_closed() || self.driver.is_none(),
            Sender::H2(h) => h.is_closed(),
            Sender::Lean(c) => !c.is_reusable(),
        }
    }

    /// Await `fut` while driving the connection (HTTP/1.1). When the connection ends first,
    /// `fut` is awaited alone: hyper resolves it with the connection's error.
    pub async fn drive<F: std::future::Future>(driver: &mut Option<H1Driver>, fut: F) -> F::Output {
        tokio::pin!(fut);
        loop {
            let Some(d) = driver.as_mut() else {
                return fut.await;
            };
            tokio::select! {
                biased;
                out = &mut fut => return out,
                _ = d.as_mut() => *driver = None,
            }
        }
    }

    /// The origin, the counters, the sender and the inline driver, borrowed together.
    pub fn parts(
        &mut self,
    ) -> (
        &Origin,
        &Arc<IoCounters>,
        &mut Sender,
        &mut Option<H1Driver>,
    ) {
        (
            &self.origin,
            &self.counters,
            &mut self.sender,
            &mut self.driver,
        )
    }
}

impl Sender {
    /// HTTP version spoken.
    pub fn version(&self) -> Version {
        match self {
            Sender::H1(_) | Sender::Lean(_) => Version::HTTP_11,
            Sender::H2(_) => Version::HTTP_2,
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

/// Timings of opening a connection.
#[derive(Debug, Default, Clone, Copy)]
pub struct DialTimings {
    /// DNS lookup, when the host was a name.
    pub dns: Option<Duration>,
    /// TCP connect.
    pub connect: Option<Duration>,
    /// TLS handshake.
    pub tls: Option<Duration>,
}

/// Open a connection to `origin`, filling `timings` as phases complete (so a timeout still
/// reports the phases that finished).
pub async fn dial(
    origin: &Origin,
    shared: &ClientShared,
    timings: &mut DialTimings,
) -> Result<Conn, Failure> {
    let addrs: Vec<SocketAddr> = match origin.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, origin.port)],
        Err(_) => {
            let t = Instant::now();
            let res = tokio::net::lookup_host((origin.host.as_str(), origin.port)).await;
            timings.dns = Some(t.elapsed());
            let addrs: Vec<SocketAddr> = res.map_err(|e| dns_failure(&origin.host, &e))?.collect();
            if addrs.is_empty() {
                return Err(Failure::new(
                    ErrorKind::Dns,
                    format!("could not resolve host `{}`: no addresses", origin.host),
                ));
            }
            addrs
        }
    };

    let t = Instant::now();
    let mut last_err = None;
    let mut tcp = None;
    for addr in &addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                tcp = Some(s);
                break;
            }
            Err(e) => last_err = Some(e),
        }
    }
    timings.connect = Some(t.elapsed());
    let tcp = match tcp {
        Some(s) => s,
        None => {
            let e = last_err.unwrap_or_else(|| io::Error::other("no address to connect to"));
            return Err(io_failure(&e, "connect"));
        }
    };
    let _ = tcp.set_nodelay(true);
    let counters = Arc::new(IoCounters::default());
    let counting = Counting {
        inner: tcp,
        counters: counters.clone(),
        _open: shared.connections.opened(),
    };

    let (stream, h2) = if origin.tls {
        let t = Instant::now();
        let name = rustls::pki_types::ServerName::try_from(origin.host.clone()).map_err(|_| {
            Failure::new(
                ErrorKind::Tls,
                format!("invalid TLS server name `{}`", origin.host),
            )
        })?;
        let connector = tokio_rustls::TlsConnector::from(shared.tls.clone());
        let tls = connector
            .connect(name, counting)
            .await
            .map_err(|e| tls_failure(&e))?;
        timings.tls = Some(t.elapsed());
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        (Stream::Tls(Box::new(tls)), h2)
    } else {
        (
            Stream::Plain(counting),
            shared.config.version == HttpVersion::Http2PriorKnowledge,
        )
    };

    if !h2 && shared.config.http1 == Http1Codec::Lean {
        return Ok(Conn {
            origin: origin.clone(),
            authority: None,
            sender: Sender::Lean(h1::Connection::new(stream)),
            counters,
            driver: None,
            task: None,
        });
    }
    if h2 {
        // A pooled connection must know the server's stream limit before others share it.
        let (handle, task) = super::h2::handshake(stream, shared.pool.is_some()).await?;
        // What the handshake wrote and read is the connection's, not the first request's
        // (as for HTTP/1.1, whose requests count from after the handshake).
        counters.claim();
        Ok(Conn {
            origin: origin.clone(),
            authority: None,
            sender: Sender::H2(handle),
            counters,
            driver: None,
            task: Some(task),
        })
    } else {
        let io = TokioIo::new(stream);
        let (send, conn) = http1::Builder::new()
            .handshake(io)
            .await
            .map_err(|e| hyper_failure(&e))?;
        Ok(Conn {
            origin: origin.clone(),
            authority: None,
            sender: Sender::H1(send),
            counters,
            driver: Some(Box::pin(conn)),
            task: None,
        })
    }
}

fn dns_failure(host: &str, e: &io::Error) -> Failure {
    Failure::new(
        ErrorKind::Dns,
        format!("could not resolve host `{host}`: {e}"),
    )
}

/// Classify an I/O error; `during` says what was being done.
pub fn io_failure(e: &io::Error, during: &str) -> Failure {
    use io::ErrorKind as K;
    if let Some(kind) = ErrorKind::of_exhaustion(e) {
        return Failure::new(kind, format!("{during} failed: {e}"));
    }
    match e.kind() {
        K::ConnectionRefused => Failure::new(ErrorKind::Refused, "connection refused"),
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe | K::UnexpectedEof => {
            Failure::new(
                ErrorKind::Reset,
                format!("connection reset during {during}"),
            )
        }
        K::TimedOut => Failure::new(ErrorKind::ConnectTimeout, format!("{during} timed out")),
        _ => Failure::new(ErrorKind::Other, format!("{during} failed: {e}")),
    }
}

fn tls_failure(e: &io::Error) -> Failure {
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return Failure::new(ErrorKind::Tls, format!("TLS handshake failed: {inner}"));
    }
    match e.kind() {
        io::ErrorKind::ConnectionReset | io::ErrorKind::UnexpectedEof => Failure::new(
            ErrorKind::Tls,
            "TLS handshake failed: connection closed by peer",
        ),
        _ => Failure::new(ErrorKind::Tls, format!("TLS handshake failed: {e}")),
    }
}

/// Classify a hyper error.
pub fn hyper_failure(e: &hyper::Error) -> Failure {
    if e.is_incomplete_message() || e.is_canceled() || e.is_closed() {
        return Failure::new(
            ErrorKind::Reset,
            "connection closed before the response completed",
        );
    }
    if e.is_parse() || e.is_parse_status() {
        return Failure::new(ErrorKind::Protocol, format!("invalid HTTP response: {e}"));
    }
    if e.is_timeout() {
        return Failure::new(ErrorKind::Timeout, "timed out");
    }
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<io::Error>() {
            // hyper reports broken body framing (chunk sizes, chunk ends) as invalid data or
            // input: the peer spoke broken HTTP, which is not the same as a failing socket.
            if matches!(
                io.kind(),
                io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput
            ) {
                return Failure::new(
                    ErrorKind::Protocol,
                    format!("invalid HTTP response body: {io}"),
                );
            }
            return io_failure(io, "request");
        }
        src = s.source();
    }
    Failure::new(ErrorKind::Protocol, format!("HTTP error: {e}"))
}
