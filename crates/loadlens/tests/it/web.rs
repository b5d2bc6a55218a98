//! The live web dashboard over plain HTTP: the event stream (one event per snapshot, numbers
//! growing), a run waiting for a start, its load changed and stopped through the control
//! endpoints, the downloads, and basic auth.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::*;

/// A `loadlens run … --web --web-port 0` process and the dashboard's address, read from its
/// output. Killed on drop.
pub struct Live {
    pub child: Child,
    pub addr: String,
    pub out: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Live {
    pub fn start(args: &[&str]) -> Live {
        let mut child = Command::new(bin())
            .args(args)
            .args(["--web", "--web-port", "0"])
            .env_remove("TEST_RUN_ID")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start loadlens");
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut addr = None;
        let mut seen = String::new();
        for _ in 0..20 {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            seen.push_str(&line);
            if let Some(a) = line.trim().strip_prefix("dashboard: http://") {
                addr = Some(a.trim_end_matches('/').to_owned());
                break;
            }
        }
        let addr = addr.unwrap_or_else(|| panic!("no dashboard line in {seen:?}"));
        let out = std::sync::Arc::new(std::sync::Mutex::new(seen));
        let o2 = out.clone();
        std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = reader.read_to_string(&mut rest);
            o2.lock().unwrap().push_str(&rest);
        });
        Live { child, addr, out }
    }

    /// Wait (bounded) for the process to exit; returns its code and its stdout.
    pub fn wait(mut self, limit: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                return (s.code(), self.out.lock().unwrap().clone());
            }
            assert!(
                Instant::now() < deadline,
                "loadlens did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn state(&self) -> Value {
        let (status, _, body) = http(&self.addr, "GET", "/api/state", None, None);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Poll the state until `f` holds (bounded).
    pub fn until(&self, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.state();
            if f(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {s:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request with `Connection: close`: status, header block, body.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    auth: Option<&str>,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let body = body.unwrap_or("");
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Read the head, then the body by its length when it has one (some servers, Chromium's
    // DevTools endpoint among them, keep the connection open despite `Connection: close`).
    let mut raw = Vec::new();
    let mut b = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") && s.read(&mut b).unwrap() == 1 {
        raw.push(b[0]);
    }
    let head = String::from_utf8_lossy(&raw).trim_end().to_owned();
    let length = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    let mut body = Vec::new();
    match length {
        Some(n) => {
            body.resize(n, 0);
            s.read_exact(&mut body).unwrap();
        }
        None => {
            s.read_to_end(&mut body).unwrap();
        }
    }
    let status = head.split(' ').nth(1).unwrap_or("0").parse().unwrap();
    let body = String::from_utf8_lossy(&body).into_owned();
    (status, head.clone(), dechunk(&head, &body))
}

fn dechunk(head: &str, body: &str) -> String {
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_owned();
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
}

/// Read `n` events from the event stream (bounded in time): the JSON of each `data:` line.
/// `(label, stroke)` of every line in `svg`, in drawing order, and the legend's `(colour, label)`.
fn series_of(svg: &str) -> Vec<(String, String)> {
    let attr = |tag: &str, name: &str| {
        let at = tag.find(&format!(r#" {name}=""#))? + name.len() + 3;
        Some(tag[at..].split('"').next()?.to_owned())
    };
    let mut out: Vec<(String, String)> = svg
        .split("<path ")
        .skip(1)
        .filter_map(|t| Some((attr(t, "data-label")?, attr(t, "stroke")?)))
        .collect();
    for item in svg.split(r#"<span><i style="background:"#).skip(1) {
        let (color, rest) = item.split_once(r#""></i>"#).unwrap();
        let label = rest.split("</span>").next().unwrap();
        out.push((format!("legend {label}"), color.to_owned()));
    }
    out
}

pub fn read_events(addr: &str, n: usize, auth: Option<&str>) -> Vec<Value> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(s, "GET /events HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\n").unwrap();
    let mut reader = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line);
    }
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    let mut events = Vec::new();
    let mut kinds = 0;
    while events.len() < n {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        if line.trim() == "event: state" {
            kinds += 1;
        }
        if let Some(data) = line.strip_prefix("data: ") {
            events.push(serde_json::from_str(data.trim()).unwrap());
        }
    }
    assert_eq!(
        kinds,
        events.len(),
        "every data line belongs to a `state` event"
    );
    events
}

#[test]
fn the_event_stream_pushes_one_state_per_snapshot_with_growing_numbers() {
    let target = DemoTarget::start(&["--latency", "fixed(2ms)"]);
    let url = format!("{}/api/products", target.url);
    let live = Live::start(&["run", "--url", &url, "-c", "4", "-z", "6s", "--headless"]);
    let started = Instant::now();
    let events = read_events(&live.addr, 5, None);
    let took = started.elapsed();
    assert_eq!(events.len(), 5);
    // The current state at once (sometimes twice while the run is starting), then one per
    // second: at least 2 s for five, no faster (no polling loop sending duplicates).
    assert!(took >= Duration::from_millis(1800), "{took:?}");
    let counts: Vec<u64> = events
        .iter()
        .filter_map(|e| e["total"]["requests"].as_u64())
        .collect();
    assert!(counts.len() >= 3, "{events:?}");
    assert!(counts.windows(2).all(|w| w[1] > w[0]), "{counts:?}");
    let last = events.last().unwrap();
    assert_eq!(last["phase"], "running");
    assert_eq!(last["requests"][0]["name"], "/api/products");
    assert!(last["charts"].as_str().unwrap().contains("chart-latency"));
    assert!(last["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "run_started"));

    // Downloads of the run so far.
    let (status, head, csv) = http(&live.addr, "GET", "/download/stats.csv", None, None);
    assert_eq!(status, 200);
    assert!(head.contains("attachment"), "{head}");
    assert!(csv.lines().any(|l| l.contains("Aggregated")), "{csv}");
    let (status, _, json) = http(&live.addr, "GET", "/download/result.json", None, None);
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&json).unwrap();
    assert!(doc["aggregate"]["request_count"].as_u64().unwrap() > 0);
    let (status, _, html) = http(&live.addr, "GET", "/download/report.html", None, None);
    assert_eq!(status, 200);
    assert!(html.contains("chart-rps"));
    // The page's charts are the report's: same charts, series, colours and legends.
    let over_time = |h: &str| {
        let from = h.find(r#"<figure class="chart" id="chart-rps""#).unwrap();
        let to = h.find(r#"id="chart-users""#).unwrap();
        let end = to + h[to..].find("</figure>").unwrap();
        series_of(&h[from..end])
    };
    let live_series = over_time(last["charts"].as_str().unwrap());
    assert_eq!(live_series, over_time(&html));
    assert_eq!(
        live_series.len(),
        12,
        "six lines and their legends: {live_series:?}"
    );
    assert_eq!(http(&live.addr, "GET", "/download/x", None, None).0, 404);
    // Headless: the run is not waiting and ends by itself.
    assert_eq!(
        http(
            &live.addr,
            "POST",
            "/api/start",
            Some(r#"{"users":1}"#),
            None
        )
        .0,
        409
    );
    let (code, out) = live.wait(Duration::from_secs(30));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Aggregated"), "{out}");
}

#[test]
fn a_run_waits_for_the_page_then_its_load_is_changed_and_it_is_stopped() {
    let target = DemoTarget::start(&["--latency", "fixed(5ms)"]);
    let url = format!("{}/api/products", target.url);
    let live = Live::start(&["run", "--url", &url, "-c", "2", "-z", "60s"]);
    let s = live.state();
    assert_eq!(s["phase"], "waiting");
    assert_eq!(s["users_target"], 2);
    // Nothing runs before the start.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        target.stats()["routes"]["GET /api/products"]
            .as_u64()
            .unwrap_or(0),
        0
    );
    let post = |path: &str, body: &str| http(&live.addr, "POST", path, Some(body), None);
    assert_eq!(post("/api/load", r#"{"users":3}"#).0, 409);
    assert_eq!(post("/api/stop", "{}").0, 409);
    assert_eq!(post("/api/start", r#"{"users":"many"}"#).0, 400);
    assert_eq!(post("/api/start", "{}").0, 400);
    // More users than a process can hold: refused before anything is allocated.
    let (code, _, body) = post("/api/start", r#"{"users":18446744073709551615}"#);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("above the limit of 1000000 users"), "{body}");
    assert_eq!(post("/api/start", r#"{"users":3}"#).0, 202);
    assert_eq!(
        post("/api/start", r#"{"users":3}"#).0,
        409,
        "only one start"
    );
    live.until("3 users running", |s| {
        s["phase"] == "running" && s["users"] == 3
    });
    assert_eq!(post("/api/load", r#"{"rate":5}"#).0, 400, "closed model");
    let (code, _, body) = post("/api/load", r#"{"users":18446744073709551615}"#);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("above the limit of 1000000 users"), "{body}");
    assert_eq!(post("/api/load", r#"{"users":6}"#).0, 202);
    let s = live.until("6 users", |s| s["users"] == 6);
    assert_eq!(s["users_target"], 6);
    live.until("the load change on the timeline", |s| {
        s["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["message"] == "load changed to 6 users")
    });
    assert_eq!(post("/api/stop", "{}").0, 202);
    let s = live.until("the end", |s| s["phase"] == "finished");
    assert!(s["total"]["requests"].as_u64().unwrap() > 0);
    assert!(s["elapsed_s"].as_f64().unwrap() < 30.0);
    // The final reports, from the end-of-run summary.
    let (_, _, json) = http(&live.addr, "GET", "/download/result.json", None, None);
    let doc: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["run"]["verdict"], "interrupted");
    assert_eq!(
        doc["aggregate"]["request_count"],
        target.stats()["routes"]["GET /api/products"],
        "the final numbers"
    );
    // Without --headless the page stays up after the run, until Ctrl-C.
    std::thread::sleep(Duration::from_millis(300));
    assert!(live.child.id() > 0);
    interrupt(&live.child);
    let (code, out) = live.wait(Duration::from_secs(20));
    assert_eq!(code, Some(130), "{out}");
    assert!(out.contains("Aggregated"), "{out}");
}

#[test]
fn basic_auth_guards_every_route_and_the_password_is_never_printed() {
    let target = DemoTarget::start(&[]);
    let url = format!("{}/api/products", target.url);
    let mut live = Live::start(&[
        "run",
        "--url",
        &url,
        "-c",
        "2",
        "-z",
        "3s",
        "--headless",
        "--web-auth",
        "ops:s3cret-pw",
    ]);
    let (status, head, _) = http(&live.addr, "GET", "/", None, None);
    assert_eq!(status, 401);
    assert!(head.contains("Basic realm"), "{head}");
    let wrong = "Basic b3BzOndyb25n"; // ops:wrong
    assert_eq!(http(&live.addr, "GET", "/events", None, Some(wrong)).0, 401);
    assert_eq!(
        http(&live.addr, "POST", "/api/stop", Some("{}"), Some(wrong)).0,
        401
    );
    let right = "Basic b3BzOnMzY3JldC1wdw=="; // ops:s3cret-pw
    let (status, _, page) = http(&live.addr, "GET", "/", None, Some(right));
    assert_eq!(status, 200);
    assert!(page.contains("EventSource"));
    assert_eq!(read_events(&live.addr, 1, Some(right)).len(), 1);
    let mut err = String::new();
    live.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let (code, out) = live.wait(Duration::from_secs(20));
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!out.contains("s3cret") && !err.contains("s3cret"));
    assert!(!err.contains("warning"), "loopback: no warning: {err}");
}

#[test]
fn bad_web_auth_is_invalid_input() {
    let out = run(&[
        "run",
        "--url",
        "http://127.0.0.1:9/",
        "--web",
        "--web-port",
        "0",
        "--web-auth",
        "nocolon",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("USER:PASSWORD"));
}
