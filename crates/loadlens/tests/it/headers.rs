//! A header value is never split into two headers: a control character (a newline) in any
//! header source is refused before the run, or, when a template renders it during the run,
//! fails that request and is counted, without sending anything.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};

use crate::support::*;

#[test]
fn a_newline_in_a_header_flag_is_refused_not_sent_as_a_second_header() {
    let rec = Recorder::start();
    let injected = "X-A: 1\nX-Injected: yes";
    for flag in ["--header", "-H"] {
        let out = run(&[
            "run", "--url", &rec.url, "-c", "1", "-n", "2", flag, injected,
        ]);
        assert_exit(&out, 2);
        assert!(
            stderr(&out).contains(
                "invalid value for header `X-A`: it contains the control character '\\n'"
            ),
            "{flag}: {}",
            stderr(&out)
        );
    }
    assert!(rec.requests.lock().unwrap().is_empty(), "no load was sent");
    // The environment twin holds one header per line.
    let out = Command::new(bin())
        .args(["run", "--url", &rec.url, "-c", "1", "-n", "2"])
        .env("LOADLENS_HEADERS", "X-A: 1\nX-B: 2\n")
        .env_remove("TEST_RUN_ID")
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let reqs = rec.requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        let lower = r.to_ascii_lowercase();
        assert!(
            lower.contains("\r\nx-a: 1\r\n") && lower.contains("\r\nx-b: 2\r\n"),
            "{r}"
        );
    }
}

#[test]
fn a_newline_in_a_scenario_header_is_an_input_error() {
    let rec = Recorder::start();
    let dir = TempDir::new("hdr-yaml");
    let file = dir.path("s.yaml");
    std::fs::write(
        &file,
        format!(
            "host: {}\nuser_types:\n  - name: u\n    tasks:\n      - request:\n          path: /\n          headers:\n            X-A: \"1\\nX-Injected: yes\"\n",
            rec.url
        ),
    )
    .unwrap();
    let out = run(&["run", file.to_str().unwrap(), "-u", "1", "-i", "1"]);
    assert_exit(&out, 2);
    // Located at the value, on its own line (not 1:1).
    assert!(
        stderr(&out).contains("s.yaml:8:18: invalid value for header `x-a`"),
        "{}",
        stderr(&out)
    );
    assert!(rec.requests.lock().unwrap().is_empty());
}

/// A server that answers every request with `{"v": "1\nX-Injected: yes"}` and keeps each
/// request's header block.
fn newline_server() -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let heads = Arc::new(Mutex::new(Vec::new()));
    let h2 = heads.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { return };
            let heads = h2.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                loop {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push_str(&line);
                    }
                    heads.lock().unwrap().push(head);
                    let body = r#"{"v": "1\nX-Injected: yes"}"#;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if conn.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, heads)
}

#[test]
fn a_newline_rendered_into_a_header_during_the_run_fails_that_request_and_is_counted() {
    let (url, heads) = newline_server();
    let dir = TempDir::new("hdr-tpl");
    let file = dir.path("s.yaml");
    std::fs::write(
        &file,
        format!(
            "host: {url}\nuser_types:\n  - name: u\n    tasks:\n      - steps:\n          - request: {{ path: /get, capture: [{{ json: $.v, as: v }}] }}\n          - request: {{ path: /use, headers: {{ X-A: \"{{{{ v }}}}\" }} }}\n"
        ),
    )
    .unwrap();
    let json = dir.join("result.json");
    let out = run(&[
        "run",
        file.to_str().unwrap(),
        "-u",
        "1",
        "-i",
        "3",
        "--json",
        &json,
    ]);
    assert_exit(&out, 0);
    let heads = heads.lock().unwrap().clone();
    assert!(
        heads
            .iter()
            .all(|h| !h.to_ascii_lowercase().contains("x-injected")),
        "{heads:?}"
    );
    assert!(
        heads.iter().all(|h| h.starts_with("GET /get ")),
        "only the captures were sent: {heads:?}"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let failed: Vec<_> = doc["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == "/use")
        .collect();
    assert_eq!(failed.len(), 1, "{doc}");
    assert_eq!(failed[0]["request_count"], 3);
    assert_eq!(failed[0]["failure_count"], 3);
    let errors = doc["errors"].to_string();
    assert!(
        errors.contains("header `x-a` has an invalid value after templating"),
        "{errors}"
    );
}
