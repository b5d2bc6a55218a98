//! `loadlens run`: quick mode and scenarios against real servers; reports; bad input; Ctrl-C.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::schema::assert_valid;
use crate::support::*;

#[test]
fn quick_mode_counts_match_the_server_and_reports_follow_their_contracts() {
    let target = DemoTarget::start(&["--latency", "0"]);
    let dir = TempDir::new("quick");
    let out = run(&[
        "run",
        "--url",
        &format!("{}/api/products?limit=5", target.url),
        "-c",
        "4",
        "-n",
        "500",
        "--json",
        &dir.join("r.json"),
        "--csv",
        &dir.join("q"),
        "--run-id",
        "it-quick",
        "--tag",
        "team=perf",
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let served = target.stats()["routes"]["GET /api/products"]
        .as_u64()
        .unwrap();
    assert_eq!(served, 500, "server saw every request exactly once");

    let j = read_json(&dir.path("r.json"));
    assert_valid(&j);
    assert_eq!(j["format_version"], 1);
    assert_eq!(j["run"]["id"], "it-quick");
    assert_eq!(j["run"]["tags"]["team"], "perf");
    assert_eq!(j["aggregate"]["request_count"], 500);
    assert_eq!(j["aggregate"]["failure_count"], 0);
    assert_eq!(j["aggregate"]["status_codes"]["200"], 500);
    assert_eq!(
        j["aggregate"]["new_connections"], 4,
        "4 users, 4 keep-alive connections"
    );
    assert_eq!(j["requests"][0]["phases_ms"]["connect"]["count"], 4);
    assert_eq!(j["requests"][0]["phases_ms"]["ttfb"]["count"], 500);
    let lat = &j["aggregate"]["latency_ms"];
    assert!(lat["min"].as_f64().unwrap() <= lat["p50"].as_f64().unwrap());
    assert!(lat["p50"].as_f64().unwrap() <= lat["p99"].as_f64().unwrap());
    assert!(lat["p99"].as_f64().unwrap() <= lat["max"].as_f64().unwrap());
    assert!(j["aggregate"]["bytes_received"].as_u64().unwrap() > 500 * 100);

    let stats = std::fs::read_to_string(dir.path("q_stats.csv")).unwrap();
    let mut lines = stats.lines();
    assert_eq!(
        lines.next().unwrap(),
        "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
    );
    let row: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(&row[..4], &["GET", "/api/products", "500", "0"]);
    let agg: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(&agg[..3], &["", "Aggregated", "500"]);
    let hist = std::fs::read_to_string(dir.path("q_stats_history.csv")).unwrap();
    assert!(hist.starts_with("Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,"));
    for l in hist.lines().skip(1) {
        assert_eq!(l.split(',').count(), 24, "{l}");
    }
    let fails = std::fs::read_to_string(dir.path("q_failures.csv")).unwrap();
    assert_eq!(
        fails,
        "Method,Name,Error,Occurrences,First Seen,Last Seen\r\n"
    );
    // The summary table names the request and the aggregate.
    let text = stdout(&out);
    assert!(
        text.contains("/api/products") && text.contains("Aggregated"),
        "{text}"
    );
    assert!(text.contains("Connection phases"), "{text}");
}

#[test]
fn errors_are_catalogued_by_kind_and_message() {
    let target = DemoTarget::start(&["--latency", "0", "--error-rate", "1.0"]);
    let dir = TempDir::new("errors");
    let out = run(&[
        "run",
        "--url",
        &format!("{}/health", target.url),
        "-c",
        "2",
        "-n",
        "40",
        "--json",
        &dir.join("r.json"),
        "--csv",
        &dir.join("e"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let j = read_json(&dir.path("r.json"));
    assert_valid(&j);
    assert_eq!(j["aggregate"]["failure_count"], 40);
    assert_eq!(j["errors"][0]["kind"], "status");
    assert_eq!(j["errors"][0]["message"], "HTTP 500 Internal Server Error");
    assert_eq!(j["errors"][0]["count"], 40);
    assert_eq!(j["errors_by_kind"]["status"], 40);
    let csv = std::fs::read_to_string(dir.path("e_failures.csv")).unwrap();
    assert!(
        csv.contains("GET,/health,status: HTTP 500 Internal Server Error,40,"),
        "{csv}"
    );
    // First and last seen, as Locust writes them, and kept in the JSON result for `merge`.
    let row: Vec<&str> = csv.lines().nth(1).unwrap().split(',').collect();
    for t in &row[4..6] {
        assert!(
            t.len() == 20 && t.ends_with('Z') && t.as_bytes()[10] == b'T',
            "{row:?}"
        );
    }
    assert!(row[4] <= row[5], "{row:?}");
    let first = j["errors"][0]["first_seen"].as_str().unwrap();
    assert!(first.starts_with(&row[4][..19]), "{first} vs {row:?}");
    let merged = dir.join("m");
    let merge = run(&["merge", &dir.join("r.json"), "--csv", &merged]);
    assert_exit(&merge, 0);
    let csv = std::fs::read_to_string(dir.path("m_failures.csv")).unwrap();
    assert!(
        csv.contains(&format!(",40,{},{}\r\n", row[4], row[5])),
        "{csv}"
    );
    assert!(
        stdout(&out).contains("Error report (status: 40)"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn unreachable_host_is_counted_not_fatal() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = TempDir::new("refused");
    let out = run(&[
        "run",
        "--url",
        &format!("http://127.0.0.1:{port}/"),
        "-c",
        "2",
        "-n",
        "30",
        "--json",
        &dir.join("r.json"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let j = read_json(&dir.path("r.json"));
    assert_eq!(j["aggregate"]["failure_count"], 30);
    assert_eq!(j["errors_by_kind"]["refused"], 30);
    assert!(
        stdout(&out).contains("refused: connection refused"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn run_id_and_headers_reach_the_target() {
    let rec = Recorder::start();
    let out = run(&[
        "run",
        "--url",
        &format!("{}/x", rec.url),
        "-c",
        "1",
        "-n",
        "3",
        "--run-id",
        "rid-42",
        "-H",
        "X-Extra: yes",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let reqs = rec.requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 3);
    for r in &reqs {
        let lower = r.to_ascii_lowercase();
        assert!(lower.contains("x-test-run-id: rid-42"), "{r}");
        assert!(lower.contains("x-extra: yes"), "{r}");
    }
    // The header can be renamed or turned off.
    let rec2 = Recorder::start();
    run(&[
        "run",
        "--url",
        &rec2.url,
        "-c",
        "1",
        "-n",
        "1",
        "--run-id-header",
        "none",
    ]);
    assert!(!rec2.requests.lock().unwrap()[0]
        .to_ascii_lowercase()
        .contains("x-test-run-id"));
}

#[test]
fn scenario_file_with_env_twins() {
    let target = DemoTarget::start(&["--latency", "0"]);
    let dir = TempDir::new("scenario");
    let file = dir.path("s.yaml");
    std::fs::write(
        &file,
        "name: it\nuser_types:\n  - name: u\n    tasks:\n      - { weight: 3, request: { path: /api/products/sku_1, name: /api/products/:id } }\n      - request: { method: POST, path: /api/v1/shipping/rates, json: { cart_id: c1 } }\nload: { users: 1, iterations: 10 }\n",
    )
    .unwrap();
    let out = Command::new(bin())
        .args([
            "run",
            file.to_str().unwrap(),
            "-H",
            &target.url,
            "--json",
            &dir.join("r.json"),
        ])
        .env("LOADLENS_USERS", "3")
        .env("LOADLENS_ITERATIONS", "90")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let j = read_json(&dir.path("r.json"));
    assert_valid(&j);
    assert_eq!(j["load"]["users"], 3, "LOADLENS_USERS overrides the file");
    assert_eq!(j["aggregate"]["request_count"], 90);
    assert_eq!(j["run"]["scenario"], "it");
    let names: Vec<&str> = j["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["/api/products/:id", "/api/v1/shipping/rates"]);
    let stats = target.stats();
    assert_eq!(
        stats["routes"]["GET /api/products/{id}"].as_u64().unwrap()
            + stats["routes"]["POST /api/v1/shipping/rates"]
                .as_u64()
                .unwrap(),
        90
    );
}

#[test]
fn bad_input_is_one_clear_line_and_exit_code_2() {
    let dir = TempDir::new("bad");
    let file = dir.path("typo.yaml");
    std::fs::write(
        &file,
        "user_types:\n  - name: u\n    wiat: between(1, 2)\n    tasks: []\n",
    )
    .unwrap();
    let out = run(&["run", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("typo.yaml:3:5: user_types[0]: unknown field `wiat`"),
        "{err}"
    );
    assert!(err.contains("did you mean `wait`?"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let out = run(&["run", "--url", "localhost:8080/x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid URL `localhost:8080/x`"),
        "{}",
        stderr(&out)
    );

    let out = run(&["run", "--url", "http://127.0.0.1:1/", "-z", "ten seconds"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("invalid value 'ten seconds'"),
        "{}",
        stderr(&out)
    );

    let out = run(&["run", "--url", "http://127.0.0.1:1/", "--bogus"]);
    assert_eq!(out.status.code(), Some(2));

    let out = run(&["run", dir.join("missing.yaml").as_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("cannot read scenario"),
        "{}",
        stderr(&out)
    );

    let out = run(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn ctrl_c_or_sigterm_stops_gracefully_and_still_writes_every_report() {
    let target = DemoTarget::start(&["--latency", "fixed(20ms)"]);
    // SIGTERM is what `timeout`, `kill`, containers and CI runners send.
    for signal in ["INT", "TERM"] {
        stops_gracefully_on(&target, signal);
    }
}

fn stops_gracefully_on(target: &DemoTarget, signal: &str) {
    let dir = TempDir::new("sigint");
    let child = Command::new(bin())
        .args([
            "run",
            "--url",
            &format!("{}/health", target.url),
            "-c",
            "5",
            "-z",
            "60s",
            "--json",
            &dir.join("r.json"),
            "--csv",
            &dir.join("c"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let t = Instant::now();
    send_signal(child.id(), signal);
    let out = child.wait_with_output().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "graceful stop took {:?}",
        t.elapsed()
    );
    assert_eq!(
        out.status.code(),
        Some(130),
        "SIG{signal}: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("in-flight requests get to finish"),
        "SIG{signal}: {}",
        stderr(&out)
    );
    let j = read_json(&dir.path("r.json"));
    assert_eq!(j["run"]["verdict"], "interrupted");
    assert_eq!(j["run"]["killed"], false);
    assert!(j["aggregate"]["request_count"].as_u64().unwrap() > 20);
    assert_eq!(
        j["aggregate"]["failure_count"], 0,
        "in-flight requests finished"
    );
    assert!(dir.path("c_stats.csv").exists() && dir.path("c_failures.csv").exists());
}

#[test]
fn second_ctrl_c_stops_at_once() {
    let target = DemoTarget::start(&["--latency", "fixed(20s)"]);
    let dir = TempDir::new("sigint2");
    let child = Command::new(bin())
        .args([
            "run",
            "--url",
            &format!("{}/health", target.url),
            "-c",
            "3",
            "-z",
            "60s",
            "--stop-timeout",
            "60s",
            "--json",
            &dir.join("r.json"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let t = Instant::now();
    interrupt(&child);
    std::thread::sleep(Duration::from_millis(300));
    interrupt(&child);
    let out = child.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(out.status.code(), Some(130));
    let j = read_json(&dir.path("r.json"));
    assert_eq!(j["run"]["killed"], true);
    assert!(stderr(&out).contains("Stopping now."), "{}", stderr(&out));
}
