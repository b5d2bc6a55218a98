//! The measurement of one request: what the request path hands to the recorder.
//!
//! A [`Sample`] is small and cheap to build; the VU fills it and passes it by value to the
//! [`Recorder`](crate::stats::Recorder), which folds it into histograms and counters at once.

use std::fmt;
use std::time::{Duration, SystemTime};

/// Index of an interned `(method, request name)` pair in the plan's [`NameTable`](crate::plan::NameTable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameId(pub u32);

/// Connection-phase timings. `None` means the phase did not happen for this request
/// (no DNS lookup for an IP literal, no connect/TLS on a reused connection).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Phases {
    /// Name resolution.
    pub dns: Option<Duration>,
    /// TCP connect.
    pub connect: Option<Duration>,
    /// TLS handshake.
    pub tls: Option<Duration>,
    /// From the first byte written to the response headers received.
    pub ttfb: Option<Duration>,
    /// From the response headers to the last body byte.
    pub download: Option<Duration>,
}

/// What went wrong with a request, grouped for the error catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The host name could not be resolved.
    Dns,
    /// The target refused the TCP connection.
    Refused,
    /// The connection was reset or closed before the response completed.
    Reset,
    /// Connecting (DNS + TCP + TLS) took longer than the connect timeout.
    ConnectTimeout,
    /// The request took longer than the request timeout.
    Timeout,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The peer spoke broken HTTP (malformed head, bad chunked framing, undecodable body).
    Protocol,
    /// A response body that checks or captures need was larger than the client's
    /// `max_body_size`; the rest of it was not read.
    BodyTooLarge,
    /// Redirects went on beyond `max_redirects` (a redirect loop, usually).
    TooManyRedirects,
    /// The response status counts as a failure (4xx/5xx unless a check says otherwise).
    Status,
    /// A check on the response failed.
    Check,
    /// The request could not be built (bad URL, missing variable).
    Request,
    /// The run stopped while the request was in flight and the stop timeout ran out (or a
    /// second Ctrl-C stopped at once): the response never completed.
    Interrupted,
    /// The generator's machine ran out of something the request needs: file descriptors
    /// (`EMFILE`, `ENFILE`), ephemeral ports (`EADDRNOTAVAIL`), socket buffers (`ENOBUFS`) or
    /// memory. The target was not reached; the user backs off before its next request.
    Resource,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// The kind named `name` by [`ErrorKind::as_str`] (reading a result file back).
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        use ErrorKind::*;
        [
            Dns,
            Refused,
            Reset,
            ConnectTimeout,
            Timeout,
            Tls,
            Protocol,
            BodyTooLarge,
            TooManyRedirects,
            Status,
            Check,
            Request,
            Interrupted,
            Resource,
            Other,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }

    /// Stable lowercase name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Dns => "dns",
            ErrorKind::Refused => "refused",
            ErrorKind::Reset => "reset",
            ErrorKind::ConnectTimeout => "connect_timeout",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Tls => "tls",
            ErrorKind::Protocol => "protocol",
            ErrorKind::BodyTooLarge => "body_too_large",
            ErrorKind::TooManyRedirects => "too_many_redirects",
            ErrorKind::Status => "status",
            ErrorKind::Check => "check",
            ErrorKind::Request => "request",
            ErrorKind::Interrupted => "interrupted",
            ErrorKind::Resource => "resource",
            ErrorKind::Other => "other",
        }
    }

    /// The kind of an I/O error that means the local machine is out of resources
    /// ([`ErrorKind::Resource`]), if it is one.
    pub fn of_exhaustion(e: &std::io::Error) -> Option<ErrorKind> {
        // Descriptor errors have no stable `io::ErrorKind`; their numbers are the same on
        // Linux, macOS and the BSDs. ENOBUFS differs.
        const ENFILE: i32 = 23;
        const EMFILE: i32 = 24;
        const ENOBUFS: i32 = if cfg!(target_os = "linux") { 105 } else { 55 };
        let exhausted = matches!(
            e.kind(),
            std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::OutOfMemory
        ) || matches!(e.raw_os_error(), Some(ENFILE | EMFILE | ENOBUFS));
        exhausted.then_some(ErrorKind::Resource)
    }

    /// True for errors of the transport (no HTTP response was received).
    pub fn is_transport(self) -> bool {
        !matches!(
            self,
            ErrorKind::Status | ErrorKind::Check | ErrorKind::Request
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed request: its kind and a readable message without per-request noise, so that
/// equal failures group together in the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Group of the failure.
    pub kind: ErrorKind,
    /// Human-readable reason, e.g. `HTTP 503 Service Unavailable` or `connection refused`.
    pub message: String,
}

impl Failure {
    /// Longest message kept, in bytes (ellipsis included): a message can quote a templated
    /// URL or a response, and must not carry megabytes into every report and span.
    pub const MAX_MESSAGE_BYTES: usize = 512;

    /// A failure of `kind` with `message`, cut to [`Failure::MAX_MESSAGE_BYTES`].
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > Self::MAX_MESSAGE_BYTES {
            message = truncate_message(&message).into_owned();
        }
        Failure { kind, message }
    }
}

/// `message` cut to [`Failure::MAX_MESSAGE_BYTES`] (a final `…` included) at a character
/// boundary.
pub(crate) fn truncate_message(message: &str) -> std::borrow::Cow<'_, str> {
    const ELLIPSIS: &str = "…";
    if message.len() <= Failure::MAX_MESSAGE_BYTES {
        return message.into();
    }
    let mut end = Failure::MAX_MESSAGE_BYTES - ELLIPSIS.len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{ELLIPSIS}", &message[..end]).into()
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// W3C trace identity of a request, when tracing is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceIds {
    /// 16-byte trace id.
    pub trace_id: u128,
    /// 8-byte id of the client span of this request.
    pub span_id: u64,
    /// Whether the trace is sampled.
    pub sampled: bool,
}

/// Trace propagation settings (`--otel`): every request gets a W3C `traceparent` carrying its
/// own client span's ids, and a `baggage` header identifying the run as synthetic traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSettings {
    /// Fraction of traces sampled (0..=1), decided from the trace id like OpenTelemetry's
    /// `TraceIdRatioBased` sampler, so every hop agrees.
    pub ratio: f64,
    /// The `baggage` header value, e.g. `loadtest.run_id=…,loadtest.synthetic=true`.
    pub baggage: String,
    /// The same, ready to send.
    pub baggage_value: http::HeaderValue,
    /// Trace ids whose lower 8 bytes are below this are sampled (from `ratio`, once).
    bound: u64,
}

impl TraceSettings {
    /// Settings for `run_id` sampling `ratio` of the traces.
    pub fn new(run_id: &str, ratio: f64) -> Self {
        // A baggage value is percent-encoded (W3C Baggage); the unreserved characters stay.
        let id = crate::encoding::encode(run_id, crate::encoding::Set::Component);
        let baggage = format!("loadtest.run_id={id},loadtest.synthetic=true");
        let ratio = ratio.clamp(0.0, 1.0);
        TraceSettings {
            ratio,
            bound: (ratio * (u64::MAX as f64)) as u64,
            // Percent-encoded above, so always a valid header value.
            baggage_value: http::HeaderValue::from_str(&baggage)
                .unwrap_or_else(|_| http::HeaderValue::from_static("loadtest.synthetic=true")),
            baggage,
        }
    }

    /// New ids for one request's client span, with the sampling decision.
    #[inline]
    pub fn ids(&self, rng: &mut fastrand::Rng) -> TraceIds {
        // Two 64-bit draws are cheaper than a ranged 128-bit one; all-zero ids are invalid.
        let high = rng.u64(..);
        let low = rng.u64(..).max(u64::from(high == 0));
        let trace_id = (u128::from(high) << 64) | u128::from(low);
        // OpenTelemetry's ratio sampler compares the lower 8 bytes of the trace id.
        TraceIds {
            trace_id,
            span_id: rng.u64(1..),
            sampled: self.ratio >= 1.0 || (self.ratio > 0.0 && low < self.bound),
        }
    }

    /// Give a request the trace headers once, before the run: `baggage` (appended to the
    /// request's own, if it has one) and a `traceparent` placeholder that each send replaces
    /// with the request's own ids. The header map then has its final size, so the per-request
    /// copy needs no growing and no lookup of the baggage.
    pub fn prepare(&self, headers: &mut http::HeaderMap) {
        self.merge_baggage(headers);
        headers.insert(TRACEPARENT, http::HeaderValue::from_static(PLACEHOLDER));
    }

    /// Append this run's baggage to the request's `baggage` header, or add it (a `baggage`
    /// that already says `loadtest.synthetic=` is left as it is).
    pub fn merge_baggage(&self, headers: &mut http::HeaderMap) {
        let merged = headers
            .get(BAGGAGE)
            .and_then(|b| b.to_str().ok())
            .filter(|b| !b.contains("loadtest.synthetic="))
            .and_then(|b| http::HeaderValue::from_str(&format!("{b},{}", self.baggage)).ok());
        match merged {
            Some(v) => headers.insert(BAGGAGE, v),
            None if headers.contains_key(BAGGAGE) => None,
            None => headers.insert(BAGGAGE, self.baggage_value.clone()),
        };
    }
}

/// The W3C trace-context header.
pub const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");
/// The W3C baggage header.
pub const BAGGAGE: http::HeaderName = http::HeaderName::from_static("baggage");
/// What [`TraceSettings::prepare`] puts in `traceparent` until a send sets the real ids
/// (never sent: a traced send always replaces it).
const PLACEHOLDER: &str = match std::str::from_utf8(PLACEHOLDER_BYTES) {
    Ok(s) => s,
    Err(_) => panic!("ASCII"),
};

const PLACEHOLDER_BYTES: &[u8; 55] = b"00-00000000000000000000000000000000-0000000000000000-00";

/// Lower-case hex digits of `v` into `out` (16 bytes), two digits per table lookup.
#[inline]
fn hex_u64(out: &mut [u8], v: u64) {
    const PAIRS: [[u8; 2]; 256] = {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut t = [[0u8; 2]; 256];
        let mut i = 0;
        while i < 256 {
            t[i] = [HEX[i >> 4], HEX[i & 0xf]];
            i += 1;
        }
        t
    };
    for (pair, byte) in out.chunks_exact_mut(2).zip(v.to_be_bytes()) {
        pair.copy_from_slice(&PAIRS[byte as usize]);
    }
}

impl TraceIds {
    /// The W3C `traceparent` header value, formatted without allocating (one per request).
    #[inline]
    pub fn traceparent_bytes(&self) -> [u8; 55] {
        let mut out = *PLACEHOLDER_BYTES;
        hex_u64(&mut out[3..19], (self.trace_id >> 64) as u64);
        hex_u64(&mut out[19..35], self.trace_id as u64);
        hex_u64(&mut out[36..52], self.span_id);
        out[54] = if self.sampled { b'1' } else { b'0' };
        out
    }

    /// The W3C `traceparent` header value.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

/// The measurement of one request.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Interned `(method, name)`.
    pub name: NameId,
    /// Wall-clock time at which the request was actually started.
    pub started_at: SystemTime,
    /// Response time: from the start (the intended start in the open model) to the last byte.
    pub total: Duration,
    /// Actual minus intended start (open model); zero in the closed model.
    pub schedule_delay: Duration,
    /// Connection phases.
    pub phases: Phases,
    /// HTTP status, if a response arrived.
    pub status: Option<u16>,
    /// Bytes written to the connection for this request (headers and body, on the wire).
    pub bytes_sent: u64,
    /// Bytes read from the connection for this request (on the wire).
    pub bytes_received: u64,
    /// Length of the (decoded) response body, as Locust's "content size".
    pub content_length: u64,
    /// Whether this request opened a new connection.
    pub new_connection: bool,
    /// `None` when the request succeeded.
    pub failure: Option<Failure>,
    /// Checks that passed on this response.
    pub checks_passed: u16,
    /// Checks that failed (or could not run because no response came).
    pub checks_failed: u16,
    /// Trace identity, when tracing is on.
    pub trace: Option<TraceIds>,
    /// The VU that sent it.
    pub vu: u64,
    /// Index of the scenario that sent it, in the order given to
    /// [`crate::executor::Executor::scenarios`] (0 in a plain run).
    pub scenario: u16,
    /// Index of the VU's user type in its scenario's plan (a named scenario's plan keeps only
    /// its own user types, so the same index names different types in different scenarios).
    pub user_type: u16,
    /// Index of the task in the user type, [`Sample::NO_TASK`] for `on_start`/`on_stop`.
    pub task: u16,
    /// The full URL sent, kept only for sampled traces (exporters need it).
    pub url: Option<String>,
    /// HTTP version of the response (`1.1`, `2`).
    pub protocol: Option<&'static str>,
}

impl Sample {
    /// The task index of requests made by `on_start` / `on_stop`.
    pub const NO_TASK: u16 = u16::MAX;

    /// A sample for a request that failed before anything was sent.
    pub fn failed_before_send(name: NameId, failure: Failure) -> Self {
        Sample {
            name,
            started_at: SystemTime::now(),
            total: Duration::ZERO,
            schedule_delay: Duration::ZERO,
            phases: Phases::default(),
            status: None,
            bytes_sent: 0,
            bytes_received: 0,
            content_length: 0,
            new_connection: false,
            failure: Some(failure),
            checks_passed: 0,
            checks_failed: 0,
            trace: None,
            vu: 0,
            scenario: 0,
            user_type: 0,
            task: Self::NO_TASK,
            url: None,
            protocol: None,
        }
    }

    /// True when the request failed.
    pub fn is_failure(&self) -> bool {
        self.failure.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_and_ratio_sampling() {
        let all = TraceSettings::new("run 1", 1.0);
        assert_eq!(
            all.baggage,
            "loadtest.run_id=run%201,loadtest.synthetic=true"
        );
        let mut rng = fastrand::Rng::with_seed(9);
        let ids = all.ids(&mut rng);
        let tp = ids.traceparent();
        assert_eq!(tp.len(), 55);
        assert_eq!(tp.as_bytes(), ids.traceparent_bytes());
        let unsampled = TraceIds {
            trace_id: 0x0af7651916cd43dd8448eb211c80319c,
            span_id: 0x00f067aa0ba902b7,
            sampled: false,
        };
        assert_eq!(
            &unsampled.traceparent_bytes(),
            b"00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-00"
        );
        assert!(tp.starts_with("00-") && tp.ends_with("-01"), "{tp}");
        let none = TraceSettings::new("r", 0.0);
        assert!(!none.ids(&mut rng).sampled);
        let some = TraceSettings::new("r", 0.01);
        let n = (0..100_000).filter(|_| some.ids(&mut rng).sampled).count();
        assert!((700..1300).contains(&n), "{n}");
    }
}
