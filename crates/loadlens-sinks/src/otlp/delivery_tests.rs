//! Delivery tests of the OTLP sink against a local OTLP/HTTP receiver that decodes what it
//! gets: every traced request arrives as exactly one client span, whatever the receiver's
//! answer time and whatever is in flight when the run ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use loadlens_core::executor::{Controls, LoadSettings};
use loadlens_core::sample::TraceSettings;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::span;
use prost::Message as _;

use super::config::env_of;
use super::*;
use crate::contract;

/// An OTLP/HTTP receiver on `127.0.0.1:0` keeping the client span ids it is sent, in order of
/// arrival. While `hold` is set it reads trace exports and does not answer them.
struct Receiver {
    url: String,
    spans: Arc<Mutex<Vec<[u8; 8]>>>,
    trace_requests: Arc<Mutex<usize>>,
    hold: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn start() -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        l.set_nonblocking(true).unwrap();
        let r = Receiver {
            url,
            spans: Arc::default(),
            trace_requests: Arc::default(),
            hold: Arc::default(),
            stop: Arc::default(),
        };
        let (spans, requests, hold, stop) = (
            r.spans.clone(),
            r.trace_requests.clone(),
            r.hold.clone(),
            r.stop.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => {
                        let (spans, requests, hold, stop) =
                            (spans.clone(), requests.clone(), hold.clone(), stop.clone());
                        std::thread::spawn(move || serve(c, &spans, &requests, &hold, &stop));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        r
    }

    fn spans(&self) -> Vec<[u8; 8]> {
        self.spans.lock().unwrap().clone()
    }

    fn trace_requests(&self) -> usize {
        *self.trace_requests.lock().unwrap()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.hold.store(false, Ordering::Relaxed);
    }
}

fn serve(
    c: TcpStream,
    spans: &Mutex<Vec<[u8; 8]>>,
    requests: &Mutex<usize>,
    hold: &AtomicBool,
    stop: &AtomicBool,
) {
    let mut out = c.try_clone().unwrap();
    let mut r = BufReader::new(c);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split(' ').nth(1).unwrap_or("").to_owned();
        let mut len = 0;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        if path == "/v1/traces" {
            // Received (and kept) before it is answered, as by a collector that takes a while
            // to answer.
            let req = ExportTraceServiceRequest::decode(&body[..]).unwrap();
            let ids = req
                .resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .flat_map(|ss| &ss.spans)
                .filter(|s| s.kind == span::SpanKind::Client as i32)
                .map(|s| <[u8; 8]>::try_from(s.span_id.as_slice()).unwrap());
            spans.lock().unwrap().extend(ids);
            *requests.lock().unwrap() += 1;
            while hold.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let head =
            "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n";
        if out.write_all(head.as_bytes()).is_err() {
            return;
        }
    }
}

fn sink(url: &str, extra: &[(&str, &str)]) -> OtlpSink {
    let mut env = vec![("OTEL_EXPORTER_OTLP_ENDPOINT", url)];
    env.extend_from_slice(extra);
    let config = Config::resolve(&FileSettings::default(), env_of(&env)).unwrap();
    let names = Names {
        requests: vec![("GET".into(), "/contract".into())],
        servers: Vec::new(),
        scenarios: vec![ScenarioNames {
            name: None,
            user_types: vec!["default".into()],
            tasks: vec![vec!["/contract".into()]],
        }],
    };
    OtlpSink::new(config, names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_batch_in_flight_when_the_run_ends_is_delivered_once() {
    let rx = Receiver::start();
    // Trace exports are received and not answered until the run has ended.
    rx.hold.store(true, Ordering::Relaxed);
    let sink = sink(
        &rx.url,
        &[
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "20"),
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
        ],
    );
    let tracing = sink.trace_settings("contract-run");
    let load = LoadSettings {
        users: 2,
        iterations: Some(200),
        ..LoadSettings::default()
    };
    let (summary, sink) =
        contract::run_traced(Box::new(sink), load, Controls::new(), tracing).await;
    let mut waited = 0;
    while rx.trace_requests() == 0 && waited < 2000 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        waited += 1;
    }
    assert_eq!(
        rx.trace_requests(),
        1,
        "one export is waiting for its answer"
    );
    // The answer comes a moment after the run ended and the final flush was asked for.
    let hold = rx.hold.clone();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        hold.store(false, Ordering::Relaxed);
    });
    let report = sink.finish(&summary).await;
    release.join().unwrap();
    let spans = rx.spans();
    let mut distinct = spans.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        spans.len() - distinct.len(),
        0,
        "spans sent twice ({} spans for {} requests)",
        spans.len(),
        summary.total().request_count
    );
    assert_eq!(spans.len() as u64, summary.total().request_count);
    // (Snapshot messages may be dropped while the exporter waits: the test ticks every 50 ms.)
    assert_eq!(report.failed, 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_gets_each_span_once() {
    // A receiver answering every export in 200 ms, as in the report: batches are in flight
    // all along, and at the end.
    let rx = Receiver::start();
    let slow = rx.hold.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let toggler = std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            slow.store(true, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(200));
            slow.store(false, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let sink = sink(&rx.url, &[("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "64")]);
    let tracing: Option<TraceSettings> = sink.trace_settings("contract-run");
    let load = LoadSettings {
        users: 5,
        iterations: Some(1500),
        ..LoadSettings::default()
    };
    let (summary, sink) =
        contract::run_traced(Box::new(sink), load, Controls::new(), tracing).await;
    let report = sink.finish(&summary).await;
    stop.store(true, Ordering::Relaxed);
    toggler.join().unwrap();
    let spans = rx.spans();
    let mut distinct = spans.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(spans.len(), distinct.len(), "spans sent twice");
    assert_eq!(spans.len() as u64, summary.total().request_count);
    // (Snapshot messages may be dropped while the exporter waits: the test ticks every 50 ms.)
    assert_eq!(report.failed, 0, "{report:?}");
}

/// A target on `127.0.0.1:0` answering 200 to everything and keeping the `traceparent` of
/// every request, as the service under test sees it.
fn traceparent_target() -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { return };
            let s = s.clone();
            std::thread::spawn(move || {
                let mut out = c.try_clone().unwrap();
                let mut r = BufReader::new(c);
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        let mut h = String::new();
                        if r.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            if k.eq_ignore_ascii_case("traceparent") {
                                s.lock().unwrap().push(v.trim().to_owned());
                            }
                        }
                    }
                    let ok = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
                    if out.write_all(ok.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_span_cannot_be_queued_is_sent_not_sampled_and_counted() {
    let rx = Receiver::start();
    // The exporter is stuck on its first export: the span queue (5) fills up.
    rx.hold.store(true, Ordering::Relaxed);
    let sink = sink(
        &rx.url,
        &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "5"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2"),
            ("OTEL_BSP_SCHEDULE_DELAY", "20"),
        ],
    );
    let tracing = sink.trace_settings("contract-run");
    let (target, seen) = traceparent_target();
    let load = LoadSettings {
        users: 2,
        iterations: Some(100),
        ..LoadSettings::default()
    };
    let (summary, sink) =
        contract::run_against(&target, Box::new(sink), load, Controls::new(), tracing).await;
    rx.hold.store(false, Ordering::Relaxed);
    let report = sink.finish(&summary).await;

    // What the service was told: sampled (`-01`) or not (`-00`), one traceparent per request.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len() as u64, summary.total().request_count);
    let mut told_sampled: Vec<[u8; 8]> = seen
        .iter()
        .filter(|tp| tp.ends_with("-01"))
        .map(|tp| {
            let id = u64::from_str_radix(&tp[36..52], 16).unwrap();
            id.to_be_bytes()
        })
        .collect();
    let not_sampled = seen.len() - told_sampled.len();
    assert!(not_sampled > 0, "the queue never filled: {report:?}");
    // Every request that told the service it was sampled has its span; the others have none.
    let mut got = rx.spans();
    told_sampled.sort_unstable();
    got.sort_unstable();
    assert_eq!(
        got, told_sampled,
        "spans exported for exactly the requests sent as sampled"
    );
    // The others are counted, in the run's summary and in the sink's report.
    assert_eq!(summary.dropped_samples, not_sampled as u64);
    assert!(
        report
            .errors
            .iter()
            .any(|e| e.starts_with(&format!("{not_sampled} requests were not traced"))),
        "{report:?}"
    );
}
