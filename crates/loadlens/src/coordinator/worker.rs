//! The worker's side of a coordinated run (`run FILE --coordinator URL --workers N`): join the
//! coordinator and wait for its start, stream every snapshot's interval to it ([`ReportSink`]),
//! follow its commands (a `stop` stops the run gracefully), and send the final result. When the
//! coordinator goes away, the worker stops gracefully and still writes its own reports.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use loadlens_core::breakdown::merge::Histograms;
use loadlens_core::breakdown::Coverage;
use loadlens_core::report::histograms::StatsRecord;
use loadlens_core::report::json::ResultDoc;
use loadlens_core::report::{SinkReport, Summary};
use loadlens_core::run::{Controls, EventKind, StopReason};
use loadlens_core::sink::{FinishFuture, Sink, SinkContext, TimelineHandle};
use loadlens_core::stats::{Snapshot, StatsSet};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::protocol::{self, Command, FinalResult, Hello, IntervalReport, ScenarioInterval};
use crate::exit::{Exit, Failure};

/// How long a worker keeps trying to reach a coordinator that does not answer yet (pods start
/// in any order).
pub const CONNECT_PATIENCE: Duration = Duration::from_secs(60);

/// Where the coordinator is, and the token to show it.
#[derive(Debug, Clone)]
pub struct Link {
    /// `host:port`.
    authority: String,
    /// The URL as given, for messages.
    url: String,
    token: Option<String>,
}

impl Link {
    /// Parse `url` (`http://host:port`, or `host:port`; the port defaults to 7700).
    pub fn parse(url: &str, token: Option<String>) -> Result<Link, String> {
        let rest = if let Some(r) = url.strip_prefix("http://") {
            r
        } else if url.starts_with("https://") {
            return Err(format!(
                "coordinator `{url}`: https is not supported; reach the coordinator over plain HTTP inside the cluster or a private network (use LOADLENS_COORDINATOR_TOKEN)"
            ));
        } else if url.contains("://") {
            return Err(format!("coordinator `{url}` must be an http:// URL"));
        } else {
            url
        };
        let authority = rest.split('/').next().unwrap_or_default();
        if authority.is_empty() || authority.contains('@') {
            return Err(format!(
                "coordinator `{url}` must be http://HOST:PORT (no path, no credentials)"
            ));
        }
        let authority = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| !p.contains(']'))
        {
            authority.to_owned()
        } else {
            format!("{authority}:7700")
        };
        Ok(Link {
            authority,
            url: url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    fn request(&self, method: Method, path: &str, body: Bytes) -> Request<Full<Bytes>> {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.authority)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = &self.token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        b.body(Full::new(body))
            .unwrap_or_else(|_| Request::new(Full::default()))
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let stream = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| e.to_string())?;
        let _ = stream.set_nodelay(true);
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(send)
    }

    /// One request on a connection of its own.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Response<Incoming>, String> {
        let mut c = self.connect().await?;
        c.send_request(self.request(method, path, body))
            .await
            .map_err(|e| e.to_string())
    }
}

/// A worker that joined and was told when to start.
pub struct Session {
    link: Arc<Link>,
    segment: String,
    /// When the load starts.
    pub start_at: Instant,
    lines: Option<Lines>,
    state: Arc<Shared>,
    follow: Option<tokio::task::JoinHandle<()>>,
}

/// What the command follower and the report sink share.
#[derive(Default)]
struct Shared {
    /// The coordinator is gone: nothing more is sent to it.
    lost: AtomicBool,
    /// Reports that could not be sent.
    failed: AtomicU64,
    /// Reports dropped because the queue was full.
    dropped: AtomicU64,
    /// Reports delivered.
    delivered: AtomicU64,
    timeline: std::sync::Mutex<Option<TimelineHandle>>,
}

impl Shared {
    fn note(&self, msg: String) {
        if let Some(t) = self
            .timeline
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            t.push(EventKind::Note, msg);
        }
    }
}

/// The command stream: JSON lines of a chunked response.
struct Lines {
    body: Incoming,
    buf: Vec<u8>,
}

impl Lines {
    /// The next command; `Err` when the stream ends or breaks.
    async fn next(&mut self) -> Result<Command, String> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line);
                if line.trim().is_empty() {
                    continue;
                }
                return serde_json::from_str(line.trim())
                    .map_err(|e| format!("unreadable command `{}`: {e}", line.trim()));
            }
            match self.body.frame().await {
                Some(Ok(f)) => {
                    if let Ok(d) = f.into_data() {
                        self.buf.extend_from_slice(&d);
                    }
                }
                Some(Err(e)) => return Err(format!("the connection broke: {e}")),
                None => return Err("it closed the connection".into()),
            }
        }
    }
}

impl Link {
    /// One request, retried until the coordinator answers (pods start in any order), for at
    /// most [`CONNECT_PATIENCE`].
    async fn send_patiently(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<Response<Incoming>, Failure> {
        let patience = Instant::now() + CONNECT_PATIENCE;
        let mut said = false;
        loop {
            match self.send(method.clone(), path, body.clone()).await {
                Ok(r) => return Ok(r),
                Err(e) if Instant::now() < patience => {
                    if !said {
                        say!("Waiting for the coordinator at {} ({e})…", self.url);
                        said = true;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => {
                    return Err(Failure::new(
                        Exit::InvalidInput,
                        format!(
                            "cannot reach the coordinator at {} within {}: {e}",
                            self.url,
                            humantime::format_duration(CONNECT_PATIENCE)
                        ),
                    ))
                }
            }
        }
    }
}

/// The body of `response` as trimmed text.
async fn text(response: Response<Incoming>) -> String {
    response
        .into_body()
        .collect()
        .await
        .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_owned())
        .unwrap_or_default()
}

/// The coordinator's run id (`GET /v1/status`), which a worker started without `--run-id`
/// takes, so that the whole run's requests, spans, events and reports carry one id.
pub async fn run_id(link: &Link) -> Result<String, Failure> {
    let response = link
        .send_patiently(Method::GET, "/v1/status", Bytes::new())
        .await?;
    let status = response.status();
    let body = text(response).await;
    let id = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["run_id"].as_str().map(str::to_owned))
        .filter(|_| status == StatusCode::OK);
    id.ok_or_else(|| {
        Failure::new(
            Exit::InvalidInput,
            format!(
                "the coordinator at {} did not give its run id ({}): {body}",
                link.url,
                status.as_u16()
            ),
        )
    })
}

/// Join the coordinator at `link` and wait until it gives the start.
pub async fn join(link: Link, hello: Hello) -> Result<Session, Failure> {
    let refused = |msg: String| Failure::new(Exit::InvalidInput, msg);
    let body = Bytes::from(serde_json::to_vec(&hello).unwrap_or_default());
    let response = link.send_patiently(Method::POST, "/v1/join", body).await?;
    let status = response.status();
    if status != StatusCode::OK {
        let text = text(response).await;
        return Err(refused(format!(
            "the coordinator at {} refused segment {} ({}): {text}",
            link.url,
            hello.segment,
            status.as_u16()
        )));
    }
    let mut lines = Lines {
        body: response.into_body(),
        buf: Vec::new(),
    };
    loop {
        let cmd = tokio::time::timeout(protocol::SILENCE_LIMIT, lines.next())
            .await
            .unwrap_or_else(|_| Err("it went silent".into()));
        match cmd {
            Ok(Command::Waiting { joined, workers }) => {
                say!(
                    "Joined the coordinator at {} as segment {}: {joined} of {workers} workers in.",
                    link.url,
                    hello.segment
                );
            }
            // Not sent before the start.
            Ok(Command::Ping | Command::Load { .. }) => {}
            Ok(Command::Start { in_ms, run_id }) => {
                say!("The coordinator starts run {run_id} in {} ms.", in_ms);
                return Ok(Session {
                    link: Arc::new(link),
                    segment: hello.segment,
                    start_at: Instant::now() + Duration::from_millis(in_ms),
                    lines: Some(lines),
                    state: Arc::new(Shared::default()),
                    follow: None,
                });
            }
            Ok(Command::Stop { reason }) => {
                return Err(Failure::new(
                    Exit::Aborted,
                    format!("the coordinator did not start the run: {reason}"),
                ))
            }
            Err(e) => {
                return Err(Failure::new(
                    Exit::Aborted,
                    format!(
                        "the coordinator at {} is gone before the start: {e}",
                        link.url
                    ),
                ))
            }
        }
    }
}

impl Session {
    /// The sink that streams every snapshot's interval to the coordinator.
    pub fn sink(&mut self) -> Box<dyn Sink> {
        // The sink holds the only sender: when it finishes, the poster sends what is queued
        // and ends.
        let (tx, rx) = mpsc::channel(64);
        let poster = tokio::spawn(post_reports(self.link.clone(), rx, self.state.clone()));
        Box::new(ReportSink {
            segment: self.segment.clone(),
            names: Vec::new(),
            seq: 0,
            tx: Some(tx),
            poster: Some(poster),
            state: self.state.clone(),
            breakdown_sent: None,
        })
    }

    /// Follow the coordinator's commands from now on: `stop` stops the run through
    /// `controls`; the stream ending (or going silent) means the coordinator is gone, and
    /// the run stops gracefully too.
    pub fn follow(&mut self, controls: Controls) {
        let Some(mut lines) = self.lines.take() else {
            return;
        };
        let state = self.state.clone();
        let url = self.link.url.clone();
        self.follow = Some(tokio::spawn(async move {
            loop {
                let cmd = tokio::time::timeout(protocol::SILENCE_LIMIT, lines.next())
                    .await
                    .unwrap_or_else(|_| Err("it went silent".into()));
                match cmd {
                    Ok(Command::Load { users, rate_per_s }) => {
                        // The whole run's figures: the executor runs this segment's share.
                        if let Some(u) = users {
                            controls.set_users(u);
                        }
                        if let Some(r) = rate_per_s {
                            controls.set_arrival_rate(r);
                        }
                    }
                    Ok(Command::Stop { reason }) => {
                        tell!("The coordinator stops the run: {reason}");
                        state.note(format!("the coordinator stopped the run: {reason}"));
                        controls.stop(StopReason::Aborted(format!("coordinator: {reason}")));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        state.lost.store(true, Ordering::Relaxed);
                        let msg = format!("the coordinator at {url} is gone ({e}); stopping, this worker's own reports are still written");
                        tell!("warning: {msg}");
                        state.note(msg);
                        controls.stop(StopReason::Aborted(format!("coordinator lost: {e}")));
                        return;
                    }
                }
            }
        }));
    }

    /// The run is over: send the result (unless the coordinator is gone).
    pub async fn finish(mut self, summary: &Summary) {
        // The command stream stays open until the result is in: its end before the result
        // would tell the coordinator this worker is lost.
        let follow = self.follow.take();
        if !self.state.lost.load(Ordering::Relaxed) {
            self.send_result(summary).await;
        }
        if let Some(f) = follow {
            f.abort();
        }
    }

    async fn send_result(&self, summary: &Summary) {
        let body = FinalResult {
            segment: self.segment.clone(),
            result: Box::new(ResultDoc::of(summary)),
        };
        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let sent = tokio::time::timeout(
            Duration::from_secs(30),
            self.link.send(Method::POST, "/v1/result", body),
        )
        .await;
        match sent {
            Ok(Ok(r)) if r.status() == StatusCode::OK => {
                say!("sent the result to the coordinator at {}", self.link.url)
            }
            Ok(Ok(r)) => {
                let status = r.status().as_u16();
                let text = r
                    .into_body()
                    .collect()
                    .await
                    .map(|b| String::from_utf8_lossy(&b.to_bytes()).trim().to_owned())
                    .unwrap_or_default();
                tell!("warning: the coordinator did not take the result ({status}): {text}");
            }
            Ok(Err(e)) => tell!("warning: cannot send the result to the coordinator: {e}"),
            Err(_) => tell!("warning: the coordinator did not take the result within 30 s"),
        }
    }
}

/// Sends the queued reports in order on one kept-alive connection, reconnecting after an
/// error; a report that cannot be sent is counted and skipped.
async fn post_reports(link: Arc<Link>, mut rx: mpsc::Receiver<IntervalReport>, state: Arc<Shared>) {
    let mut conn: Option<SendRequest<Full<Bytes>>> = None;
    while let Some(report) = rx.recv().await {
        if state.lost.load(Ordering::Relaxed) {
            state.failed.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let body = Bytes::from(serde_json::to_vec(&report).unwrap_or_default());
        let mut ok = false;
        for _ in 0..2 {
            let reusable = match conn.as_mut() {
                Some(c) => c.ready().await.is_ok(),
                None => false,
            };
            if !reusable {
                conn = link.connect().await.ok();
            }
            let Some(c) = conn.as_mut() else {
                continue;
            };
            let req = link.request(Method::POST, "/v1/report", body.clone());
            match tokio::time::timeout(Duration::from_secs(5), c.send_request(req)).await {
                Ok(Ok(r)) => {
                    let status = r.status();
                    let _ = r.into_body().collect().await;
                    ok = status == StatusCode::OK;
                    break;
                }
                _ => conn = None,
            }
        }
        let counter = if ok { &state.delivered } else { &state.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Streams each snapshot's interval to the coordinator: never waits (a full queue drops the
/// report and counts it).
struct ReportSink {
    segment: String,
    names: Vec<(String, String)>,
    seq: u64,
    tx: Option<mpsc::Sender<IntervalReport>>,
    poster: Option<tokio::task::JoinHandle<()>>,
    state: Arc<Shared>,
    /// The coverage of the last breakdown sent: an unchanged one is not sent again.
    breakdown_sent: Option<Coverage>,
}

impl ReportSink {
    /// The breakdown of snapshot `s` to stream, when it changed since the last one sent
    /// (every join moves the coverage's counters; an idle receiver sends nothing).
    fn breakdown(&mut self, s: &Snapshot) -> Option<Histograms> {
        let h = s.breakdown.as_ref()?.histograms.as_ref()?;
        if self.breakdown_sent.as_ref() == Some(&h.coverage) {
            return None;
        }
        self.breakdown_sent = Some(h.coverage.clone());
        Some(Histograms::clone(h))
    }
}

impl Sink for ReportSink {
    fn name(&self) -> &str {
        "coordinator"
    }

    fn on_start(&mut self, ctx: &SinkContext) {
        self.names = ctx.names.clone();
        *self
            .state
            .timeline
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(ctx.timeline.clone());
    }

    fn on_snapshot(&mut self, s: &Arc<Snapshot>) {
        let records = |set: &StatsSet| -> Vec<StatsRecord> {
            self.names
                .iter()
                .zip(&set.requests)
                .filter(|(_, r)| r.count > 0)
                .map(|((m, n), r)| StatsRecord::of(m, n, r))
                .collect()
        };
        let requests = records(&s.interval);
        let scenarios = s
            .scenarios
            .iter()
            .map(|(name, set)| ScenarioInterval {
                name: name.clone(),
                requests: records(set),
            })
            .filter(|sc| !sc.requests.is_empty())
            .collect();
        let report = IntervalReport {
            segment: self.segment.clone(),
            seq: self.seq,
            elapsed_s: s.elapsed.as_secs_f64(),
            users: s.users,
            dropped_iterations: s.dropped_iterations,
            requests,
            health: Some(s.health.clone()),
            cpu_cores: std::thread::available_parallelism()
                .ok()
                .map(|n| n.get() as f64),
            scenarios,
            breakdown: self.breakdown(s),
        };
        self.seq += 1;
        if let Some(tx) = &self.tx {
            if tx.try_send(report).is_err() {
                self.state.dropped.fetch_add(1, Ordering::Relaxed);
                // Its breakdown, if it had one, goes with the next report.
                self.breakdown_sent = None;
            }
        }
    }

    fn finish(mut self: Box<Self>, _summary: &Summary) -> FinishFuture {
        // Closing the queue lets the poster send what is left and end.
        self.tx = None;
        let poster = self.poster.take();
        let state = self.state.clone();
        Box::pin(async move {
            if let Some(p) = poster {
                let _ = tokio::time::timeout(Duration::from_secs(5), p).await;
            }
            SinkReport {
                name: "coordinator".into(),
                delivered: state.delivered.load(Ordering::Relaxed),
                failed: state.failed.load(Ordering::Relaxed),
                dropped: state.dropped.load(Ordering::Relaxed),
                errors: Vec::new(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_urls() {
        let a = |u: &str| Link::parse(u, None).map(|l| l.authority);
        assert_eq!(a("http://coord:7700").unwrap(), "coord:7700");
        assert_eq!(a("http://coord/").unwrap(), "coord:7700");
        assert_eq!(a("127.0.0.1:9").unwrap(), "127.0.0.1:9");
        assert_eq!(a("http://[::1]:80").unwrap(), "[::1]:80");
        assert_eq!(a("http://[::1]").unwrap(), "[::1]:7700");
        assert!(a("https://coord")
            .unwrap_err()
            .contains("https is not supported"));
        assert!(a("http://u:p@coord").is_err());
    }
}
