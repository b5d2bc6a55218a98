//! The dashboard against other web pages: a cross-site or DNS-rebound request cannot start,
//! change or stop a run, every answer forbids framing, and a connection that sends nothing is
//! closed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::*;
use crate::web::{http, Live};

/// One request with exactly the header lines given (plus `Content-Length` and `Connection:
/// close`); returns the status.
fn raw(addr: &str, method: &str, path: &str, lines: &[String], body: &str) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    for l in lines {
        head.push_str(l);
        head.push_str("\r\n");
    }
    write!(
        s,
        "{head}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    text.split(' ').nth(1).unwrap_or("0").parse().unwrap()
}

#[test]
fn cross_site_and_rebound_requests_cannot_drive_the_run() {
    let target = DemoTarget::start(&["--latency", "fixed(5ms)"]);
    let url = format!("{}/api/products", target.url);
    let live = Live::start(&["run", "--url", &url, "-c", "1", "-z", "60s"]);
    let addr = live.addr.clone();
    let own = format!("Host: {addr}");
    let port = addr.rsplit_once(':').unwrap().1.to_owned();
    let body = r#"{"users":5}"#;
    let attempts: Vec<(&str, Vec<String>, u16)> = vec![
        // A form or a text/plain fetch from another site (no preflight).
        (
            "text/plain from another origin",
            vec![
                own.clone(),
                "Origin: http://evil.example".into(),
                "Content-Type: text/plain".into(),
            ],
            403,
        ),
        (
            "text/plain, no origin",
            vec![own.clone(), "Content-Type: text/plain".into()],
            415,
        ),
        (
            "JSON from another origin",
            vec![
                own.clone(),
                "Origin: http://evil.example".into(),
                "Content-Type: application/json".into(),
            ],
            403,
        ),
        (
            "a cross-site fetch",
            vec![
                own.clone(),
                "Sec-Fetch-Site: cross-site".into(),
                "Content-Type: application/json".into(),
            ],
            403,
        ),
        // DNS rebinding: the attacker's name resolves to 127.0.0.1, so the page is
        // "same-origin" with it.
        (
            "a rebound name",
            vec![
                format!("Host: evil.example:{port}"),
                format!("Origin: http://evil.example:{port}"),
                "Content-Type: application/json".into(),
            ],
            403,
        ),
    ];
    for path in ["/api/start", "/api/load", "/api/stop"] {
        for (what, lines, status) in &attempts {
            assert_eq!(
                raw(&addr, "POST", path, lines, body),
                *status,
                "{what} {path}"
            );
        }
    }
    // A rebound page cannot read the state either.
    let rebound = [format!("Host: evil.example:{port}")];
    assert_eq!(raw(&addr, "GET", "/api/state", &rebound, ""), 403);
    let s = live.state();
    assert_eq!(s["phase"], "waiting", "{s}");
    assert_eq!(
        target.stats()["routes"]["GET /api/products"]
            .as_u64()
            .unwrap_or(0),
        0
    );

    // The page itself (same origin, JSON) still drives it, also by `localhost`.
    let page = |path: &str, body: &str| {
        raw(
            &addr,
            "POST",
            path,
            &[
                format!("Host: localhost:{port}"),
                format!("Origin: http://localhost:{port}"),
                "Sec-Fetch-Site: same-origin".into(),
                "Content-Type: application/json".into(),
            ],
            body,
        )
    };
    assert_eq!(page("/api/start", r#"{"users":2}"#), 202);
    live.until("2 users running", |s| {
        s["phase"] == "running" && s["users"] == 2
    });
    for (what, lines, status) in &attempts {
        assert_eq!(
            raw(&addr, "POST", "/api/stop", lines, "{}"),
            *status,
            "{what}"
        );
    }
    assert_eq!(live.state()["phase"], "running");
    assert_eq!(page("/api/stop", "{}"), 202);
    live.until("the end", |s| s["phase"] == "finished");

    // Every answer forbids framing.
    for path in ["/", "/api/state", "/download/result.json", "/nowhere"] {
        let (_, head, _) = http(&addr, "GET", path, None, None);
        let head = head.to_ascii_lowercase();
        assert!(head.contains("\r\nx-frame-options: deny"), "{path}: {head}");
        assert!(
            head.contains("\r\ncontent-security-policy: frame-ancestors 'none'"),
            "{path}: {head}"
        );
    }
}

#[test]
fn a_connection_that_sends_nothing_is_closed() {
    let target = DemoTarget::start(&[]);
    let live = Live::start(&["run", "--url", &target.url, "-c", "1", "-z", "60s"]);
    let mut idle = TcpStream::connect(&live.addr).unwrap();
    // Far longer than the dashboard's 10 s: only a connection left open forever fails this.
    idle.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let read = idle.read_to_end(&mut buf);
    assert!(
        read.is_ok(),
        "still open after {:?}: {read:?}",
        started.elapsed()
    );
    // The dashboard still serves others.
    assert_eq!(live.state()["phase"], "waiting");
}
