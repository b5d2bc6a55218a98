//! The built-in demo target: a small, fast HTTP service with the storefront, orders, checkout and
//! search API of the seed scripts, used by `loadlens demo-target`, `loadlens demo`, benchmarks and
//! tests.
//!
//! Latency and failures are tunable per route ([`DemoConfig`]), so a demo shows a realistic
//! latency spread and an error catalogue. `GET /__stats` returns the server-side request counts,
//! which tests compare with the load generator's. It speaks HTTP/1.1 with keep-alive and HTTP/2
//! cleartext with prior knowledge, chosen per connection by peeking at the first bytes.
//!
//! ```text
//! loadlens demo-target --port 8080 --route-latency '/api/v1/checkout=lognormal(80ms,400ms)'
//! ```

mod api;
mod config;
mod gate;
mod handlers;
#[cfg(test)]
mod tests;
mod trace;
#[cfg(test)]
mod trace_tests;

use std::future::Future;
use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

// Part of the public API even where the rest of the binary does not name them yet.
#[allow(unused_imports)]
pub use config::{DemoConfig, DemoConfigError, Latency};
#[allow(unused_imports)]
pub use trace::Operation;

/// How long in-flight connections get to finish once the server is stopped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);
/// How long a new connection may stay silent before it is dropped (also hyper's header timeout).
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(30);
/// What an HTTP/2 client with prior knowledge sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Options of `loadlens demo-target`, every flag with an env twin.
#[derive(clap::Args, Debug, Clone)]
pub struct DemoTargetArgs {
    /// Address to bind (loopback by default).
    #[arg(long, env = "LOADLENS_DEMO_HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to bind; 0 picks a free port.
    #[arg(long, env = "LOADLENS_DEMO_PORT", default_value_t = 0)]
    pub port: u16,
    /// Added latency for every route, e.g. `lognormal(20ms,60ms)`; also `0`, `fixed(10ms)`,
    /// `uniform(5ms,20ms)`, `normal(20ms,5ms)`. Replaces the built-in per-route defaults.
    #[arg(long, env = "LOADLENS_DEMO_LATENCY")]
    pub latency: Option<String>,
    /// Per-route latency, `ROUTE=DIST` (e.g. `/api/v1/checkout=lognormal(80ms,400ms)`),
    /// repeatable; the env twin separates entries with `;`.
    #[arg(
        long = "route-latency",
        env = "LOADLENS_DEMO_ROUTE_LATENCY",
        value_delimiter = ';'
    )]
    pub route_latency: Vec<String>,
    /// Fraction of responses that fail with 500, e.g. `0.01`. Replaces the built-in defaults.
    #[arg(long, env = "LOADLENS_DEMO_ERROR_RATE")]
    pub error_rate: Option<f64>,
    /// Per-route error rate, `ROUTE=0.05`, repeatable; the env twin separates entries with `;`.
    #[arg(
        long = "route-error-rate",
        env = "LOADLENS_DEMO_ROUTE_ERROR_RATE",
        value_delimiter = ';'
    )]
    pub route_error_rate: Vec<String>,
    /// Follow a feature gate: poll this URL (a Statsig Console API gate, or any JSON with
    /// `isEnabled`) and add `--gate-latency` to every response while the gate is on.
    #[arg(long, env = "LOADLENS_DEMO_GATE_URL", value_name = "URL")]
    pub gate_url: Option<String>,
    /// Header sent when reading the gate, `Name: value` (repeatable; the env twin separates
    /// entries with `;`), e.g. `STATSIG-API-KEY: console-…`.
    #[arg(
        long = "gate-header",
        env = "LOADLENS_DEMO_GATE_HEADERS",
        value_delimiter = ';'
    )]
    pub gate_header: Vec<String>,
    /// Added latency while the gate is on (default `fixed(50ms)`).
    #[arg(long, env = "LOADLENS_DEMO_GATE_LATENCY")]
    pub gate_latency: Option<String>,
    /// Send the demo target's own spans (a server span per sampled request, its cache,
    /// database and pricing calls) over OTLP http/protobuf to this base URL, e.g.
    /// `http://127.0.0.1:4318` (`/v1/traces` is added).
    #[arg(long = "otlp-endpoint", env = "LOADLENS_DEMO_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Latency of a simulated operation, `OP=DIST` with OP `cache`, `db` or `pricing` (e.g.
    /// `db=lognormal(4ms,20ms)`), repeatable; the env twin separates entries with `;`.
    #[arg(
        long = "op-latency",
        env = "LOADLENS_DEMO_OP_LATENCY",
        value_delimiter = ';'
    )]
    pub op_latency: Vec<String>,
    /// Make one simulated operation slow (`cache`, `db` or `pricing`): `lognormal(150ms,300ms)`.
    #[arg(long, env = "LOADLENS_DEMO_SLOW")]
    pub slow: Option<String>,
}

impl Default for DemoTargetArgs {
    /// Loopback, a free port, the built-in latency and error defaults.
    fn default() -> Self {
        Self {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            latency: None,
            route_latency: Vec::new(),
            error_rate: None,
            route_error_rate: Vec::new(),
            gate_url: None,
            gate_header: Vec::new(),
            gate_latency: None,
            otlp_endpoint: None,
            op_latency: Vec::new(),
            slow: None,
        }
    }
}

/// A bound demo target, ready to [`serve`](DemoTarget::serve).
pub struct DemoTarget {
    listener: TcpListener,
    local_addr: SocketAddr,
    state: Arc<api::State>,
    exporter: Option<trace::Exporter>,
}

impl DemoTarget {
    /// Binds the listening socket (port 0 picks a free port); serving starts with `serve`.
    pub async fn bind(addr: SocketAddr, config: DemoConfig) -> std::io::Result<DemoTarget> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let (state, exporter) = api::State::new(config);
        Ok(Self {
            listener,
            local_addr,
            state: Arc::new(state),
            exporter,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `stop` is cancelled; in-flight connections are then closed gracefully, within
    /// about a second, and the spans still queued are exported within two more.
    pub async fn serve(self, stop: CancellationToken) {
        // Stopped after the connections, so that the spans of their last requests go out too.
        let exporter_stop = CancellationToken::new();
        let exporter = self
            .exporter
            .map(|e| tokio::spawn(e.run(exporter_stop.clone())));
        let mut connections = JoinSet::new();
        if let Some(knob) = self.state.gate() {
            connections.spawn(gate::poll(knob.clone(), stop.clone()));
        }
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let state = Arc::clone(&self.state);
                        connections.spawn(serve_connection(stream, state, stop.clone()));
                    }
                    Err(e) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "Demo target failed to accept a connection.");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(self.listener);
        let drain = async { while connections.join_next().await.is_some() {} };
        // Each connection bounds its own shutdown; the margin only covers scheduling.
        let _ = tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_millis(250), drain).await;
        exporter_stop.cancel();
        if let Some(exporter) = exporter {
            let _ = exporter.await;
        }
    }
}

async fn serve_connection(stream: TcpStream, state: Arc<api::State>, stop: CancellationToken) {
    let _ = stream.set_nodelay(true);
    let is_h2 = tokio::select! {
        sniffed = tokio::time::timeout(FIRST_BYTES_TIMEOUT, sniff_h2(&stream)) => match sniffed {
            Ok(Some(is_h2)) => is_h2,
            _ => return,
        },
        () = stop.cancelled() => return,
    };
    let service = service_fn(move |request| api::handle(Arc::clone(&state), request));
    let io = TokioIo::new(stream);
    if is_h2 {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        let connection = builder
            .timer(TokioTimer::new())
            .serve_connection(io, service);
        drive(connection, |c| c.graceful_shutdown(), &stop).await;
    } else {
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(FIRST_BYTES_TIMEOUT);
        let connection = builder.serve_connection(io, service);
        drive(connection, |c| c.graceful_shutdown(), &stop).await;
    }
}

/// Tells an HTTP/2 prior-knowledge connection from HTTP/1 by peeking at its first bytes; `None`
/// when the peer closes first. No HTTP/1 method starts with `PRI`, so one byte usually decides.
async fn sniff_h2(stream: &TcpStream) -> Option<bool> {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = stream.peek(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        if buf[..n] != H2_PREFACE[..n] {
            return Some(false);
        }
        if n == H2_PREFACE.len() {
            return Some(true);
        }
        // A preface split across segments: peek returns at once, so wait for the rest.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Runs a hyper connection; on `stop`, asks it to finish in-flight requests and gives it
/// `SHUTDOWN_GRACE` before dropping it.
async fn drive<C>(connection: C, graceful: impl FnOnce(Pin<&mut C>), stop: &CancellationToken)
where
    C: Future<Output = hyper::Result<()>>,
{
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stop.cancelled() => {
            graceful(connection.as_mut());
            match tokio::time::timeout(SHUTDOWN_GRACE, connection).await {
                Ok(result) => result,
                Err(_) => return,
            }
        }
    };
    if let Err(e) = result {
        tracing::trace!(error = %e, "Demo target connection ended with an error.");
    }
}

/// `loadlens demo-target`: binds, prints exactly one line `listening on http://ADDR` to stdout,
/// and serves until Ctrl-C (or SIGTERM).
pub async fn run(args: DemoTargetArgs) -> anyhow::Result<()> {
    let config = DemoConfig::from_args(&args)?;
    let addr = SocketAddr::new(args.host, args.port);
    let target = DemoTarget::bind(addr, config)
        .await
        .with_context(|| format!("cannot bind the demo target to {addr}"))?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{}", target.local_addr())?;
    stdout.flush()?;
    drop(stdout);

    let stop = CancellationToken::new();
    let mut stop_signals = crate::signals::StopSignals::new();
    let signals = tokio::spawn({
        let stop = stop.clone();
        async move {
            stop_signals.next().await;
            stop.cancel();
        }
    });
    target.serve(stop).await;
    signals.abort();
    Ok(())
}
