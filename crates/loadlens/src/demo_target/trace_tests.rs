//! The demo target's own spans, received by a small local OTLP/HTTP receiver on 127.0.0.1:0 that
//! decodes what arrives with the generated OTLP messages.

use std::sync::Mutex;
use std::time::Instant;

use http_body_util::{BodyExt, Full};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::{span::SpanKind, Span};
use prost::Message as _;

use super::tests::{start, Client, Server};
use super::*;

/// A span as received, with its resource's `service.name`.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    span: Span,
}

impl Got {
    fn attr(&self, key: &str) -> Option<String> {
        let kv = self.span.attributes.iter().find(|kv| kv.key == key)?;
        match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(s) => Some(s.clone()),
            AnyValue::IntValue(i) => Some(i.to_string()),
            other => Some(format!("{other:?}")),
        }
    }

    fn id(&self) -> u64 {
        u64::from_be_bytes(self.span.span_id.as_slice().try_into().unwrap())
    }

    fn parent(&self) -> u64 {
        u64::from_be_bytes(self.span.parent_span_id.as_slice().try_into().unwrap())
    }

    fn duration(&self) -> Duration {
        Duration::from_nanos(self.span.end_time_unix_nano - self.span.start_time_unix_nano)
    }
}

/// An OTLP/HTTP trace receiver that keeps every span it is sent.
struct Receiver {
    url: String,
    spans: Arc<Mutex<Vec<Got>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (spans, requests) = (
            Arc::<Mutex<Vec<Got>>>::default(),
            Arc::<Mutex<Vec<String>>>::default(),
        );
        let (kept, seen) = (Arc::clone(&spans), Arc::clone(&requests));
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (kept, seen) = (Arc::clone(&kept), Arc::clone(&seen));
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let (kept, seen) = (Arc::clone(&kept), Arc::clone(&seen));
                    async move {
                        let content_type = req
                            .headers()
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        seen.lock().unwrap().push(format!(
                            "{} {} {content_type}",
                            req.method(),
                            req.uri().path()
                        ));
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let message = ExportTraceServiceRequest::decode(body).unwrap();
                        let mut kept = kept.lock().unwrap();
                        for rs in message.resource_spans {
                            let service = rs
                                .resource
                                .iter()
                                .flat_map(|r| &r.attributes)
                                .find(|kv| kv.key == "service.name")
                                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                                    AnyValue::StringValue(s) => Some(s.clone()),
                                    _ => None,
                                })
                                .unwrap_or_default();
                            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                                let service = service.clone();
                                kept.push(Got { service, span });
                            }
                        }
                        let answer = ExportTraceServiceResponse::default().encode_to_vec();
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            bytes::Bytes::from(answer),
                        )))
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), service));
            }
        });
        Receiver {
            url,
            spans,
            requests,
        }
    }

    fn spans(&self) -> Vec<Got> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits (generously: the machine may be loaded) until `n` spans arrived.
    async fn wait_for(&self, n: usize) -> Vec<Got> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.spans.lock().unwrap().len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.spans()
    }
}

fn traceparent(trace: u128, parent: u64, sampled: bool) -> String {
    format!("00-{trace:032x}-{parent:016x}-0{}", u8::from(sampled))
}

async fn stop(server: Server) {
    server.stop.cancel();
    tokio::time::timeout(Duration::from_secs(10), server.task)
        .await
        .expect("serve stopped")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampled_requests_send_a_server_span_and_one_child_per_operation() {
    let receiver = Receiver::start().await;
    let endpoint = trace::traces_url(&receiver.url).unwrap();
    // 40 ms: far above what a request's own work takes, so the span's duration shows the sleep.
    let db = Duration::from_millis(40);
    let config = DemoConfig::fast()
        .with_operation(Operation::Db, Latency::Fixed(db))
        .with_otlp_endpoint(endpoint);
    let (server, mut client) = start(config).await;

    let (products, parent) = (0x1111_u128 << 64 | 1, 0xabc_u64);
    client.set("traceparent", &traceparent(products, parent, true));
    let started = Instant::now();
    assert_eq!(client.get("/api/products?limit=2").await.status, 200);
    assert!(started.elapsed() >= db, "the database sleep is real");

    let mut unsampled = Client::connect(server.addr).await;
    unsampled.set("traceparent", &traceparent(0x2222, parent, false));
    assert_eq!(unsampled.get("/api/products?limit=2").await.status, 200);
    let mut untraced = Client::connect(server.addr).await;
    assert_eq!(untraced.get("/api/products?limit=2").await.status, 200);

    let checkout = 0x3333_u128 << 64 | 3;
    let mut buyer = Client::connect(server.addr).await;
    buyer.set("traceparent", &traceparent(checkout, parent, true));
    let body = r#"{"cart_id":"cart_1"}"#;
    assert_eq!(buyer.post("/api/v1/checkout", body).await.status, 201);

    // Products: server + cache + db; checkout: server + cache + pricing client + pricing
    // server + db.
    let spans = receiver.wait_for(3 + 5).await;
    let stats = client.get("/__stats").await.json();
    stop(server).await;
    assert_eq!(spans.len(), 8, "only the two sampled requests: {spans:#?}");
    assert_eq!(stats["spans"]["exported"], 8, "{stats}");
    assert_eq!(stats["spans"]["dropped"], 0, "{stats}");
    assert!(receiver
        .requests
        .lock()
        .unwrap()
        .iter()
        .all(|r| r == "POST /v1/traces application/x-protobuf"));

    let of = |trace: u128| -> Vec<Got> {
        let id = trace.to_be_bytes().to_vec();
        spans
            .iter()
            .filter(|g| g.span.trace_id == id)
            .cloned()
            .collect()
    };
    let named = |spans: &[Got], name: &str| -> Got {
        let found = spans.iter().find(|g| g.span.name == name);
        found
            .unwrap_or_else(|| panic!("no `{name}` in {spans:#?}"))
            .clone()
    };

    let products = of(products);
    let server_span = named(&products, "GET /api/products");
    assert_eq!(server_span.service, trace::SERVICE);
    assert_eq!(server_span.span.kind, SpanKind::Server as i32);
    assert_eq!(server_span.parent(), parent, "continues the caller's trace");
    assert_eq!(server_span.attr("http.route").unwrap(), "/api/products");
    assert_eq!(server_span.attr("http.request.method").unwrap(), "GET");
    assert_eq!(
        server_span.attr("http.response.status_code").unwrap(),
        "200"
    );
    let cache = named(&products, "GET");
    assert_eq!(cache.attr("db.system").unwrap(), "redis");
    assert_eq!(cache.attr("db.operation.name").unwrap(), "GET");
    let select = named(&products, "SELECT products");
    assert_eq!(select.attr("db.system").unwrap(), "postgresql");
    assert_eq!(select.attr("db.operation.name").unwrap(), "SELECT");
    for child in [&cache, &select] {
        assert_eq!(child.parent(), server_span.id());
        assert_eq!(child.span.kind, SpanKind::Client as i32);
        assert!(child.span.start_time_unix_nano >= server_span.span.start_time_unix_nano);
        assert!(child.span.end_time_unix_nano <= server_span.span.end_time_unix_nano);
    }
    assert!(select.duration() >= db, "{:?}", select.duration());
    assert!(server_span.duration() >= select.duration() + cache.duration());

    let checkout = of(checkout);
    let server_span = named(&checkout, "POST /api/v1/checkout");
    let call = named(&checkout, "POST");
    assert_eq!(call.parent(), server_span.id());
    assert_eq!(call.attr("server.address").unwrap(), "pricing");
    let pricing = named(&checkout, "POST /v1/price");
    assert_eq!(pricing.service, trace::PRICING_SERVICE);
    assert_eq!(pricing.span.kind, SpanKind::Server as i32);
    assert_eq!(pricing.attr("http.route").unwrap(), "/v1/price");
    assert_eq!(
        pricing.parent(),
        call.id(),
        "the pricing server span is the call's child"
    );
    assert_eq!(
        named(&checkout, "INSERT orders")
            .attr("db.operation.name")
            .unwrap(),
        "INSERT"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_span_endpoint_neither_slows_nor_fails_requests() {
    // A port that refuses connections: bound, then closed.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let config = DemoConfig::fast().with_otlp_endpoint(trace::traces_url(&url).unwrap());
    let (server, mut client) = start(config).await;
    client.set("traceparent", &traceparent(7, 9, true));
    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(client.get("/api/products?limit=1").await.status, 200);
    }
    let answered = started.elapsed();
    // The exporter retries for up to its 5 s timeout; the requests were answered long before.
    let deadline = Instant::now() + Duration::from_secs(30);
    let stats = loop {
        let stats = client.get("/__stats").await.json();
        if stats["spans"]["failed"].as_u64() > Some(0) || Instant::now() > deadline {
            break stats;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        answered < Duration::from_secs(4),
        "20 requests took {answered:?}"
    );
    assert_eq!(stats["routes"]["GET /api/products"], 20);
    assert!(
        stats["spans"]["failed"].as_u64().unwrap() > 0,
        "failures are counted: {stats}"
    );
    stop(server).await;
}

#[test]
fn flags_set_operations_slow_and_the_endpoint() {
    let args = DemoTargetArgs {
        op_latency: vec!["cache=fixed(3ms)".into()],
        slow: Some("pricing".into()),
        otlp_endpoint: Some("http://127.0.0.1:4318".into()),
        ..Default::default()
    };
    let config = DemoConfig::from_args(&args).unwrap();
    assert_eq!(
        config.operation(Operation::Cache),
        &Latency::Fixed(Duration::from_millis(3))
    );
    assert_eq!(config.operation(Operation::Pricing), &Operation::slow());
    assert_eq!(
        config.operation(Operation::Db),
        &Operation::Db.realistic(),
        "the others keep their default"
    );
    assert_eq!(
        config.otlp_endpoint().unwrap().to_string(),
        "http://127.0.0.1:4318/v1/traces"
    );
    // `--latency` is a route's whole added latency: operations are off unless set again.
    let args = DemoTargetArgs {
        latency: Some("0".into()),
        slow: Some("db".into()),
        ..Default::default()
    };
    let config = DemoConfig::from_args(&args).unwrap();
    assert_eq!(config.operation(Operation::Cache), &Latency::None);
    assert_eq!(config.operation(Operation::Db), &Operation::slow());

    for (args, needles) in [
        (
            DemoTargetArgs {
                slow: Some("disk".into()),
                ..Default::default()
            },
            &["--slow", "disk", "cache, db, pricing"][..],
        ),
        (
            DemoTargetArgs {
                op_latency: vec!["db".into()],
                ..Default::default()
            },
            &["--op-latency", "OP=DIST"][..],
        ),
        (
            DemoTargetArgs {
                otlp_endpoint: Some("127.0.0.1:4318".into()),
                ..Default::default()
            },
            &["--otlp-endpoint", "http://"][..],
        ),
    ] {
        let message = DemoConfig::from_args(&args).unwrap_err().to_string();
        for needle in needles {
            assert!(message.contains(needle), "`{message}` lacks `{needle}`");
        }
    }
}
