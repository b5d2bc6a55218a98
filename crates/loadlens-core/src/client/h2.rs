//! HTTP/2 on the `h2` crate directly (the crate hyper's own HTTP/2 is built on).
//!
//! Used instead of hyper's HTTP/2 client for two reasons measured or needed here:
//! - it tells the server's `SETTINGS_MAX_CONCURRENT_STREAMS` (`current_max_send_streams`),
//!   which the shared connection pool (`pool`) must respect, where hyper's `SendRequest` does
//!   not;
//! - a request goes straight onto the connection's stream table: hyper adds a dispatch channel
//!   and a task hop per request in front of the same `h2` calls.
//!
//! The connection future runs in a task of its own (HTTP/2 must answer pings and window
//! updates at any time); a [`Handle`] sends requests on it and sees when it has ended.

use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName};

use super::conn::{io_failure, Stream};
use crate::sample::{ErrorKind, Failure};

/// Stream receive window: what hyper's client uses (2 MiB), so one stream is not held back
/// by the protocol's 64 KiB default on a fast network.
const STREAM_WINDOW: u32 = 2 << 20;
/// Connection receive window: hyper's client default (5 MiB), shared by the streams.
const CONN_WINDOW: u32 = 5 << 20;

/// The request half of an HTTP/2 connection; cheap to clone (every clone multiplexes onto the
/// same connection).
#[derive(Clone)]
pub struct Handle {
    send: h2::client::SendRequest<Bytes>,
    closed: Arc<AtomicBool>,
}

impl Handle {
    /// True once the connection has ended (GOAWAY handled, socket closed or broken).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Stop choosing this connection for new requests (a request on it failed as if it was
    /// closed). Its streams in flight go on.
    pub fn mark_closed(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Most streams the server lets this client open at once (its
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`; unlimited when it sent none).
    pub fn server_max_streams(&self) -> usize {
        self.send.current_max_send_streams()
    }
}

/// An HTTP/2 response head and its body stream.
pub struct Response {
    /// Status, version and headers.
    pub head: http::response::Parts,
    /// The body.
    pub body: Body,
}

/// The body of an HTTP/2 response: data frames, each released back to the server's flow
/// control once taken.
pub struct Body {
    recv: h2::RecvStream,
    frame: Bytes,
}

impl Body {
    /// The next piece of body data, `None` at its end.
    pub async fn next(&mut self) -> Result<Option<&[u8]>, Failure> {
        loop {
            match self.recv.data().await {
                None => return Ok(None),
                Some(Ok(data)) => {
                    // Give the window back at once: the data is already ours, and a stream
                    // that withholds it stalls the whole connection's window.
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    if data.is_empty() {
                        continue;
                    }
                    self.frame = data;
                    return Ok(Some(&self.frame[..]));
                }
                Some(Err(e)) => return Err(failure(&e)),
            }
        }
    }
}

/// Start HTTP/2 on an open stream (after TLS, if any). With `wait_settings`, return only
/// once the server's SETTINGS are known (one PING round trip after the preface), so that
/// [`Handle::server_max_streams`] gives the server's limit rather than the protocol default.
pub async fn handshake(
    io: Stream,
    wait_settings: bool,
) -> Result<(Handle, tokio::task::JoinHandle<()>), Failure> {
    let (send, mut conn) = h2::client::Builder::new()
        .enable_push(false)
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONN_WINDOW)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(|e| failure(&e))?;
    let ping = if wait_settings {
        conn.ping_pong()
    } else {
        None
    };
    let closed = Arc::new(AtomicBool::new(false));
    let ended = closed.clone();
    let task = tokio::spawn(async move {
        let _ = conn.await;
        ended.store(true, Ordering::Release);
    });
    if let Some(mut ping) = ping {
        // The server's SETTINGS is the first frame it sends: by the time our PING is
        // answered, its limits are applied.
        ping.ping(h2::Ping::opaque())
            .await
            .map_err(|e| failure(&e))?;
    }
    Ok((Handle { send, closed }, task))
}

/// Headers HTTP/2 forbids (RFC 9113 §8.2.2): `h2` refuses a request that carries one, hyper
/// drops them silently; so do we, since `-H 'Connection: close'` means nothing here.
fn strip_connection_headers(headers: &mut HeaderMap) {
    const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
    const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
    for name in [
        http::header::CONNECTION,
        http::header::TRANSFER_ENCODING,
        http::header::UPGRADE,
        http::header::HOST,
        KEEP_ALIVE,
        PROXY_CONNECTION,
    ] {
        headers.remove(name);
    }
    if headers
        .get(http::header::TE)
        .is_some_and(|v| v.as_bytes() != b"trailers")
    {
        headers.remove(http::header::TE);
    }
}

/// Why a request failed, and whether it never reached the server (then another connection
/// may carry it again).
pub struct SendError {
    /// The failure.
    pub failure: Failure,
    /// The server has not seen the request: the connection was already gone, or the server
    /// refused the stream (`REFUSED_STREAM`, or above a GOAWAY's last stream id).
    pub unsent: bool,
}

/// Send one request (head, then its body if any) and wait for the response head.
pub async fn send(
    handle: &mut Handle,
    mut req: http::Request<()>,
    body: Bytes,
) -> Result<Response, SendError> {
    strip_connection_headers(req.headers_mut());
    let unsent = |e: h2::Error| SendError {
        failure: failure(&e),
        unsent: true,
    };
    poll_fn(|cx| handle.send.poll_ready(cx))
        .await
        .map_err(unsent)?;
    let (resp, mut stream) = handle
        .send
        .send_request(req, body.is_empty())
        .map_err(unsent)?;
    if !body.is_empty() {
        // Buffered by h2 and sent as the stream's window allows.
        stream.send_data(body, true).map_err(|e| SendError {
            failure: failure(&e),
            unsent: false,
        })?;
    }
    match resp.await {
        Ok(r) => {
            let (head, recv) = r.into_parts();
            Ok(Response {
                head,
                body: Body {
                    recv,
                    frame: Bytes::new(),
                },
            })
        }
        Err(e) => {
            let refused = e.reason() == Some(h2::Reason::REFUSED_STREAM)
                || (e.is_go_away() && e.is_remote() && e.reason() == Some(h2::Reason::NO_ERROR));
            Err(SendError {
                failure: failure(&e),
                unsent: refused,
            })
        }
    }
}

/// Classify an `h2` error in the same kinds as hyper's (`conn::hyper_failure`).
pub fn failure(e: &h2::Error) -> Failure {
    if let Some(io) = e.get_io() {
        return io_failure(io, "request");
    }
    let reason = e.reason().unwrap_or(h2::Reason::INTERNAL_ERROR);
    if e.is_go_away() {
        return Failure::new(
            ErrorKind::Reset,
            format!("HTTP/2 connection closed by GOAWAY ({reason}) before the response completed"),
        );
    }
    if e.is_reset() {
        return Failure::new(
            ErrorKind::Reset,
            format!("HTTP/2 stream reset by the server ({reason})"),
        );
    }
    if e.is_library() || reason == h2::Reason::PROTOCOL_ERROR {
        return Failure::new(ErrorKind::Protocol, format!("HTTP/2 protocol error: {e}"));
    }
    Failure::new(ErrorKind::Reset, format!("HTTP/2 error: {e}"))
}
