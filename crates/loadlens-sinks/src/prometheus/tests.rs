//! Tests of the Prometheus sink: the exposition read back by a parser and by `promtool`, the
//! scrape endpoint and remote write against a real Prometheus server (Debian's `prometheus`
//! package), and remote write's headers, credentials and failures against a local stub.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use loadlens_core::executor::{Controls, LoadSettings};
use loadlens_core::sink::Sink;
use prost::Message as _;

use super::exposition::{render, Format, Metrics};
use super::peer::{get, tool, Prometheus};
use super::remote_write::WriteRequest;
use super::{Config, PrometheusSink, StartError};
use crate::contract;

fn config(listen: Option<&str>, remote_write: Option<String>) -> Config {
    Config {
        listen: listen.map(|a| a.parse().unwrap()),
        remote_write,
        ..Config::default()
    }
}

fn run_for(seconds: u64) -> LoadSettings {
    LoadSettings {
        users: 2,
        run_time: Some(Duration::from_secs(seconds)),
        ..LoadSettings::default()
    }
}

/// One parsed sample line: metric name, labels, value.
type Line = (String, BTreeMap<String, String>, f64);

/// A small parser of the text formats, strict enough to catch what a scraper would refuse:
/// every sample belongs to the family named by the metadata lines before it, label values
/// are quoted and escaped, values are floats, and OpenMetrics ends with `# EOF`.
fn parse(text: &str, format: Format) -> Vec<Line> {
    let mut lines: Vec<&str> = text.lines().collect();
    if format == Format::OpenMetrics {
        assert_eq!(lines.pop(), Some("# EOF"), "OpenMetrics ends with # EOF");
    }
    assert!(!text.contains("# EOF") || format == Format::OpenMetrics);
    let mut family = String::new();
    let mut out = Vec::new();
    for l in lines {
        if let Some(rest) = l.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let (kw, name) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(["HELP", "TYPE", "UNIT"].contains(&kw), "{l}");
            // Metadata lines name the family of the samples after them.
            family = name.to_owned();
            continue;
        }
        let (series, value) = l.rsplit_once(' ').expect("name and value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("a float: {l}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, parse_labels(rest.strip_suffix('}').expect("closing }"))),
            None => (series, BTreeMap::new()),
        };
        assert!(
            name.starts_with(&family) || family.starts_with(name),
            "{name} is in family {family}"
        );
        assert!(
            name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{name}"
        );
        out.push((name.to_owned(), labels, value));
    }
    out
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    while chars.peek().is_some() {
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "label value quoted: {s}");
        let mut value = String::new();
        loop {
            match chars.next().expect("closing quote") {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => panic!("dangling escape"),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "label name {name:?}"
        );
        out.insert(name, value);
        match chars.next() {
            Some(',') | None => {}
            Some(c) => panic!("unexpected {c:?} after a label in {s}"),
        }
    }
    out
}

fn find<'a>(lines: &'a [Line], name: &str, with: &[(&str, &str)]) -> Vec<&'a Line> {
    lines
        .iter()
        .filter(|(n, l, _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// The metrics of a real run of `iterations` requests against a local target answering 200,
/// folded from the snapshots the executor gave the sink; and the run's request count.
async fn metrics_of_a_run(iterations: u64) -> (Metrics, u64) {
    let (tx, rx) = std::sync::mpsc::channel();
    struct Keep(std::sync::mpsc::Sender<Metrics>, Option<Metrics>);
    impl Sink for Keep {
        fn name(&self) -> &str {
            "keep"
        }
        fn on_start(&mut self, ctx: &loadlens_core::sink::SinkContext) {
            self.1 = Some(Metrics::new(&ctx.run, &ctx.names));
        }
        fn on_snapshot(&mut self, s: &Arc<loadlens_core::stats::Snapshot>) {
            self.1.as_mut().unwrap().update(s);
        }
        fn finish(
            self: Box<Self>,
            _: &loadlens_core::report::Summary,
        ) -> loadlens_core::sink::FinishFuture {
            self.0.send(self.1.unwrap()).unwrap();
            Box::pin(async { Default::default() })
        }
    }
    let (summary, sink) =
        contract::short_run(Box::new(Keep(tx, None)), iterations, Controls::new()).await;
    sink.finish(&summary).await;
    (rx.recv().unwrap(), summary.stats.aggregate().count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exposition_parses_and_its_histogram_is_cumulative_and_matches_the_counter() {
    let (metrics, count) = metrics_of_a_run(300).await;
    assert_eq!(count, 300);
    for format in [Format::OpenMetrics, Format::Text] {
        let text = render(&metrics.families(), format);
        let lines = parse(&text, format);
        let run = [("run_id", "contract-run")];
        let requests = find(&lines, "loadlens_requests_total", &run);
        assert_eq!(requests.len(), 1, "one name, one status class: {text}");
        let (_, labels, value) = requests[0];
        assert_eq!(value, &300.0, "{text}");
        assert_eq!(labels["status_class"], "2xx");
        assert_eq!(labels["name"], "/contract");
        assert_eq!(labels["method"], "GET");
        let buckets = find(&lines, "loadlens_request_duration_seconds_bucket", &run);
        assert_eq!(buckets.len(), super::BUCKETS_S.len() + 1, "{text}");
        let mut previous = (0.0, 0.0);
        for (_, l, v) in &buckets {
            let le: f64 = match l["le"].as_str() {
                "+Inf" => f64::INFINITY,
                s => s.parse().unwrap(),
            };
            assert!(le > previous.0, "buckets in increasing order: {text}");
            assert!(*v >= previous.1, "buckets are cumulative: {text}");
            previous = (le, *v);
        }
        assert_eq!(previous, (f64::INFINITY, 300.0), "+Inf holds every request");
        let count = find(&lines, "loadlens_request_duration_seconds_count", &run);
        assert_eq!(count[0].2, 300.0);
        let sum = find(&lines, "loadlens_request_duration_seconds_sum", &run);
        assert!(sum[0].2 > 0.0 && sum[0].2 < 300.0 * 5.0, "{text}");
        let info = find(&lines, "loadlens_run_info", &[]);
        assert_eq!(info.len(), 1);
        assert_eq!(info[0].1["scenario"], "contract");
        assert_eq!(info[0].1["env"], "test", "tags are labels");
        assert_eq!(find(&lines, "loadlens_users", &run).len(), 1);
        assert_eq!(
            find(&lines, "loadlens_request_failures_total", &run)[0].2,
            0.0
        );
    }
}

#[test]
fn tag_keys_become_valid_label_names_and_label_values_are_escaped() {
    let run = loadlens_core::run::RunInfo {
        id: "r\"1\\\n".into(),
        scenario: "s".into(),
        tags: [
            ("git.sha".to_owned(), "abc".to_owned()),
            ("1team".to_owned(), "x".to_owned()),
            ("__secret".to_owned(), "y".to_owned()),
            ("scenario".to_owned(), "z".to_owned()),
        ]
        .into(),
    };
    let m = Metrics::new(&run, &[]);
    let text = render(&m.families(), Format::OpenMetrics);
    let lines = parse(&text, Format::OpenMetrics);
    let info = &find(&lines, "loadlens_run_info", &[])[0].1;
    assert_eq!(info["run_id"], "r\"1\\\n", "escaped and read back: {text}");
    assert_eq!(info["git_sha"], "abc");
    assert_eq!(info["_1team"], "x");
    assert_eq!(info["tag__secret"], "y");
    assert_eq!(info["scenario"], "s");
    assert_eq!(info["tag_scenario"], "z");
}

/// `promtool check metrics` (shipped with Debian's `prometheus`) reads the 0.0.4 text format
/// and lints it (names, units, help).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_the_exposition() {
    let (metrics, _) = metrics_of_a_run(50).await;
    let text = render(&metrics.families(), Format::Text);
    let mut child = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_is_a_clear_start_up_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = PrometheusSink::start(config(Some(&addr), None)).unwrap_err();
    assert!(matches!(err, StartError::Bind { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&addr) && msg.contains("--prometheus"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scraper_gets_openmetrics_when_it_asks_and_the_classic_format_otherwise() {
    let sink = PrometheusSink::start(config(Some("127.0.0.1:0"), None)).unwrap();
    let addr = sink.local_addr().unwrap();
    let (summary, sink) = contract::short_run(Box::new(sink), 20, Controls::new()).await;
    let om = get(
        addr,
        "/metrics",
        Some("application/openmetrics-text; version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    );
    assert!(
        om.0.contains("application/openmetrics-text; version=1.0.0"),
        "{}",
        om.0
    );
    assert!(om.1.ends_with("# EOF\n"));
    let lines = parse(&om.1, Format::OpenMetrics);
    assert_eq!(find(&lines, "loadlens_requests_total", &[])[0].2, 20.0);
    let classic = get(addr, "/metrics", Some("text/plain"));
    assert!(
        classic.0.contains("text/plain; version=0.0.4"),
        "{}",
        classic.0
    );
    parse(&classic.1, Format::Text);
    let missing = get(addr, "/nothing", None);
    assert!(missing.0.starts_with("HTTP/1.1 404"), "{}", missing.0);
    // Scraped during the run: finish waits for a scrape of the final metrics. A scraper
    // polling every 100 ms until the listener closes gets one well before the linger's end.
    let scraper = std::thread::spawn(move || {
        let mut scrapes = 0;
        while std::net::TcpStream::connect(addr).is_ok() {
            std::thread::sleep(Duration::from_millis(100));
            if std::panic::catch_unwind(|| get(addr, "/metrics", None)).is_ok() {
                scrapes += 1;
            }
        }
        scrapes
    });
    let t = Instant::now();
    let report = sink.finish(&summary).await;
    let took = t.elapsed();
    let scrapes = scraper.join().unwrap();
    assert!(
        took < super::DEFAULT_LINGER,
        "ended when the final metrics were scraped: {took:?}"
    );
    assert_eq!(
        report.delivered,
        2 + scrapes,
        "every scrape of /metrics counted (not the 404): {report:?}"
    );
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "the listener is closed after the run"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_nobody_scrapes_ends_without_lingering_and_a_scraped_one_lingers_at_most_its_bound() {
    let sink = PrometheusSink::start(config(Some("127.0.0.1:0"), None)).unwrap();
    let (summary, sink) = contract::short_run(Box::new(sink), 5, Controls::new()).await;
    let t = Instant::now();
    sink.finish(&summary).await;
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());

    let linger = Duration::from_millis(700);
    let sink = PrometheusSink::start(Config {
        linger,
        ..config(Some("127.0.0.1:0"), None)
    })
    .unwrap();
    let addr = sink.local_addr().unwrap();
    let (summary, sink) = contract::short_run(Box::new(sink), 5, Controls::new()).await;
    get(addr, "/metrics", None);
    let t = Instant::now();
    sink.finish(&summary).await;
    let took = t.elapsed();
    assert!(
        took >= linger && took < linger + Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_run_and_its_request_counter_equals_the_runs_count() {
    let sink = PrometheusSink::start(config(Some("127.0.0.1:0"), None)).unwrap();
    let addr = sink.local_addr().unwrap();
    // Prometheus applies discovered targets in batches (every 5 s): wait until it scrapes the
    // endpoint (empty before the run) so that it scrapes during the run.
    let prom = tokio::task::spawn_blocking(move || {
        let prom = Prometheus::start(Some(addr));
        let up = prom.wait_for(r#"up{job="loadlens"}"#, 1.0);
        assert_eq!(
            up,
            Some(1.0),
            "Prometheus scrapes the endpoint before the run"
        );
        prom
    })
    .await
    .unwrap();
    let (summary, sink) = contract::run_with(Box::new(sink), run_for(4), Controls::new()).await;
    let report = sink.finish(&summary).await;
    let count = summary.stats.aggregate().count;
    assert!(count > 0);
    assert!(
        report.delivered >= 2,
        "Prometheus scraped during the run: {report:?}"
    );
    // The target is gone now: its series are stale, so read their last values.
    let got = tokio::task::spawn_blocking(move || {
        let sel = r#"{job="loadlens",run_id="contract-run"}"#;
        (
            prom.wait_for(&format!("sum(max_over_time(loadlens_requests_total{sel}[5m]))"), count as f64),
            prom.query(r#"max_over_time(loadlens_request_duration_seconds_bucket{le="+Inf",run_id="contract-run"}[5m])"#),
            prom.query(r#"max_over_time(loadlens_run_info{env="test"}[5m])"#),
        )
    })
    .await
    .unwrap();
    assert_eq!(
        got.0,
        Some(count as f64),
        "Prometheus's counter equals the run's count"
    );
    assert_eq!(
        got.1,
        Some(count as f64),
        "and so does the histogram's +Inf bucket"
    );
    assert_eq!(got.2, Some(1.0), "loadlens_run_info carries the tags");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_to_a_real_prometheus_equals_the_runs_count() {
    let prom = tokio::task::spawn_blocking(|| Prometheus::start(None))
        .await
        .unwrap();
    let url = format!("http://{}/api/v1/write", prom.addr);
    let sink = PrometheusSink::start(config(None, Some(url))).unwrap();
    let (summary, sink) = contract::run_with(Box::new(sink), run_for(3), Controls::new()).await;
    let report = sink.finish(&summary).await;
    let count = summary.stats.aggregate().count;
    assert!(
        report.delivered >= 2,
        "every interval and at the end: {report:?}"
    );
    assert_eq!((report.failed, report.dropped), (0, 0), "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    let got = tokio::task::spawn_blocking(move || {
        let sel = r#"{job="loadlens",run_id="contract-run"}"#;
        (
            prom.wait_for(
                &format!("sum(max_over_time(loadlens_requests_total{sel}[5m]))"),
                count as f64,
            ),
            prom.query(&format!(
                "sum(max_over_time(loadlens_request_duration_seconds_count{sel}[5m]))"
            )),
        )
    })
    .await
    .unwrap();
    assert_eq!(
        got.0,
        Some(count as f64),
        "remote-written counter equals the run's count"
    );
    assert_eq!(got.1, Some(count as f64));
}

/// Requests received: head and body.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A stub receiver that answers every request with `status` and keeps what it received.
struct Stub {
    url: String,
    seen: Received,
}

impl Stub {
    fn start(status: u16) -> Stub {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let keep = seen.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { return };
                let keep = keep.clone();
                std::thread::spawn(move || {
                    let mut out = c.try_clone().unwrap();
                    let mut r = BufReader::new(c);
                    loop {
                        let mut head = String::new();
                        loop {
                            let mut line = String::new();
                            if r.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                            head.push_str(&line);
                        }
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        let mut body = vec![0; len];
                        r.read_exact(&mut body).unwrap();
                        keep.lock().unwrap().push((head, body));
                        let answer =
                            format!("HTTP/1.1 {status} X\r\nContent-Length: 4\r\n\r\nnope");
                        if out.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Stub {
            url: format!("http://user:s3cret@{addr}/api/v1/write"),
            seen,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_speaks_the_protocol_sends_credentials_as_basic_auth_and_never_shows_them() {
    let stub = Stub::start(204);
    let c = config(None, Some(stub.url.clone()));
    assert!(!c.describe().contains("s3cret"), "{}", c.describe());
    let sink = PrometheusSink::start(c).unwrap();
    let (summary, sink) = contract::short_run(Box::new(sink), 30, Controls::new()).await;
    let report = sink.finish(&summary).await;
    assert!(report.delivered >= 1 && report.failed == 0, "{report:?}");
    let seen = stub.seen.lock().unwrap();
    let (head, body) = seen.last().unwrap();
    let head = head.to_ascii_lowercase();
    for h in [
        "content-encoding: snappy",
        "content-type: application/x-protobuf",
        "x-prometheus-remote-write-version: 0.1.0",
        // user:s3cret
        "authorization: basic dxnlcjpzm2nyzxq=",
    ] {
        assert!(head.contains(h), "{h} in {head}");
    }
    assert!(!head.contains("s3cret"), "{head}");
    let raw = snap::raw::Decoder::new().decompress_vec(body).unwrap();
    let req = WriteRequest::decode(raw.as_slice()).unwrap();
    let total: f64 = req
        .timeseries
        .iter()
        .filter(|t| {
            t.labels
                .iter()
                .any(|l| l.name == "__name__" && l.value == "loadlens_requests_total")
        })
        .map(|t| t.samples[0].value)
        .sum();
    assert_eq!(total, 30.0, "the last write holds the final count");
    for t in &req.timeseries {
        let names: Vec<&str> = t.labels.iter().map(|l| l.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted, "labels sorted by name");
        assert!(names.contains(&"job"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_write_failures_are_retried_counted_and_reported_without_credentials() {
    for status in [400u16, 503] {
        let stub = Stub::start(status);
        let sink = PrometheusSink::start(Config {
            finish_timeout: Duration::from_secs(2),
            ..config(None, Some(stub.url.clone()))
        })
        .unwrap();
        let (summary, sink) = contract::short_run(Box::new(sink), 10, Controls::new()).await;
        let t = Instant::now();
        let report = sink.finish(&summary).await;
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "{status}: {:?}",
            t.elapsed()
        );
        assert_eq!(report.delivered, 0, "{status}: {report:?}");
        assert!(report.failed > 0, "{status}: {report:?}");
        assert!(
            report
                .errors
                .iter()
                .any(|e| e.contains(&status.to_string())),
            "{report:?}"
        );
        assert!(
            report.errors.iter().all(|e| !e.contains("s3cret")),
            "{report:?}"
        );
        let requests = stub.seen.lock().unwrap().len();
        if status == 503 {
            assert!(requests >= 2, "5xx is retried: {requests} requests");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_never_wait_on_a_receiver_that_hangs() {
    let hang = contract::Endpoint::start(contract::Mode::Hang);
    let mut sink = PrometheusSink::start(Config {
        finish_timeout: Duration::from_millis(500),
        ..config(
            Some("127.0.0.1:0"),
            Some(format!("{}/api/v1/write", hang.url)),
        )
    })
    .unwrap();
    let ctx = contract::context();
    sink.on_start(&ctx);
    let snap = Arc::new(
        loadlens_core::stats::Aggregator::new(
            loadlens_core::stats::Recorder::new(1),
            ctx.names.clone(),
        )
        .tick(Duration::from_secs(1), 1),
    );
    let t = Instant::now();
    for _ in 0..2_000 {
        sink.on_snapshot(&snap);
    }
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "2,000 snapshots took {:?}",
        t.elapsed()
    );
    let (summary, _) = contract::short_run(
        Box::new(PrometheusSink::start(config(None, None)).unwrap()),
        2,
        Controls::new(),
    )
    .await;
    let t = Instant::now();
    let report = Box::new(sink).finish(&summary).await;
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(report.failed > 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_contract_for_remote_write() {
    let make = |url: &str, timeout: Duration| -> Box<dyn Sink> {
        Box::new(
            PrometheusSink::start(Config {
                finish_timeout: timeout,
                ..config(None, Some(format!("{url}/api/v1/write")))
            })
            .unwrap(),
        )
    };
    contract::flushes_on_finish(&make).await;
    contract::honours_timeout_when_down(&make).await;
    contract::reports_http_errors(&make).await;
}

fn sample(
    ms: u64,
    status: Option<u16>,
    failure: Option<loadlens_core::sample::ErrorKind>,
) -> loadlens_core::sample::Sample {
    loadlens_core::sample::Sample {
        name: loadlens_core::sample::NameId(0),
        started_at: std::time::SystemTime::now(),
        total: Duration::from_millis(ms),
        schedule_delay: Duration::ZERO,
        phases: Default::default(),
        status,
        bytes_sent: 10,
        bytes_received: 20,
        content_length: 5,
        new_connection: false,
        failure: failure.map(|k| loadlens_core::sample::Failure::new(k, "x")),
        checks_passed: 0,
        checks_failed: 0,
        trace: None,
        vu: 0,
        scenario: 0,
        user_type: 0,
        task: 0,
        url: None,
        protocol: None,
    }
}

/// Status classes, failures and bucket placement with known figures, over two intervals: the
/// counters and buckets add up across snapshots.
#[test]
fn status_classes_failures_and_buckets_accumulate_across_snapshots() {
    use loadlens_core::sample::ErrorKind;
    let ctx = contract::context();
    let recorder = loadlens_core::stats::Recorder::new(1);
    let mut agg = loadlens_core::stats::Aggregator::new(recorder.clone(), ctx.names.clone());
    let mut m = Metrics::new(&ctx.run, &ctx.names);
    // Interval 1: 200 in 3 ms, 200 in 40 ms with a failed check, 404 in 2 s.
    recorder.record(&sample(3, Some(200), None));
    recorder.record(&sample(40, Some(200), Some(ErrorKind::Check)));
    recorder.record(&sample(2_000, Some(404), Some(ErrorKind::Status)));
    m.update(&agg.tick(Duration::from_secs(1), 2));
    // Interval 2: a refused connection after 1 ms, a 503 in 40 s (beyond the last bound).
    recorder.record(&sample(1, None, Some(ErrorKind::Refused)));
    recorder.record(&sample(40_000, Some(503), Some(ErrorKind::Status)));
    m.update(&agg.tick(Duration::from_secs(2), 2));
    let lines = parse(
        &render(&m.families(), Format::OpenMetrics),
        Format::OpenMetrics,
    );
    let class = |c: &str| {
        find(&lines, "loadlens_requests_total", &[("status_class", c)])
            .first()
            .map(|l| l.2)
    };
    assert_eq!(
        (
            class("2xx"),
            class("4xx"),
            class("5xx"),
            class("none"),
            class("3xx")
        ),
        (Some(2.0), Some(1.0), Some(1.0), Some(1.0), None)
    );
    let failed = |c: &str| {
        find(
            &lines,
            "loadlens_request_failures_total",
            &[("status_class", c)],
        )
        .first()
        .map(|l| l.2)
    };
    assert_eq!(
        (
            failed("2xx"),
            failed("4xx"),
            failed("5xx"),
            failed("none"),
            failed("3xx")
        ),
        (Some(1.0), Some(1.0), Some(1.0), Some(1.0), None),
        "the failed check on a 200 is a 2xx failure; a class without requests has no series"
    );
    assert!(
        find(&lines, "loadlens_arrival_rate", &[]).is_empty(),
        "no arrival rate outside the open model"
    );
    let bucket = |le: &str| {
        find(
            &lines,
            "loadlens_request_duration_seconds_bucket",
            &[("le", le)],
        )[0]
        .2
    };
    assert_eq!(bucket("0.001"), 1.0, "the refused one (1 ms)");
    assert_eq!(bucket("0.005"), 2.0, "and 3 ms");
    assert_eq!(bucket("0.05"), 3.0, "and 40 ms");
    assert_eq!(bucket("2.5"), 4.0, "and 2 s");
    assert_eq!(bucket("30"), 4.0, "40 s is beyond the last bound");
    assert_eq!(bucket("+Inf"), 5.0);
    let sum = find(&lines, "loadlens_request_duration_seconds_sum", &[])[0].2;
    assert!(
        (sum - 42.044).abs() < 42.044 * 0.001,
        "sum within HDR precision: {sum}"
    );
}

/// Generator health: a figure the snapshot has becomes a gauge (in base units), one it lacks
/// is left out rather than shown as 0.
#[test]
fn generator_health_figures_are_gauges_and_missing_ones_are_omitted() {
    let ctx = contract::context();
    let recorder = loadlens_core::stats::Recorder::new(1);
    let mut agg = loadlens_core::stats::Aggregator::new(recorder, ctx.names.clone());
    let mut snap = agg.tick(Duration::from_secs(1), 3);
    snap.health.process_cpu_pct = Some(50.0);
    snap.health.rss_bytes = Some(64 << 20);
    snap.health.sched_delay_ms = Some(12.0);
    snap.dropped_iterations = Some(7);
    snap.arrival_rate = Some(250.0);
    let mut m = Metrics::new(&ctx.run, &ctx.names);
    m.update(&snap);
    let text = render(&m.families(), Format::OpenMetrics);
    let lines = parse(&text, Format::OpenMetrics);
    let value = |n: &str| find(&lines, n, &[]).first().map(|l| l.2);
    assert_eq!(value("loadlens_process_cpu_ratio"), Some(0.5));
    assert_eq!(
        value("loadlens_process_resident_memory_bytes"),
        Some(67108864.0)
    );
    assert_eq!(value("loadlens_scheduling_delay_seconds"), Some(0.012));
    assert_eq!(value("loadlens_users"), Some(3.0));
    assert_eq!(value("loadlens_dropped_iterations_total"), Some(7.0));
    assert_eq!(value("loadlens_arrival_rate"), Some(250.0));
    for absent in [
        "loadlens_machine_cpu_ratio",
        "loadlens_open_connections",
        "loadlens_network_sent_bytes_per_second",
    ] {
        assert!(!text.contains(absent), "{absent} has no figure: {text}");
    }
}
