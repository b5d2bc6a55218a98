//! The receiver end to end inside the crate: real endpoints on 127.0.0.1:0, exports sent with
//! the OTLP exporter's own sender (OTLP/HTTP and OTLP/gRPC, gzip or not), raw requests for the
//! bodies no exporter would send, and a second receiver as the user's collector for forwarding.
//! (The OpenTelemetry Python SDK's exports are in the binary's tests, `tests/it/traces.rs`.)

use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use loadlens_core::breakdown::{Breakdown, BreakdownSource, JoinSettings};
use loadlens_core::run::{Controls, RunInfo};
use loadlens_core::sample::{ErrorKind, Failure, NameId, Phases, Sample, TraceIds};
use loadlens_core::sink::{Sink, SinkContext, TimelineHandle};

use super::decode::spans;
use super::decode::tests::{export, kv, otlp_span};
use super::*;
use crate::otlp::config::{ExporterKind, Protocol as Wire, SignalConfig};
use crate::otlp::send::{Finishing, SendError, Sender, Service};

const MS: u64 = 1_000_000;

fn config(window: Duration) -> Config {
    Config {
        http: Some("127.0.0.1:0".parse().unwrap()),
        grpc: Some("127.0.0.1:0".parse().unwrap()),
        join: JoinSettings {
            window,
            link_template: Some("http://jaeger/trace/{trace_id}".into()),
            ..JoinSettings::default()
        },
        ..Config::default()
    }
}

fn context() -> SinkContext {
    SinkContext {
        run: RunInfo {
            id: "recv-test".into(),
            scenario: "recv".into(),
            tags: Default::default(),
        },
        names: vec![("GET".into(), "/orders".into())],
        controls: Controls::new(),
        timeline: TimelineHandle::new(Arc::default(), Instant::now()),
        config: serde_json::Value::Null,
    }
}

/// A started receiver with its tap and feed.
struct Running {
    sink: Box<ReceiverSink>,
    tap: SampleTap,
    feed: Arc<dyn BreakdownSource>,
}

fn start(config: Config) -> Running {
    let mut sink = Box::new(ReceiverSink::start(config).unwrap());
    let tap = sink.sample_tap().unwrap();
    let feed = sink.breakdown_source().unwrap();
    sink.on_start(&context());
    Running { sink, tap, feed }
}

/// A sampled request answered after 40 ms (first byte) + 1 ms.
fn sample(trace: u128, span: u64) -> Sample {
    let mut s = Sample::failed_before_send(NameId(0), Failure::new(ErrorKind::Timeout, ""));
    s.failure = None;
    s.status = Some(200);
    s.started_at = SystemTime::now();
    s.phases = Phases {
        ttfb: Some(Duration::from_millis(40)),
        download: Some(Duration::from_millis(1)),
        ..Phases::default()
    };
    s.total = Duration::from_millis(41);
    s.trace = Some(TraceIds {
        trace_id: trace,
        span_id: span,
        sampled: true,
    });
    s
}

/// The shop's spans of one trace: a 36 ms server span whose parent is `parent`, a 10 ms
/// PostgreSQL query and a 20 ms call to pricing, which spends 15 ms of it in its own span.
fn shop_trace(trace: u128, parent: u64) -> (Vec<u8>, Vec<u8>) {
    let t0 = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let base = (trace as u64) << 8;
    let shop = export(
        "shop",
        vec![
            otlp_span(
                trace,
                base + 1,
                parent,
                "GET /orders",
                vec![],
                t0,
                t0 + 36 * MS,
            ),
            otlp_span(
                trace,
                base + 2,
                base + 1,
                "SELECT orders",
                vec![kv("db.system", "postgresql")],
                t0 + 2 * MS,
                t0 + 12 * MS,
            ),
            otlp_span(
                trace,
                base + 3,
                base + 1,
                "GET",
                vec![],
                t0 + 14 * MS,
                t0 + 34 * MS,
            ),
        ],
    );
    let pricing = export(
        "pricing",
        vec![otlp_span(
            trace,
            base + 4,
            base + 3,
            "GET /price",
            vec![
                kv("http.route", "/price/{sku}"),
                kv("http.request.method", "GET"),
            ],
            t0 + 16 * MS,
            t0 + 31 * MS,
        )],
    );
    (shop, pricing)
}

fn sender(protocol: Wire, endpoint: String, gzip: bool) -> Sender {
    Sender::new(
        SignalConfig {
            exporter: ExporterKind::Otlp,
            endpoint: endpoint.parse().unwrap(),
            protocol,
            headers: Vec::new(),
            timeout: Duration::from_secs(5),
            gzip,
            certificate: None,
            client_certificate: None,
        },
        Service::Traces,
    )
}

async fn send(s: &mut Sender, body: Vec<u8>) -> Result<(), SendError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    s.export(body, deadline, &Finishing::default())
        .await
        .map(drop)
}

fn http_sender(r: &ReceiverSink, gzip: bool) -> Sender {
    let url = format!("http://{}/v1/traces", r.http_addr().unwrap());
    sender(Wire::HttpProtobuf, url, gzip)
}

fn grpc_sender(r: &ReceiverSink, gzip: bool) -> Sender {
    sender(
        Wire::Grpc,
        format!("http://{}", r.grpc_addr().unwrap()),
        gzip,
    )
}

fn component(b: &Breakdown, label: &str) -> f64 {
    let r = &b.requests[0];
    r.components
        .iter()
        .find(|c| c.label == label)
        .unwrap_or_else(|| panic!("no `{label}` in {:#?}", r.components))
        .figures
        .p50
}

/// A target on 127.0.0.1:0 that answers 200 at once and tells `seen` the `traceparent` of
/// each request: `(trace id, parent span id)`.
fn traced_target(seen: std::sync::mpsc::Sender<(u128, u64)>) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n) = c.read(&mut chunk) {
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        buf.drain(..end + 4);
                        if let Some(tp) = head.lines().find_map(|l| l.strip_prefix("traceparent: "))
                        {
                            let trace = u128::from_str_radix(&tp[3..35], 16).unwrap();
                            let span = u64::from_str_radix(&tp[36..52], 16).unwrap();
                            let _ = seen.send((trace, span));
                        }
                        let _ = c.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
                    }
                }
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_joins_the_spans_sent_over_http_and_grpc_gzipped_or_not() {
    let sink = Box::new(ReceiverSink::start(config(Duration::from_secs(5))).unwrap());
    let mut senders = [
        http_sender(&sink, true),
        http_sender(&sink, false),
        grpc_sender(&sink, true),
        grpc_sender(&sink, false),
    ];
    let (tx, rx) = std::sync::mpsc::channel();
    let url = traced_target(tx);
    // The service: each request's spans, its own and pricing's, by a different exporter in
    // turn; every fourth request went through a proxy that sends no span of its own.
    let (spans_tx, mut spans_rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        while let Ok(x) = rx.recv() {
            if spans_tx.send(x).is_err() {
                return;
            }
        }
    });
    let service = tokio::spawn(async move {
        let mut n = 0usize;
        while let Some((trace, span)) = spans_rx.recv().await {
            let parent = if n % 4 == 3 { 0xbeef } else { span };
            let (shop, pricing) = shop_trace(trace, parent);
            send(&mut senders[n % 4], shop).await.unwrap();
            send(&mut senders[(n + 1) % 4], pricing).await.unwrap();
            n += 1;
        }
        n
    });
    let load = loadlens_core::executor::LoadSettings {
        users: 2,
        iterations: Some(8),
        ..Default::default()
    };
    let tracing = loadlens_core::sample::TraceSettings::new("recv-test", 1.0);
    let started = Instant::now();
    let (summary, sink) =
        crate::contract::run_against(&url, sink, load, Controls::new(), Some(tracing)).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "every request had its spans: the end did not wait the whole window ({:?})",
        started.elapsed()
    );
    let b = summary
        .outcome
        .breakdown
        .clone()
        .expect("the summary has the breakdown");
    let c = &b.coverage;
    assert_eq!((c.sampled, c.joined), (8, 8), "{c:?}");
    assert_eq!((c.spans_received, c.spans_joined), (32, 32), "{c:?}");
    assert_eq!((c.spans_foreign, c.spans_dropped, c.spans_late), (0, 0, 0));
    let close = |got: f64, want: f64| (got - want).abs() < 0.05;
    for (label, want) in [
        ("server self time", 6.0),
        ("postgresql: SELECT orders", 10.0),
        ("shop: GET", 5.0),
        ("pricing: GET /price/{sku}", 15.0),
    ] {
        let got = component(&b, label);
        assert!(close(got, want), "{label}: {got} ms, expected {want}");
    }
    assert_eq!(b.requests[0].name, "/contract");
    assert_eq!(b.requests[0].slowest.len(), 5);
    assert_eq!(
        b.requests[0].slowest[0].dominant,
        "pricing: GET /price/{sku}"
    );
    let report = sink.finish(&summary).await;
    assert_eq!(report.name, "traces");
    assert_eq!((report.delivered, report.failed, report.dropped), (0, 0, 0));
    service.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outside_time_is_the_first_byte_minus_the_server_span() {
    let r = start(config(Duration::from_secs(5)));
    let mut http = http_sender(&r.sink, false);
    r.tap.offer(&sample(1, 0xc1));
    let (shop, pricing) = shop_trace(1, 0xc1);
    send(&mut http, shop).await.unwrap();
    send(&mut http, pricing).await.unwrap();
    let b = r.feed.settle().await.unwrap();
    // 40 ms to the first byte, 36 ms in the server span.
    assert!((component(&b, "outside the service") - 4.0).abs() < 0.05);
    assert!((component(&b, "download") - 1.0).abs() < 0.05);
}

/// One raw HTTP/1.1 request; the status and body of the answer.
fn raw(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!(
        "{head}\r\nhost: x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    c.write_all(req.as_bytes()).unwrap();
    c.write_all(body).unwrap();
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_exports_get_a_clear_answer_and_the_receiver_goes_on() {
    let r = start(config(Duration::from_secs(5)));
    let addr = r.sink.http_addr().unwrap();
    let post = "POST /v1/traces HTTP/1.1\r\ncontent-type: application/x-protobuf";
    let (status, body) =
        tokio::task::spawn_blocking(move || raw(addr, post, b"\xff\xff\xff\xff garbage"))
            .await
            .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("not an OTLP ExportTraceServiceRequest"),
        "{body}"
    );
    let json = "POST /v1/traces HTTP/1.1\r\ncontent-type: application/json";
    let (status, body) = tokio::task::spawn_blocking(move || raw(addr, json, b"{}"))
        .await
        .unwrap();
    assert_eq!(status, 415, "{body}");
    assert!(body.contains("OTLP/JSON is not supported"), "{body}");
    let gz = "POST /v1/traces HTTP/1.1\r\ncontent-encoding: gzip";
    let (status, body) = tokio::task::spawn_blocking(move || raw(addr, gz, b"not gzip"))
        .await
        .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not valid gzip"), "{body}");
    let (status, _) =
        tokio::task::spawn_blocking(move || raw(addr, "GET /v1/traces HTTP/1.1", b""))
            .await
            .unwrap();
    assert_eq!(status, 405);
    let (status, body) =
        tokio::task::spawn_blocking(move || raw(addr, "POST /v1/logs HTTP/1.1", b""))
            .await
            .unwrap();
    assert_eq!(status, 404);
    assert!(body.contains("/v1/traces"), "{body}");
    // gRPC: a message that is not an export request, and a wrong method.
    let mut grpc = grpc_sender(&r.sink, false);
    let e = send(&mut grpc, b"\xff\xff\xff\xff".to_vec())
        .await
        .unwrap_err();
    assert_eq!(e, SendError::Grpc { code: 3 });
    // Still receiving: a good export joins its request.
    r.tap.offer(&sample(9, 0xc9));
    send(&mut grpc, shop_trace(9, 0xc9).0).await.unwrap();
    let b = r.feed.settle().await.unwrap();
    assert_eq!(
        (b.coverage.joined, b.coverage.rejected_exports),
        (1, 4),
        "{:?}",
        b.coverage
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_refuses_to_start_and_names_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let e = ReceiverSink::start(Config {
        http: Some(addr),
        grpc: None,
        ..Config::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.starts_with(&format!("cannot receive OTLP traces on {addr} (http): ")),
        "{e}"
    );
    assert!(
        e.contains("(choose another address with --trace-receiver ADDR, or `off`)"),
        "{e}"
    );
    let e = ReceiverSink::start(Config {
        http: None,
        grpc: Some(addr),
        ..Config::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("(grpc)") && e.contains("--trace-receiver-grpc ADDR"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_foreign_spans_is_counted_and_our_requests_still_join() {
    let r = start(config(Duration::from_secs(5)));
    let mut http = http_sender(&r.sink, true);
    r.tap.offer(&sample(7, 0xc7));
    let started = Instant::now();
    // 200 exports of 100 spans each, none of ours.
    for i in 0..200u128 {
        let spans = (0..100u64)
            .map(|j| {
                otlp_span(
                    (i << 32) + 1_000_000 + u128::from(j),
                    j + 1,
                    0,
                    "x",
                    vec![],
                    1,
                    2,
                )
            })
            .collect();
        send(&mut http, export("stranger", spans)).await.unwrap();
    }
    send(&mut http, shop_trace(7, 0xc7).0).await.unwrap();
    let flood = started.elapsed();
    let b = r.feed.settle().await.unwrap();
    let c = &b.coverage;
    assert_eq!((c.sampled, c.joined, c.spans_joined), (1, 1, 3), "{c:?}");
    assert_eq!(c.spans_foreign, 20_000, "{c:?}");
    assert_eq!(c.spans_received, 20_003);
    assert!(
        flood < Duration::from_secs(30),
        "20,000 spans took {flood:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_arrives_is_forwarded_to_the_users_collector() {
    // The user's collector: another receiver.
    let collector = start(config(Duration::from_secs(5)));
    let mut cfg = config(Duration::from_secs(5));
    cfg.forward = Some(
        format!("http://{}/v1/traces", collector.sink.http_addr().unwrap())
            .parse()
            .unwrap(),
    );
    let r = start(cfg);
    let mut grpc = grpc_sender(&r.sink, true);
    for trace in 1..=3u128 {
        let (shop, pricing) = shop_trace(trace, 0xc0);
        send(&mut grpc, shop).await.unwrap();
        send(&mut grpc, pricing).await.unwrap();
    }
    let _ = r.feed.settle().await;
    let report = r.sink.finish(&summary_of_nothing().await).await;
    assert_eq!(
        (report.delivered, report.failed, report.dropped),
        (6, 0, 0),
        "{report:?}"
    );
    let got = collector.feed.settle().await.unwrap();
    assert_eq!(got.coverage.spans_received, 12, "every span, as it came");

    // A collector that is down: reported, and the end is bounded.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut cfg = config(Duration::from_secs(5));
    cfg.forward = Some(config::parse_forward(&format!("http://{down}")).unwrap());
    let r = start(cfg);
    let mut http = http_sender(&r.sink, false);
    send(&mut http, shop_trace(1, 0xc0).0).await.unwrap();
    let t = Instant::now();
    let report = r.sink.finish(&summary_of_nothing().await).await;
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert_eq!((report.delivered, report.failed), (0, 1), "{report:?}");
    assert!(
        report.errors[0].starts_with(&format!("forwarding to http://{down}/v1/traces: ")),
        "{report:?}"
    );
}

/// A summary for `finish` (the receiver's report does not read it).
async fn summary_of_nothing() -> Summary {
    struct Nothing;
    impl Sink for Nothing {
        fn name(&self) -> &str {
            "nothing"
        }
        fn finish(self: Box<Self>, _: &Summary) -> loadlens_core::sink::FinishFuture {
            Box::pin(async { Default::default() })
        }
    }
    crate::contract::short_run(Box::new(Nothing), 1, Controls::new())
        .await
        .0
}

/// How many spans a second the receiver accepts and joins: 20,000 sampled requests of 5 spans
/// each, 250 spans per OTLP/HTTP export, sent over one kept-alive connection by a plain thread;
/// timed from the first export until the join has settled with every request joined. The
/// sender shares the process (and, under `taskset -c 0`, the core), so the figure is a floor.
///
/// `taskset -c 0 cargo test --release -p loadlens-sinks --features receiver --lib
/// receiver::tests::bench -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
#[ignore = "a benchmark: run by hand, see its docs"]
async fn bench_spans_accepted_and_joined_per_second() {
    const TRACES: u64 = 20_000;
    const PER_EXPORT: u64 = 50;
    let r = start(config(Duration::from_secs(30)));
    let t0 = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut bodies = Vec::new();
    for chunk in 0..TRACES / PER_EXPORT {
        let mut spans = Vec::new();
        for i in 0..PER_EXPORT {
            let trace = u128::from(chunk * PER_EXPORT + i + 1);
            let b = (trace as u64) << 8;
            let client = 0xc000_0000 + trace as u64;
            r.tap.offer(&sample(trace, client));
            spans.push(otlp_span(
                trace,
                b + 1,
                client,
                "GET /orders",
                vec![],
                t0,
                t0 + 30 * MS,
            ));
            for (j, name) in ["SELECT orders", "SELECT items", "cache get", "GET"]
                .iter()
                .enumerate()
            {
                let j = j as u64;
                let attrs = if j < 2 {
                    vec![kv("db.system", "postgresql")]
                } else {
                    vec![]
                };
                spans.push(otlp_span(
                    trace,
                    b + 2 + j,
                    b + 1,
                    name,
                    attrs,
                    t0 + (1 + 6 * j) * MS,
                    t0 + (5 + 6 * j) * MS,
                ));
            }
        }
        bodies.push(export("shop", spans));
    }
    let addr = r.sink.http_addr().unwrap();
    let started = Instant::now();
    let sent = tokio::task::spawn_blocking(move || {
        let mut c = std::net::TcpStream::connect(addr).unwrap();
        c.set_nodelay(true).unwrap();
        let mut buf = vec![0u8; 4096];
        for body in &bodies {
            let head = format!(
                "POST /v1/traces HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-protobuf\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            c.write_all(head.as_bytes()).unwrap();
            c.write_all(body).unwrap();
            // The answer: headers and an empty body.
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = c.read(&mut buf).unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
            }
            assert!(got.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got));
        }
        bodies.len()
    })
    .await
    .unwrap();
    let accepted = started.elapsed();
    let b = r.feed.settle().await.unwrap();
    let joined = started.elapsed();
    let spans = TRACES * 5;
    assert_eq!(b.coverage.joined, TRACES, "{:?}", b.coverage);
    assert_eq!(b.coverage.spans_joined, spans);
    println!(
        "{sent} exports, {spans} spans: accepted in {accepted:?} ({:.0} spans/s), all joined after {joined:?} ({:.0} spans/s, the settle's 300 ms quiet included)",
        spans as f64 / accepted.as_secs_f64(),
        spans as f64 / joined.as_secs_f64(),
    );
}

/// The receiver's work per span without the network: decoding an export of the demo target's
/// spans (2,048 per body, its attributes) and joining them to their requests, in ns per span
/// (best of 5 rounds), beside the generated messages' decoding alone for comparison.
///
/// `taskset -c 0 cargo test --release -p loadlens-sinks --features receiver --lib
/// receiver::tests::bench_cost -- --ignored --nocapture`
#[test]
#[ignore = "a benchmark: run by hand, see its docs"]
fn bench_cost_per_span_of_decoding_and_joining() {
    use loadlens_core::breakdown::Join;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message as _;
    const TRACES: u64 = 683; // 3 spans each: a server span, a cache and a database span
    let t0 = 1_700_000_000_000_000_000u64;
    let int = |k: &str, v: i64| opentelemetry_proto::tonic::common::v1::KeyValue {
        key: k.into(),
        value: Some(opentelemetry_proto::tonic::common::v1::AnyValue {
            value: Some(opentelemetry_proto::tonic::common::v1::any_value::Value::IntValue(v)),
        }),
        ..Default::default()
    };
    let body = |round: u64| {
        let mut spans = Vec::new();
        for i in 0..TRACES {
            let trace = u128::from(round * TRACES + i + 1);
            let b = (trace as u64) << 8;
            spans.push(otlp_span(
                trace,
                b + 1,
                0xc000_0000 + trace as u64,
                "GET /api/products",
                vec![
                    kv("http.request.method", "GET"),
                    kv("http.route", "/api/products"),
                    kv("url.path", "/api/products"),
                    int("http.response.status_code", 200),
                ],
                t0,
                t0 + 3 * MS,
            ));
            spans.push(otlp_span(
                trace,
                b + 2,
                b + 1,
                "GET",
                vec![
                    kv("db.system", "redis"),
                    kv("db.operation.name", "GET"),
                    kv("server.address", "cache"),
                ],
                t0 + MS / 10,
                t0 + MS / 2,
            ));
            spans.push(otlp_span(
                trace,
                b + 3,
                b + 1,
                "SELECT products",
                vec![
                    kv("db.system", "postgresql"),
                    kv("db.operation.name", "SELECT"),
                    kv("db.collection.name", "products"),
                    kv("db.namespace", "shop"),
                    kv("server.address", "db"),
                ],
                t0 + MS,
                t0 + 2 * MS,
            ));
        }
        export("storefront", spans)
    };
    let rounds: Vec<Vec<u8>> = (0..20).map(body).collect();
    let per_span = |d: Duration| d.as_nanos() as f64 / (20 * TRACES * 3) as f64;
    let (mut generated, mut decode, mut join) = (f64::MAX, f64::MAX, f64::MAX);
    for _ in 0..5 {
        let t = Instant::now();
        for b in &rounds {
            std::hint::black_box(ExportTraceServiceRequest::decode(&b[..]).unwrap());
        }
        generated = generated.min(per_span(t.elapsed()));
        let t = Instant::now();
        let decoded: Vec<Vec<_>> = rounds.iter().map(|b| spans(b).unwrap().0).collect();
        decode = decode.min(per_span(t.elapsed()));
        let mut j = Join::new(
            JoinSettings::default(),
            vec![("GET".into(), "/api/products".into())],
            SystemTime::UNIX_EPOCH,
        );
        let now = Instant::now();
        let t = Instant::now();
        for (round, batch) in decoded.into_iter().enumerate() {
            for i in 0..TRACES {
                let trace = u128::from(round as u64 * TRACES + i + 1);
                j.client(&sample(trace, 0xc000_0000 + trace as u64), now);
            }
            j.spans(batch, now);
        }
        j.flush();
        join = join.min(per_span(t.elapsed()));
        assert_eq!(j.breakdown().coverage.joined, 20 * TRACES);
    }
    println!(
        "ns per span: decoding {decode:.0} (the generated messages alone: {generated:.0}), joining {join:.0}"
    );
}
