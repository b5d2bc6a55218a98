//! The contract every network sink passes (vector's "component compliance" idea): it flushes
//! what it holds when the run finishes, honours its finish timeout when the endpoint is down
//! (refusing or never answering), counts what it drops instead of blocking the run, and reports
//! — never panics — when the endpoint answers 4xx or 5xx.
//!
//! A sink's `tests.rs` calls [`check_all`] with a factory that builds the sink pointed at a
//! base URL with a given finish timeout. The run driving it is a real one: the executor, a
//! small load against a local target, the sink's hooks called by the aggregator.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use loadlens_core::client::{ClientConfig, ClientShared};
use loadlens_core::executor::{Controls, Executor, LoadSettings};
use loadlens_core::plan::{Plan, PlanOptions};
use loadlens_core::report::Summary;
use loadlens_core::run::{EventKind, RunInfo, TimelineEvent};
use loadlens_core::sink::{Sink, SinkContext, SinkReport, TimelineHandle};

/// How a test endpoint behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Answer every request with this status and a small JSON body.
    Answer(u16),
    /// Read requests and never answer.
    Hang,
}

/// A raw HTTP/1.1 endpoint on `127.0.0.1:0` that counts requests.
pub(crate) struct Endpoint {
    pub url: String,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Endpoint {
    pub fn start(mode: Mode) -> Endpoint {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        l.set_nonblocking(true).unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (n, s) = (requests.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => {
                        let (n, s) = (n.clone(), s.clone());
                        std::thread::spawn(move || serve(c, mode, &n, &s));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Endpoint {
            url,
            requests,
            stop,
        }
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(c: TcpStream, mode: Mode, n: &AtomicUsize, stop: &AtomicBool) {
    let _ = c.set_read_timeout(Some(Duration::from_millis(100)));
    let mut out = c.try_clone().unwrap();
    let mut r = BufReader::new(c);
    loop {
        let mut len = 0usize;
        let mut first = true;
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) => return,
                Ok(_) => {}
                Err(_) if stop.load(Ordering::Relaxed) => return,
                Err(_) if first && line.is_empty() => continue,
                Err(_) => return,
            }
            first = false;
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        n.fetch_add(1, Ordering::SeqCst);
        match mode {
            Mode::Hang => {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return;
            }
            Mode::Answer(status) => {
                let body = format!("{{\"errors\":[\"status {status}\"]}}");
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                if out.write_all(head.as_bytes()).is_err()
                    || out.write_all(body.as_bytes()).is_err()
                {
                    return;
                }
            }
        }
    }
}

/// A URL on which nothing listens (connections are refused).
pub(crate) fn refused_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

/// A short real run against a local target, with `sink` attached: its hooks are called by the
/// executor as in production. Returns the summary (thresholds evaluated) and the sink.
pub(crate) async fn short_run(
    sink: Box<dyn Sink>,
    iterations: u64,
    controls: Controls,
) -> (Summary, Box<dyn Sink>) {
    let load = LoadSettings {
        users: 2,
        iterations: Some(iterations),
        ..LoadSettings::default()
    };
    run_with(sink, load, controls).await
}

/// As [`short_run`], with any load settings.
pub(crate) async fn run_with(
    sink: Box<dyn Sink>,
    load: LoadSettings,
    controls: Controls,
) -> (Summary, Box<dyn Sink>) {
    run_traced(sink, load, controls, None).await
}

/// As [`run_with`], with trace context on the requests (what `--otel` gives the executor).
pub(crate) async fn run_traced(
    sink: Box<dyn Sink>,
    load: LoadSettings,
    controls: Controls,
    tracing: Option<loadlens_core::sample::TraceSettings>,
) -> (Summary, Box<dyn Sink>) {
    let target = Endpoint::start(Mode::Answer(200));
    run_against(&target.url, sink, load, controls, tracing).await
}

/// As [`run_traced`], against the target at `url` (its `/contract` path).
pub(crate) async fn run_against(
    url: &str,
    sink: Box<dyn Sink>,
    load: LoadSettings,
    controls: Controls,
    tracing: Option<loadlens_core::sample::TraceSettings>,
) -> (Summary, Box<dyn Sink>) {
    let plan = Plan::single(
        &format!("{url}/contract"),
        http::Method::GET,
        Default::default(),
        &PlanOptions::default(),
    )
    .unwrap();
    let info = RunInfo {
        id: "contract-run".into(),
        scenario: "contract".into(),
        tags: [("env".to_owned(), "test".to_owned())].into(),
    };
    let client = ClientShared::new(ClientConfig::default()).unwrap();
    let mut executor = Executor::new(Arc::new(plan), load.clone(), client, info.clone())
        .tick(Duration::from_millis(50))
        .sink(sink);
    if let Some(t) = tracing {
        executor = executor.tracing(t);
    }
    let mut out = executor.run(controls).await;
    let sink = out.sinks.pop().expect("the sink comes back");
    let mut summary = Summary::new(info, load, None, &mut out);
    summary.evaluate_thresholds(&[]);
    (summary, sink)
}

/// A context for driving hooks by hand.
pub(crate) fn context() -> SinkContext {
    SinkContext {
        run: RunInfo {
            id: "contract-run".into(),
            scenario: "contract".into(),
            tags: Default::default(),
        },
        names: vec![("GET".into(), "/contract".into())],
        controls: Controls::new(),
        timeline: TimelineHandle::new(Arc::new(Mutex::new(Vec::new())), Instant::now()),
        config: serde_json::Value::Null,
    }
}

/// Builds the sink under test: pointed at a base URL, finishing within the given timeout.
pub(crate) type Factory<'a> = &'a dyn Fn(&str, Duration) -> Box<dyn Sink>;

async fn finish(sink: Box<dyn Sink>, summary: &Summary, limit: Duration) -> (SinkReport, Duration) {
    let t = Instant::now();
    let r = tokio::time::timeout(limit, sink.finish(summary))
        .await
        .expect("finish returns within the bound given to it");
    (r, t.elapsed())
}

/// It flushes on finish: what it held is delivered by the time `finish` returns.
pub(crate) async fn flushes_on_finish(make: Factory<'_>) {
    let ep = Endpoint::start(Mode::Answer(202));
    let (summary, sink) =
        short_run(make(&ep.url, Duration::from_secs(5)), 40, Controls::new()).await;
    let before = ep.requests();
    let (r, _) = finish(sink, &summary, Duration::from_secs(10)).await;
    assert!(
        ep.requests() > before,
        "finish sent what was held ({before} requests before)"
    );
    assert!(r.delivered > 0, "{r:?}");
    assert_eq!((r.failed, r.dropped), (0, 0), "{r:?}");
    assert!(r.errors.is_empty(), "{r:?}");
}

/// It honours its timeout when the endpoint refuses connections or never answers.
pub(crate) async fn honours_timeout_when_down(make: Factory<'_>) {
    let hang = Endpoint::start(Mode::Hang);
    for url in [refused_url(), hang.url.clone()] {
        let timeout = Duration::from_secs(1);
        let (summary, sink) = short_run(make(&url, timeout), 20, Controls::new()).await;
        let (r, took) = finish(sink, &summary, Duration::from_secs(10)).await;
        assert!(
            took < timeout + Duration::from_millis(1500),
            "{url}: finish took {took:?} with a timeout of {timeout:?}"
        );
        assert_eq!(r.delivered, 0, "{url}: {r:?}");
        assert!(r.failed + r.dropped > 0, "{url}: {r:?}");
        assert!(!r.errors.is_empty(), "{url}: {r:?}");
    }
}

/// It counts drops: a flood of hooks against an endpoint that never answers returns at once
/// and ends in `dropped`, not in a blocked run.
pub(crate) async fn counts_drops(make: Factory<'_>) {
    let hang = Endpoint::start(Mode::Hang);
    let mut sink = make(&hang.url, Duration::from_millis(500));
    sink.on_start(&context());
    let t = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..5_000 {
        let e = TimelineEvent::now(
            Duration::from_millis(i),
            EventKind::ThresholdBreached,
            format!("p95 > 1ms ({i})"),
        );
        let t1 = Instant::now();
        sink.on_event(&e);
        slowest = slowest.max(t1.elapsed());
    }
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "5,000 hooks took {:?}",
        t.elapsed()
    );
    // A hook that waited on the endpoint would take the whole request timeout; a loaded
    // 2-core machine can still preempt one for tens of milliseconds.
    assert!(slowest < Duration::from_secs(1), "slowest hook {slowest:?}");
    let (summary, _) = short_run(
        make(&refused_url(), Duration::from_millis(100)),
        4,
        Controls::new(),
    )
    .await;
    let (r, _) = finish(sink, &summary, Duration::from_secs(5)).await;
    assert!(r.dropped > 0, "{r:?}");
}

/// It reports, never panics, on 4xx and 5xx answers; the report names the status.
pub(crate) async fn reports_http_errors(make: Factory<'_>) {
    for status in [400u16, 403, 413, 500, 503] {
        let ep = Endpoint::start(Mode::Answer(status));
        let (summary, sink) =
            short_run(make(&ep.url, Duration::from_secs(2)), 20, Controls::new()).await;
        let (r, took) = finish(sink, &summary, Duration::from_secs(10)).await;
        assert!(
            took < Duration::from_secs(4),
            "{status}: finish took {took:?}"
        );
        assert_eq!(r.delivered, 0, "{status}: {r:?}");
        assert!(r.failed > 0, "{status}: {r:?}");
        assert!(
            r.errors.iter().any(|e| e.contains(&status.to_string())),
            "{status}: {r:?}"
        );
    }
}

/// Every clause of the contract.
pub(crate) async fn check_all(make: Factory<'_>) {
    flushes_on_finish(make).await;
    honours_timeout_when_down(make).await;
    counts_drops(make).await;
    reports_http_errors(make).await;
}
