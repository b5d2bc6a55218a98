//! The coordinator's HTTP side: who joined, their command streams, and what they reported.
//! The run loop in [`super`] reads and changes the same [`Board`].

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use loadlens_core::breakdown::merge::Histograms;
use loadlens_core::health::HealthMonitor;
use loadlens_core::load::Segment;
use loadlens_core::report::histograms::StatsRecord;
use loadlens_core::report::json::ResultDoc;
use loadlens_core::stats::{HealthSample, SeriesPoint, StatsSet, TimeSeries};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::protocol::{self, Command, FinalResult, Hello, IntervalReport};

/// The largest request body taken (a final result with its histograms).
const MAX_BODY: usize = 64 << 20;

/// Where the run is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// Waiting for the workers.
    Joining,
    /// The start was given; the load runs from `start`.
    Running {
        /// When the load started (or starts).
        start: Instant,
    },
}

/// What became of a worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Health {
    /// Joined and heard from.
    Active,
    /// Gone, and why.
    Lost(String),
    /// Sent its result.
    Finished,
}

/// One joined worker.
#[derive(Debug)]
pub struct Slot {
    /// Its command stream.
    tx: mpsc::Sender<Bytes>,
    /// Last time a report came or a write to it succeeded.
    pub last_heard: Instant,
    /// What became of it.
    pub health: Health,
    /// Its users in its last report.
    pub users: u64,
    /// Open model: its dropped arrivals in its last report.
    pub dropped: Option<u64>,
    /// Requests it reported so far.
    pub requests: u64,
    /// Reports it sent.
    pub reports: u64,
    /// Its run id.
    pub run_id: String,
    /// Everything it streamed, added up: what counts of it when it is lost.
    pub streamed: Streamed,
    /// Its generator's health, from what it measured of itself each interval.
    pub generator: Option<HealthMonitor>,
    /// Its resource use in its last report.
    pub last_health: HealthSample,
}

/// What one worker streamed so far: the sum of its interval reports and their series. When a
/// worker is lost, this is its part of the merged result (its requests up to its last report).
#[derive(Debug)]
pub struct Streamed {
    /// Its intervals added up (counters and HDR histograms).
    pub stats: StatsSet,
    /// One point per interval report.
    pub series: TimeSeries,
    /// Its run time at its last report.
    pub elapsed: Duration,
    /// Open model: its dropped arrivals at its last report.
    pub dropped: Option<u64>,
    /// Per named scenario, its intervals added up.
    pub scenarios: Vec<(String, StatsSet)>,
    /// Its trace receiver's latest breakdown (cumulative), in the form that merges; once it
    /// finished, the final one of its result.
    pub breakdown: Option<Histograms>,
}

impl Streamed {
    pub fn new(names: usize) -> Self {
        Streamed {
            stats: StatsSet::new(names),
            series: TimeSeries::new(TimeSeries::DEFAULT_CAPACITY),
            elapsed: Duration::ZERO,
            dropped: None,
            scenarios: Vec::new(),
            breakdown: None,
        }
    }

    fn add(&mut self, interval: &StatsSet, elapsed: Duration, users: u64) {
        let span = elapsed.saturating_sub(self.elapsed);
        self.series
            .push(SeriesPoint::of(elapsed, span, users, &interval.aggregate()));
        self.stats.merge(interval);
        self.elapsed = self.elapsed.max(elapsed);
    }
}

/// Everything the HTTP handlers and the run loop share.
pub struct Board {
    /// How many workers make the run.
    pub workers: u64,
    /// The scenario hash every worker must have.
    pub hash: String,
    /// The run's id, which a worker started without `--run-id` takes.
    pub run_id: String,
    /// The shared token, if any.
    token: Option<String>,
    /// `(method, name)` in the coordinator's `NameId` order.
    names: Vec<(String, String)>,
    state: Mutex<State>,
    /// Woken on joins, results and losses.
    pub changed: Notify,
}

/// The mutable part of the board.
pub struct State {
    /// Where the run is.
    pub phase: Phase,
    /// By worker index.
    pub slots: BTreeMap<u64, Slot>,
    /// Reported since the last tick.
    pub pending: StatsSet,
    /// Reported since the last tick, per named scenario.
    pub pending_scenarios: Vec<(String, StatsSet)>,
    /// Final results, by worker index.
    pub results: BTreeMap<u64, ResultDoc>,
    /// Whether a worker's breakdown changed since the live merge last read them.
    pub breakdown_changed: bool,
    /// Requests reported for names the coordinator does not know (never with matching hashes).
    pub unknown: u64,
    /// The planned flips' times, when the run has some ([`State::plan_cuts`]).
    cuts: Vec<Duration>,
    /// The before/after comparison: every report added to the segment between two planned
    /// flips its interval mostly falls in, by the worker's own clock (flips + 1 sets).
    pub segments: Vec<StatsSet>,
}

impl Board {
    /// A board for `workers` workers running the scenario with `hash`.
    pub fn new(
        workers: u64,
        hash: String,
        run_id: String,
        token: Option<String>,
        names: Vec<(String, String)>,
    ) -> Arc<Self> {
        Arc::new(Board {
            workers,
            hash,
            run_id,
            token,
            state: Mutex::new(State {
                phase: Phase::Joining,
                slots: BTreeMap::new(),
                pending: StatsSet::new(names.len()),
                pending_scenarios: Vec::new(),
                results: BTreeMap::new(),
                breakdown_changed: false,
                unknown: 0,
                cuts: Vec::new(),
                segments: Vec::new(),
            }),
            names,
            changed: Notify::new(),
        })
    }

    /// The state, locked.
    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    /// Each worker's latest breakdown (lost ones' included), when one changed since the last
    /// call: the live merge's parts.
    pub fn changed_breakdowns(&mut self) -> Option<Vec<Histograms>> {
        if !std::mem::take(&mut self.breakdown_changed) {
            return None;
        }
        Some(
            self.slots
                .values()
                .filter_map(|s| s.streamed.breakdown.clone())
                .collect(),
        )
    }

    /// Cut the reports into segments at `cuts` (the planned flips' times, sorted).
    pub fn plan_cuts(&mut self, cuts: Vec<Duration>, names: usize) {
        self.segments = (0..=cuts.len()).map(|_| StatsSet::new(names)).collect();
        self.cuts = cuts;
    }

    /// Workers joined and not lost.
    pub fn joined(&self) -> u64 {
        self.slots
            .values()
            .filter(|s| !matches!(s.health, Health::Lost(_)))
            .count() as u64
    }

    /// Write `cmd` to every active worker; a closed stream marks that worker lost. Returns
    /// the indexes newly lost.
    pub fn broadcast(&mut self, cmd: &Command) -> Vec<u64> {
        let line = line(cmd);
        let mut lost = Vec::new();
        for (i, s) in &mut self.slots {
            if s.health != Health::Active {
                continue;
            }
            match s.tx.try_send(line.clone()) {
                Ok(()) => {
                    if *cmd == Command::Ping {
                        s.last_heard = Instant::now();
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    s.health = Health::Lost("its connection closed".into());
                    lost.push(*i);
                }
                // A worker that reads nothing for a while: the silence check decides.
                Err(mpsc::error::TrySendError::Full(_)) => {}
            }
        }
        lost
    }

    /// Mark `index` lost for `why` (returns false when it was not active).
    pub fn lose(&mut self, index: u64, why: String) -> bool {
        match self.slots.get_mut(&index) {
            Some(s) if s.health == Health::Active => {
                s.health = Health::Lost(why);
                true
            }
            _ => false,
        }
    }
}

fn line(cmd: &Command) -> Bytes {
    let mut v = serde_json::to_vec(cmd).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// Serve the coordinator's routes on `listener` until `stop`.
pub async fn serve(listener: TcpListener, board: Arc<Board>, stop: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => match a {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "Coordinator failed to accept a connection.");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let board = board.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let board = board.clone();
                async move { Ok::<_, Infallible>(handle(&board, req).await) }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(crate::web::HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}

use crate::web::WebBody as Reply;

fn reply(status: StatusCode, kind: &str, body: impl Into<Bytes>) -> Response<Reply> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, kind)
        .body(Reply::Full(Full::new(body.into())))
        .unwrap_or_else(|_| Response::new(Reply::Full(Full::default())))
}

fn plain(status: StatusCode, msg: &str) -> Response<Reply> {
    reply(status, "text/plain; charset=utf-8", format!("{msg}\n"))
}

async fn handle(board: &Board, req: Request<Incoming>) -> Response<Reply> {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    if !protocol::authorized(board.token.as_deref(), given) {
        return plain(
            StatusCode::UNAUTHORIZED,
            &format!(
                "wrong or missing token: give the workers the coordinator's {}",
                protocol::TOKEN_ENV
            ),
        );
    }
    let route = (req.method().clone(), req.uri().path().to_owned());
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return plain(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the body: {e}"),
            )
        }
    };
    match (route.0, route.1.as_str()) {
        (Method::POST, "/v1/join") => match serde_json::from_slice::<Hello>(&body) {
            Ok(h) => join(board, h),
            Err(e) => plain(StatusCode::BAD_REQUEST, &format!("not a hello: {e}")),
        },
        (Method::POST, "/v1/report") => match serde_json::from_slice::<IntervalReport>(&body) {
            Ok(r) => report(board, r),
            Err(e) => plain(StatusCode::BAD_REQUEST, &format!("not a report: {e}")),
        },
        (Method::POST, "/v1/result") => match serde_json::from_slice::<FinalResult>(&body) {
            Ok(r) => result(board, r),
            Err(e) => plain(StatusCode::BAD_REQUEST, &format!("not a result: {e}")),
        },
        (Method::GET, "/v1/status") => status(board),
        (Method::GET, "/healthz") => plain(StatusCode::OK, "ok"),
        _ => plain(StatusCode::NOT_FOUND, "no such route"),
    }
}

/// The worker index of segment `text`, or the answer that refuses it.
fn segment_of(board: &Board, text: &str) -> Result<u64, Box<Response<Reply>>> {
    let seg: Segment = text.parse().map_err(|e| {
        Box::new(plain(
            StatusCode::BAD_REQUEST,
            &format!("segment `{text}`: {e}"),
        ))
    })?;
    if seg.count() != board.workers {
        return Err(Box::new(plain(
            StatusCode::CONFLICT,
            &format!(
                "this worker runs segment {seg} of a split into {}, but the coordinator waits for {} workers: give every worker --workers {}",
                seg.count(),
                board.workers,
                board.workers
            ),
        )));
    }
    Ok(seg.index())
}

fn join(board: &Board, h: Hello) -> Response<Reply> {
    let ours = env!("CARGO_PKG_VERSION");
    if h.version != ours {
        return plain(
            StatusCode::CONFLICT,
            &format!(
                "this worker runs loadlens {} but the coordinator runs {ours}: run the same version everywhere",
                h.version
            ),
        );
    }
    if h.scenario_hash != board.hash {
        return plain(
            StatusCode::CONFLICT,
            &format!(
                "this worker runs another scenario than the coordinator (scenario hash {} vs {}): give every worker and the coordinator the same file and load flags",
                h.scenario_hash, board.hash
            ),
        );
    }
    let index = match segment_of(board, &h.segment) {
        Ok(i) => i,
        Err(r) => return *r,
    };
    let mut st = board.lock();
    if let Phase::Running { start } = st.phase {
        let ago = Instant::now().saturating_duration_since(start);
        return plain(
            StatusCode::CONFLICT,
            &format!(
                "the run started {:.1} s ago without segment {}: a late worker is refused (start the workers before the coordinator's --join-timeout, or restart the run)",
                ago.as_secs_f64(),
                h.segment
            ),
        );
    }
    if st
        .slots
        .get(&index)
        .is_some_and(|s| s.health == Health::Active && !s.tx.is_closed())
    {
        return plain(
            StatusCode::CONFLICT,
            &format!(
                "segment {} has already joined: give each worker its own --worker-index (or JOB_COMPLETION_INDEX)",
                h.segment
            ),
        );
    }
    let (tx, rx) = mpsc::channel(64);
    st.slots.insert(
        index,
        Slot {
            tx,
            last_heard: Instant::now(),
            health: Health::Active,
            users: 0,
            dropped: None,
            requests: 0,
            reports: 0,
            run_id: h.run_id.clone(),
            streamed: Streamed::new(board.names.len()),
            generator: None,
            last_health: HealthSample::default(),
        },
    );
    let joined = st.joined();
    st.broadcast(&Command::Waiting {
        joined,
        workers: board.workers,
    });
    drop(st);
    say!(
        "segment {} joined (run {}): {joined} of {} workers in",
        h.segment,
        h.run_id,
        board.workers
    );
    board.changed.notify_one();
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Reply::Stream(rx))
        .unwrap_or_else(|_| Response::new(Reply::Full(Full::default())))
}

fn gone(msg: &str) -> Response<Reply> {
    plain(StatusCode::GONE, msg)
}

fn report(board: &Board, r: IntervalReport) -> Response<Reply> {
    let index = match segment_of(board, &r.segment) {
        Ok(i) => i,
        Err(resp) => return *resp,
    };
    // Decoded before taking the lock: the histograms' inflate is the costly part.
    let (interval, requests, unknown) = match decode(board, &r.requests) {
        Ok(d) => d,
        Err(resp) => return *resp,
    };
    let mut scenarios = Vec::with_capacity(r.scenarios.len());
    for sc in &r.scenarios {
        match decode(board, &sc.requests) {
            Ok((set, _, _)) => scenarios.push((sc.name.clone(), set)),
            Err(resp) => return *resp,
        }
    }
    let mut st = board.lock();
    let Some(slot) = st.slots.get_mut(&index) else {
        return gone("this worker has not joined");
    };
    if slot.health != Health::Active {
        return gone("this worker is no longer part of the run");
    }
    slot.last_heard = Instant::now();
    slot.users = r.users;
    slot.dropped = r.dropped_iterations;
    slot.reports += 1;
    slot.requests += requests;
    let elapsed = Duration::try_from_secs_f64(r.elapsed_s).unwrap_or_default();
    if let Some(h) = r.health {
        let wall = elapsed.saturating_sub(slot.streamed.elapsed);
        slot.generator
            .get_or_insert_with(|| HealthMonitor::remote(r.cpu_cores.unwrap_or(1.0)))
            .fold(&h, wall);
        slot.last_health = h;
    }
    // The segment of the flips' comparison this interval mostly falls in: by the worker's
    // own run time, whenever the report arrives.
    let middle = elapsed.saturating_sub(elapsed.saturating_sub(slot.streamed.elapsed) / 2);
    slot.streamed.add(&interval, elapsed, r.users);
    slot.streamed.dropped = r.dropped_iterations;
    for (name, set) in &scenarios {
        add_named(&mut slot.streamed.scenarios, name, set);
    }
    let changed = r.breakdown.is_some();
    if changed {
        slot.streamed.breakdown = r.breakdown;
    }
    st.breakdown_changed |= changed;
    st.unknown += unknown;
    let k = st.cuts.iter().filter(|c| **c <= middle).count();
    if let Some(seg) = st.segments.get_mut(k) {
        seg.merge(&interval);
    }
    st.pending.merge(&interval);
    for (name, set) in &scenarios {
        add_named(&mut st.pending_scenarios, name, set);
    }
    plain(StatusCode::OK, "ok")
}

/// The records of an interval report in the coordinator's name order: the set, its
/// requests, and the requests of names the coordinator does not know.
fn decode(
    board: &Board,
    records: &[StatsRecord],
) -> Result<(StatsSet, u64, u64), Box<Response<Reply>>> {
    let mut interval = StatsSet::new(board.names.len());
    let mut requests = 0;
    let mut unknown = 0;
    for rec in records {
        let Some(i) = board
            .names
            .iter()
            .position(|(m, n)| *m == rec.method && *n == rec.name)
        else {
            unknown += rec.count;
            continue;
        };
        match rec.stats() {
            Ok(s) => {
                requests += s.count;
                interval.requests[i].merge(&s);
            }
            Err(e) => {
                return Err(Box::new(plain(
                    StatusCode::BAD_REQUEST,
                    &format!("{}: {e}", rec.label()),
                )))
            }
        }
    }
    Ok((interval, requests, unknown))
}

/// Add `set` to the figures of scenario `name` in `to`.
pub fn add_named(to: &mut Vec<(String, StatsSet)>, name: &str, set: &StatsSet) {
    match to.iter_mut().find(|(n, _)| n == name) {
        Some((_, s)) => s.merge(set),
        None => to.push((name.to_owned(), set.clone())),
    }
}

fn result(board: &Board, r: FinalResult) -> Response<Reply> {
    let index = match segment_of(board, &r.segment) {
        Ok(i) => i,
        Err(resp) => return *resp,
    };
    let mut st = board.lock();
    let Some(slot) = st.slots.get_mut(&index) else {
        return gone("this worker has not joined");
    };
    if slot.health != Health::Active {
        return gone("this worker is no longer part of the run: its result is not merged");
    }
    slot.health = Health::Finished;
    // Its final breakdown (settled: the last spans joined) replaces the streamed one.
    if let Some(h) = r
        .result
        .breakdown
        .as_ref()
        .and_then(|b| b.histograms.as_ref())
    {
        slot.streamed.breakdown = Some(Histograms::clone(h));
        st.breakdown_changed = true;
    }
    st.results.insert(index, *r.result);
    drop(st);
    board.changed.notify_one();
    plain(StatusCode::OK, "ok")
}

fn status(board: &Board) -> Response<Reply> {
    let st = board.lock();
    let workers: Vec<_> = st
        .slots
        .iter()
        .map(|(i, s)| {
            serde_json::json!({
                "segment": format!("{}/{}", i + 1, board.workers),
                "run_id": s.run_id,
                "state": match &s.health {
                    Health::Active => "active".to_owned(),
                    Health::Lost(why) => format!("lost: {why}"),
                    Health::Finished => "finished".to_owned(),
                },
                "requests": s.requests,
                "users": s.users,
            })
        })
        .collect();
    let phase = match st.phase {
        Phase::Joining => "joining",
        Phase::Running { .. } => "running",
    };
    let body = serde_json::json!({
        "run_id": board.run_id,
        "phase": phase,
        "workers_expected": board.workers,
        "workers": workers,
    });
    reply(StatusCode::OK, "application/json", body.to_string())
}
