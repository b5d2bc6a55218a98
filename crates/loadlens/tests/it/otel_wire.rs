//! `--otel` on the wire, where the check is about raw HTTP rather than what a real receiver
//! makes of it: the `OTEL_EXPORTER_OTLP_*HEADERS` a collector needs for authentication arrive
//! (and never show in the run's output), an `https://` endpoint signed by a private CA is
//! trusted through `OTEL_EXPORTER_OTLP_CERTIFICATE`, a collector that requires a client
//! certificate gets the one of `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`/`..._CLIENT_KEY`,
//! credentials in the endpoint URL arrive as basic auth (and never show), and
//! `..._COMPRESSION=gzip` gzips the bodies. The receiver is a small HTTP/1.1 server on 127.0.0.1:0 (optionally TLS) that
//! records every request and decodes its OTLP protobuf body. What a real receiver accepts is
//! tested in `otel.rs` against Datadog's test agent.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use loadlens_sinks::otlp::test_ca::TestCa;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use serde_json::Value;

use crate::support::{assert_exit, bin, stderr, stdout, DemoTarget, TempDir};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    /// Header names in lower case.
    headers: BTreeMap<String, String>,
    /// The body as sent (gzipped when the exporter compresses).
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The protobuf message, gunzipped when `Content-Encoding: gzip` says so.
    fn message(&self) -> Vec<u8> {
        if self.header("content-encoding") == Some("gzip") {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&self.body[..])
                .read_to_end(&mut out)
                .expect("a gzip body");
            out
        } else {
            self.body.clone()
        }
    }

    fn spans(&self) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest::decode(&self.message()[..]).expect("an OTLP trace request")
    }

    fn metrics(&self) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest::decode(&self.message()[..]).expect("an OTLP metrics request")
    }
}

/// An OTLP/HTTP receiver on 127.0.0.1:0 answering every request with `status`.
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    fn start(status: u16, tls: Option<Arc<rustls::ServerConfig>>) -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", l.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { return };
                let (g, tls) = (g.clone(), tls.clone());
                std::thread::spawn(move || match tls {
                    Some(cfg) => {
                        let Ok(conn) = rustls::ServerConnection::new(cfg) else {
                            return;
                        };
                        serve(rustls::StreamOwned::new(conn, c), status, &g);
                    }
                    None => serve(c, status, &g),
                });
            }
        });
        Receiver { url, got }
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    fn to(&self, path: &str) -> Vec<Received> {
        self.got().into_iter().filter(|r| r.path == path).collect()
    }
}

/// Read HTTP/1.1 requests off one connection (keep-alive) until it closes.
fn serve<S: Read + Write>(stream: S, status: u16, got: &Mutex<Vec<Received>>) {
    let mut r = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split(' ').nth(1).unwrap_or("").to_owned();
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
            }
        }
        let len = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        got.lock().unwrap().push(Received {
            path,
            headers,
            body,
        });
        // An empty body is a valid (empty) Export…ServiceResponse.
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n"
        );
        if r.get_mut().write_all(head.as_bytes()).is_err() || r.get_mut().flush().is_err() {
            return;
        }
    }
}

/// A short quick-mode run with `--otel` and `env`; returns the output and the JSON result.
fn run(target: &DemoTarget, env: &[(&str, &str)]) -> (Output, Value, String) {
    let dir = TempDir::new("otel-wire");
    let result = dir.join("r.json");
    let mut c = Command::new(bin());
    c.args(["run", "--url", &format!("{}/api/products", target.url)])
        .args(["-c", "1", "-n", "6", "--otel", "--json", &result])
        .env_remove("TEST_RUN_ID")
        .env("OTEL_METRIC_EXPORT_INTERVAL", "500")
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "2000");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let json = std::fs::read_to_string(&result).unwrap_or_default();
    let doc = serde_json::from_str(&json).unwrap_or(Value::Null);
    (out, doc, json)
}

/// The run's `otlp: N delivered, …` summary line.
fn otlp_line(out: &Output) -> String {
    let text = stdout(out);
    text.lines()
        .find(|l| l.starts_with("otlp: "))
        .unwrap_or_else(|| panic!("no otlp line: {text}"))
        .to_owned()
}

/// Client spans in the trace requests `got`.
fn client_spans(got: &[Received]) -> usize {
    got.iter()
        .flat_map(|r| r.spans().resource_spans)
        .flat_map(|rs| rs.scope_spans)
        .flat_map(|ss| ss.spans)
        .filter(|s| s.kind == SpanKind::Client as i32)
        .count()
}

#[test]
fn otel_headers_reach_the_receiver_per_signal_and_never_the_output() {
    let target = DemoTarget::start(&["--latency", "0"]);
    // Values are percent-encoded (W3C baggage octets), as the OpenTelemetry specification says.
    let env = [
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "api-key=Bearer%20sk-loadlens-7f3a%3D%3D,x-team=perf%20lab",
        ),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-signal=traces"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
            "x-team=metrics%2Cteam",
        ),
        // Everything the binary logs, to show nothing there carries the values either.
        ("LOADLENS_LOG", "trace"),
    ];
    let secret = "sk-loadlens-7f3a";
    // Accepted, and refused (the refusal is reported without the credentials).
    for status in [200u16, 403] {
        let rx = Receiver::start(status, None);
        let mut env = env.to_vec();
        env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.url));
        let (out, doc, json) = run(&target, &env);
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        let traces = rx.to("/v1/traces");
        let metrics = rx.to("/v1/metrics");
        assert!(!traces.is_empty() && !metrics.is_empty(), "{:?}", rx.got());
        for r in &traces {
            assert_eq!(r.header("api-key"), Some("Bearer sk-loadlens-7f3a=="));
            assert_eq!(r.header("x-team"), Some("perf lab"));
            assert_eq!(r.header("x-signal"), Some("traces"));
        }
        for r in &metrics {
            assert_eq!(r.header("api-key"), Some("Bearer sk-loadlens-7f3a=="));
            // The signal's own value replaces the general one.
            assert_eq!(r.header("x-team"), Some("metrics,team"));
            assert_eq!(r.header("x-signal"), None);
        }
        let line = otlp_line(&out);
        if status == 200 {
            assert!(line.contains(" 0 failed, 0 dropped"), "{line}");
            assert_eq!(
                client_spans(&traces) as u64,
                doc["aggregate"]["request_count"].as_u64().unwrap()
            );
        } else {
            assert!(line.contains("HTTP 403"), "{line}");
            // The sink's warning is logged, without the credentials (checked below).
            assert!(stderr(&out).contains("HTTP 403"), "{}", stderr(&out));
        }
        assert!(json.contains("\"otlp\""), "{json}");
        for (what, text) in [
            ("stdout", stdout(&out)),
            ("stderr", stderr(&out)),
            ("JSON result", json),
        ] {
            assert!(
                !text.contains(secret),
                "{status}: {what} shows the header: {text}"
            );
            assert!(
                !text.contains("perf lab") && !text.contains("perf%20lab"),
                "{what}"
            );
        }
    }
}

#[test]
fn an_https_endpoint_signed_by_a_private_ca_is_trusted_through_otel_exporter_otlp_certificate() {
    let target = DemoTarget::start(&["--latency", "0"]);
    let ca = TestCa::new();
    let server = ca.server_config(false, b"http/1.1");
    let dir = TempDir::new("otel-ca");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let rx = Receiver::start(200, Some(server.clone()));
    assert!(rx.url.starts_with("https://127.0.0.1:"));
    let (out, doc, _) = run(
        &target,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.url),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", &ca_file),
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let line = otlp_line(&out);
    assert!(line.contains(" 0 failed, 0 dropped"), "{line}");
    assert!(stdout(&out).contains(&format!("otel: traces {}/v1/traces", rx.url)));
    let requests = doc["aggregate"]["request_count"].as_u64().unwrap();
    assert_eq!(requests, 6);
    assert_eq!(client_spans(&rx.to("/v1/traces")) as u64, requests);
    let names: Vec<String> = rx
        .to("/v1/metrics")
        .iter()
        .flat_map(|r| r.metrics().resource_metrics)
        .flat_map(|rm| rm.scope_metrics)
        .flat_map(|sm| sm.metrics)
        .map(|m| m.name)
        .collect();
    assert!(
        names.iter().any(|n| n == "http.client.request.duration"),
        "{names:?}"
    );

    // Without the CA the same endpoint is not trusted: nothing is delivered, and the summary
    // says which setting would fix it.
    let rx = Receiver::start(200, Some(server));
    let (out, _, _) = run(&target, &[("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.url)]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let line = otlp_line(&out);
    assert!(line.starts_with("otlp: 0 delivered, "), "{line}");
    assert!(
        line.contains("TLS handshake failed") && line.contains("OTEL_EXPORTER_OTLP_CERTIFICATE"),
        "{line}"
    );
    assert!(rx.got().is_empty());
}

#[test]
fn otel_compression_gzip_gzips_the_bodies_of_its_signal() {
    let target = DemoTarget::start(&["--latency", "0"]);
    let rx = Receiver::start(200, None);
    let (out, doc, _) = run(
        &target,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.url),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip"),
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let traces = rx.to("/v1/traces");
    assert!(!traces.is_empty());
    for r in &traces {
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(&r.body[..2], [0x1f, 0x8b], "gzip magic");
    }
    assert_eq!(
        client_spans(&traces) as u64,
        doc["aggregate"]["request_count"].as_u64().unwrap()
    );
    let metrics = rx.to("/v1/metrics");
    assert!(!metrics.is_empty());
    for r in &metrics {
        assert_eq!(r.header("content-encoding"), None);
        assert!(!r.metrics().resource_metrics.is_empty());
    }
}

#[test]
fn credentials_in_the_endpoint_url_arrive_as_basic_auth_and_never_show() {
    let target = DemoTarget::start(&["--latency", "0"]);
    // Accepted, and refused (the refusal names the endpoint, without the credentials).
    for status in [200u16, 403] {
        let rx = Receiver::start(status, None);
        let host = rx.url.trim_start_matches("http://");
        // The password is percent-encoded in the URL (`%21` is `!`) and sent decoded.
        let endpoint = format!("http://perf:s3cret-otlp%21@{host}");
        let (out, doc, json) = run(
            &target,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
                ("LOADLENS_LOG", "trace"),
            ],
        );
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        let traces = rx.to("/v1/traces");
        let metrics = rx.to("/v1/metrics");
        assert!(!traces.is_empty() && !metrics.is_empty(), "{:?}", rx.got());
        for r in traces.iter().chain(&metrics) {
            // base64("perf:s3cret-otlp!")
            assert_eq!(
                r.header("authorization"),
                Some("Basic cGVyZjpzM2NyZXQtb3RscCE=")
            );
        }
        assert!(
            stdout(&out).contains(&format!(
                "otel: traces http://{host}/v1/traces (http/protobuf)"
            )),
            "{}",
            stdout(&out)
        );
        let line = otlp_line(&out);
        if status == 200 {
            assert!(line.contains(" 0 failed, 0 dropped"), "{line}");
            assert_eq!(
                client_spans(&traces) as u64,
                doc["aggregate"]["request_count"].as_u64().unwrap()
            );
        } else {
            assert!(
                line.contains(&format!(
                    "http://{host}/v1/traces (http/protobuf): HTTP 403"
                )),
                "{line}"
            );
        }
        for (what, text) in [
            ("stdout", stdout(&out)),
            ("stderr", stderr(&out)),
            ("JSON result", json),
        ] {
            assert!(
                !text.contains("s3cret") && !text.contains("perf:"),
                "{status}: {what} shows the credentials: {text}"
            );
        }
    }
}

#[test]
fn a_collector_that_requires_a_client_certificate_gets_the_one_of_the_client_certificate_settings()
{
    let target = DemoTarget::start(&["--latency", "0"]);
    let ca = TestCa::new();
    let server = ca.server_config(true, b"http/1.1");
    let dir = TempDir::new("otel-mtls");
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let (client, client_key) = ca.issue(&["loadlens-client"]);
    let (cert_file, key_file) = (dir.join("client.crt"), dir.join("client.key"));
    std::fs::write(&cert_file, client.pem()).unwrap();
    std::fs::write(&key_file, client_key.serialize_pem()).unwrap();

    let rx = Receiver::start(200, Some(server.clone()));
    let trusted = ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca_file.as_str());
    let (out, doc, _) = run(
        &target,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.url),
            trusted,
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &cert_file),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &key_file),
        ],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let line = otlp_line(&out);
    assert!(line.contains(" 0 failed, 0 dropped"), "{line}");
    let requests = doc["aggregate"]["request_count"].as_u64().unwrap();
    assert_eq!(requests, 6);
    assert_eq!(client_spans(&rx.to("/v1/traces")) as u64, requests);
    assert!(!rx.to("/v1/metrics").is_empty());

    // Without them the receiver refuses the handshake: nothing is delivered, and the summary
    // says which settings would fix it.
    let rx = Receiver::start(200, Some(server));
    let (out, _, _) = run(
        &target,
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.url), trusted],
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let line = otlp_line(&out);
    assert!(line.starts_with("otlp: 0 delivered, "), "{line}");
    assert!(
        line.contains("TLS handshake failed")
            && line.contains("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
        "{line}"
    );
    assert!(rx.got().is_empty());

    // A key that is not the certificate's stops the run before it starts (exit 2), naming
    // the setting.
    let (_, other_key) = ca.issue(&["someone-else"]);
    let other_key_file = dir.join("other.key");
    std::fs::write(&other_key_file, other_key.serialize_pem()).unwrap();
    let (out, _, _) = run(
        &target,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &rx.url),
            trusted,
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &cert_file),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &other_key_file),
        ],
    );
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("OTEL_EXPORTER_OTLP_CLIENT_KEY: `")
            && stderr(&out).contains("is not the private key of the certificate in"),
        "{}",
        stderr(&out)
    );
}
