//! A lean HTTP/1.1 client connection: httparse for the response head, framing of our own.
//!
//! hyper's HTTP/1.1 client sends each request through a dispatch channel to its connection
//! task and back; issue #18 measured that as the floor of loadlens's speed (about 2 µs per
//! exchange in memory) and most of its memory per connection (two 9 KB channel blocks). A VU
//! has one request in flight per connection, so none of that is needed: this module owns the
//! socket, writes the request in one write, reads the response head into a read buffer
//! (4 KiB, grown only while a head or a read needs it), and frames the body by
//! `Content-Length`, chunked (extensions and trailers skipped) or the end of the connection,
//! skipping 1xx interim responses. It follows hyper's rules for which responses have a body,
//! how a request body is framed and when a connection can be used again, and
//! `client::h1::tests` runs the same scripted exchanges through both to show it.
//!
//! Memory per user is what limits how many users one process holds (issue #18: 100,000 idle
//! users in under 1 GB), so a connection holds no buffer while nothing is under way: the
//! request buffer lives from the request line to the end of its write, and the read buffer is
//! allocated only once the socket is readable (see [`ReadReady`]) and freed when a response
//! ends with nothing after it. A user that thinks, or waits 50 ms for its response, costs its
//! socket and this struct, not 4.5 KiB of buffers.

#[cfg(test)]
mod tests;

use std::future::poll_fn;
use std::io;
use std::mem::MaybeUninit;
use std::task::{Context, Poll};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Read buffer of a connection when a response starts to arrive.
const INITIAL_BUF: usize = 4 << 10;
/// Request buffer at the start of a request (a head of a few headers fits).
const INITIAL_WBUF: usize = 512;
/// Largest read buffer for body data (larger reads mean fewer syscalls for large bodies).
const MAX_BODY_BUF: usize = 64 << 10;
/// Largest response head (and chunk-size line or trailer section), hyper's own limit.
const MAX_HEAD: usize = 8192 + 4096 * 100;
/// Most header fields in a response head, hyper's own limit.
const MAX_HEADERS: usize = 100;
/// Request bodies up to this size are copied behind the head and sent in the same write.
const BODY_COPY_LIMIT: usize = 64 << 10;

/// Why an exchange failed.
#[derive(Debug)]
pub enum Error {
    /// The connection ended before the response did.
    Incomplete,
    /// The response head is not valid HTTP/1.x.
    Head(String),
    /// The body's framing is broken (chunk sizes, chunk ends).
    Body(String),
    /// The socket failed.
    Io(io::Error),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

/// A final response head.
#[derive(Debug)]
pub struct Head {
    /// Status.
    pub status: StatusCode,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// Header fields: all of them, or only those [`KEPT_ALWAYS`] when the request did not
    /// ask for all (see [`Connection::read_head`]).
    pub headers: HeaderMap,
    /// The first `Content-Length` value as a number, read as the client reads it from a
    /// header map (so the map need not hold it).
    pub content_length: Option<u64>,
}

/// Response header fields kept even when a request does not ask for every field: the client
/// reads them itself (cookies, redirects, decoding).
pub const KEPT_ALWAYS: [HeaderName; 3] = [
    http::header::SET_COOKIE,
    http::header::LOCATION,
    http::header::CONTENT_ENCODING,
];
/// hyper refuses longer header names (`http::HeaderName`'s limit).
const MAX_NAME: usize = (1 << 16) - 1;

/// How the body of the response under way ends.
#[derive(Debug, Clone, Copy)]
enum Framing {
    /// No body left: the response is complete.
    Done,
    /// This many bytes remain.
    Length(u64),
    /// Chunked, in this state.
    Chunked(Chunk),
    /// Until the server closes the connection.
    Close,
}

/// Where the chunked decoder is (the states of RFC 9112 §7.1).
#[derive(Debug, Clone, Copy)]
enum Chunk {
    /// Reading the hex size; `digits` seen so far.
    Size { size: u64, digits: u8 },
    /// Spaces after the size.
    SizeLws(u64),
    /// A chunk extension, skipped (`len` bytes so far).
    Ext(u64, usize),
    /// The `\n` of the size line.
    SizeLf(u64),
    /// Chunk data, this much left.
    Data(u64),
    /// The `\r` after chunk data.
    DataCr,
    /// The `\n` after chunk data.
    DataLf,
    /// The start of a trailer line (or of the final empty line).
    TrailerStart,
    /// Inside a trailer field, skipped (`len` bytes of trailers so far).
    Trailer(usize),
    /// The `\n` of a trailer line.
    TrailerLf,
    /// The `\n` of the final empty line.
    EndLf,
}

/// What the head parser found in the buffer.
enum Parsed {
    /// Not a whole head yet.
    Partial,
    /// A 1xx interim response, consumed.
    Interim,
    /// The final head.
    Final(Head),
}

/// What the chunked decoder found in the buffer.
enum Step {
    /// Body data at `buf[a..b]`.
    Data(usize, usize),
    /// The last chunk and its trailers were read.
    End,
    /// The buffer is used up: read more.
    More,
}

/// A stream that can say when a read would find something, so that a connection can wait for
/// a response without holding a read buffer.
pub trait ReadReady {
    /// Ready when a read would not wait (bytes, the end of the stream, or an error). A stream
    /// that cannot tell says ready at once: the connection then holds its buffer while it
    /// waits.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl ReadReady for tokio::io::DuplexStream {
    fn poll_read_ready(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The request's `Transfer-Encoding` header, and so how its body is framed.
#[derive(Debug, Clone, Copy, PartialEq)]
enum RequestTe {
    /// None: the body goes as it is, after its `Content-Length`.
    None,
    /// Set, but not sent: the body is empty or the server speaks HTTP/1.0.
    Drop,
    /// Sent, the body chunked and no `Content-Length`; `left` values of the header are still to
    /// be written, and the last one gets `, chunked` when `add` (it did not end in `chunked`).
    Chunked { left: usize, add: bool },
}

/// One HTTP/1.1 connection on `S` (plain TCP or TLS), one request at a time.
pub struct Connection<S> {
    io: S,
    /// Read buffer: `buf[start..]` is read but not yet consumed. No capacity while no response
    /// is arriving.
    buf: Vec<u8>,
    start: usize,
    /// Request buffer, from [`Connection::start_request`] to the end of [`Connection::send`]
    /// (no capacity otherwise).
    wbuf: Vec<u8>,
    /// What becomes of the request's own `Transfer-Encoding` (see [`Connection::frame_request`]).
    te: RequestTe,
    body: Framing,
    /// Whether the response under way (and its request) allow another request afterwards.
    keep_alive: bool,
    /// The request asked the server to close.
    request_close: bool,
    /// The request said `Connection: keep-alive`.
    request_keep_alive: bool,
    /// The last response was HTTP/1.0: requests then speak HTTP/1.0 and ask for keep-alive
    /// (as hyper does).
    peer_http10: bool,
    /// Idle and fit for another request.
    reusable: bool,
}

impl<S: AsyncRead + AsyncWrite + ReadReady + Unpin> Connection<S> {
    /// A connection on an open stream.
    pub fn new(io: S) -> Self {
        Connection {
            io,
            buf: Vec::new(),
            start: 0,
            wbuf: Vec::new(),
            te: RequestTe::None,
            body: Framing::Done,
            keep_alive: true,
            request_close: false,
            request_keep_alive: false,
            peer_http10: false,
            reusable: true,
        }
    }

    /// True when the connection is idle and can carry another request. It is false from the
    /// moment a request starts until its response ended on a connection the server keeps open,
    /// so an exchange abandoned half-way (a timeout, a body too large) never leaves it usable.
    pub fn is_reusable(&self) -> bool {
        self.reusable
    }

    /// Start a request: its request line.
    pub fn start_request(&mut self, method: &Method, target: &str) {
        self.reusable = false;
        self.request_close = false;
        self.request_keep_alive = false;
        self.te = RequestTe::None;
        self.wbuf.clear();
        self.wbuf.reserve(INITIAL_WBUF);
        self.wbuf.extend_from_slice(method.as_str().as_bytes());
        self.wbuf.push(b' ');
        self.wbuf
            .extend_from_slice(if target.is_empty() { "/" } else { target }.as_bytes());
        self.wbuf.extend_from_slice(if self.peer_http10 {
            b" HTTP/1.0\r\n"
        } else {
            b" HTTP/1.1\r\n"
        });
    }

    /// Decide how the body of the request started goes on the wire, as hyper does
    /// (`proto::h1::role::Client::set_length`), given all of its header fields and the
    /// length of its body. A request that sets `Transfer-Encoding` has its body sent chunked,
    /// with `chunked` added as the last coding when it is not, and no `Content-Length`; with
    /// an empty body, or to an HTTP/1.0 server, `Transfer-Encoding` is left out. Call before
    /// the header fields; without it they go as they are.
    pub fn frame_request(&mut self, headers: &HeaderMap, body_len: usize) {
        let te = headers.get_all(http::header::TRANSFER_ENCODING);
        self.te = match te.iter().next_back() {
            None => RequestTe::None,
            Some(_) if body_len == 0 || self.peer_http10 => RequestTe::Drop,
            Some(last) => RequestTe::Chunked {
                left: te.iter().count(),
                add: !last_token_is(last.as_bytes(), b"chunked"),
            },
        };
    }

    /// Add a header field to the request started (names as `http` keeps them: lower case,
    /// as hyper writes them).
    pub fn header(&mut self, name: &str, value: &[u8]) {
        if self.te != RequestTe::None {
            if name.eq_ignore_ascii_case("transfer-encoding") {
                match &mut self.te {
                    RequestTe::Chunked { left, add } => {
                        *left = left.saturating_sub(1);
                        if *left == 0 && *add {
                            self.field(name, value);
                            // Before the field's `\r\n`.
                            let at = self.wbuf.len() - 2;
                            self.wbuf.splice(at..at, *b", chunked");
                            return;
                        }
                    }
                    _ => return,
                }
            } else if name.eq_ignore_ascii_case("content-length")
                && matches!(self.te, RequestTe::Chunked { .. })
            {
                return;
            }
        }
        self.field(name, value);
    }

    /// Write one header field.
    fn field(&mut self, name: &str, value: &[u8]) {
        if name.eq_ignore_ascii_case("connection") && has_token(value, b"close") {
            self.request_close = true;
        }
        if name.eq_ignore_ascii_case("connection") && has_token(value, b"keep-alive") {
            self.request_keep_alive = true;
        }
        self.wbuf.extend_from_slice(name.as_bytes());
        self.wbuf.extend_from_slice(b": ");
        self.wbuf.extend_from_slice(value);
        self.wbuf.extend_from_slice(b"\r\n");
    }

    /// End the head, and send it with `body`: in one write unless the body is large. The
    /// request buffer is freed afterwards (memory per waiting user).
    pub async fn send(&mut self, body: &[u8]) -> Result<(), Error> {
        if self.peer_http10 && !self.request_keep_alive && !self.request_close {
            // An HTTP/1.0 server closes after each response unless asked not to.
            self.field("connection", b"keep-alive");
        }
        self.wbuf.extend_from_slice(b"\r\n");
        let chunked = matches!(self.te, RequestTe::Chunked { .. });
        if chunked {
            // One chunk and the last chunk, as hyper frames a body it has whole.
            use std::io::Write as _;
            let _ = write!(self.wbuf, "{:X}\r\n", body.len());
        }
        let result = self.write_body(body, chunked).await;
        self.wbuf = Vec::new();
        result
    }

    async fn write_body(&mut self, body: &[u8], chunked: bool) -> Result<(), Error> {
        let end: &[u8] = if chunked { b"\r\n0\r\n\r\n" } else { b"" };
        if body.len() <= BODY_COPY_LIMIT {
            self.wbuf.extend_from_slice(body);
            self.wbuf.extend_from_slice(end);
            self.io.write_all(&self.wbuf).await?;
        } else {
            self.io.write_all(&self.wbuf).await?;
            self.io.write_all(body).await?;
            self.io.write_all(end).await?;
        }
        self.io.flush().await?;
        Ok(())
    }

    /// Read the final response head to a request with `method`, skipping 1xx interim
    /// responses (100 Continue, 103 Early Hints), and set up the framing of its body. With
    /// `all_headers` false, the head's map holds only the fields in [`KEPT_ALWAYS`]: the
    /// others are validated as hyper validates them, but no map entry is built for them.
    pub async fn read_head(&mut self, method: &Method, all_headers: bool) -> Result<Head, Error> {
        loop {
            if self.start < self.buf.len() {
                match self.parse_head(method, all_headers)? {
                    Parsed::Final(head) => return Ok(head),
                    // Parse what follows it, already read or not.
                    Parsed::Interim => continue,
                    Parsed::Partial => {}
                }
            }
            if !self.fill(MAX_HEAD, true).await? {
                return Err(Error::Incomplete);
            }
        }
    }

    /// The next piece of body data, `None` at the end of the body.
    pub async fn next_data(&mut self) -> Result<Option<&[u8]>, Error> {
        loop {
            match self.body {
                Framing::Done => return Ok(None),
                Framing::Length(0) => {
                    self.complete();
                    return Ok(None);
                }
                Framing::Length(rem) => {
                    if self.start < self.buf.len() {
                        let n = (self.buf.len() - self.start)
                            .min(usize::try_from(rem).unwrap_or(usize::MAX));
                        let a = self.start;
                        self.start += n;
                        self.body = Framing::Length(rem - n as u64);
                        return Ok(Some(&self.buf[a..a + n]));
                    }
                    if !self.fill(MAX_BODY_BUF, false).await? {
                        return Err(Error::Incomplete);
                    }
                }
                Framing::Close => {
                    if self.start < self.buf.len() {
                        let (a, b) = (self.start, self.buf.len());
                        self.start = b;
                        return Ok(Some(&self.buf[a..b]));
                    }
                    if !self.fill(MAX_BODY_BUF, false).await? {
                        self.keep_alive = false;
                        self.complete();
                        return Ok(None);
                    }
                }
                Framing::Chunked(state) => match self.chunk_step(state)? {
                    Step::Data(a, b) => return Ok(Some(&self.buf[a..b])),
                    Step::End => {
                        self.complete();
                        return Ok(None);
                    }
                    Step::More => {
                        if !self.fill(MAX_HEAD, false).await? {
                            return Err(Error::Incomplete);
                        }
                    }
                },
            }
        }
    }

    /// The response ended: decide whether the connection can be used again, and free the
    /// read buffer when nothing follows the response.
    fn complete(&mut self) {
        self.body = Framing::Done;
        let drained = self.start == self.buf.len();
        // Bytes after the response were never asked for: hyper closes such a connection too.
        self.reusable = self.keep_alive && !self.request_close && drained;
        if drained {
            self.buf = Vec::new();
            self.start = 0;
        }
    }

    /// Read more bytes into the buffer, growing it (up to `limit`) only when it is full.
    /// Without a buffer, wait until the socket is readable before taking one. `false` at the
    /// end of the stream.
    async fn fill(&mut self, limit: usize, head: bool) -> Result<bool, Error> {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.buf.len() == self.buf.capacity() && self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.capacity() == 0 {
            let io = &mut self.io;
            poll_fn(move |cx| io.poll_read_ready(cx)).await?;
            self.buf.reserve_exact(INITIAL_BUF);
        } else if self.buf.len() == self.buf.capacity() {
            if self.buf.capacity() >= limit {
                return Err(if head {
                    Error::Head("message head is too large".into())
                } else {
                    Error::Body("chunk size line or trailers too large".into())
                });
            }
            let cap = (self.buf.capacity() * 2).min(limit);
            self.buf.reserve_exact(cap - self.buf.len());
        }
        // Into the spare capacity: nothing is zeroed first.
        let n = self.io.read_buf(&mut self.buf).await?;
        if n == 0 {
            return Ok(false);
        }
        let (len, cap) = (self.buf.len(), self.buf.capacity());
        if !head && len == cap && self.start == 0 && cap < MAX_BODY_BUF {
            // A read filled the whole buffer: more is coming, read it in larger steps.
            self.buf.reserve_exact((cap * 2).min(MAX_BODY_BUF) - len);
        }
        Ok(true)
    }

    /// Parse a head from the buffer.
    fn parse_head(&mut self, method: &Method, all_headers: bool) -> Result<Parsed, Error> {
        // Left uninitialised (as hyper does): zeroing 100 fields is 3.2 KB written for every
        // response (issue #18's slow-case profile).
        let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut resp,
            &self.buf[self.start..],
            &mut fields,
        );
        let n = match parsed {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
            Err(e) => return Err(Error::Head(e.to_string())),
        };
        let code = resp.code.unwrap_or_default();
        let status = StatusCode::from_u16(code)
            .map_err(|_| Error::Head(format!("invalid status {code}")))?;
        let version = if resp.version == Some(0) {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        if status.is_informational() && code != 101 {
            self.start += n;
            return Ok(Parsed::Interim);
        }
        // An empty map does not allocate: a response nobody reads the headers of costs none.
        let mut headers = if all_headers {
            HeaderMap::with_capacity(resp.headers.len())
        } else {
            HeaderMap::new()
        };
        let mut length: Option<u64> = None;
        let mut first_length = None;
        let mut chunked = None;
        let mut conn_close = false;
        let mut conn_keep_alive = false;
        for h in resp.headers.iter() {
            let raw = h.name.as_bytes();
            let keep = all_headers
                || KEPT_ALWAYS
                    .iter()
                    .any(|k| raw.eq_ignore_ascii_case(k.as_str().as_bytes()));
            // httparse accepts exactly the names and values `http` does, but for the
            // length of a name.
            if raw.len() > MAX_NAME {
                return Err(Error::Head(format!("invalid header name `{}`", h.name)));
            }
            if keep {
                let name = HeaderName::from_bytes(raw)
                    .map_err(|_| Error::Head(format!("invalid header name `{}`", h.name)))?;
                let value = HeaderValue::from_bytes(h.value)
                    .map_err(|_| Error::Head(format!("invalid value of header `{}`", h.name)))?;
                headers.append(name, value);
            }
            if raw.eq_ignore_ascii_case(b"content-length") {
                if first_length.is_none() {
                    first_length = Some(
                        std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.parse().ok()),
                    );
                }
                // Every value (comma-separated, repeated fields) must be one same number.
                for part in h.value.split(|b| *b == b',') {
                    let n = parse_length(part)
                        .ok_or_else(|| Error::Head("invalid content-length header".into()))?;
                    if length.is_some_and(|l| l != n) {
                        return Err(Error::Head("conflicting content-length headers".into()));
                    }
                    length = Some(n);
                }
            } else if raw.eq_ignore_ascii_case(b"transfer-encoding") {
                // Only the last coding says whether the body is chunked.
                chunked = Some(last_token_is(h.value, b"chunked"));
            } else if raw.eq_ignore_ascii_case(b"connection") {
                conn_close |= has_token(h.value, b"close");
                conn_keep_alive |= has_token(h.value, b"keep-alive");
            }
        }
        self.start += n;
        self.peer_http10 = version == Version::HTTP_10;
        self.keep_alive = if version == Version::HTTP_10 {
            conn_keep_alive && !conn_close
        } else {
            !conn_close
        };
        self.body = if *method == Method::HEAD || code == 204 || code == 304 {
            Framing::Length(0)
        } else if code == 101 {
            // Switching protocols: nothing after this is HTTP/1.1 any more.
            self.keep_alive = false;
            Framing::Length(0)
        } else if let Some(chunked) = chunked {
            if version == Version::HTTP_10 {
                return Err(Error::Head(
                    "transfer-encoding in an HTTP/1.0 response".into(),
                ));
            }
            if chunked {
                Framing::Chunked(Chunk::Size { size: 0, digits: 0 })
            } else {
                Framing::Close
            }
        } else if let Some(len) = length {
            Framing::Length(len)
        } else {
            Framing::Close
        };
        if matches!(self.body, Framing::Close) {
            self.keep_alive = false;
        }
        Ok(Parsed::Final(Head {
            status,
            version,
            headers,
            content_length: first_length.flatten(),
        }))
    }

    /// Run the chunked decoder over the buffered bytes.
    fn chunk_step(&mut self, mut state: Chunk) -> Result<Step, Error> {
        let bad = |m: &str| Err(Error::Body(m.to_owned()));
        loop {
            if let Chunk::Data(rem) = state {
                if rem == 0 {
                    state = Chunk::DataCr;
                    continue;
                }
                if self.start == self.buf.len() {
                    self.body = Framing::Chunked(state);
                    return Ok(Step::More);
                }
                let n =
                    (self.buf.len() - self.start).min(usize::try_from(rem).unwrap_or(usize::MAX));
                let a = self.start;
                self.start += n;
                self.body = Framing::Chunked(Chunk::Data(rem - n as u64));
                return Ok(Step::Data(a, a + n));
            }
            if self.start == self.buf.len() {
                self.body = Framing::Chunked(state);
                return Ok(Step::More);
            }
            let b = self.buf[self.start];
            self.start += 1;
            state = match state {
                Chunk::Size { size, digits } => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                        let Some(size) = size.checked_mul(16).and_then(|s| s.checked_add(d)) else {
                            return bad("invalid chunk size: overflow");
                        };
                        Chunk::Size {
                            size,
                            digits: digits.saturating_add(1),
                        }
                    }
                    _ if digits == 0 => return bad("invalid chunk size line: missing size digit"),
                    b'\t' | b' ' => Chunk::SizeLws(size),
                    b';' => Chunk::Ext(size, 0),
                    b'\r' => Chunk::SizeLf(size),
                    _ => return bad("invalid chunk size line"),
                },
                Chunk::SizeLws(size) => match b {
                    b'\t' | b' ' => Chunk::SizeLws(size),
                    b';' => Chunk::Ext(size, 0),
                    b'\r' => Chunk::SizeLf(size),
                    _ => return bad("invalid chunk size linear white space"),
                },
                Chunk::Ext(size, len) => match b {
                    b'\r' => Chunk::SizeLf(size),
                    b'\n' => return bad("invalid chunk extension contains newline"),
                    _ if len >= MAX_HEAD => return bad("chunk extensions too large"),
                    _ => Chunk::Ext(size, len + 1),
                },
                Chunk::SizeLf(size) => match b {
                    b'\n' if size == 0 => Chunk::TrailerStart,
                    b'\n' => Chunk::Data(size),
                    _ => return bad("invalid chunk size LF"),
                },
                Chunk::DataCr => match b {
                    b'\r' => Chunk::DataLf,
                    _ => return bad("invalid chunk body CR"),
                },
                Chunk::DataLf => match b {
                    b'\n' => Chunk::Size { size: 0, digits: 0 },
                    _ => return bad("invalid chunk body LF"),
                },
                Chunk::TrailerStart => match b {
                    b'\r' => Chunk::EndLf,
                    _ => Chunk::Trailer(1),
                },
                Chunk::Trailer(len) => match b {
                    b'\r' => Chunk::TrailerLf,
                    _ if len >= MAX_HEAD => return bad("chunk trailers too large"),
                    _ => Chunk::Trailer(len + 1),
                },
                Chunk::TrailerLf => match b {
                    b'\n' => Chunk::TrailerStart,
                    _ => return bad("invalid trailer end LF"),
                },
                Chunk::EndLf => match b {
                    b'\n' => return Ok(Step::End),
                    _ => return bad("invalid chunk end LF"),
                },
                Chunk::Data(_) => unreachable!("handled above"),
            };
        }
    }
}

/// A `Content-Length` value: digits only, as hyper accepts it.
fn parse_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |n, b| {
        b.is_ascii_digit()
            .then(|| n.checked_mul(10)?.checked_add(u64::from(b - b'0')))?
    })
}

/// Whether the comma-separated list `v` holds `token` (case-insensitive).
fn has_token(v: &[u8], token: &[u8]) -> bool {
    v.split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Whether the last element of the comma-separated list `v` is `token`.
fn last_token_is(v: &[u8], token: &[u8]) -> bool {
    v.rsplit(|b| *b == b',')
        .next()
        .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}
