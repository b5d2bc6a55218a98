//! Test helpers: a local Datadog API stub, a DogStatsD receiver, and the check of captured
//! payloads against Datadog's official models (the Python package `datadog-api-client`).
//!
//! The stub listens on `127.0.0.1:0` (plain HTTP/1.1, keep-alive) and answers like the public
//! API: `GET /api/v1/validate` (200 `{"valid":true}`, 403 for a wrong key), `POST
//! /api/v1/events` (202 with the created event), `POST /api/v2/series` (202 `{"errors":[]}`),
//! `POST /api/v1/distribution_points` (202 `{"status":"ok"}`), `GET /api/v1/monitor/{id}`
//! (the next state of a scripted sequence; 403 without a valid application key, 404 for an
//! unknown id). Faults on demand: any status (with `X-RateLimit-*` headers for 429) for the
//! next N calls of a path, or no answer at all. Every request is recorded with its body
//! decompressed.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::stub_http;

/// The API key the stub accepts unless told otherwise.
pub const API_KEY: &str = "stub-api-key-0123456789abcdef";
/// The application key the stub accepts unless told otherwise.
pub const APP_KEY: &str = "stub-app-key-0123456789abcdef";

/// One request the stub received.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Method.
    pub method: String,
    /// Path (with query).
    pub path: String,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// Body, decompressed.
    pub body: Vec<u8>,
    /// Status answered (0: not answered).
    pub status: u16,
    /// Body answered.
    pub response: Vec<u8>,
}

impl Captured {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (`Null` when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

#[derive(Debug)]
struct Fault {
    path: String,
    status: u16,
    times: usize,
    reset_s: u64,
}

#[derive(Debug, Default)]
struct State {
    api_keys: Vec<String>,
    app_keys: Vec<String>,
    requests: Vec<Captured>,
    faults: Vec<Fault>,
    monitors: HashMap<u64, (String, Vec<String>, usize)>,
    hang: bool,
    next_event_id: u64,
}

/// Series points as Datadog stores them: `(metric, sorted tags, timestamp second)` → value.
pub type StoredSeries = std::collections::BTreeMap<(String, Vec<String>, i64), f64>;

/// The local Datadog API stub. Stops accepting when dropped.
pub struct DatadogStub {
    url: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl DatadogStub {
    /// A stub accepting [`API_KEY`] and [`APP_KEY`].
    pub fn start() -> DatadogStub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stub");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let state = Arc::new(Mutex::new(State {
            api_keys: vec![API_KEY.into()],
            app_keys: vec![APP_KEY.into()],
            next_event_id: 5_000_000_000,
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        stub_http::accept_loop(listener, state.clone(), stop.clone(), serve);
        DatadogStub { url, state, stop }
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Accept only these keys from now on.
    pub fn keys(&self, api: &str, app: &str) {
        self.with(|s| {
            s.api_keys = vec![api.into()];
            s.app_keys = vec![app.into()];
        });
    }

    /// A monitor whose `overall_state` goes through `states`, one per GET (the last repeats).
    pub fn monitor(&self, id: u64, name: &str, states: &[&str]) {
        let states = states.iter().map(|s| s.to_string()).collect();
        self.with(|s| s.monitors.insert(id, (name.into(), states, 0)));
    }

    /// Answer the next `times` requests to `path` with `status` (429 carries rate-limit headers
    /// with a reset of `reset_s` seconds).
    pub fn fail_next(&self, path: &str, status: u16, times: usize, reset_s: u64) {
        self.with(|s| {
            s.faults.push(Fault {
                path: path.into(),
                status,
                times,
                reset_s,
            })
        });
    }

    /// Stop answering (requests are still recorded) or answer again.
    pub fn hang(&self, on: bool) {
        self.with(|s| s.hang = on);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Captured> {
        self.with(|s| s.requests.clone())
    }

    /// Requests to `path` that were accepted (2xx).
    pub fn accepted(&self, method: &str, path: &str) -> Vec<Captured> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == method && r.path == path && (200..300).contains(&r.status))
            .collect()
    }

    /// What Datadog keeps of the accepted `POST /api/v2/series`: one value per metric, tag set
    /// (sorted) and timestamp second, the last one written replacing any earlier one — Datadog's
    /// rule for points of one series with the same timestamp.
    pub fn stored_series(&self) -> StoredSeries {
        let mut out = StoredSeries::new();
        for r in self.accepted("POST", "/api/v2/series") {
            let body = r.json();
            for s in body["series"].as_array().into_iter().flatten() {
                let metric = s["metric"].as_str().unwrap_or_default().to_owned();
                let mut tags: Vec<String> = s["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.as_str().map(str::to_owned))
                    .collect();
                tags.sort();
                for p in s["points"].as_array().into_iter().flatten() {
                    let ts = p["timestamp"].as_i64().unwrap_or_default();
                    let v = p["value"].as_f64().unwrap_or_default();
                    out.insert((metric.clone(), tags.clone(), ts), v);
                }
            }
        }
        out
    }

    /// Points in the accepted `POST /api/v2/series`, before [`DatadogStub::stored_series`]
    /// keeps one per series and second.
    pub fn series_points_written(&self) -> usize {
        self.accepted("POST", "/api/v2/series")
            .iter()
            .flat_map(|r| r.json()["series"].as_array().cloned().unwrap_or_default())
            .map(|s| s["points"].as_array().map_or(0, Vec::len))
            .sum()
    }

    /// Wait until `pred` holds for the requests (at most `limit`).
    pub fn wait_for(&self, limit: Duration, pred: impl Fn(&[Captured]) -> bool) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if pred(&self.requests()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        pred(&self.requests())
    }
}

impl Drop for DatadogStub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(conn: TcpStream, state: &Mutex<State>, stop: &AtomicBool) {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    loop {
        let Some(mut req) = read_request(&mut reader, stop) else {
            return;
        };
        let (status, headers, body, hang) = {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            let (status, headers, body) = answer(&mut s, &req);
            (status, headers, body, s.hang)
        };
        if hang {
            req.status = 0;
            state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .requests
                .push(req);
            while !stop.load(Ordering::Relaxed) && state.lock().map(|s| s.hang).unwrap_or(false) {
                std::thread::sleep(Duration::from_millis(10));
            }
            return;
        }
        req.status = status;
        req.response = body.clone();
        state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .requests
            .push(req);
        if !stub_http::write_json(&mut out, status, reason(status), &headers, &body) {
            return;
        }
    }
}

fn read_request(r: &mut BufReader<TcpStream>, stop: &AtomicBool) -> Option<Captured> {
    let head = stub_http::read_head(r, stop)?;
    let body = stub_http::read_body(r, &head)?;
    let body = match head.get("content-encoding") {
        Some("gzip") => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .ok()?;
            out
        }
        Some("deflate") => {
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(&body[..])
                .read_to_end(&mut out)
                .ok()?;
            out
        }
        _ => body,
    };
    Some(Captured {
        method: head.method,
        path: head.path,
        headers: head.headers,
        body,
        status: 0,
        response: Vec::new(),
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

type Reply = (u16, Vec<(String, String)>, Vec<u8>);

fn error(status: u16, message: &str) -> Reply {
    (
        status,
        Vec::new(),
        json!({ "errors": [message] }).to_string().into_bytes(),
    )
}

fn answer(s: &mut State, req: &Captured) -> Reply {
    if let Some(f) = s
        .faults
        .iter_mut()
        .find(|f| f.times > 0 && f.path == req.path)
    {
        f.times -= 1;
        let (status, reset) = (f.status, f.reset_s);
        let mut r = error(status, reason(status));
        if status == 429 {
            r.1 = vec![
                ("X-RateLimit-Limit".into(), "100".into()),
                ("X-RateLimit-Period".into(), "60".into()),
                ("X-RateLimit-Remaining".into(), "0".into()),
                ("X-RateLimit-Reset".into(), reset.to_string()),
                ("X-RateLimit-Name".into(), "stub".into()),
            ];
        }
        return r;
    }
    let key_ok = req
        .header("dd-api-key")
        .is_some_and(|k| s.api_keys.iter().any(|a| a == k));
    if !key_ok {
        return error(403, "Forbidden");
    }
    let accepted = |v: Value| (202, Vec::new(), v.to_string().into_bytes());
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/api/v1/validate") => (200, Vec::new(), br#"{"valid":true}"#.to_vec()),
        ("POST", "/api/v1/events") => {
            let Value::Object(mut e) = req.json() else {
                return error(400, "Payload is not in the expected format: invalid JSON");
            };
            if !e.contains_key("title") || !e.contains_key("text") {
                return error(400, "Event title and text are required");
            }
            s.next_event_id += 1;
            let id = s.next_event_id;
            e.insert("id".into(), json!(id));
            e.insert("id_str".into(), json!(id.to_string()));
            e.insert(
                "url".into(),
                json!(format!("https://app.datadoghq.com/event/event?id={id}")),
            );
            for k in ["aggregation_key", "source_type_name", "related_event_id"] {
                // Inputs that the created event does not echo.
                e.remove(k);
            }
            accepted(json!({ "status": "ok", "event": e }))
        }
        ("POST", "/api/v2/series") => match req.json().get("series") {
            Some(Value::Array(_)) => accepted(json!({ "errors": [] })),
            _ => error(400, "Payload is not in the expected format"),
        },
        ("POST", "/api/v1/distribution_points") => match req.json().get("series") {
            Some(Value::Array(_)) => accepted(json!({ "status": "ok" })),
            _ => error(400, "Payload is not in the expected format"),
        },
        ("GET", p) if p.starts_with("/api/v1/monitor/") => {
            let app_ok = req
                .header("dd-application-key")
                .is_some_and(|k| s.app_keys.iter().any(|a| a == k));
            if !app_ok {
                return error(403, "Forbidden");
            }
            let id: u64 = p["/api/v1/monitor/".len()..].parse().unwrap_or(0);
            let Some((name, states, i)) = s.monitors.get_mut(&id) else {
                return error(404, "Monitor not found");
            };
            let state = states
                .get(*i)
                .or(states.last())
                .cloned()
                .unwrap_or_else(|| "OK".into());
            *i += 1;
            let body = json!({
                "id": id,
                "name": name,
                "type": "metric alert",
                "query": "avg(last_5m):avg:loadlens.response_time{*} > 500",
                "message": "stub monitor",
                "tags": [],
                "options": {},
                "overall_state": state,
                "created": "2026-01-01T00:00:00.000000+00:00",
                "modified": "2026-01-01T00:00:00.000000+00:00",
                "multi": false,
                "priority": null,
            });
            (200, Vec::new(), body.to_string().into_bytes())
        }
        _ => error(404, "Not found"),
    }
}

/// Collects DogStatsD datagrams sent to `127.0.0.1:<port>`.
pub struct StatsdReceiver {
    /// The port.
    pub port: u16,
    lines: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl StatsdReceiver {
    /// Listen on a free port.
    pub fn start() -> StatsdReceiver {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
        let port = sock.local_addr().expect("local address").port();
        let _ = sock.set_read_timeout(Some(Duration::from_millis(50)));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, sp) = (lines.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !sp.load(Ordering::Relaxed) {
                if let Ok(n) = sock.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let mut l = l.lock().unwrap_or_else(|p| p.into_inner());
                    l.extend(text.lines().map(str::to_owned));
                    l.push(format!("#datagram {n}"));
                }
            }
        });
        StatsdReceiver { port, lines, stop }
    }

    /// Lines received so far; a `#datagram N` line follows each datagram of N bytes.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for StatsdReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How the check against the official models went.
#[derive(Debug, PartialEq, Eq)]
pub enum ModelCheck {
    /// Every payload deserialised strictly; the checker's summary line.
    Valid(String),
}

/// The official model of each request and response body the stub captured, or `None` for
/// bodies there is nothing to check in.
fn models(r: &Captured) -> Vec<(&'static str, Value)> {
    let mut out = Vec::new();
    let request = match (r.method.as_str(), r.path.as_str()) {
        ("POST", "/api/v1/events") => Some("EventCreateRequest"),
        ("POST", "/api/v2/series") => Some("MetricPayload"),
        ("POST", "/api/v1/distribution_points") => Some("DistributionPointsPayload"),
        _ => None,
    };
    if let Some(m) = request {
        out.push((m, r.json()));
    }
    let response = match (r.status, r.path.as_str()) {
        (0, _) => None,
        (s, _) if s >= 400 => Some("APIErrorResponse"),
        (_, "/api/v1/events") => Some("EventCreateResponse"),
        (_, "/api/v2/series") => Some("IntakePayloadAcceptedV2"),
        (_, "/api/v1/distribution_points") => Some("IntakePayloadAcceptedV1"),
        (_, "/api/v1/validate") => Some("AuthenticationValidationResponse"),
        (_, p) if p.starts_with("/api/v1/monitor/") => Some("Monitor"),
        _ => None,
    };
    if let Some(m) = response {
        out.push((
            m,
            serde_json::from_slice(&r.response).unwrap_or(Value::Null),
        ));
    }
    out
}

/// Why [`check_official_models`] did not pass.
#[derive(Debug, thiserror::Error)]
pub enum ModelCheckError {
    /// Python or `datadog-api-client` is missing: the check could not run.
    #[error("{why}: run the suite with `scripts/test`, which installs it (python3 -m pip install datadog-api-client==2.62.0)")]
    Missing {
        /// What is missing.
        why: String,
    },
    /// The checker ran and found bodies that do not match the models.
    #[error("{report}\n{stderr}")]
    Invalid {
        /// The checker's report (`INVALID …` lines).
        report: String,
        /// Its standard error.
        stderr: String,
    },
    /// The checker's files could not be written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Validate every request and response body in `captured` with the official models of the
/// Python package `datadog-api-client` (strictly: wrong types, unknown attributes and values
/// outside enums fail). When the package or Python is missing, this fails with the command
/// that installs it: a test never passes without checking.
pub fn check_official_models(captured: &[Captured]) -> Result<ModelCheck, ModelCheckError> {
    let items: Vec<Value> = captured
        .iter()
        .flat_map(|r| {
            models(r).into_iter().map(move |(model, body)| {
                json!({ "model": model, "what": format!("{} {} → {}", r.method, r.path, r.status), "body": body })
            })
        })
        .collect();
    let dir = std::env::temp_dir().join(format!(
        "loadlens-dd-models-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("check_models.py");
    let data = dir.join("captured.json");
    std::fs::write(&script, include_str!("check_models.py"))?;
    std::fs::write(&data, Value::Array(items).to_string())?;
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(&python)
        .arg(&script)
        .arg(&data)
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    // A missing checker fails the test: a test never passes without testing.
    let missing = |why: String| Err(ModelCheckError::Missing { why });
    let out = match out {
        Ok(o) => o,
        Err(e) => return missing(format!("cannot run {python}: {e}")),
    };
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    match out.status.code() {
        Some(0) => Ok(ModelCheck::Valid(text)),
        Some(3) => missing(text),
        _ => Err(ModelCheckError::Invalid {
            report: text,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        }),
    }
}
