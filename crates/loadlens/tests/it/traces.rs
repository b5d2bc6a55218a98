//! The trace receiver end to end with the official OpenTelemetry Python SDK: two instrumented
//! services (`peers/traced_shop.py`: `shop` runs a 20 ms query and a 5 ms cache read, then calls
//! `pricing`, which computes for 10 ms) export their spans to loadlens's receiver over
//! OTLP/HTTP and over OTLP/gRPC. The breakdown must find every sampled request's spans and each
//! operation at its known sleep. Without the Python peer the tests fail with the command that
//! installs it (`scripts/test`).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::otel::{peer, Proc};
use crate::support::{bin, free_port, listening_url, stdout, threshold_results, TempDir};

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
        let results = threshold_results(&doc);
        assert_eq!(
            results.iter().map(|(_, p, _)| *p).collect::<Vec<_>>(),
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
    let results = threshold_results(&m);
    assert_eq!(
        results.iter().map(|(_, p, _)| *p).collect::<Vec<_>>(),
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

/// The two traced services exporting to the first of two receiver ports; each process of a
/// split run gets one port, and the first forwards everything to the second (a Collector's
/// fan-out), so that each joins the spans of its own requests.
struct Chain {
    _pricing: Proc,
    _shop: Proc,
    shop_url: String,
    ports: [u16; 2],
}

impl Chain {
    fn start() -> Chain {
        let ports = [free_port(), free_port()];
        let endpoint = format!("http://127.0.0.1:{}/v1/traces", ports[0]);
        let (_pricing, pricing_url) = service("pricing", "http/protobuf", &endpoint, None);
        let (_shop, shop_url) = service("shop", "http/protobuf", &endpoint, Some(&pricing_url));
        Chain {
            _pricing,
            _shop,
            shop_url,
            ports,
        }
    }

    /// A scenario of 4 users on `/orders` for `run_time`.
    fn scenario(&self, dir: &TempDir, run_time: &str) -> String {
        let file = dir.join("s.yaml");
        std::fs::write(
            &file,
            format!(
                "host: {}\nuser_types: [{{ name: u, tasks: [{{ request: {{ path: /orders }} }}] }}]\nload: {{ users: 4, run_time: {run_time} }}\n",
                self.shop_url
            ),
        )
        .unwrap();
        file
    }

    /// The receiver flags of process `i` (0 or 1).
    fn receiver_args(&self, i: usize) -> Vec<String> {
        let mut a = vec![
            "--trace-receiver".to_owned(),
            format!("127.0.0.1:{}", self.ports[i]),
            "--trace-receiver-grpc".to_owned(),
            "off".to_owned(),
        ];
        if i == 0 {
            a.push("--trace-forward".to_owned());
            a.push(format!("http://127.0.0.1:{}", self.ports[1]));
        }
        a
    }

    /// Worker `i` of 2 of the coordinator at `url`, writing `json`, with `extra` flags.
    fn worker(
        &self,
        file: &str,
        url: &str,
        i: usize,
        json: &str,
        extra: &[&str],
    ) -> crate::coordinator::Proc {
        use crate::coordinator::{strings, Proc as Worker};
        let mut a = strings(&[
            "run",
            file,
            "--coordinator",
            url,
            "--workers",
            "2",
            "--json",
            json,
            "--no-tui",
        ]);
        a.extend(self.receiver_args(i));
        a.extend(strings(extra));
        let index = i.to_string();
        Worker::spawn(&a, &[("JOB_COMPLETION_INDEX", &index)])
    }
}

/// The messages of a result's timeline.
fn timeline(doc: &Value) -> Vec<String> {
    doc["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_span_threshold_with_abort_trips_live_in_a_coordinated_run_and_every_worker_stops_within_2s() {
    use crate::coordinator::{coordinator, read, LONG};
    let chain = Chain::start();
    let dir = TempDir::new("coordspanabort");
    let file = chain.scenario(&dir, "60s");
    let merged = dir.join("m.json");
    let (mut c, url) = coordinator(
        &[
            &file,
            "--workers",
            "2",
            "--json",
            &merged,
            // Trips: the cache read sleeps 5 ms.
            "--threshold",
            r#"p50{span:"cache get"} < 1ms, abort"#,
            "--threshold",
            "trace_coverage > 50%, abort",
        ],
        &[],
    );
    // Nothing says these are judged only at the end any more.
    assert!(!c.err().contains("judged at the end"), "{}", c.err());
    let jsons: Vec<String> = (0..2).map(|i| dir.join(&format!("w{i}.json"))).collect();
    let mut ws: Vec<_> = (0..2)
        .map(|i| chain.worker(&file, &url, i, &jsons[i], &[]))
        .collect();
    let t = std::time::Instant::now();
    for w in &mut ws {
        w.expect_exit(3, LONG);
    }
    c.expect_exit(3, LONG);
    // Aborted live, long before the 60 s run time.
    assert!(
        t.elapsed() < std::time::Duration::from_secs(40),
        "{:?}",
        t.elapsed()
    );
    let m = read(&merged);
    crate::schema::assert_valid(&m);
    assert_eq!(m["run"]["verdict"], "aborted");
    let why = m["run"]["stop_reason"].as_str().unwrap();
    assert!(why.contains(r#"p50{span:"cache get"} < 1ms"#), "{why}");
    for r in crate::coordinator::every_worker_aborted_within_2_s(&m, &jsons) {
        // Each worker's own result carries its breakdown in the form that merges.
        assert!(
            r["breakdown"]["histograms"]["requests"][0]["total"].is_string(),
            "{:#}",
            r["breakdown"]
        );
    }
    let t = m["thresholds"].as_array().unwrap();
    assert_eq!(t[0]["passed"], false, "{:#}", t[0]);
    assert_eq!(t[0]["aborted"], true, "{:#}", t[0]);
    assert_eq!(t[1]["passed"], true, "{:#}", t[1]);
    // The merged result shows where the time went over both workers' joins.
    let workers: Vec<Value> = jsons.iter().map(|j| read(j)).collect();
    let label = "shop: cache get";
    let sum: u64 = workers.iter().map(|w| count_of(w, label)).sum();
    assert!(sum > 0);
    assert_eq!(count_of(&m, label), sum);
}

/// The histogram of component `label` of request `r` (in a result's breakdown), from the
/// result's `breakdown.histograms`.
fn values_of(doc: &Value, label: &str) -> loadlens_core::stats::LatencyHistogram {
    let key = &component(&doc["breakdown"]["requests"][0], label)["key"];
    let h = &doc["breakdown"]["histograms"]["requests"][0];
    assert_eq!(h["name"], doc["breakdown"]["requests"][0]["name"]);
    let c = h["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["key"] == *key)
        .unwrap_or_else(|| panic!("no histograms of {key} in {h:#}"));
    loadlens_core::stats::LatencyHistogram::from_base64(c["values"].as_str().unwrap()).unwrap()
}

#[test]
fn merging_two_segments_results_gives_the_breakdown_of_every_request_of_both() {
    use crate::coordinator::{read, strings, Proc as Run, LONG};
    let chain = Chain::start();
    let dir = TempDir::new("mergebreakdown");
    let file = chain.scenario(&dir, "3s");
    // Two segments without a coordinator, at the same time (each joins its own requests).
    let jsons: Vec<String> = (0..2).map(|i| dir.join(&format!("s{i}.json"))).collect();
    let mut runs: Vec<Run> = (0..2)
        .map(|i| {
            let segment = format!("{}/2", i + 1);
            let mut a = strings(&[
                "run",
                &file,
                "--segment",
                &segment,
                "--json",
                &jsons[i],
                "--no-tui",
            ]);
            a.extend(chain.receiver_args(i));
            Run::spawn(&a, &[])
        })
        .collect();
    for r in &mut runs {
        r.expect_exit(0, LONG);
    }
    let parts: Vec<Value> = jsons.iter().map(|j| read(j)).collect();
    for p in &parts {
        crate::schema::assert_valid(p);
    }
    let (m_json, html, md) = (dir.join("m.json"), dir.join("m.html"), dir.join("m.md"));
    let out = Command::new(bin())
        .args(["merge", &jsons[0], &jsons[1], "--json", &m_json])
        .args(["--html", &html, "--md", &md])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = read(&m_json);
    crate::schema::assert_valid(&m);
    let sampled = |d: &Value| d["breakdown"]["coverage"]["sampled"].as_u64().unwrap();
    let joined = |d: &Value| d["breakdown"]["coverage"]["joined"].as_u64().unwrap();
    assert!(
        parts.iter().all(|p| joined(p) > 0),
        "{:#}",
        parts[0]["breakdown"]["coverage"]
    );
    assert_eq!(sampled(&m), parts.iter().map(sampled).sum::<u64>());
    assert_eq!(joined(&m), parts.iter().map(joined).sum::<u64>());
    // Each component: the figures of the union of both segments' values, exactly.
    for label in [
        "postgresql: SELECT orders",
        "shop: cache get",
        "pricing: compute price",
        "outside the service",
    ] {
        let mut union = values_of(&parts[0], label);
        union.merge(&values_of(&parts[1], label));
        let f = &component(&m["breakdown"]["requests"][0], label)["figures"];
        let got = (
            f["count"].as_u64().unwrap(),
            f["p50"].as_f64().unwrap(),
            f["p95"].as_f64().unwrap(),
            f["p99"].as_f64().unwrap(),
            f["max"].as_f64().unwrap(),
        );
        let want = (
            union.len(),
            union.quantile_ms(0.5),
            union.quantile_ms(0.95),
            union.quantile_ms(0.99),
            union.max_ms(),
        );
        eprintln!("{label}: merged {got:?}");
        assert_eq!(got, want, "{label}");
        assert_eq!(
            got.0,
            count_of(&parts[0], label) + count_of(&parts[1], label)
        );
        // The merged result carries the union too, so that it merges further.
        assert_eq!(values_of(&m, label).len(), union.len(), "{label}");
    }
    // Every merged report shows where the time went.
    let html = std::fs::read_to_string(&html).unwrap();
    assert!(
        html.contains("Where the time went"),
        "no breakdown in the HTML"
    );
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(md.contains("### Where the time went"), "{md}");
    let n = sampled(&m);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("traces: {n} sampled requests")),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_killed_workers_streamed_breakdown_stays_in_the_coordinated_result() {
    use crate::coordinator::{coordinator, read, LONG};
    let chain = Chain::start();
    let dir = TempDir::new("coordspankill");
    let file = chain.scenario(&dir, "10s");
    let merged = dir.join("m.json");
    let (mut c, url) = coordinator(
        &[
            &file,
            "--workers",
            "2",
            "--min-workers",
            "1",
            "--json",
            &merged,
        ],
        &[],
    );
    let jsons: Vec<String> = (0..2).map(|i| dir.join(&format!("w{i}.json"))).collect();
    // Worker 2 receives its spans from worker 1's receiver: it is the one that dies. A
    // request is joined once its join window is over: 2 s here, so that worker 2 has
    // joins to stream before it dies, about 5 s into the load.
    let mut ws: Vec<_> = (0..2)
        .map(|i| chain.worker(&file, &url, i, &jsons[i], &["--trace-join-window", "2s"]))
        .collect();
    c.wait_for("2 of 2 workers in", LONG);
    std::thread::sleep(std::time::Duration::from_millis(7000));
    ws[1].child.kill().unwrap();
    c.wait_for("worker 2/2 lost", LONG);
    ws[0].expect_exit(0, LONG);
    c.expect_exit(0, LONG);
    let m = read(&merged);
    crate::schema::assert_valid(&m);
    let w0 = read(&jsons[0]);
    let joined = |d: &Value| d["breakdown"]["coverage"]["joined"].as_u64().unwrap();
    let dead = &m["workers"][1];
    assert!(
        dead["file"].as_str().unwrap().contains("lost: partial"),
        "{dead:#}"
    );
    // What the dead worker joined up to its last report is in the merged breakdown.
    let kept = joined(&m) - joined(&w0);
    let streamed = dead["request_count"].as_u64().unwrap();
    eprintln!(
        "merged joined {}, worker 1 {}, kept of the lost worker {kept} (it streamed {streamed} requests)",
        joined(&m),
        joined(&w0)
    );
    assert!(
        kept > 0 && kept <= streamed,
        "{kept} of {streamed}\n{}\n{:#?}",
        c.err(),
        timeline(&m)
    );
    let label = "postgresql: SELECT orders";
    assert!(count_of(&m, label) > count_of(&w0, label));
    let note = "where the time went includes worker 2/2's joins up to its last report";
    assert!(
        timeline(&m)
            .iter()
            .any(|e| e.contains(note) && e.ends_with("partial")),
        "{:#?}",
        timeline(&m)
    );
    assert!(c.err().contains(note), "{}", c.err());
}
