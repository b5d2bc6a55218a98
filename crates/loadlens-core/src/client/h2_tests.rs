//! Shared HTTP/2 connections (`ClientConfig::http2_streams`) against a real hyper HTTP/2
//! server that counts its connections and the streams in flight on each.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::*;
use crate::testutil;

/// What the server saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    requests: AtomicUsize,
    /// Most requests in flight at once on one connection.
    max_in_flight: AtomicUsize,
}

trait IoStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> IoStream for T {}

struct H2Server {
    addr: std::net::SocketAddr,
    seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for H2Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl H2Server {
    fn url(&self, tls: bool, path: &str) -> String {
        if tls {
            format!("https://localhost:{}{path}", self.addr.port())
        } else {
            format!("http://{}{path}", self.addr)
        }
    }
}

/// How the server ends each connection once it has taken that many requests.
#[derive(Clone, Copy)]
enum Close {
    /// Drop it (no GOAWAY): the socket closes under the streams in flight.
    Cut(usize),
    /// hyper's graceful shutdown: GOAWAY, the streams it took still answered.
    GoAway(usize),
}

/// An HTTP/2 server (h2c, or TLS with ALPN h2) whose every request waits `?ms=N` (default
/// 20) and answers `ok`. `max_streams` is its SETTINGS_MAX_CONCURRENT_STREAMS.
async fn h2_server(tls: bool, max_streams: Option<u32>, close: Option<Close>) -> H2Server {
    let close_after = close.map(|c| match c {
        Close::Cut(n) | Close::GoAway(n) => n,
    });
    let graceful = matches!(close, Some(Close::GoAway(_)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let acceptor = tls.then(testutil::tls_acceptor);
    let seen2 = seen.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            seen2.connections.fetch_add(1, Ordering::Relaxed);
            let seen = seen2.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let in_flight = Arc::new(AtomicUsize::new(0));
                let taken = Arc::new(AtomicUsize::new(0));
                let limit_hit = Arc::new(tokio::sync::Notify::new());
                let (t, hit) = (taken.clone(), limit_hit.clone());
                let svc = hyper::service::service_fn(move |req: http::Request<_>| {
                    let (seen, in_flight) = (seen.clone(), in_flight.clone());
                    let n = t.fetch_add(1, Ordering::Relaxed) + 1;
                    if close_after == Some(n) {
                        hit.notify_one();
                    }
                    async move {
                        seen.requests.fetch_add(1, Ordering::Relaxed);
                        let now = in_flight.fetch_add(1, Ordering::Relaxed) + 1;
                        seen.max_in_flight.fetch_max(now, Ordering::Relaxed);
                        let ms: u64 = req
                            .uri()
                            .query()
                            .and_then(|q| q.strip_prefix("ms="))
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(20);
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                        in_flight.fetch_sub(1, Ordering::Relaxed);
                        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(
                            b"ok",
                        ))))
                    }
                });
                let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
                builder.max_concurrent_streams(max_streams);
                let io: Box<dyn IoStream> = match acceptor {
                    Some(a) => match a.accept(tcp).await {
                        Ok(s) => Box::new(s),
                        Err(_) => return,
                    },
                    None => Box::new(tcp),
                };
                let conn = builder.serve_connection(TokioIo::new(io), svc);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => return,
                    () = limit_hit.notified() => {}
                }
                if graceful {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
                // Otherwise dropped mid-flight: its socket closes under the streams.
            });
        }
    });
    H2Server { addr, seen, task }
}

fn shared(streams: u32, tls: bool) -> Arc<ClientShared> {
    ClientShared::new(ClientConfig {
        version: HttpVersion::Http2PriorKnowledge,
        http2_streams: Some(streams),
        insecure: tls,
        ..ClientConfig::default()
    })
    .unwrap()
}

/// `users` clients, each sending `each` requests to `url` one after the other, all at once.
async fn run_users(
    shared: &Arc<ClientShared>,
    users: usize,
    each: usize,
    url: &str,
) -> Vec<Outcome> {
    let mut tasks = Vec::new();
    for _ in 0..users {
        let shared = shared.clone();
        let url: Uri = url.parse().unwrap();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::new(shared);
            let mut out = Vec::new();
            for _ in 0..each {
                out.push(c.send(&Request::new(Method::GET, url.clone())).await);
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// Connections open through `shared` once the pooled ones had time to close.
async fn open_after_users_ended(shared: &ClientShared) -> u64 {
    for _ in 0..200 {
        if shared.open_connections() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shared.open_connections()
}

async fn users_share_connections(tls: bool) {
    let srv = h2_server(tls, None, None).await;
    let shared = shared(10, tls);
    let outs = run_users(&shared, 40, 5, &srv.url(tls, "/slow?ms=40")).await;
    assert_eq!(outs.len(), 200);
    for o in &outs {
        let r = o.result.as_ref().expect("every request succeeds");
        assert_eq!(r.version, Version::HTTP_2);
    }
    // 40 users, 10 streams a connection: 4 connections, and they really multiplex.
    assert_eq!(srv.seen.connections.load(Ordering::Relaxed), 4);
    let most = srv.seen.max_in_flight.load(Ordering::Relaxed);
    assert!((2..=10).contains(&most), "most streams in flight: {most}");
    // The request that opened a connection, and only it, carries its phases.
    let opened: Vec<&Outcome> = outs.iter().filter(|o| o.new_connection).collect();
    assert_eq!(opened.len(), 4);
    assert!(opened.iter().all(|o| o.phases.connect.is_some()));
    assert_eq!(opened.iter().all(|o| o.phases.tls.is_some()), tls);
    assert!(outs
        .iter()
        .filter(|o| !o.new_connection)
        .all(|o| o.phases.connect.is_none() && o.phases.tls.is_none()));
    // Every byte of the connections is charged to some request, and none twice: a response
    // here is a HEADERS frame and a DATA frame of 2 bytes, at least 9 + 1 + 9 + 2 bytes.
    let received: u64 = outs.iter().map(|o| o.bytes_received).sum();
    let sent: u64 = outs.iter().map(|o| o.bytes_sent).sum();
    assert!(received >= 200 * 21, "{received}");
    assert!(sent >= 200 * 10, "{sent}");
    assert!(received < 200 * 400, "{received}");
    assert_eq!(
        shared.pooled_connections(),
        0,
        "the last user closed the pool"
    );
    assert_eq!(open_after_users_ended(&shared).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_h2c_users_with_ten_streams_share_four_connections() {
    users_share_connections(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_https_users_with_ten_streams_share_four_alpn_connections() {
    users_share_connections(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_limit_of_two_streams_is_never_exceeded_and_opens_more_connections() {
    let srv = h2_server(false, Some(2), None).await;
    let shared = shared(10, false);
    let outs = run_users(&shared, 12, 3, &srv.url(false, "/slow?ms=100")).await;
    assert!(outs.iter().all(|o| o.result.is_ok()));
    let most = srv.seen.max_in_flight.load(Ordering::Relaxed);
    assert_eq!(most, 2, "the server's limit is used, and never exceeded");
    // 12 users at 2 streams a connection: up to 6 connections, more than the 2 that 10
    // streams a connection would give.
    let conns = srv.seen.connections.load(Ordering::Relaxed);
    assert!((3..=6).contains(&conns), "connections: {conns}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dying_connection_fails_its_requests_as_resets_and_is_replaced() {
    // Each connection is cut (no GOAWAY) when it takes its 8th request: requests in flight
    // on it fail, and the next ones open another connection.
    let srv = h2_server(false, None, Some(Close::Cut(8))).await;
    let shared = shared(5, false);
    let url = srv.url(false, "/slow?ms=20");
    let run = run_users(&shared, 10, 10, &url);
    let outs = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the users end");
    assert_eq!(outs.len(), 100, "every request has an outcome");
    let failed: Vec<&Failure> = outs
        .iter()
        .filter_map(|o| o.result.as_ref().err())
        .collect();
    assert!(!failed.is_empty());
    assert!(
        failed.iter().all(|f| f.kind == ErrorKind::Reset),
        "{failed:?}"
    );
    assert!(failed.len() < 100, "{} of 100 failed", failed.len());
    assert!(srv.seen.connections.load(Ordering::Relaxed) > 2);
    drop(outs);
    assert_eq!(open_after_users_ended(&shared).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_goaway_loses_no_request_and_the_connection_is_replaced() {
    // As nginx does after `keepalive_requests` (1,000 by default) on a connection: GOAWAY,
    // the streams it took are answered, the others were never seen and go to a new connection.
    let srv = h2_server(false, None, Some(Close::GoAway(12))).await;
    let shared = shared(5, false);
    let url = srv.url(false, "/slow?ms=10");
    let run = run_users(&shared, 10, 10, &url);
    let outs = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the users end");
    let failed: Vec<&Failure> = outs
        .iter()
        .filter_map(|o| o.result.as_ref().err())
        .collect();
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(srv.seen.requests.load(Ordering::Relaxed), 100);
    // 100 requests, a connection taking 12 or so before its GOAWAY.
    assert!(srv.seen.connections.load(Ordering::Relaxed) >= 8);
}

#[tokio::test]
async fn cookies_stay_with_their_user_on_a_shared_connection() {
    let srv = testutil::h2c().await;
    let shared = shared(10, false);
    let mut a = Client::new(shared.clone());
    let mut b = Client::new(shared.clone());
    let get = |p: &str| {
        let mut r = Request::new(Method::GET, srv.url(p).parse().unwrap());
        r.keep_body = true;
        r
    };
    assert!(a.send(&get("/set-cookie")).await.result.is_ok());
    let mine = a.send(&get("/echo-cookie")).await.result.unwrap();
    let theirs = b.send(&get("/echo-cookie")).await.result.unwrap();
    assert_eq!(&mine.body[..], b"session=s3cr3t");
    assert_eq!(&theirs.body[..], b"");
    assert_eq!(
        srv.connections.load(Ordering::Relaxed),
        1,
        "one shared connection"
    );
}
