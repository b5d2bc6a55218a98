//! Test helper: a local stub of the Statsig Console API (version `20240601`) that checks every
//! request against the OpenAPI specification's shapes.
//!
//! It listens on `127.0.0.1:0` (plain HTTP/1.1, keep-alive) and answers:
//!
//! - `GET /console/v1/gates/{id}`, `PUT /console/v1/gates/{id}/enable`,
//!   `PUT /console/v1/gates/{id}/disable` (no body, as specified): `{message, data: Gate}`;
//!   a flip through the API adds an audit-log entry by `CONSOLE API`;
//! - `GET /console/v1/dynamic_configs/{id}`: `{message, data: DynamicConfig}`;
//! - `GET /console/v1/audit_logs`: newest first, filtered by `startDate`/`endDate`
//!   (`YYYY-MM-DD`), paged by `limit` and `page` (1-based) with the specification's
//!   `pagination` object (`nextPage` null on the last page).
//!
//! Every request must carry the accepted `STATSIG-API-KEY` (401 otherwise; [`ConsoleStub::forbid`]
//! makes it 403) and `STATSIG-API-VERSION: 20240601`; a query parameter the operation does not
//! declare, a malformed date or number, a body on a bodiless operation, or an unknown path is
//! answered 400/404 and recorded as a violation ([`ConsoleStub::violations`]), so that a wrong
//! shape fails the test. Faults on demand ([`ConsoleStub::fail_next`]): any status for the next
//! N calls of a path, 429 with `Retry-After`. [`ConsoleStub::flip_by`] changes a gate "by
//! someone else", as a person in the console would, with its audit-log entry.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::stub_http;

/// The Console API key the stub accepts unless told otherwise.
pub const KEY: &str = "console-stub-key-0123456789abcdef";

/// The query parameters `GET /console/v1/audit_logs` declares.
const AUDIT_PARAMS: [&str; 11] = [
    "id",
    "sortKey",
    "sortOrder",
    "latestID",
    "tags",
    "actionType",
    "actionTypes",
    "startDate",
    "endDate",
    "limit",
    "page",
];

/// One request the stub received.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Method.
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Status answered.
    pub status: u16,
}

impl Captured {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path without its query.
    pub fn route(&self) -> &str {
        self.path.split('?').next().unwrap_or(&self.path)
    }
}

#[derive(Debug)]
struct Fault {
    path: String,
    status: u16,
    times: usize,
    retry_after: Option<u64>,
}

#[derive(Debug, Clone)]
struct GateState {
    enabled: bool,
    modifier: String,
    modified_ms: u64,
}

#[derive(Debug, Default)]
struct State {
    key: String,
    forbid: bool,
    gates: BTreeMap<String, GateState>,
    configs: BTreeMap<String, (bool, Value)>,
    audit: Vec<Value>,
    next_audit: u64,
    faults: Vec<Fault>,
    requests: Vec<Captured>,
    violations: Vec<String>,
}

/// The local Console API stub. Stops accepting when dropped.
pub struct ConsoleStub {
    url: String,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl ConsoleStub {
    /// A stub accepting [`KEY`], with no gates.
    pub fn start() -> ConsoleStub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stub");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let state = Arc::new(Mutex::new(State {
            key: KEY.into(),
            next_audit: 1,
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        stub_http::accept_loop(listener, state.clone(), stop.clone(), serve);
        ConsoleStub { url, state, stop }
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Accept only `key` from now on.
    pub fn key(&self, key: &str) {
        self.with(|s| s.key = key.into());
    }

    /// Answer 403 (a key without the permission) to every request.
    pub fn forbid(&self, on: bool) {
        self.with(|s| s.forbid = on);
    }

    /// A gate, enabled or not.
    pub fn gate(&self, id: &str, enabled: bool) {
        self.with(|s| {
            s.gates.insert(
                id.into(),
                GateState {
                    enabled,
                    modifier: "CONSOLE API".into(),
                    modified_ms: now_ms(),
                },
            )
        });
    }

    /// A dynamic config with its default value.
    pub fn config(&self, id: &str, enabled: bool, default_value: Value) {
        self.with(|s| s.configs.insert(id.into(), (enabled, default_value)));
    }

    /// Whether a gate is enabled now.
    pub fn gate_enabled(&self, id: &str) -> Option<bool> {
        self.with(|s| s.gates.get(id).map(|g| g.enabled))
    }

    /// Someone else (`who`, in the console) turns the gate on or off: its state changes and
    /// the audit log gets the entry.
    pub fn flip_by(&self, id: &str, enabled: bool, who: &str) {
        self.with(|s| {
            flip(
                s,
                id,
                enabled,
                who,
                Some(&format!("{}@example.com", who.to_lowercase())),
            )
        });
    }

    /// An audit-log entry as it stands (any shape: a test of the poller's tolerance).
    pub fn audit_entry(&self, entry: Value) {
        self.with(|s| s.audit.push(entry));
    }

    /// Answer the next `times` requests whose path — without its query, or with it exactly —
    /// is `path` with `status`; `retry_after` adds a `Retry-After` header (seconds).
    pub fn fail_next(&self, path: &str, status: u16, times: usize, retry_after: Option<u64>) {
        self.with(|s| {
            s.faults.push(Fault {
                path: path.into(),
                status,
                times,
                retry_after,
            })
        });
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Captured> {
        self.with(|s| s.requests.clone())
    }

    /// Requests that broke the specification's shapes (empty when every request was right).
    pub fn violations(&self) -> Vec<String> {
        self.with(|s| s.violations.clone())
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

impl Drop for ConsoleStub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn flip(s: &mut State, id: &str, enabled: bool, who: &str, email: Option<&str>) -> bool {
    let Some(g) = s.gates.get_mut(id) else {
        return false;
    };
    let old = g.enabled;
    g.enabled = enabled;
    g.modifier = who.into();
    g.modified_ms = now_ms();
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let n = s.next_audit;
    s.next_audit += 1;
    s.audit.push(json!({
        "id": format!("audit{n:06}"),
        "name": id,
        "changeLog": if enabled { "Enabled gate" } else { "Disabled gate" },
        "actionType": "gate_update",
        "date": &stamp[..10],
        "time": &stamp[11..19],
        "updatedBy": who,
        "updatedByUserID": format!("user-{}", who.to_lowercase().replace(' ', "-")),
        "modifierEmail": email,
        "changes": { "isEnabled": { "oldValue": old, "newValue": enabled } },
        "tags": [],
    }));
    true
}

fn gate_json(id: &str, g: &GateState) -> Value {
    json!({
        "id": id, "name": id, "description": "", "idType": "userID",
        "lastModifierID": "stub", "lastModifiedTime": g.modified_ms,
        "lastModifierName": g.modifier, "lastModifierEmail": null,
        "creatorID": "stub", "createdTime": 1_705_450_774_719u64, "creatorName": "CONSOLE API",
        "creatorEmail": null, "targetApps": [], "holdoutIDs": [], "tags": [],
        "isEnabled": g.enabled, "status": if g.enabled { "In Progress" } else { "Disabled" },
        "rules": [], "checksPerHour": 0, "type": "TEMPORARY", "typeReason": "NONE",
    })
}

/// Answer one request: status, extra headers, body.
fn answer(s: &mut State, req: &Captured) -> (u16, Vec<(String, String)>, Value) {
    let route = req.route().to_owned();
    if let Some(f) = s
        .faults
        .iter_mut()
        .find(|f| (f.path == route || f.path == req.path) && f.times > 0)
    {
        f.times -= 1;
        let headers = f
            .retry_after
            .map(|r| vec![("Retry-After".to_owned(), r.to_string())])
            .unwrap_or_default();
        return (
            f.status,
            headers,
            json!({"status": f.status, "message": "stub fault"}),
        );
    }
    let bad = |s: &mut State, what: String| {
        s.violations
            .push(format!("{} {}: {what}", req.method, req.path));
        (400, Vec::new(), json!({"status": 400, "message": what}))
    };
    if req.header("statsig-api-key") != Some(s.key.as_str()) {
        return (
            401,
            Vec::new(),
            json!({"status": 401, "message": "Forbidden resource"}),
        );
    }
    if s.forbid {
        return (
            403,
            Vec::new(),
            json!({"status": 403, "message": "This API key does not have the required permissions"}),
        );
    }
    if req.header("statsig-api-version") != Some(super::API_VERSION) {
        return bad(
            s,
            format!(
                "STATSIG-API-VERSION is {:?}, expected 20240601",
                req.header("statsig-api-version")
            ),
        );
    }
    let query: Vec<(String, String)> = req
        .path
        .split_once('?')
        .map(|(_, q)| {
            q.split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let segs: Vec<&str> = route.trim_start_matches('/').split('/').collect();
    let bodiless = req.body.is_empty();
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["console", "v1", "gates", id]) | ("PUT", ["console", "v1", "gates", id, _]) => {
            let id = id.to_string();
            if req.method == "PUT" {
                if !bodiless {
                    return bad(s, "enable/disable take no body".into());
                }
                let enable = match segs[4] {
                    "enable" => true,
                    "disable" => false,
                    other => return bad(s, format!("no operation PUT gates/{{id}}/{other}")),
                };
                if !flip(s, &id, enable, "CONSOLE API", None) {
                    return (
                        404,
                        Vec::new(),
                        json!({"status": 404, "message": "Gate not found"}),
                    );
                }
            } else if !bodiless || !query.is_empty() {
                return bad(s, "GET gates/{id} takes no body and no query here".into());
            }
            match s.gates.get(&id) {
                Some(g) => (
                    200,
                    Vec::new(),
                    json!({"message": "Gate read successfully.", "data": gate_json(&id, g)}),
                ),
                None => (
                    404,
                    Vec::new(),
                    json!({"status": 404, "message": "Gate not found"}),
                ),
            }
        }
        ("GET", ["console", "v1", "dynamic_configs", id]) => match s.configs.get(*id) {
            Some((enabled, v)) => (
                200,
                Vec::new(),
                json!({"message": "Dynamic config read successfully.", "data": {
                    "id": id, "name": id, "description": "", "idType": "userID", "isEnabled": enabled,
                    "defaultValue": v, "rules": [], "lastModifiedTime": now_ms(),
                    "lastModifierName": "CONSOLE API", "lastModifierID": "stub", "tags": [],
                }}),
            ),
            None => (
                404,
                Vec::new(),
                json!({"status": 404, "message": "Dynamic config not found"}),
            ),
        },
        ("GET", ["console", "v1", "audit_logs"]) => {
            if !bodiless {
                return bad(s, "GET audit_logs takes no body".into());
            }
            let mut limit = 100usize;
            let mut page = 1usize;
            let (mut start, mut end) = (None, None);
            for (k, v) in &query {
                if !AUDIT_PARAMS.contains(&k.as_str()) {
                    return bad(s, format!("audit_logs declares no parameter `{k}`"));
                }
                let date_ok = v.len() == 10
                    && v.bytes().enumerate().all(|(i, b)| {
                        if i == 4 || i == 7 {
                            b == b'-'
                        } else {
                            b.is_ascii_digit()
                        }
                    });
                match k.as_str() {
                    "startDate" | "endDate" if !date_ok => {
                        return bad(s, format!("{k}={v} is not YYYY-MM-DD"))
                    }
                    "startDate" => start = Some(v.clone()),
                    "endDate" => end = Some(v.clone()),
                    "limit" | "page" => match v.parse::<usize>() {
                        Ok(n) if n >= 1 => {
                            if k == "limit" {
                                limit = n
                            } else {
                                page = n
                            }
                        }
                        _ => return bad(s, format!("{k}={v} is not a positive number")),
                    },
                    _ => {}
                }
            }
            let mut entries: Vec<Value> = s
                .audit
                .iter()
                .filter(|e| {
                    let d = e["date"].as_str().unwrap_or_default();
                    start.as_deref().is_none_or(|st| d >= st)
                        && end.as_deref().is_none_or(|en| d <= en)
                })
                .cloned()
                .collect();
            entries.reverse();
            let total = entries.len();
            let from = (page - 1) * limit;
            let data: Vec<Value> = entries.into_iter().skip(from).take(limit).collect();
            let next = (from + limit < total)
                .then(|| format!("/console/v1/audit_logs?page={}&limit={limit}", page + 1));
            let prev = (page > 1)
                .then(|| format!("/console/v1/audit_logs?page={}&limit={limit}", page - 1));
            (
                200,
                Vec::new(),
                json!({
                    "message": "Audit logs listed successfully.",
                    "data": data,
                    "pagination": { "itemsPerPage": limit, "pageNumber": page, "totalItems": total,
                        "nextPage": next, "previousPage": prev, "all": "/console/v1/audit_logs" },
                }),
            )
        }
        _ => {
            s.violations.push(format!(
                "{} {}: no such operation in the Console API",
                req.method, req.path
            ));
            (
                404,
                Vec::new(),
                json!({"status": 404, "message": "Not found"}),
            )
        }
    }
}

fn serve(conn: TcpStream, state: &Mutex<State>, stop: &AtomicBool) {
    let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
    let Ok(mut out) = conn.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(conn);
    while let Some(mut req) = read_request(&mut reader, stop) {
        let (status, headers, body) = {
            let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
            let a = answer(&mut s, &req);
            req.status = a.0;
            s.requests.push(req);
            a
        };
        let body = serde_json::to_vec(&body).unwrap_or_default();
        if !stub_http::write_json(&mut out, status, "Stub", &headers, &body) {
            return;
        }
    }
}

fn read_request(r: &mut BufReader<TcpStream>, stop: &AtomicBool) -> Option<Captured> {
    let head = stub_http::read_head(r, stop)?;
    let body = stub_http::read_body(r, &head)?;
    Some(Captured {
        method: head.method,
        path: head.path,
        headers: head.headers,
        body,
        status: 0,
    })
}
