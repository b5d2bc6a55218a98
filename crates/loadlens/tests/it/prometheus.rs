//! `--prometheus` and `--prometheus-remote-write` end to end with a real Prometheus server
//! (Debian's `prometheus` package, installed by `scripts/test`): it scrapes a run of the binary,
//! or receives its remote writes, and what its query API returns equals the run's JSON result.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{bin, free_port, stderr, stdout, DemoTarget, TempDir};

fn storefront() -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/storefront.yaml")
        .display()
        .to_string()
}

fn loadlens(args: &[&str]) -> Output {
    let mut c = Command::new(bin());
    c.args(args).env_remove("TEST_RUN_ID");
    for k in [
        "LOADLENS_PROMETHEUS",
        "LOADLENS_PROMETHEUS_REMOTE_WRITE",
        "LOADLENS_PROMETHEUS_LINGER",
    ] {
        c.env_remove(k);
    }
    c.output().expect("run loadlens")
}

/// `GET path`: head and body (chunked bodies joined).
fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = String::new();
    c.read_to_string(&mut all).unwrap();
    let (head, body) = all.split_once("\r\n\r\n").unwrap();
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return (head.to_owned(), body.to_owned());
    }
    let (mut out, mut rest) = (String::new(), body);
    loop {
        let (size, tail) = rest.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            return (head.to_owned(), out);
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
}

/// A Prometheus server on 127.0.0.1 (scraping `target` every second, if given; remote-write
/// receiver on), killed on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(target: Option<u16>) -> Prometheus {
        let bin = PathBuf::from("/usr/bin/prometheus");
        assert!(
            bin.exists(),
            "/usr/bin/prometheus is missing: install it with `apt-get install prometheus` (scripts/test does)"
        );
        let dir = TempDir::new("prometheus");
        let mut yaml = "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n".to_owned();
        if let Some(port) = target {
            yaml.push_str(&format!(
                "scrape_configs:\n  - job_name: loadlens\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
            ));
        }
        std::fs::write(dir.path("prometheus.yml"), yaml).unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", dir.join("prometheus.yml")))
            .arg(format!("--storage.tsdb.path={}", dir.join("data")))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path("log")).unwrap())
            .spawn()
            .unwrap();
        let mut p = Prometheus { child, addr, dir };
        let t = Instant::now();
        loop {
            if let Some(status) = p.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(p.dir.path("log")).unwrap_or_default();
                panic!("prometheus exited ({status}): {log}");
            }
            if std::net::TcpStream::connect(addr).is_ok()
                && get(addr, "/-/ready").0.starts_with("HTTP/1.1 200")
            {
                return p;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "prometheus did not get ready in 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The result vector of an instant query.
    fn query(&self, promql: &str) -> Vec<Value> {
        let q: String = promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let (head, body) = get(self.addr, &format!("/api/v1/query?query={q}"));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        v["data"]["result"].as_array().unwrap().clone()
    }

    /// One number, polled until it equals `want` or 30 s pass; the last value seen.
    fn wait_for(&self, promql: &str, want: f64) -> Option<f64> {
        let t = Instant::now();
        loop {
            let v = self
                .query(promql)
                .first()
                .map(|r| r["value"][1].as_str().unwrap().parse::<f64>().unwrap());
            if v == Some(want) || t.elapsed() > Duration::from_secs(30) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `sum by (name) (…)` as a map.
    fn by_name(&self, promql: &str) -> std::collections::BTreeMap<String, u64> {
        self.query(promql)
            .iter()
            .map(|r| {
                (
                    r["metric"]["name"].as_str().unwrap().to_owned(),
                    r["value"][1].as_str().unwrap().parse::<f64>().unwrap() as u64,
                )
            })
            .collect()
    }
}

/// The run's request count per name, from its JSON result.
fn counts(doc: &Value) -> std::collections::BTreeMap<String, u64> {
    doc["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["request_count"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_real_prometheus_scrapes_a_run_and_its_counters_equal_the_runs_counts() {
    let target = DemoTarget::start(&[]);
    let port = free_port();
    let prom = Prometheus::start(Some(port));
    // Prometheus applies its targets in batches (every 5 s): wait until it tries this one, so
    // that it scrapes during the run.
    let t = Instant::now();
    while prom.query(r#"up{job="loadlens"}"#).is_empty() {
        assert!(t.elapsed() < Duration::from_secs(30), "no scrape in 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    let dir = TempDir::new("prom-scrape");
    let json = dir.join("result.json");
    let listen = format!("127.0.0.1:{port}");
    let out = loadlens(&[
        "run",
        &storefront(),
        "-H",
        &target.url,
        "-u",
        "5",
        "-t",
        "3s",
        "--json",
        &json,
        "--run-id",
        "prom-e2e-1",
        "--tag",
        "git.sha=abc123",
        "--prometheus",
        &listen,
    ]);
    let (so, se) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{so}\n{se}");
    assert!(
        so.contains(&format!("prometheus: serving http://{listen}/metrics")),
        "{so}"
    );
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let total = doc["aggregate"]["request_count"].as_u64().unwrap();
    assert!(total > 0);
    let sink = doc["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "prometheus")
        .expect("the prometheus sink reports");
    assert!(sink["delivered"].as_u64().unwrap() >= 2, "scraped: {sink}");

    // The target is gone after the run, so its series are stale: read their last values.
    let sel = r#"{job="loadlens",run_id="prom-e2e-1"}"#;
    assert_eq!(
        prom.wait_for(
            &format!("sum(max_over_time(loadlens_requests_total{sel}[5m]))"),
            total as f64
        ),
        Some(total as f64),
        "Prometheus's request counter equals the run's count"
    );
    assert_eq!(
        prom.by_name(&format!(
            "sum by (name) (max_over_time(loadlens_requests_total{sel}[5m]))"
        )),
        counts(&doc),
        "per request name too"
    );
    assert_eq!(
        prom.by_name(
            r#"sum by (name) (max_over_time(loadlens_request_duration_seconds_bucket{le="+Inf",job="loadlens",run_id="prom-e2e-1"}[5m]))"#
        ),
        counts(&doc),
        "the latency histogram counts every request"
    );
    let info = prom.query(r#"max_over_time(loadlens_run_info{run_id="prom-e2e-1"}[5m])"#);
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0]["metric"]["git_sha"], "abc123", "tags become labels");
    assert_eq!(info[0]["metric"]["scenario"], "storefront");
}

#[test]
fn remote_write_from_the_scenario_section_reaches_a_real_prometheus_and_equals_the_runs_count() {
    let target = DemoTarget::start(&[]);
    let prom = Prometheus::start(None);
    let dir = TempDir::new("prom-rw");
    let json = dir.join("result.json");
    // Credentials in the URL are sent as basic auth (Prometheus ignores them) and never shown.
    let url = format!("http://loadlens:pr0m-s3cret@{}/api/v1/write", prom.addr);
    let scenario = dir.join("s.yaml");
    let text = std::fs::read_to_string(storefront()).unwrap();
    std::fs::write(
        &scenario,
        format!("{text}\nprometheus:\n  remote_write: {url}\n"),
    )
    .unwrap();
    let out = loadlens(&[
        "run",
        &scenario,
        "-H",
        &target.url,
        "-u",
        "5",
        "-t",
        "3s",
        "--json",
        &json,
        "--run-id",
        "prom-e2e-2",
    ]);
    let (so, se) = (stdout(&out), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{so}\n{se}");
    let result = std::fs::read_to_string(&json).unwrap();
    for text in [&so, &se, &result] {
        assert!(!text.contains("pr0m-s3cret"), "the password leaked: {text}");
    }
    assert!(
        so.contains("prometheus: remote write to http://loadlens:***@"),
        "{so}"
    );
    assert!(
        !so.contains("serving http"),
        "a section with remote_write alone serves nothing: {so}"
    );
    let doc: Value = serde_json::from_str(&result).unwrap();
    let total = doc["aggregate"]["request_count"].as_u64().unwrap();
    let sink = doc["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "prometheus")
        .expect("the prometheus sink reports");
    assert_eq!(
        (sink["failed"].as_u64(), sink["dropped"].as_u64()),
        (Some(0), Some(0)),
        "{sink}"
    );
    let sel = r#"{job="loadlens",run_id="prom-e2e-2"}"#;
    assert_eq!(
        prom.wait_for(
            &format!("sum(max_over_time(loadlens_requests_total{sel}[5m]))"),
            total as f64
        ),
        Some(total as f64),
        "what Prometheus received equals the run's count"
    );
    assert_eq!(
        prom.by_name(&format!(
            "sum by (name) (max_over_time(loadlens_requests_total{sel}[5m]))"
        )),
        counts(&doc)
    );
}

#[test]
fn a_port_in_use_or_a_bad_section_refuses_the_run_with_exit_2() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = loadlens(&[
        "run",
        "--url",
        "http://127.0.0.1:9/",
        "-t",
        "1s",
        "--prometheus",
        &addr,
    ]);
    let se = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{}\n{se}", stdout(&out));
    assert!(
        se.contains(&format!("cannot serve Prometheus metrics on {addr}")),
        "{se}"
    );

    let dir = TempDir::new("prom-bad");
    let scenario = dir.join("s.yaml");
    std::fs::write(
        &scenario,
        "user_types: [{ name: u, tasks: [{ request: { path: / } }] }]\nprometheus:\n  listen: nowhere\n",
    )
    .unwrap();
    let out = loadlens(&["run", &scenario, "-H", "http://127.0.0.1:9", "-t", "1s"]);
    let se = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{}\n{se}", stdout(&out));
    assert!(se.contains("s.yaml:3:3"), "located at the key: {se}");
    assert!(
        se.contains("prometheus.listen: `nowhere` is not an address"),
        "{se}"
    );
}

#[test]
fn port_0_takes_a_free_port_and_the_banner_shows_it() {
    use std::io::BufRead;

    let target = DemoTarget::start(&[]);
    let url = format!("{}/api/products", target.url);
    let mut child = Command::new(bin())
        .args([
            "run",
            "--url",
            &url,
            "-c",
            "2",
            "-z",
            "3s",
            "--prometheus",
            "127.0.0.1:0",
            "--prometheus-linger",
            "0s",
        ])
        .env_remove("TEST_RUN_ID")
        .env_remove("LOADLENS_PROMETHEUS")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let banner = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("prometheus: serving"))
        .expect("a banner line for the scrape endpoint");
    let addr: SocketAddr = banner
        .split("http://")
        .nth(1)
        .and_then(|r| r.strip_suffix("/metrics"))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {banner:?}"));
    assert_ne!(addr.port(), 0, "{banner}");
    // That address serves the run's metrics while it lasts.
    let (head, body) = get(addr, "/metrics");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains("loadlens_run_info"), "{body}");
    for _ in lines.by_ref() {}
    assert!(child.wait().unwrap().success());
}
