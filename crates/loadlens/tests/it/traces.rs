//! The trace receiver end to end with the official OpenTelemetry Python SDK: two instrumented
//! services (`peers/traced_shop.py`: `shop` runs a 20 ms query and a 5 ms cache read, then calls
//! `pricing`, which computes for 10 ms) export their spans to loadlens's receiver over
//! OTLP/HTTP and over OTLP/gRPC. The breakdown must find every sampled request's spans and each
//! operation at its known sleep. Without the Python peer the tests fail with the command that
//! installs it (`scripts/test`).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::otel::{free_port, peer, Proc};
use crate::support::{bin, listening_url, stdout, TempDir};

fn python() -> PathBuf {
    peer(
        "LOADLENS_OTEL_PYTHON",
        ".cache/loadlens-otel-app/bin/python",
        "Python with the OpenTelemetry SDK",
    )
}

/// One of the two services, exporting with `protocol` to `endpoint`.
fn service(role: &str, protocol: &str, endpoint: &str, pricing: Option<&str>) -> (Proc, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/peers/traced_shop.py");
    let mut cmd = Command::new(python());
    cmd.args([script, role])
        .env("OTLP_PROTOCOL", protocol)
        .env("OTLP_ENDPOINT", endpoint)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(p) = pricing {
        cmd.env("PRICING_URL", p);
    }
    let mut child = cmd.spawn().expect("start the Python service");
    let url = listening_url(&mut child, "the Python service");
    (Proc(child), url)
}

fn component<'a>(request: &'a Value, label: &str) -> &'a Value {
    request["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["label"] == label)
        .unwrap_or_else(|| panic!("no component `{label}` in {request:#}"))
}

#[test]
fn the_services_spans_explain_each_operation_over_http_and_over_grpc() {
    for protocol in ["http/protobuf", "grpc"] {
        let (http, grpc) = (free_port(), free_port());
        let endpoint = match protocol {
            "grpc" => format!("http://127.0.0.1:{grpc}"),
            _ => format!("http://127.0.0.1:{http}/v1/traces"),
        };
        let (_pricing, pricing_url) = service("pricing", protocol, &endpoint, None);
        let (_shop, shop_url) = service("shop", protocol, &endpoint, Some(&pricing_url));
        let dir = TempDir::new("traces");
        let result = dir.join("result.json");
        let out = Command::new(bin())
            .args([
                "run",
                "--url",
                &format!("{shop_url}/orders"),
                "-c",
                "2",
                "-n",
                "20",
            ])
            .args(["--trace-receiver", &format!("127.0.0.1:{http}")])
            .args(["--trace-receiver-grpc", &format!("127.0.0.1:{grpc}")])
            .args(["--trace-link", "http://jaeger.test/trace/{trace_id}"])
            .args(["--threshold", "trace_coverage > 95%"])
            .args(["--threshold", r#"p95{span:"SELECT orders"} < 5s"#])
            .args(["--threshold", "p99{service:pricing} < 5s"])
            // Fails: the cache read sleeps 5 ms.
            .args(["--threshold", r#"p50{span:"cache get"} < 1ms"#])
            .arg("--json")
            .arg(&result)
            .env_remove("TEST_RUN_ID")
            .output()
            .unwrap();
        let text = stdout(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{protocol}: only the cache threshold fails\n{text}"
        );
        assert!(
            text.contains(
                "traces: 20 sampled requests, 20 joined to their server spans (100.0% coverage); spans: "
            ),
            "{protocol}: {text}"
        );
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
        let mut errors = Vec::new();
        let schema = crate::schema::schema();
        crate::schema::validate(&schema, &schema, &doc, "", &mut errors);
        assert!(errors.is_empty(), "{protocol}: {errors:#?}");
        let b = &doc["breakdown"];
        let c = &b["coverage"];
        assert_eq!(
            (c["sampled"].as_u64(), c["joined"].as_u64()),
            (Some(20), Some(20)),
            "{c}"
        );
        // shop: server, query, cache, client call; pricing: server, compute.
        assert_eq!(c["spans_joined"], 120, "{c}");
        assert_eq!(
            (c["spans_foreign"].as_u64(), c["spans_dropped"].as_u64()),
            (Some(0), Some(0))
        );
        let r = &b["requests"][0];
        assert_eq!(r["name"], "/orders");
        for (label, sleep_ms) in [
            ("postgresql: SELECT orders", 20.0),
            ("shop: cache get", 5.0),
            ("pricing: compute price", 10.0),
        ] {
            let p50 = component(r, label)["figures"]["p50"].as_f64().unwrap();
            assert!(
                p50 >= sleep_ms * 0.95 && p50 <= sleep_ms + 20.0,
                "{protocol}: {label} p50 {p50} ms for a sleep of {sleep_ms} ms"
            );
        }
        let outside = component(r, "outside the service")["figures"]["p50"]
            .as_f64()
            .unwrap();
        assert!(
            outside < 10.0,
            "{protocol}: {outside} ms outside the service on loopback"
        );
        // The largest share is the query's.
        let ops: Vec<&Value> = r["components"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["key"]["kind"] == "operation")
            .collect();
        assert_eq!(ops[0]["label"], "postgresql: SELECT orders", "{protocol}");
        let slow = &r["slowest"][0];
        assert_eq!(slow["trace_id"].as_str().unwrap().len(), 32);
        assert_eq!(b["link_template"], "http://jaeger.test/trace/{trace_id}");
        let results: Vec<(String, bool)> = doc["thresholds"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["expression"].as_str().unwrap().to_owned(),
                    t["passed"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            results.iter().map(|(_, p)| *p).collect::<Vec<_>>(),
            [true, true, true, false],
            "{protocol}: {results:?}"
        );
    }
}

#[test]
fn a_receiver_port_in_use_refuses_the_run_with_the_flag_to_change() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let out = Command::new(bin())
        .args(["run", "--url", "http://127.0.0.1:9/", "-n", "1"])
        .args([
            "--trace-receiver",
            &format!("127.0.0.1:{port}"),
            "--trace-receiver-grpc",
            "off",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = crate::support::stderr(&out);
    assert!(
        err.contains(&format!(
            "cannot receive OTLP traces on 127.0.0.1:{port} (http): "
        )) && err.contains("choose another address with --trace-receiver ADDR"),
        "{err}"
    );
}

#[test]
fn a_threshold_on_spans_without_the_receiver_is_refused_before_the_run() {
    let out = Command::new(bin())
        .args(["run", "--url", "http://127.0.0.1:9/", "-n", "1"])
        .args(["--threshold", "trace_coverage > 95%"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = crate::support::stderr(&out);
    assert!(
        err.contains("threshold `trace_coverage > 95%` reads the service's spans: turn the trace receiver on (--trace-receiver, or a `traces:` section)"),
        "{err}"
    );
}

/// Figures of one component of the merged breakdown's first request name.
fn count_of(doc: &Value, label: &str) -> u64 {
    component(&doc["breakdown"]["requests"][0], label)["figures"]["count"]
        .as_u64()
        .unwrap()
}

#[test]
fn a_coordinated_run_merges_the_workers_breakdowns_and_judges_the_span_thresholds_on_the_whole() {
    use crate::coordinator::{coordinator, count, read, strings, Proc as Worker, LONG};
    // Each worker joins the spans of its own requests: the services export to worker 1's
    // receiver, which forwards everything to worker 2's (as a Collector would fan out).
    let (http0, http1) = (free_port(), free_port());
    let endpoint = format!("http://127.0.0.1:{http0}/v1/traces");
    let (_pricing, pricing_url) = service("pricing", "http/protobuf", &endpoint, None);
    let (_shop, shop_url) = service("shop", "http/protobuf", &endpoint, Some(&pricing_url));
    let dir = TempDir::new("coordtraces");
    let file = dir.join("s.yaml");
    std::fs::write(
        &file,
        format!(
            "host: {shop_url}\nuser_types: [{{ name: u, tasks: [{{ request: {{ path: /orders }} }}] }}]\nload: {{ users: 4, run_time: 3s }}\n"
        ),
    )
    .unwrap();
    let merged = dir.join("m.json");
    let (mut c, url) = coordinator(
        &[
            &file,
            "--workers",
            "2",
            "--json",
            &merged,
            "--threshold",
            "trace_coverage > 95%",
            "--threshold",
            r#"p95{span:"SELECT orders"} < 5s"#,
            "--threshold",
            "p99{service:pricing} < 5s",
            // Fails: the cache read sleeps 5 ms.
            "--threshold",
            r#"p50{span:"cache get"} < 1ms"#,
        ],
        &[],
    );
    let jsons: Vec<String> = (0..2).map(|i| dir.join(&format!("w{i}.json"))).collect();
    let forward = format!("http://127.0.0.1:{http1}");
    let mut ws: Vec<Worker> = (0..2)
        .map(|i| {
            let port = [http0, http1][i];
            let receiver = format!("127.0.0.1:{port}");
            let mut a = vec!["run", &file, "--coordinator", &url, "--workers", "2"];
            a.extend([
                "--json",
                &jsons[i],
                "--no-tui",
                "--trace-receiver",
                &receiver,
            ]);
            a.extend(["--trace-receiver-grpc", "off"]);
            if i == 0 {
                a.extend(["--trace-forward", &forward]);
            }
            let index = i.to_string();
            Worker::spawn(&strings(&a), &[("JOB_COMPLETION_INDEX", &index)])
        })
        .collect();
    for w in &mut ws {
        w.expect_exit(0, LONG);
    }
    // Only the cache threshold fails, judged by the coordinator on the merged breakdown.
    c.expect_exit(1, LONG);
    let m = read(&merged);
    crate::schema::assert_valid(&m);
    let workers: Vec<Value> = jsons.iter().map(|j| read(j)).collect();
    let cov = &m["breakdown"]["coverage"];
    let sampled = |d: &Value| d["breakdown"]["coverage"]["sampled"].as_u64().unwrap();
    let joined = |d: &Value| d["breakdown"]["coverage"]["joined"].as_u64().unwrap();
    eprintln!(
        "merged coverage {cov}; workers sampled {:?}",
        workers.iter().map(sampled).collect::<Vec<_>>()
    );
    // Every request of the run, each worker's joined to its own spans, added up.
    assert!(workers.iter().all(|w| sampled(w) > 0), "{cov}");
    assert_eq!(sampled(&m), workers.iter().map(sampled).sum::<u64>());
    assert_eq!(joined(&m), workers.iter().map(joined).sum::<u64>());
    assert_eq!(sampled(&m), count(&m), "{cov}");
    assert_eq!(joined(&m), sampled(&m), "{cov}");
    // Each component's values are the workers' together, and its median the query's sleep.
    for label in [
        "postgresql: SELECT orders",
        "shop: cache get",
        "pricing: compute price",
    ] {
        let sum: u64 = workers.iter().map(|w| count_of(w, label)).sum();
        assert_eq!(count_of(&m, label), sum, "{label}");
    }
    let r = &m["breakdown"]["requests"][0];
    assert_eq!(r["name"], "/orders");
    let p50 = component(r, "postgresql: SELECT orders")["figures"]["p50"]
        .as_f64()
        .unwrap();
    assert!((19.0..=40.0).contains(&p50), "SELECT orders p50 {p50} ms");
    let results: Vec<(String, bool)> = m["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["expression"].as_str().unwrap().to_owned(),
                t["passed"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        results.iter().map(|(_, p)| *p).collect::<Vec<_>>(),
        [true, true, true, false],
        "{results:?}"
    );
    // The coordinator's summary shows where the time went, over the whole run.
    let n = count(&m);
    assert!(
        c.out().contains(&format!(
            "traces: {n} sampled requests, {n} joined to their server spans (100.0% coverage)"
        )),
        "{}",
        c.out()
    );
}
