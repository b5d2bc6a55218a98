//! Tests of the OTLP sink: configuration from the standard environment, spans and metrics as
//! built from samples and snapshots, and the shared sink contract against local endpoints.
//! The end-to-end tests with real peers (Datadog's test agent, an OpenTelemetry-instrumented
//! Python service) are in the binary's integration tests (`crates/loadlens/tests/it/otel.rs`).

use std::time::{Duration, SystemTime};

use loadlens_core::sample::{ErrorKind, Failure, NameId, Phases, Sample, TraceIds};
use loadlens_core::stats::{Aggregator, Recorder};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::trace::v1::{span, Span};

use super::config::{env_of, Temporality};
use super::encode::{self, Metrics, SpanContext};
use super::*;

fn names() -> Names {
    Names {
        requests: vec![
            ("GET".into(), "/a".into()),
            ("POST".into(), "/b".into()),
            ("GET".into(), "/c".into()),
        ],
        servers: Vec::new(),
        scenarios: vec![ScenarioNames {
            name: None,
            user_types: vec!["shopper".into()],
            tasks: vec![vec!["browse".into()]],
        }],
    }
}

fn sample(name: u32, status: Option<u16>, failure: Option<Failure>) -> Sample {
    let mut s = Sample::failed_before_send(NameId(name), Failure::new(ErrorKind::Other, "x"));
    s.failure = failure;
    s.status = status;
    s.started_at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    s.total = Duration::from_millis(120);
    s.protocol = Some("1.1");
    s.url = Some("http://127.0.0.1:8080/a?q=1".into());
    s.trace = Some(TraceIds {
        trace_id: 0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10,
        span_id: 0x1122_3344_5566_7788,
        sampled: true,
    });
    s.vu = 7;
    s.task = 0;
    s
}

fn ctx() -> SpanContext {
    SpanContext {
        names: names(),
        run_id: "run-1".into(),
        scenario: "shop".into(),
        run_link: Some((5, 6)),
    }
}

fn attr<'a>(s: &'a Span, key: &str) -> Option<&'a Value> {
    s.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn string(v: Option<&Value>) -> &str {
    match v {
        Some(Value::StringValue(s)) => s,
        other => panic!("not a string: {other:?}"),
    }
}

#[test]
fn standard_environment_with_per_signal_overrides() {
    let c = Config::resolve(&FileSettings::default(), env_of(&[])).unwrap();
    assert_eq!(c.traces.endpoint, "http://localhost:4318/v1/traces");
    assert_eq!(c.metrics.endpoint, "http://localhost:4318/v1/metrics");
    assert_eq!(c.traces.protocol, Protocol::HttpProtobuf);
    assert_eq!(c.service_name, "loadlens");
    assert_eq!(c.sample_ratio, 1.0);
    assert_eq!(c.metric_interval, Duration::from_secs(60));
    assert_eq!(c.traces.timeout, Duration::from_secs(10));

    let env = env_of(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "https://m.example/v2/datapoint/otlp",
        ),
        ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://127.0.0.1:4317",
        ),
        ("OTEL_EXPORTER_OTLP_HEADERS", "X-SF-TOKEN=a%20b,x-two=2"),
        ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "x-two=3"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ("OTEL_EXPORTER_OTLP_METRICS_COMPRESSION", "gzip"),
        ("OTEL_SERVICE_NAME", "checkout-load"),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "team=payments,service.name=ignored",
        ),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", "0.01"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "5000"),
        ("OTEL_METRICS_EXPORTER", "console"),
        ("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta"),
    ]);
    let c = Config::resolve(&FileSettings::default(), env).unwrap();
    assert_eq!(c.traces.protocol, Protocol::Grpc);
    assert_eq!(c.traces.endpoint, "http://127.0.0.1:4317/");
    // A signal's own endpoint is used as is.
    assert_eq!(c.metrics.endpoint, "https://m.example/v2/datapoint/otlp");
    assert_eq!(c.traces.headers.len(), 2);
    assert_eq!(c.traces.headers[0].1, "a b");
    assert!(c.traces.headers[0].1.is_sensitive());
    let two: Vec<_> = c
        .metrics
        .headers
        .iter()
        .filter(|h| h.0 == "x-two")
        .collect();
    assert_eq!((two.len(), two[0].1.to_str().unwrap()), (1, "3"));
    assert_eq!(c.traces.timeout, Duration::from_millis(2500));
    assert!(c.metrics.gzip && !c.traces.gzip);
    assert_eq!(c.service_name, "checkout-load");
    assert_eq!(c.resource, vec![("team".to_owned(), "payments".to_owned())]);
    assert_eq!(c.sample_ratio, 0.01);
    assert_eq!(c.metric_interval, Duration::from_secs(5));
    assert_eq!(c.metrics.exporter, ExporterKind::Console);
    assert_eq!(c.traces.exporter, ExporterKind::Otlp);
    assert_eq!(c.temporality, Temporality::Delta);
}

#[test]
fn environment_overrides_the_file_and_bad_values_say_what_is_accepted() {
    let file = FileSettings {
        endpoint: Some("http://file:4318".into()),
        service_name: Some("from-file".into()),
        sample_ratio: Some(0.5),
        ..FileSettings::default()
    };
    let c = Config::resolve(&file, env_of(&[])).unwrap();
    assert_eq!(c.traces.endpoint, "http://file:4318/v1/traces");
    assert_eq!(
        (c.service_name.as_str(), c.sample_ratio),
        ("from-file", 0.5)
    );
    let c = Config::resolve(&file, env_of(&[("OTEL_TRACES_SAMPLER", "always_off")])).unwrap();
    assert_eq!(c.sample_ratio, 0.0);

    for (k, v, want) in [
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "http/json",
            "use http/protobuf or grpc",
        ),
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "thrift",
            "expected grpc or http/protobuf",
        ),
        (
            "OTEL_TRACES_EXPORTER",
            "jaeger",
            "expected otlp, console or none",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "collector:4318",
            "http:// or https://",
        ),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s", "milliseconds"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "secret-token",
            "value is not shown",
        ),
    ] {
        let e = Config::resolve(&FileSettings::default(), env_of(&[(k, v)])).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with(k) && msg.contains(want), "{k}={v}: {msg}");
        assert!(!msg.contains("secret-token"), "{msg}");
    }
    let off = Config::resolve(
        &FileSettings::default(),
        env_of(&[
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ]),
    )
    .unwrap();
    assert!(off.is_off());
}

#[test]
fn a_request_span_carries_the_ids_sent_on_the_wire_and_its_connection_phases() {
    let mut s = sample(0, Some(200), None);
    s.new_connection = true;
    s.phases = Phases {
        dns: Some(Duration::from_millis(3)),
        connect: Some(Duration::from_millis(5)),
        tls: Some(Duration::from_millis(11)),
        ttfb: Some(Duration::from_millis(90)),
        download: Some(Duration::from_millis(1)),
    };
    let mut out = Vec::new();
    encode::spans(&s, &ctx(), &mut out);
    assert_eq!(out.len(), 4);
    let client = &out[0];
    let ids = s.trace.unwrap();
    // Exactly the ids of the `traceparent` the request carried.
    assert_eq!(
        format!("00-{}-{}-01", hex(&client.trace_id), hex(&client.span_id)),
        ids.traceparent()
    );
    assert_eq!(client.name, "GET /a");
    assert_eq!(client.kind, span::SpanKind::Client as i32);
    assert!(client.parent_span_id.is_empty());
    let start = encode::nanos(s.started_at);
    assert_eq!(client.start_time_unix_nano, start);
    assert_eq!(client.end_time_unix_nano, start + 120_000_000);
    assert_eq!(string(attr(client, "http.request.method")), "GET");
    assert_eq!(
        string(attr(client, "url.full")),
        "http://127.0.0.1:8080/a?q=1"
    );
    assert_eq!(string(attr(client, "server.address")), "127.0.0.1");
    assert_eq!(attr(client, "server.port"), Some(&Value::IntValue(8080)));
    assert_eq!(
        attr(client, "http.response.status_code"),
        Some(&Value::IntValue(200))
    );
    assert_eq!(string(attr(client, "network.protocol.version")), "1.1");
    assert_eq!(string(attr(client, "loadtest.run_id")), "run-1");
    assert_eq!(string(attr(client, "loadtest.scenario")), "shop");
    assert_eq!(string(attr(client, "loadtest.user_type")), "shopper");
    assert_eq!(string(attr(client, "loadtest.task")), "browse");
    assert_eq!(attr(client, "loadtest.vu"), Some(&Value::IntValue(7)));
    assert!(attr(client, "error.type").is_none());
    assert!(attr(client, "loadtest.schedule_delay_s").is_none());
    assert_eq!(client.status.as_ref().unwrap().code, 0);
    assert_eq!(client.links.len(), 1);
    // Children: DNS, connect, TLS, end to end from the request start.
    let names: Vec<&str> = out[1..].iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, [DNS_SPAN, CONNECT_SPAN, TLS_SPAN]);
    let mut t = start;
    for (c, ms) in out[1..].iter().zip([3u64, 5, 11]) {
        assert_eq!(c.trace_id, client.trace_id);
        assert_eq!(c.parent_span_id, client.span_id);
        assert_ne!(c.span_id, client.span_id);
        assert_eq!(c.start_time_unix_nano, t);
        t += ms * 1_000_000;
        assert_eq!(c.end_time_unix_nano, t);
    }
    // A reused connection: no children.
    s.new_connection = false;
    out.clear();
    encode::spans(&s, &ctx(), &mut out);
    assert_eq!(out.len(), 1);
    // Not sampled: nothing at all.
    s.trace = Some(TraceIds {
        sampled: false,
        ..ids
    });
    out.clear();
    encode::spans(&s, &ctx(), &mut out);
    assert!(out.is_empty());
}

#[test]
fn failures_make_error_spans_with_the_reason() {
    let cases = [
        (
            sample(
                0,
                Some(503),
                Some(Failure::new(
                    ErrorKind::Status,
                    "HTTP 503 Service Unavailable",
                )),
            ),
            "503",
            "HTTP 503 Service Unavailable",
        ),
        (
            sample(
                1,
                None,
                Some(Failure::new(ErrorKind::Refused, "connection refused")),
            ),
            "refused",
            "connection refused",
        ),
        (
            sample(
                2,
                Some(200),
                Some(Failure::new(
                    ErrorKind::Check,
                    "$.ok: expected true, got false",
                )),
            ),
            "check",
            "$.ok: expected true, got false",
        ),
    ];
    for (s, error_type, message) in cases {
        let mut out = Vec::new();
        encode::spans(&s, &ctx(), &mut out);
        let st = out[0].status.as_ref().unwrap();
        assert_eq!(st.code, 2, "{error_type}");
        assert_eq!(st.message, message);
        assert_eq!(string(attr(&out[0], "error.type")), error_type);
    }
    // A 5xx that a status check accepted is still an error span.
    let mut out = Vec::new();
    encode::spans(&sample(0, Some(500), None), &ctx(), &mut out);
    assert_eq!(out[0].status.as_ref().unwrap().code, 2);
    // Open model: the intended start and the scheduling delay.
    let mut s = sample(0, Some(200), None);
    s.schedule_delay = Duration::from_millis(20);
    s.total = Duration::from_millis(120);
    out.clear();
    encode::spans(&s, &ctx(), &mut out);
    let start = encode::nanos(s.started_at);
    assert_eq!(out[0].end_time_unix_nano - start, 100_000_000);
    assert_eq!(
        attr(&out[0], "loadtest.intended_start_unix_nano"),
        Some(&Value::IntValue((start - 20_000_000) as i64))
    );
    assert_eq!(
        attr(&out[0], "loadtest.schedule_delay_s"),
        Some(&Value::DoubleValue(0.02))
    );
}

#[test]
fn metrics_come_from_the_interval_histograms_with_semconv_buckets_and_a_name_cap() {
    let rec = Recorder::new(3);
    for (name, ms, status) in [
        (0, 3, 200),
        (0, 40, 200),
        (0, 700, 500),
        (1, 30, 201),
        (2, 12_000, 200),
    ] {
        let mut s = sample(name, Some(status), None);
        s.total = Duration::from_millis(ms);
        if status >= 500 {
            s.failure = Some(Failure::new(
                ErrorKind::Status,
                "HTTP 500 Internal Server Error",
            ));
        }
        rec.record(&s);
    }
    let mut transport = sample(1, None, Some(Failure::new(ErrorKind::Timeout, "timed out")));
    transport.total = Duration::from_secs(1);
    rec.record(&transport);
    let mut agg = Aggregator::new(rec, names().requests);
    let snap = agg.tick(Duration::from_secs(1), 4);
    // Two request names individually, the third in the overflow series.
    let mut m = Metrics::new(names(), 2, Temporality::Cumulative, SystemTime::now());
    m.fold(&snap);
    let out = m.export(SystemTime::now());
    let find = |n: &str| {
        out.iter()
            .find(|x| x.name == n)
            .unwrap_or_else(|| panic!("{n}"))
    };
    let Some(Data::Histogram(h)) = &find("http.client.request.duration").data else {
        panic!()
    };
    assert_eq!(find("http.client.request.duration").unit, "s");
    // One point per request name and outcome (status code or transport error), as the
    // semantic conventions key the metric: name 0 → 200 and 500, name 1 → 201 and a timeout,
    // the third name in the overflow series.
    assert_eq!(h.data_points.len(), 5);
    let attrs = |p: &opentelemetry_proto::tonic::metrics::v1::HistogramDataPoint| -> Vec<String> {
        p.attributes
            .iter()
            .map(|kv| format!("{}={:?}", kv.key, kv.value.as_ref().unwrap().value))
            .collect()
    };
    let a = &h.data_points[0];
    assert_eq!(a.explicit_bounds, DURATION_BOUNDS_S.to_vec());
    assert_eq!(a.count, 2);
    // 3 ms ≤ 5 ms; 40 ms in (25, 50].
    assert_eq!(a.bucket_counts[0], 1);
    assert_eq!(a.bucket_counts[3], 1);
    assert!((a.sum.unwrap() - 0.043).abs() < 0.002, "{:?}", a.sum);
    assert!(
        attrs(a)
            .iter()
            .any(|k| k.starts_with("http.response.status_code") && k.contains("200")),
        "{:?}",
        attrs(a)
    );
    assert!(!attrs(a).iter().any(|k| k.starts_with("error.type")));
    let e500 = &h.data_points[1];
    // 700 ms in (500, 750], with the status as error.type.
    assert_eq!((e500.count, e500.bucket_counts[8]), (1, 1));
    assert!(
        attrs(e500)
            .iter()
            .any(|k| k.starts_with("error.type") && k.contains("\"500\"")),
        "{:?}",
        attrs(e500)
    );
    let timeout = h
        .data_points
        .iter()
        .find(|p| {
            attrs(p)
                .iter()
                .any(|k| k.starts_with("error.type") && k.contains("timeout"))
        })
        .expect("a point for the transport error");
    assert!(!attrs(timeout)
        .iter()
        .any(|k| k.starts_with("http.response.status_code")));
    let overflow = &h.data_points[4];
    assert_eq!(overflow.bucket_counts[14], 1, "12 s is past the last bound");
    let keys: Vec<String> = overflow
        .attributes
        .iter()
        .map(|kv| format!("{}={:?}", kv.key, kv.value.as_ref().unwrap().value))
        .collect();
    assert!(
        keys.iter()
            .any(|k| k.contains("loadtest.request_name") && k.contains(OVERFLOW_NAME)),
        "{keys:?}"
    );
    assert!(keys.iter().any(|k| k.starts_with("otel.metric.overflow")));
    let Some(Data::Sum(req)) = &find("loadtest.requests").data else {
        panic!()
    };
    assert!(req.is_monotonic);
    let total: i64 = req
        .data_points
        .iter()
        .map(|p| match p.value {
            Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(v)) => v,
            _ => 0,
        })
        .sum();
    assert_eq!(total, 6);
    let Some(Data::Sum(fail)) = &find("loadtest.failures").data else {
        panic!()
    };
    let types: Vec<String> = fail
        .data_points
        .iter()
        .flat_map(|p| p.attributes.iter())
        .filter(|kv| kv.key == "error.type")
        .map(|kv| format!("{:?}", kv.value.as_ref().unwrap().value))
        .collect();
    assert!(types.iter().any(|t| t.contains("\"500\"")), "{types:?}");
    assert!(types.iter().any(|t| t.contains("timeout")), "{types:?}");
    assert!(out.iter().any(|x| x.name == "loadtest.users"));
    if encode::process_usage().is_some() {
        assert!(out.iter().any(|x| x.name == "process.cpu.time"));
        assert!(out.iter().any(|x| x.name == "process.memory.usage"));
    }
}

#[test]
fn under_named_scenarios_a_span_carries_its_own_scenario_user_type_and_task() {
    // Each named scenario's plan keeps only its user types: index 0 is `shopper` in the first
    // and `admin` in the second.
    let mut names = names();
    names.scenarios = vec![
        ScenarioNames {
            name: Some("browse".into()),
            user_types: vec!["shopper".into()],
            tasks: vec![vec!["look".into()]],
        },
        ScenarioNames {
            name: Some("manage".into()),
            user_types: vec!["admin".into()],
            tasks: vec![vec!["edit".into(), "delete".into()]],
        },
    ];
    let named = SpanContext { names, ..ctx() };
    let got = |scenario: u16, task: u16| {
        let mut s = sample(0, Some(200), None);
        (s.scenario, s.user_type, s.task) = (scenario, 0, task);
        let mut out = Vec::new();
        encode::spans(&s, &named, &mut out);
        let a = |k: &str| string(attr(&out[0], k)).to_owned();
        (
            a("loadtest.scenario"),
            a("loadtest.user_type"),
            a("loadtest.task"),
        )
    };
    let own = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(got(0, 0), own("browse", "shopper", "look"));
    assert_eq!(got(1, 1), own("manage", "admin", "delete"));
    assert_eq!(
        got(1, Sample::NO_TASK),
        own("manage", "admin", "on_start/on_stop")
    );
    // A plain run: the run's scenario name.
    let mut s = sample(0, Some(200), None);
    s.task = 0;
    let mut out = Vec::new();
    encode::spans(&s, &ctx(), &mut out);
    assert_eq!(string(attr(&out[0], "loadtest.scenario")), "shop");
}

fn dropped_points(out: &[opentelemetry_proto::tonic::metrics::v1::Metric]) -> Option<Vec<i64>> {
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as V;
    let m = out
        .iter()
        .find(|m| m.name == "loadtest.dropped_iterations")?;
    let Some(Data::Sum(s)) = &m.data else {
        panic!("{m:?}")
    };
    assert!(s.is_monotonic);
    Some(
        s.data_points
            .iter()
            .map(|p| match p.value {
                Some(V::AsInt(v)) => v,
                other => panic!("{other:?}"),
            })
            .collect(),
    )
}

#[test]
fn dropped_iterations_are_exported_every_interval_from_the_snapshots_in_the_open_model_only() {
    let rec = Recorder::new(3);
    let mut agg = Aggregator::new(rec, names().requests);
    for temporality in [Temporality::Cumulative, Temporality::Delta] {
        let mut m = Metrics::new(names(), 10, temporality, SystemTime::now());
        let mut exported = Vec::new();
        for (i, dropped) in [2u64, 2, 7].into_iter().enumerate() {
            let mut snap = agg.tick(Duration::from_secs(i as u64 + 1), 1);
            snap.dropped_iterations = Some(dropped);
            m.fold(&snap);
            exported.push(dropped_points(&m.export(SystemTime::now())).expect("exported"));
        }
        let want: Vec<Vec<i64>> = match temporality {
            Temporality::Cumulative => vec![vec![2], vec![2], vec![7]],
            Temporality::Delta => vec![vec![2], vec![0], vec![5]],
        };
        assert_eq!(exported, want, "{temporality:?}");
    }
    // Closed model: the snapshots have no count, and nothing is exported.
    let mut m = Metrics::new(names(), 10, Temporality::Cumulative, SystemTime::now());
    m.fold(&agg.tick(Duration::from_secs(9), 1));
    assert_eq!(dropped_points(&m.export(SystemTime::now())), None);
}

#[test]
fn credentials_in_an_endpoint_become_basic_auth_and_leave_the_url() {
    let authorization = |s: &config::SignalConfig| -> Vec<String> {
        s.headers
            .iter()
            .filter(|(n, _)| n == http::header::AUTHORIZATION)
            .map(|(_, v)| v.to_str().unwrap().to_owned())
            .collect()
    };
    // Percent-decoded before encoding, as curl does: `%21` is `!`.
    let env = env_of(&[(
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "https://perf:s3cret%21@collector:4318",
    )]);
    let c = Config::resolve(&FileSettings::default(), env).unwrap();
    assert_eq!(c.traces.endpoint, "https://collector:4318/v1/traces");
    assert_eq!(c.metrics.endpoint, "https://collector:4318/v1/metrics");
    for s in [&c.traces, &c.metrics] {
        // base64("perf:s3cret!")
        assert_eq!(authorization(s), ["Basic cGVyZjpzM2NyZXQh"]);
        assert!(s.headers.iter().all(|(_, v)| v.is_sensitive()));
    }
    let sender = send::Sender::new(c.traces.clone(), send::Service::Traces);
    let describe = OtlpSink::new(c.clone(), names()).describe();
    assert!(
        describe.starts_with("otel: traces https://collector:4318/v1/traces (http/protobuf)"),
        "{describe}"
    );
    for text in [
        describe,
        sender.target(),
        format!("{sender:?}"),
        format!("{c:?}"),
    ] {
        assert!(!text.contains("s3cret") && !text.contains("perf"), "{text}");
    }

    // A header set explicitly wins over the URL's credentials, signal by signal; a signal's
    // own endpoint carries its own credentials (or none).
    let env = env_of(&[
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://perf:s3cret@collector:4318",
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "Authorization=Bearer%20tok",
        ),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "http://m:p%40ss@metrics.internal:4318/v1/metrics",
        ),
    ]);
    let c = Config::resolve(&FileSettings::default(), env).unwrap();
    assert_eq!(authorization(&c.traces), ["Bearer tok"]);
    assert_eq!(c.traces.endpoint, "http://collector:4318/v1/traces");
    // base64("m:p@ss")
    assert_eq!(authorization(&c.metrics), ["Basic bTpwQHNz"]);
    assert_eq!(
        c.metrics.endpoint,
        "http://metrics.internal:4318/v1/metrics"
    );
    let env = env_of(&[
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://perf:s3cret@collector:4318",
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://collector:4318/v1/traces",
        ),
    ]);
    let c = Config::resolve(&FileSettings::default(), env).unwrap();
    assert!(authorization(&c.traces).is_empty());
    assert_eq!(authorization(&c.metrics).len(), 1);

    // A value the sink refuses is echoed with the credentials masked, including a password
    // whose unencoded `/` would otherwise end the host early and leave it in the path.
    for (raw, shown) in [
        ("ftp://perf:s3cret@collector:21", "`ftp://***@collector:21`"),
        (
            "https://perf:s3cret/x@collector:4318",
            "`https://***@collector:4318`",
        ),
        (
            "https://perf:s3cret@coll ector:4318",
            "`https://***@coll ector:4318`",
        ),
        // Not a port: refused rather than sent to the default port 443.
        (
            "https://perf:s3cret@collector:notaport",
            "`https://***@collector:notaport` has the port `notaport`: expected a number",
        ),
    ] {
        let var = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
        let e = Config::resolve(&FileSettings::default(), env_of(&[(var, raw)])).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with(var) && msg.contains(shown), "{msg}");
        assert!(!msg.contains("s3cret") && !msg.contains("perf"), "{msg}");
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The sink under the shared contract: http/protobuf to `url`, everything bounded by `timeout`.
fn contract_sink(url: &str, timeout: Duration) -> Box<dyn Sink> {
    let env = env_of(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", url),
        (
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            &timeout.as_millis().to_string(),
        ),
    ]);
    let file = FileSettings {
        flush_timeout: Some(timeout),
        ..FileSettings::default()
    };
    let config = Config::resolve(&file, env).unwrap();
    let names = Names {
        requests: vec![("GET".into(), "/contract".into())],
        servers: Vec::new(),
        scenarios: vec![ScenarioNames {
            name: None,
            user_types: vec!["default".into()],
            tasks: vec![vec!["/contract".into()]],
        }],
    };
    Box::new(OtlpSink::new(config, names))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_timeout_bounds_each_export_within_a_longer_flush() {
    use crate::contract::{short_run, Endpoint, Mode};
    let hang = Endpoint::start(Mode::Hang);
    let env = env_of(&[
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &hang.url),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "300"),
    ]);
    let file = FileSettings {
        flush_timeout: Some(Duration::from_secs(6)),
        ..FileSettings::default()
    };
    let sink = OtlpSink::new(Config::resolve(&file, env).unwrap(), names());
    let (summary, sink) =
        short_run(Box::new(sink), 10, loadlens_core::executor::Controls::new()).await;
    let t = std::time::Instant::now();
    let r = sink.finish(&summary).await;
    let took = t.elapsed();
    // One 300 ms attempt for the metrics and one for the spans, not the 6 s flush budget.
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(2),
        "{took:?}"
    );
    assert_eq!(r.delivered, 0, "{r:?}");
    assert!(
        r.errors
            .iter()
            .any(|e| e.contains("no answer within 300ms")),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_sink_contract() {
    crate::contract::check_all(&contract_sink).await;
}

#[test]
fn duration_points_name_their_server_and_are_stamped_with_the_snapshot_they_hold() {
    let plan = loadlens_core::plan::Plan::single(
        "http://127.0.0.1:8080/a",
        http::Method::GET,
        Default::default(),
        &loadlens_core::plan::PlanOptions::default(),
    )
    .unwrap();
    let names = Names::of(&plan);
    assert_eq!(names.servers, [Some(("127.0.0.1".to_owned(), 8080))]);
    let rec = Recorder::new(1);
    rec.record(&sample(0, Some(200), None));
    let mut agg = Aggregator::new(rec, names.requests.clone());
    let snap = agg.tick(Duration::from_secs(1), 1);
    let mut m = Metrics::new(names, 100, Temporality::Cumulative, SystemTime::now());
    m.fold(&snap);
    // Exported a while after the snapshot: the points say up to when they count.
    let out = m.export(snap.at + Duration::from_secs(5));
    let Some(Data::Histogram(h)) = &out[0].data else {
        panic!("{:?}", out[0])
    };
    let p = &h.data_points[0];
    let a = |k: &str| {
        p.attributes
            .iter()
            .find(|kv| kv.key == k)
            .and_then(|kv| kv.value.as_ref()?.value.clone())
    };
    assert_eq!(
        a("server.address"),
        Some(Value::StringValue("127.0.0.1".into()))
    );
    assert_eq!(a("server.port"), Some(Value::IntValue(8080)));
    assert_eq!(
        p.time_unix_nano,
        encode::nanos(snap.at),
        "stamped at the snapshot"
    );
}

#[test]
fn a_failed_dns_lookup_connect_or_handshake_is_an_error_span_with_the_reason() {
    let ms = |n| Some(Duration::from_millis(n));
    let cases = [
        (
            ErrorKind::Dns,
            "could not resolve host `nowhere.invalid`",
            [ms(3), None, None],
            DNS_SPAN,
        ),
        (
            ErrorKind::Refused,
            "connection refused",
            [None, ms(1), None],
            CONNECT_SPAN,
        ),
        (
            ErrorKind::Tls,
            "TLS handshake failed: bad certificate",
            [None, ms(1), ms(4)],
            TLS_SPAN,
        ),
    ];
    for (kind, message, [dns, connect, tls], failed) in cases {
        let mut s = sample(0, None, Some(Failure::new(kind, message)));
        s.new_connection = true;
        s.phases = Phases {
            dns,
            connect,
            tls,
            ..Phases::default()
        };
        let mut out = Vec::new();
        encode::spans(&s, &ctx(), &mut out);
        for child in &out[1..] {
            let st = child.status.clone().unwrap_or_default();
            if child.name == failed {
                assert_eq!(
                    (st.code, st.message.as_str()),
                    (2, message),
                    "{}",
                    child.name
                );
                assert_eq!(string(attr(child, "error.type")), kind.as_str());
            } else {
                assert_eq!(st.code, 0, "{} before the failed {failed}", child.name);
            }
        }
        assert!(out[1..].iter().any(|c| c.name == failed), "{out:?}");
    }
}

#[test]
fn generator_health_becomes_semconv_metrics_with_units_and_the_snapshot_values() {
    use loadlens_core::stats::HealthSample;
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value as N;
    let health = |cpu: f64, sent: f64| HealthSample {
        process_cpu_pct: Some(cpu),
        machine_cpu_pct: Some(50.0),
        rss_bytes: Some(123_456_789),
        open_connections: Some(12),
        net_sent_bytes_per_s: Some(sent),
        net_received_bytes_per_s: Some(4000.0),
        sched_delay_ms: Some(2.5),
    };
    for temporality in [Temporality::Cumulative, Temporality::Delta] {
        let mut agg = Aggregator::new(Recorder::new(3), names().requests);
        let mut m = Metrics::new(names(), 10, temporality, SystemTime::now());
        // Two intervals: 1 s at 1,000 B/s sent, then 2 s at 3,000 B/s.
        let mut a = agg.tick(Duration::from_secs(1), 2);
        a.health = health(25.0, 1000.0);
        let mut b = agg.tick(Duration::from_secs(3), 2);
        b.health = health(75.0, 3000.0);
        m.fold(&a);
        let first = m.export(SystemTime::now());
        m.fold(&b);
        let out = m.export(SystemTime::now());
        let find = |out: &[opentelemetry_proto::tonic::metrics::v1::Metric], n: &str| {
            out.iter()
                .find(|x| x.name == n)
                .unwrap_or_else(|| panic!("{n}"))
                .clone()
        };
        let gauge = |n: &str, unit: &str| {
            let m = find(&out, n);
            assert_eq!(m.unit, unit, "{n}");
            let Some(Data::Gauge(g)) = m.data else {
                panic!("{n} is not a gauge")
            };
            assert_eq!(g.data_points.len(), 1, "{n}");
            g.data_points[0].value.unwrap()
        };
        // The latest snapshot's figures, in the conventions' units.
        assert_eq!(gauge("process.cpu.utilization", "1"), N::AsDouble(0.75));
        assert_eq!(gauge("system.cpu.utilization", "1"), N::AsDouble(0.5));
        assert_eq!(gauge("process.memory.usage", "By"), N::AsInt(123_456_789));
        assert_eq!(
            gauge("loadtest.connections.open", "{connection}"),
            N::AsInt(12)
        );
        assert_eq!(gauge("loadtest.scheduling.delay", "s"), N::AsDouble(0.0025));
        // Bytes: the rates times the intervals; a counter, cumulative or per export.
        let net = |out: &[opentelemetry_proto::tonic::metrics::v1::Metric]| {
            let m = find(out, "system.network.io");
            assert_eq!(m.unit, "By");
            let Some(Data::Sum(s)) = m.data else { panic!() };
            assert!(s.is_monotonic);
            let mut v: Vec<(String, i64)> = s
                .data_points
                .iter()
                .map(|p| {
                    let dir = p
                        .attributes
                        .iter()
                        .find(|kv| kv.key == "network.io.direction")
                        .map(|kv| format!("{:?}", kv.value.as_ref().unwrap().value))
                        .unwrap();
                    let Some(N::AsInt(n)) = p.value else { panic!() };
                    (dir, n)
                })
                .collect();
            v.sort();
            v
        };
        let s = |d: &str| format!("{:?}", Some(Value::StringValue(d.into())));
        assert_eq!(
            net(&first),
            vec![(s("receive"), 4000), (s("transmit"), 1000)]
        );
        let want = match temporality {
            Temporality::Cumulative => vec![(s("receive"), 12_000), (s("transmit"), 7000)],
            Temporality::Delta => vec![(s("receive"), 8000), (s("transmit"), 6000)],
        };
        assert_eq!(net(&out), want, "{temporality:?}");
    }
    // Figures the platform does not give have no points.
    let mut agg = Aggregator::new(Recorder::new(3), names().requests);
    let mut m = Metrics::new(names(), 10, Temporality::Cumulative, SystemTime::now());
    m.fold(&agg.tick(Duration::from_secs(4), 1));
    let out = m.export(SystemTime::now());
    for n in [
        "process.cpu.utilization",
        "system.cpu.utilization",
        "system.network.io",
        "loadtest.connections.open",
        "loadtest.scheduling.delay",
    ] {
        assert!(out.iter().all(|x| x.name != n), "{n}");
    }
}

#[test]
fn a_feature_flag_event_carries_the_feature_flag_semantic_conventions() {
    use loadlens_core::run::{EventKind, FlagChange, TimelineEvent};
    let mut e = TimelineEvent::now(
        Duration::from_secs(3),
        EventKind::ConfigChanged,
        "statsig: gate new_checkout changed by Alice",
    );
    e.flag = Some(FlagChange {
        provider: "statsig".into(),
        key: "new_checkout".into(),
        entity: "gate".into(),
        action: Some("gate_update".into()),
        by: Some("Alice".into()),
        old_value: Some("true".into()),
        new_value: Some("false".into()),
    });
    let attrs: Vec<(String, String)> = super::event_attributes(&e)
        .into_iter()
        .map(|kv| {
            let v = match kv.value.and_then(|v| v.value) {
                Some(opentelemetry_proto::tonic::common::v1::any_value::Value::StringValue(s)) => s,
                other => format!("{other:?}"),
            };
            (kv.key, v)
        })
        .collect();
    let get = |k: &str| {
        attrs
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("feature_flag.key"), Some("new_checkout"));
    assert_eq!(get("feature_flag.provider.name"), Some("statsig"));
    assert_eq!(get("feature_flag.result.value"), Some("false"));
    assert_eq!(get("loadlens.feature_flag.previous_value"), Some("true"));
    assert_eq!(get("loadlens.feature_flag.changed_by"), Some("Alice"));
    e.flag = None;
    assert_eq!(
        super::event_attributes(&e).len(),
        1,
        "other events keep their message only"
    );
}
