//! `--http2-streams`: users sharing HTTP/2 connections, loaded by the real binary against a
//! hyper HTTP/2 (h2c) server on 127.0.0.1:0 that counts its connections and the most
//! requests in flight on one connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::schema::assert_valid;
use crate::support::*;

#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// An h2c server on its own thread: every request waits `ms`, then answers `ok`. With
/// `cut_after`, each connection is dropped (no GOAWAY) when it takes that many requests.
struct Server {
    addr: SocketAddr,
    seen: Arc<Seen>,
}

impl Server {
    fn start(ms: u64, cut_after: Option<usize>) -> Server {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let seen = Arc::new(Seen::default());
        let seen2 = seen.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    seen2.connections.fetch_add(1, Ordering::Relaxed);
                    let seen = seen2.clone();
                    tokio::spawn(serve(tcp, seen, ms, cut_after));
                }
            });
        });
        Server { addr, seen }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

async fn serve(tcp: tokio::net::TcpStream, seen: Arc<Seen>, ms: u64, cut_after: Option<usize>) {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let taken = Arc::new(AtomicUsize::new(0));
    let cut = Arc::new(tokio::sync::Notify::new());
    let cut2 = cut.clone();
    let svc = hyper::service::service_fn(move |_req: http::Request<hyper::body::Incoming>| {
        let (seen, in_flight) = (seen.clone(), in_flight.clone());
        if Some(taken.fetch_add(1, Ordering::Relaxed) + 1) == cut_after {
            cut2.notify_one();
        }
        async move {
            let now = in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            seen.max_in_flight.fetch_max(now, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            in_flight.fetch_sub(1, Ordering::Relaxed);
            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
        }
    });
    let conn = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(tcp), svc);
    tokio::select! {
        _ = conn => {}
        () = cut.notified() => {}
    }
}

/// Run loadlens with `args` and `--json`; the exit code, the time it took, its output and
/// its JSON result.
fn run_json(args: &[&str]) -> (Option<i32>, Duration, String, serde_json::Value) {
    let dir = TempDir::new("http2");
    let json = dir.join("r.json");
    let start = Instant::now();
    let out = std::process::Command::new(bin())
        .args(args)
        .args(["--json", &json])
        .env_remove("TEST_RUN_ID")
        .output()
        .unwrap();
    let took = start.elapsed();
    let printed = format!("{}{}", stdout(&out), stderr(&out));
    let text = std::fs::read_to_string(&json)
        .unwrap_or_else(|e| panic!("no JSON result ({e}); loadlens printed:\n{printed}"));
    (
        out.status.code(),
        took,
        printed,
        serde_json::from_str(&text).unwrap(),
    )
}

#[test]
fn forty_users_with_ten_streams_share_four_connections() {
    let srv = Server::start(30, None);
    let url = srv.url();
    let (code, _, out, j) = run_json(&[
        "run",
        &url,
        "--http2",
        "-c",
        "40",
        "--http2-streams",
        "10",
        "-z",
        "2s",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert_valid(&j);
    let agg = &j["aggregate"];
    let requests = agg["request_count"].as_u64().unwrap();
    // 40 users, 30 ms a request, 2 s: about 2,600 requests when nothing else runs.
    assert!(requests >= 200, "{requests} requests\n{out}");
    assert_eq!(agg["failure_count"].as_u64(), Some(0), "{out}");
    assert_eq!(srv.seen.connections.load(Ordering::Relaxed), 4, "{out}");
    assert_eq!(agg["new_connections"].as_u64(), Some(4), "{agg}");
    let most = srv.seen.max_in_flight.load(Ordering::Relaxed);
    assert!(
        (2..=10).contains(&most),
        "most requests in flight on one connection: {most}"
    );
    // HTTP/2 frames of a 2-byte answer: more than 20 bytes a request, far less than 1 KiB.
    let per_request = agg["bytes_received"].as_u64().unwrap() / requests;
    assert!(
        (20..1024).contains(&per_request),
        "{per_request} bytes a request"
    );
}

#[test]
fn connections_cut_under_shared_streams_fail_their_requests_and_the_run_ends() {
    let srv = Server::start(20, Some(25));
    let url = srv.url();
    let (code, took, out, j) =
        run_json(&["run", &url, "-c", "20", "--http2-streams", "5", "-z", "1s"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert_valid(&j);
    let agg = &j["aggregate"];
    let requests = agg["request_count"].as_u64().unwrap();
    let failures = agg["failure_count"].as_u64().unwrap();
    assert!(
        failures > 0 && failures < requests,
        "{failures} of {requests}\n{out}"
    );
    assert_eq!(
        j["errors_by_kind"]["reset"].as_u64(),
        Some(failures),
        "{}",
        j["errors_by_kind"]
    );
    // Each cut connection was replaced by a new one.
    assert!(srv.seen.connections.load(Ordering::Relaxed) > 4, "{out}");
}

#[test]
fn requests_in_flight_on_shared_streams_end_at_the_stop_timeout() {
    // The server answers after a minute: the stop timeout ends the run, not the server.
    let srv = Server::start(60_000, None);
    let url = srv.url();
    let (code, took, out, j) = run_json(&[
        "run",
        &url,
        "-c",
        "6",
        "--http2-streams",
        "3",
        "-z",
        "1s",
        "--stop-timeout",
        "1s",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let agg = &j["aggregate"];
    assert_eq!(agg["request_count"].as_u64(), Some(6), "{out}");
    assert_eq!(
        j["errors_by_kind"]["interrupted"].as_u64(),
        Some(6),
        "{out}"
    );
    assert_eq!(srv.seen.connections.load(Ordering::Relaxed), 2, "{out}");
}

#[test]
fn http2_streams_refuses_zero_and_http1() {
    let out = run(&["run", "http://127.0.0.1:9/", "--http2-streams", "0"]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--http2-streams"), "{}", stderr(&out));
    let out = run(&[
        "run",
        "http://127.0.0.1:9/",
        "--http1",
        "--http2-streams",
        "4",
    ]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--http1"), "{}", stderr(&out));

    let dir = TempDir::new("http2-file");
    let file = dir.join("s.yaml");
    std::fs::write(
        &file,
        "host: http://127.0.0.1:9\nclient:\n  http_version: http1\n  http2_streams: 10\n\
         user_types:\n  - name: u\n    tasks:\n      - request: { method: GET, path: / }\n",
    )
    .unwrap();
    let out = run(&["validate", &file]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("s.yaml:4:"), "{err}");
    assert!(err.contains("http2_streams"), "{err}");
}
