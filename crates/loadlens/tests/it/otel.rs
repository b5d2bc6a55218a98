//! `--otel` end to end with real peers: Datadog's test agent receives OTLP over gRPC and
//! http/protobuf, and a service instrumented with the official OpenTelemetry Python SDK
//! (`peers/otel_target.py`) sends its server spans to the same agent; its spans must be the
//! children of loadlens's client spans. Without the peers the tests fail with
//! the command that installs them (`scripts/test`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{bin, free_port, listening_url, raw_get, stdout, TempDir};

/// A peer executable: `env` names it, else the default install of `scripts/test`. A missing
/// peer fails the test with the command that installs it: a test never passes without testing.
pub(crate) fn peer(env: &str, default: &str, what: &str) -> PathBuf {
    let path = std::env::var_os(env)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(default)))
        .unwrap_or_else(|| PathBuf::from(default));
    assert!(
        path.is_file(),
        "no {what} at {}: run the suite with `scripts/test`, which installs it, or set {env}",
        path.display()
    );
    path
}

/// A process killed on drop.
pub(crate) struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ddapm-test-agent` on free loopback ports.
pub(crate) struct Agent {
    _proc: Proc,
    pub(crate) http: String,
    grpc: String,
}

impl Agent {
    fn start(exe: &PathBuf) -> Agent {
        let (p, h, g) = (free_port(), free_port(), free_port());
        let child = Command::new(exe)
            .args(["--host", "127.0.0.1", "--port", &p.to_string()])
            .args(["--otlp-http-port", &h.to_string()])
            .args(["--otlp-grpc-port", &g.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ddapm-test-agent");
        let agent = Agent {
            _proc: Proc(child),
            http: format!("http://127.0.0.1:{h}"),
            grpc: format!("http://127.0.0.1:{g}"),
        };
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", h)).is_err()
            || std::net::TcpStream::connect(("127.0.0.1", g)).is_err()
        {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "the agent did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        agent
    }

    /// Every span received: `(service.name, span)`.
    pub(crate) fn spans(&self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for req in raw_get(&self.http, "/test/session/traces")
            .as_array()
            .unwrap()
        {
            for rs in req["resource_spans"].as_array().unwrap() {
                let service = rs["resource"]["attributes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|a| a["key"] == "service.name")
                    .map(|a| a["value"]["string_value"].as_str().unwrap().to_owned())
                    .unwrap_or_default();
                for ss in rs["scope_spans"].as_array().unwrap() {
                    for s in ss["spans"].as_array().unwrap() {
                        out.push((service.clone(), s.clone()));
                    }
                }
            }
        }
        out
    }

    /// Every metric received, in order.
    fn metrics(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for req in raw_get(&self.http, "/test/session/metrics")
            .as_array()
            .unwrap()
        {
            for rm in req["resource_metrics"].as_array().unwrap() {
                for sm in rm["scope_metrics"].as_array().unwrap() {
                    out.extend(sm["metrics"].as_array().unwrap().iter().cloned());
                }
            }
        }
        out
    }
}

/// The OpenTelemetry-instrumented Python service, exporting to `agent`.
fn start_target(python: &PathBuf, agent: &Agent) -> (Proc, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/peers/otel_target.py");
    let mut child = Command::new(python)
        .arg(script)
        .env(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("{}/v1/traces", agent.http),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the Python target");
    let url = listening_url(&mut child, "the Python target");
    (Proc(child), url)
}

pub(crate) fn attr<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

#[test]
fn client_spans_reach_the_agent_over_grpc_and_http_and_the_service_spans_join_them() {
    let agent_exe = peer(
        "LOADLENS_DDAPM_TEST_AGENT",
        ".cache/loadlens-peers/bin/ddapm-test-agent",
        "ddapm-test-agent",
    );
    let python = peer(
        "LOADLENS_OTEL_PYTHON",
        ".cache/loadlens-otel-app/bin/python",
        "Python with the OpenTelemetry SDK",
    );
    // The second run is pinned to one CPU, where the exporter is a task beside the VUs rather
    // than a thread, and brings its own `baggage`, which the run's entries must join.
    for (protocol, one_cpu) in [("grpc", false), ("http/protobuf", true)] {
        let agent = Agent::start(&agent_exe);
        let (_target, url) = start_target(&python, &agent);
        let dir = TempDir::new("otel");
        let scenario = dir.join("otel.yaml");
        std::fs::write(
            &scenario,
            format!(
                "name: otel-e2e\nhost: {url}\nuser_types:\n  - name: shopper\n    wait: constant(0)\n    tasks:\n      - name: browse\n        steps:\n          - request: {{ path: /ok, name: /ok }}\n          - request: {{ path: /fail, name: /fail }}\nload: {{ users: 2, iterations: 8 }}\n"
            ),
        )
        .unwrap();
        let endpoint = if protocol == "grpc" {
            &agent.grpc
        } else {
            &agent.http
        };
        let result = dir.join("result.json");
        let mut cmd = if one_cpu {
            let mut c = Command::new("taskset");
            c.args(["-c", "0", bin()]);
            c
        } else {
            Command::new(bin())
        };
        cmd.args(["run", &scenario, "--otel", "--json", &result]);
        if one_cpu {
            cmd.args(["--header", "baggage: team=checkout"]);
        }
        let out = cmd
            .env_remove("TEST_RUN_ID")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
            .env("OTEL_SERVICE_NAME", "loadlens-e2e")
            .env("OTEL_METRIC_EXPORT_INTERVAL", "500")
            .output()
            .unwrap();
        let text = stdout(&out);
        assert!(
            text.contains("otlp: ") && text.contains(" 0 failed, 0 dropped\n"),
            "{protocol}: {text}"
        );
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
        let run_id = doc["run"]["id"].as_str().unwrap().to_owned();
        let reported = doc["aggregate"]["request_count"].as_u64().unwrap();
        let new_conns = doc["aggregate"]["new_connections"].as_u64().unwrap();
        assert_eq!(reported, 16, "{protocol}");

        // The service exports its spans as it answers; give the agent a moment to have them all.
        let t = Instant::now();
        let spans = loop {
            let s = agent.spans();
            let servers = s.iter().filter(|(svc, _)| svc == "otel-target").count() as u64;
            if servers >= reported || t.elapsed() > Duration::from_secs(20) {
                break s;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        let ours: Vec<&Value> = spans
            .iter()
            .filter(|(svc, _)| svc == "loadlens-e2e")
            .map(|(_, s)| s)
            .collect();
        let clients: Vec<&Value> = ours
            .iter()
            .copied()
            .filter(|s| s["kind"] == "SPAN_KIND_CLIENT")
            .collect();
        assert_eq!(
            clients.len() as u64,
            reported,
            "{protocol}: one span per request"
        );
        for s in &clients {
            let name = s["name"].as_str().unwrap();
            assert!(name == "GET /ok" || name == "GET /fail", "{name}");
            assert_eq!(
                attr(s, "http.request.method").unwrap()["string_value"],
                "GET"
            );
            assert!(attr(s, "url.full").unwrap()["string_value"]
                .as_str()
                .unwrap()
                .starts_with(&url));
            assert_eq!(
                attr(s, "server.address").unwrap()["string_value"],
                "127.0.0.1"
            );
            assert!(attr(s, "server.port").is_some());
            assert_eq!(
                attr(s, "loadtest.run_id").unwrap()["string_value"],
                run_id.as_str()
            );
            assert_eq!(
                attr(s, "loadtest.user_type").unwrap()["string_value"],
                "shopper"
            );
            assert_eq!(attr(s, "loadtest.task").unwrap()["string_value"], "browse");
            let code = attr(s, "http.response.status_code").unwrap()["int_value"].clone();
            if name == "GET /fail" {
                assert_eq!(code, "503");
                assert_eq!(s["status"]["code"], "STATUS_CODE_ERROR");
                assert!(s["status"]["message"].as_str().unwrap().contains("503"));
                assert_eq!(attr(s, "error.type").unwrap()["string_value"], "503");
            } else {
                assert_eq!(code, "200");
                assert!(attr(s, "error.type").is_none());
            }
        }
        // Connection phases: one `socket connect` child per new connection, in its request's trace.
        let connects: Vec<&Value> = ours
            .iter()
            .copied()
            .filter(|s| s["name"] == "socket connect")
            .collect();
        assert_eq!(connects.len() as u64, new_conns, "{protocol}");
        for c in &connects {
            let parent = clients
                .iter()
                .find(|p| p["span_id"] == c["parent_span_id"])
                .expect("a connect span's parent is a request span");
            assert_eq!(parent["trace_id"], c["trace_id"]);
        }
        // Every server span of the instrumented service is the child of our client span of
        // the same request: same trace, parent = the client span.
        let servers: Vec<&Value> = spans
            .iter()
            .filter(|(svc, s)| svc == "otel-target" && s["kind"] == "SPAN_KIND_SERVER")
            .map(|(_, s)| s)
            .collect();
        assert_eq!(servers.len() as u64, reported, "{protocol}: server spans");
        for sv in &servers {
            let parent = clients
                .iter()
                .find(|c| c["span_id"] == sv["parent_span_id"])
                .unwrap_or_else(|| panic!("{protocol}: server span without our parent: {sv}"));
            assert_eq!(parent["trace_id"], sv["trace_id"]);
            assert_eq!(parent["name"], sv["name"], "same request");
            // The service can tell synthetic traffic apart, and which run sent it.
            let entry =
                |key: &str| attr(sv, &format!("baggage.{key}")).map(|v| v["string_value"].clone());
            assert_eq!(
                entry("loadtest.synthetic"),
                Some("true".into()),
                "{protocol}: {sv}"
            );
            assert_eq!(
                entry("loadtest.run_id"),
                Some(run_id.as_str().into()),
                "{protocol}"
            );
            let team = one_cpu.then(|| "checkout".into());
            assert_eq!(
                entry("team"),
                team,
                "{protocol}: the run's own baggage is kept"
            );
        }
        // Metrics: the last cumulative duration histogram counts every request (the agent
        // does not keep exports in order; their timestamps tell the last).
        let metrics = agent.metrics();
        let last = metrics
            .iter()
            .filter(|m| m["name"] == "http.client.request.duration")
            .max_by_key(|m| {
                m["histogram"]["data_points"][0]["time_unix_nano"]
                    .as_str()
                    .and_then(|t| t.parse::<u64>().ok())
            })
            .expect("a duration histogram");
        assert_eq!(last["unit"], "s");
        let points = last["histogram"]["data_points"].as_array().unwrap();
        let count: u64 = points
            .iter()
            .map(|p| p["count"].as_str().unwrap().parse::<u64>().unwrap())
            .sum();
        assert_eq!(count, reported, "{protocol}");
        assert_eq!(points[0]["explicit_bounds"].as_array().unwrap().len(), 14);
        for name in ["loadtest.requests", "loadtest.users", "process.cpu.time"] {
            assert!(
                metrics.iter().any(|m| m["name"] == name),
                "{protocol}: {name}"
            );
        }
        // A closed model drops no iterations: the counter is not exported at all.
        assert!(
            !metrics
                .iter()
                .any(|m| m["name"] == "loadtest.dropped_iterations"),
            "{protocol}"
        );
    }
}

/// The test agent (a test fails when it is not installed).
pub(crate) fn agent() -> Agent {
    let exe = peer(
        "LOADLENS_DDAPM_TEST_AGENT",
        ".cache/loadlens-peers/bin/ddapm-test-agent",
        "ddapm-test-agent",
    );
    Agent::start(&exe)
}

/// The integer value of an OTLP number data point in the agent's JSON.
fn int_value(point: &Value) -> i64 {
    let v = &point["as_int"];
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not an int point: {point}"))
}

#[test]
fn dropped_iterations_are_exported_every_interval_and_end_at_the_runs_count() {
    let agent = agent();
    // 100 arrivals/s against a 300 ms endpoint need ~30 VUs; 2 are allowed.
    let target = crate::support::DemoTarget::start(&["--latency", "fixed(300ms)"]);
    let dir = TempDir::new("otel-dropped");
    let result = dir.join("r.json");
    let out = Command::new(bin())
        .args(["run", "--url", &format!("{}/api/products", target.url)])
        .args(["--arrival-rate", "100", "--pre-allocated-vus", "1"])
        .args(["--max-vus", "2", "-t", "3s", "--otel", "--json", &result])
        .env_remove("TEST_RUN_ID")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &agent.http)
        .env("OTEL_METRIC_EXPORT_INTERVAL", "500")
        .env("OTEL_TRACES_EXPORTER", "none")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(text.contains(" 0 failed, 0 dropped\n"), "{text}");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    let dropped = doc["dropped_iterations"].as_u64().unwrap();
    assert!(dropped > 100, "{dropped}");
    // One point per export: during the run (every 500 ms, from the per-second snapshots) and
    // at the end. The agent does not keep them in order; their timestamps do.
    let mut points: Vec<(u64, i64)> = agent
        .metrics()
        .iter()
        .filter(|m| m["name"] == "loadtest.dropped_iterations")
        .flat_map(|m| {
            assert_eq!(m["sum"]["is_monotonic"], true, "{m}");
            assert_eq!(
                m["sum"]["aggregation_temporality"], "AGGREGATION_TEMPORALITY_CUMULATIVE",
                "{m}"
            );
            m["sum"]["data_points"].as_array().unwrap().clone()
        })
        .map(|p| {
            let t = p["time_unix_nano"].as_str().unwrap().parse().unwrap();
            (t, int_value(&p))
        })
        .collect();
    points.sort();
    let points: Vec<i64> = points.into_iter().map(|(_, v)| v).collect();
    assert!(points.len() >= 3, "{points:?}");
    assert!(points.windows(2).all(|w| w[0] <= w[1]), "{points:?}");
    assert!(
        points[..points.len() - 1].iter().any(|p| *p > 0),
        "counted during the run: {points:?}"
    );
    assert_eq!(*points.last().unwrap(), dropped as i64, "{points:?}");
}

#[test]
fn under_named_scenarios_each_span_carries_its_scenario_user_type_and_task() {
    let agent = agent();
    let target = crate::support::DemoTarget::start(&["--latency", "0"]);
    let dir = TempDir::new("otel-scenarios");
    let scenario = dir.join("s.yaml");
    // `admin` is the second user type of the file but the only one of `manage`: its samples
    // say user type 0 of their scenario.
    std::fs::write(
        &scenario,
        format!(
            r#"name: two-kinds
host: {}
user_types:
  - name: shopper
    wait: constant(0)
    tasks:
      - name: look
        request: {{ path: /api/products, name: products }}
  - name: admin
    wait: constant(0)
    tasks:
      - name: review
        request: {{ path: /api/v1/search, name: search }}
scenarios:
  browse: {{ user_types: [shopper], load: {{ users: 1, iterations: 5 }} }}
  manage: {{ user_types: [admin], load: {{ users: 1, iterations: 3 }} }}
"#,
            target.url
        ),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["run", &scenario, "--otel"])
        .env_remove("TEST_RUN_ID")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", &agent.http)
        .env("OTEL_SERVICE_NAME", "loadlens-scenarios")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(
        out.status.success() && text.contains(" 0 failed, 0 dropped\n"),
        "{text}"
    );
    let spans: Vec<Value> = agent
        .spans()
        .into_iter()
        .filter(|(svc, _)| svc == "loadlens-scenarios")
        .map(|(_, s)| s)
        .collect();
    let s = |span: &Value, key: &str| {
        attr(span, key).unwrap_or_else(|| panic!("{key}: {span}"))["string_value"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mut seen = std::collections::BTreeMap::new();
    for span in spans.iter().filter(|s| s["kind"] == "SPAN_KIND_CLIENT") {
        let got = (
            s(span, "loadtest.scenario"),
            s(span, "loadtest.user_type"),
            s(span, "loadtest.task"),
        );
        *seen
            .entry((s(span, "loadtest.request_name"), got))
            .or_insert(0) += 1;
    }
    let own = |n: &str, sc: &str, ut: &str, task: &str| {
        (
            n.to_owned(),
            (sc.to_owned(), ut.to_owned(), task.to_owned()),
        )
    };
    assert_eq!(
        seen,
        [
            (own("products", "browse", "shopper", "look"), 5),
            (own("search", "manage", "admin", "review"), 3),
        ]
        .into(),
    );
    // The run span keeps the run's scenario (the file's `name:`).
    let run = spans
        .iter()
        .find(|s| s["name"] == "loadtest two-kinds")
        .expect("the run span");
    assert_eq!(s(run, "loadtest.scenario"), "two-kinds");
}

#[test]
fn gzip_compressed_exports_are_accepted_by_the_agent_over_grpc_and_http() {
    // That the bodies are really gzipped is checked on the wire in `otel_wire.rs`; here a real
    // receiver decodes them.
    for protocol in ["grpc", "http/protobuf"] {
        let agent = agent();
        let target = crate::support::DemoTarget::start(&["--latency", "0"]);
        let dir = TempDir::new("otel-gzip");
        let result = dir.join("r.json");
        let out = Command::new(bin())
            .args(["run", "--url", &format!("{}/api/products", target.url)])
            .args(["-c", "2", "-n", "10", "--otel", "--json", &result])
            .env_remove("TEST_RUN_ID")
            .env(
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                if protocol == "grpc" {
                    &agent.grpc
                } else {
                    &agent.http
                },
            )
            .env("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
            .env("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
            .env("OTEL_SERVICE_NAME", "loadlens-gzip")
            .output()
            .unwrap();
        let text = stdout(&out);
        assert!(
            text.contains(" 0 failed, 0 dropped\n"),
            "{protocol}: {text}"
        );
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
        let clients = agent
            .spans()
            .iter()
            .filter(|(svc, s)| svc == "loadlens-gzip" && s["kind"] == "SPAN_KIND_CLIENT")
            .count() as u64;
        assert_eq!(
            clients,
            doc["aggregate"]["request_count"].as_u64().unwrap(),
            "{protocol}"
        );
        assert!(
            agent
                .metrics()
                .iter()
                .any(|m| m["name"] == "http.client.request.duration"),
            "{protocol}"
        );
    }
}

/// An OTLP endpoint that answers every request with 503.
fn unavailable_endpoint() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = BufReader::new(c.try_clone().unwrap());
                let mut c = c;
                loop {
                    let mut len = 0usize;
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; len];
                    if std::io::Read::read_exact(&mut r, &mut body).is_err() {
                        return;
                    }
                    let _ = c.write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
                    );
                }
            });
        }
    });
    url
}

#[test]
fn an_otlp_endpoint_that_is_down_or_answers_503_costs_the_run_only_a_summary_line() {
    let target = crate::support::DemoTarget::start(&[]);
    let refused = format!("http://127.0.0.1:{}", free_port());
    for endpoint in [refused, unavailable_endpoint()] {
        let t = Instant::now();
        let out = Command::new(bin())
            .args(["run", "--url", &format!("{}/api/products", target.url)])
            .args(["-c", "2", "-z", "2s", "--otel"])
            .env_remove("TEST_RUN_ID")
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)
            .env("OTEL_EXPORTER_OTLP_TIMEOUT", "1000")
            .env("OTEL_METRIC_EXPORT_INTERVAL", "500")
            .output()
            .unwrap();
        let took = t.elapsed();
        let text = stdout(&out);
        assert!(out.status.success(), "{endpoint}: {text}");
        // 2 s of load, at most 5 s of flushing, and the process itself.
        assert!(took < Duration::from_secs(10), "{endpoint}: took {took:?}");
        let line = text
            .lines()
            .find(|l| l.starts_with("otlp: "))
            .unwrap_or_else(|| panic!("no otlp line: {text}"));
        assert!(line.starts_with("otlp: 0 delivered, "), "{line}");
        assert!(!line.contains(" 0 failed"), "{line}");
        assert!(
            line.contains("cannot connect") || line.contains("HTTP 503"),
            "{line}"
        );
        assert!(
            text.contains("Aggregated"),
            "the run reported as usual: {text}"
        );
    }
}

#[test]
fn an_otel_section_turns_export_on_and_the_standard_environment_overrides_it() {
    let target = crate::support::DemoTarget::start(&[]);
    let dir = TempDir::new("otel-section");
    let scenario = dir.join("s.yaml");
    let file_endpoint = format!("http://127.0.0.1:{}", free_port());
    std::fs::write(
        &scenario,
        format!(
            "host: {}\nuser_types:\n  - name: u\n    tasks:\n      - request: {{ path: /api/products }}\nload: {{ users: 1, iterations: 3 }}\notel: {{ endpoint: {file_endpoint}, service_name: from-file, timeout: 1s }}\n",
            target.url
        ),
    )
    .unwrap();
    let run = |env: &[(&str, &str)]| {
        let mut c = Command::new(bin());
        c.args(["run", &scenario]).env_remove("TEST_RUN_ID");
        for (k, v) in env {
            c.env(k, v);
        }
        stdout(&c.output().unwrap())
    };
    // No --otel: the section turns it on, and its endpoint is used.
    let text = run(&[]);
    assert!(
        text.contains(&format!("otel: traces {file_endpoint}/v1/traces")),
        "{text}"
    );
    let line = text.lines().find(|l| l.starts_with("otlp: ")).unwrap();
    assert!(line.contains(&file_endpoint), "{line}");
    // The environment wins over the file.
    let env_endpoint = format!("http://127.0.0.1:{}", free_port());
    let text = run(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &env_endpoint)]);
    assert!(
        text.contains(&format!("otel: traces {env_endpoint}/v1/traces")),
        "{text}"
    );
    // A bad value is an input error (exit 2) naming the variable.
    let out = Command::new(bin())
        .args(["run", &scenario])
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        crate::support::stderr(&out).contains("OTEL_EXPORTER_OTLP_PROTOCOL"),
        "{}",
        crate::support::stderr(&out)
    );
}
