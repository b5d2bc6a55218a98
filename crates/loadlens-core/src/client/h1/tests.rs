//! Conformance of the lean HTTP/1.1 codec with hyper's: each case is a raw TCP server on
//! 127.0.0.1 that answers with scripted bytes, and the same requests go through a client on
//! each codec. What a user sees of each request (status, version, headers, body, wire bytes,
//! failure kind, whether a connection was opened) and what the server saw (the request bytes,
//! the connections) must be the same.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::client::{Client, ClientConfig, ClientShared, Http1Codec, Request};
use crate::sample::ErrorKind;

/// How the server sends one scripted response.
#[derive(Clone, Copy, PartialEq)]
enum Send {
    /// In one write.
    Whole,
    /// One byte per write, each flushed after a pause (the client reads it in pieces).
    ByteByByte,
    /// The bytes, then one more byte every 10 ms for as long as the client reads.
    Endless,
}

#[derive(Clone)]
struct Reply {
    bytes: &'static [u8],
    send: Send,
    /// Close the connection after this reply.
    close: bool,
}

fn reply(bytes: &'static [u8]) -> Reply {
    Reply {
        bytes,
        send: Send::Whole,
        close: false,
    }
}

fn closing(bytes: &'static [u8]) -> Reply {
    Reply {
        close: true,
        ..reply(bytes)
    }
}

/// What the server saw.
#[derive(Default, Debug, PartialEq)]
struct ServerLog {
    connections: usize,
    requests: Vec<Vec<u8>>,
}

/// A server whose n-th connection answers its requests with `script[n]` (the last entry for
/// later ones), then closes.
async fn serve(script: Vec<Vec<Reply>>) -> (String, Arc<Mutex<ServerLog>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(ServerLog::default()));
    let log2 = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let _ = sock.set_nodelay(true);
            let n = {
                let mut l = log2.lock().unwrap();
                l.connections += 1;
                l.connections - 1
            };
            let replies = script[n.min(script.len() - 1)].clone();
            let log = log2.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                for r in replies {
                    // One request: its head, and its body by its length or until its last
                    // chunk.
                    loop {
                        if let Some(end) = request_end(&buf) {
                            let req: Vec<u8> = buf.drain(..end).collect();
                            log.lock().unwrap().requests.push(req);
                            break;
                        }
                        let mut chunk = [0u8; 1024];
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    match r.send {
                        Send::Whole => {
                            if sock.write_all(r.bytes).await.is_err() {
                                return;
                            }
                        }
                        Send::ByteByByte => {
                            for b in r.bytes {
                                if sock.write_all(&[*b]).await.is_err() {
                                    return;
                                }
                                tokio::time::sleep(Duration::from_millis(1)).await;
                            }
                        }
                        Send::Endless => {
                            if sock.write_all(r.bytes).await.is_err() {
                                return;
                            }
                            loop {
                                tokio::time::sleep(Duration::from_millis(10)).await;
                                if sock.write_all(b"x").await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    if r.close {
                        return;
                    }
                }
                // Script done: wait for the client to go.
                let mut rest = [0u8; 64];
                while matches!(sock.read(&mut rest).await, Ok(n) if n > 0) {}
            });
        }
    });
    (format!("http://{addr}"), log)
}

/// Where the first request in `buf` ends, if it is all there.
fn request_end(buf: &[u8]) -> Option<usize> {
    let head = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = String::from_utf8_lossy(&buf[..head]).to_ascii_lowercase();
    if text.contains("\r\ntransfer-encoding:") {
        let end = buf[head..].windows(5).position(|w| w == b"0\r\n\r\n")?;
        return Some(head + end + 5);
    }
    let length = text
        .split("\r\n")
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    (buf.len() >= head + length).then_some(head + length)
}

/// What a user sees of one request.
#[derive(Debug, PartialEq)]
struct Seen {
    status: Option<u16>,
    version: Option<http::Version>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    bytes_sent: u64,
    /// `None` where the count depends on timing (a body that never ends).
    bytes_received: Option<u64>,
    content_length: Option<u64>,
    new_connection: bool,
    failure: Option<ErrorKind>,
}

struct Case {
    script: Vec<Vec<Reply>>,
    requests: Vec<Method>,
    /// Header fields and body of every request.
    headers: Vec<(&'static str, &'static str)>,
    body: &'static [u8],
    config: ClientConfig,
    /// Byte counts depend on timing.
    timed: bool,
    /// Compare the header fields of requests in any order: hyper removes the header fields it
    /// does not send from the request's `HeaderMap`, which moves its last field into the gap.
    any_header_order: bool,
}

/// The requests with the header fields of each in sorted order.
fn sorted_fields(requests: &[Vec<u8>]) -> Vec<Vec<u8>> {
    requests
        .iter()
        .map(|r| {
            let head = r
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .unwrap_or(r.len());
            let text = String::from_utf8_lossy(&r[..head]);
            let mut lines: Vec<&str> = text.split("\r\n").collect();
            lines[1..].sort_unstable();
            [lines.join("\r\n").as_bytes(), &r[head..]].concat()
        })
        .collect()
}

fn case(script: Vec<Vec<Reply>>, requests: usize) -> Case {
    Case {
        script,
        requests: vec![Method::GET; requests],
        headers: Vec::new(),
        body: b"",
        config: ClientConfig::default(),
        timed: false,
        any_header_order: false,
    }
}

async fn run(c: &Case, codec: Http1Codec) -> (Vec<Seen>, ServerLog) {
    let (base, log) = serve(c.script.clone()).await;
    let shared = ClientShared::new(ClientConfig {
        http1: codec,
        ..c.config.clone()
    })
    .unwrap();
    let mut client = Client::new(shared);
    let mut seen = Vec::new();
    for m in &c.requests {
        let mut req = Request::new(m.clone(), format!("{base}/x?y=1").parse().unwrap());
        req.keep_body = true;
        for (k, v) in &c.headers {
            req.headers.append(*k, http::HeaderValue::from_static(v));
        }
        req.body = bytes::Bytes::from_static(c.body);
        let o = client.send(&req).await;
        let (status, version, headers, body, failure) = match &o.result {
            Ok(r) => (
                Some(r.status.as_u16()),
                Some(r.version),
                r.headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                    .collect(),
                r.body.to_vec(),
                None,
            ),
            Err(f) => (None, None, Vec::new(), Vec::new(), Some(f.kind)),
        };
        assert!(
            o.phases.ttfb.is_some() || failure.is_some(),
            "{codec:?}: {o:?}"
        );
        if failure.is_none() {
            assert!(o.phases.download.is_some(), "{codec:?}: {o:?}");
        }
        seen.push(Seen {
            status,
            version,
            headers,
            body,
            bytes_sent: o.bytes_sent,
            bytes_received: (!c.timed).then_some(o.bytes_received),
            content_length: (!c.timed).then_some(o.content_length),
            new_connection: o.new_connection,
            failure,
        });
    }
    drop(client);
    // Let the server's task log the last request.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut log = std::mem::take(&mut *log.lock().unwrap());
    // Each run has its own port: take it out of the Host headers.
    let port = base
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .as_bytes()
        .to_vec();
    for r in &mut log.requests {
        if let Some(at) = r.windows(port.len()).position(|w| w == port) {
            r.splice(at..at + port.len(), *b"PORT");
        }
    }
    (seen, log)
}

/// Run `c` on both codecs; they must agree. Returns what the lean codec saw.
async fn conform(c: Case) -> Vec<Seen> {
    let (hyper, hyper_log) = run(&c, Http1Codec::Hyper).await;
    let (lean, mut lean_log) = run(&c, Http1Codec::Lean).await;
    let mut hyper_log = hyper_log;
    if c.any_header_order {
        lean_log.requests = sorted_fields(&lean_log.requests);
        hyper_log.requests = sorted_fields(&hyper_log.requests);
    }
    assert_eq!(lean, hyper, "lean codec (left) vs hyper (right)");
    assert_eq!(
        lean_log.connections, hyper_log.connections,
        "connections opened: lean (left) vs hyper (right)"
    );
    assert_eq!(
        String::from_utf8_lossy(&lean_log.requests.concat()),
        String::from_utf8_lossy(&hyper_log.requests.concat()),
        "requests on the wire: lean (left) vs hyper (right)"
    );
    lean
}

#[tokio::test]
async fn content_length_and_keep_alive_reuse() {
    let r = reply(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello");
    let seen = conform(case(vec![vec![r.clone(), r.clone(), r]], 3)).await;
    assert_eq!(seen[0].body, b"hello");
    assert!(seen[0].new_connection && !seen[1].new_connection && !seen[2].new_connection);
}

#[tokio::test]
async fn chunked_with_extensions_and_trailers() {
    let r = reply(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;ext=1;q=\"a\"\r\nhello\r\n6 \r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
    );
    let seen = conform(case(vec![vec![r.clone(), r]], 2)).await;
    assert_eq!(seen[0].body, b"hello world");
    assert!(!seen[1].new_connection, "reused after a chunked body");
}

#[tokio::test]
async fn chunked_split_across_reads_byte_by_byte() {
    let r = Reply {
        send: Send::ByteByByte,
        ..reply(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
              3\r\nabc\r\n10;x\r\n0123456789abcdef\r\n0\r\nT: 1\r\n\r\n",
        )
    };
    let seen = conform(case(vec![vec![r.clone(), r]], 2)).await;
    assert_eq!(seen[0].body, b"abc0123456789abcdef");
    assert!(!seen[1].new_connection);
}

#[tokio::test]
async fn close_delimited_body() {
    let r = closing(b"HTTP/1.1 200 OK\r\nX: y\r\n\r\nuntil the end");
    let seen = conform(case(vec![vec![r]], 2)).await;
    assert_eq!(seen[0].body, b"until the end");
    assert!(
        seen[1].new_connection,
        "a close-delimited body ends its connection"
    );
}

#[tokio::test]
async fn interim_100_continue_then_200() {
    let r = reply(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let seen = conform(case(vec![vec![r.clone(), r]], 2)).await;
    assert_eq!(seen[0].status, Some(200));
    assert!(!seen[1].new_connection);
}

#[tokio::test]
async fn early_hints_103_are_skipped() {
    let r = reply(
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n\
          HTTP/1.1 103 Early Hints\r\nLink: </t.js>; rel=preload\r\n\r\n\
          HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
    );
    let seen = conform(case(vec![vec![r]], 1)).await;
    assert_eq!(seen[0].status, Some(201));
    assert!(seen[0].headers.iter().all(|(k, _)| k != "link"));
}

#[tokio::test]
async fn head_with_content_length_has_no_body() {
    let head = reply(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
    let get = reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let mut c = case(vec![vec![head, get]], 2);
    c.requests[0] = Method::HEAD;
    let seen = conform(c).await;
    assert_eq!(seen[0].body, b"");
    assert_eq!(seen[1].body, b"ok");
    assert!(!seen[1].new_connection);
}

#[tokio::test]
async fn no_content_204_and_not_modified_304() {
    let seen = conform(case(
        vec![vec![
            reply(b"HTTP/1.1 204 No Content\r\n\r\n"),
            reply(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\n\r\n"),
            reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        ]],
        3,
    ))
    .await;
    assert_eq!((seen[0].status, seen[1].status), (Some(204), Some(304)));
    assert_eq!(seen[2].body, b"ok");
    assert!(!seen[2].new_connection);
}

#[tokio::test]
async fn connection_close_and_http_1_0_end_the_connection() {
    let seen = conform(case(
        vec![
            vec![reply(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
            )],
            vec![reply(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")],
            vec![
                reply(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"),
                reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
            ],
        ],
        4,
    ))
    .await;
    let opened: Vec<bool> = seen.iter().map(|s| s.new_connection).collect();
    assert_eq!(opened, [true, true, true, false]);
    assert_eq!(seen[1].version, Some(http::Version::HTTP_10));
}

#[tokio::test]
async fn an_idle_connection_closed_by_the_server_is_replaced() {
    let r = closing(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    let seen = conform(case(vec![vec![r]], 3)).await;
    assert!(seen.iter().all(|s| s.status == Some(200)));
}

#[tokio::test]
async fn a_malformed_head_is_a_protocol_error() {
    let seen = conform(case(vec![vec![closing(b"HTTP/1.1 abc OK\r\n\r\n")]], 1)).await;
    assert_eq!(seen[0].failure, Some(ErrorKind::Protocol));
}

#[tokio::test]
async fn conflicting_content_lengths_are_a_protocol_error() {
    let seen = conform(case(
        vec![vec![closing(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        )]],
        1,
    ))
    .await;
    assert_eq!(seen[0].failure, Some(ErrorKind::Protocol));
}

#[tokio::test]
async fn a_bad_chunk_size_is_a_protocol_error() {
    let seen = conform(case(
        vec![vec![closing(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        )]],
        1,
    ))
    .await;
    assert_eq!(seen[0].failure, Some(ErrorKind::Protocol));
}

#[tokio::test]
async fn a_body_larger_than_max_body_size_fails_and_the_connection_goes() {
    let r = reply(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n01234567890123456789");
    let mut c = case(vec![vec![r.clone(), r]], 2);
    c.config.max_body_size = 10;
    let seen = conform(c).await;
    assert_eq!(seen[0].failure, Some(ErrorKind::BodyTooLarge));
    assert!(seen[1].new_connection);
}

#[tokio::test]
async fn an_endless_body_times_out() {
    let r = Reply {
        send: Send::Endless,
        ..reply(b"HTTP/1.1 200 OK\r\n\r\nstart")
    };
    let mut c = case(vec![vec![r]], 1);
    c.config.request_timeout = Duration::from_millis(300);
    c.timed = true;
    let seen = conform(c).await;
    assert_eq!(seen[0].failure, Some(ErrorKind::Timeout));
}

#[tokio::test]
async fn the_server_closing_mid_body_is_a_reset() {
    let seen = conform(case(
        vec![
            vec![closing(
                b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
            )],
            vec![closing(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
            )],
            vec![closing(b"HTTP/1.1 200 OK\r\nContent-Le")],
        ],
        3,
    ))
    .await;
    let kinds: Vec<_> = seen.iter().map(|s| s.failure).collect();
    assert_eq!(kinds, [Some(ErrorKind::Reset); 3]);
}

#[tokio::test]
async fn gzip_bodies_decode_the_same() {
    // "hi\n" gzipped.
    const GZ: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 23\r\n\r\n\
        \x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\xcb\xc8\xe4\x02\x00\x7a\x7a\x6f\xed\x03\x00\x00\x00";
    let seen = conform(case(vec![vec![reply(GZ)]], 1)).await;
    assert_eq!(seen[0].body, b"hi\n");
}

/// A POST whose user set `Transfer-Encoding`, with headers and a body.
fn post(te: &'static str, body: &'static [u8]) -> Case {
    let mut c = case(
        vec![vec![
            reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            2
        ]],
        2,
    );
    c.requests = vec![Method::POST; 2];
    c.headers = vec![("transfer-encoding", te), ("x-after", "1")];
    c.body = body;
    c.any_header_order = true;
    c
}

/// The requests the lean codec wrote, as the server saw them.
async fn lean_wire(c: &Case) -> String {
    let (_, log) = run(c, Http1Codec::Lean).await;
    String::from_utf8_lossy(&log.requests.concat()).into_owned()
}

#[tokio::test]
async fn a_request_body_with_transfer_encoding_chunked_is_sent_chunked() {
    let c = post("chunked", b"hello world");
    let wire = lean_wire(&c).await;
    let seen = conform(c).await;
    assert!(seen.iter().all(|s| s.status == Some(200)));
    assert!(
        !seen[1].new_connection,
        "the framing left the connection usable"
    );
    assert!(wire.contains("transfer-encoding: chunked\r\n"), "{wire}");
    assert!(
        wire.contains("\r\n\r\nB\r\nhello world\r\n0\r\n\r\n"),
        "{wire}"
    );
    assert!(!wire.contains("content-length"), "{wire}");
}

#[tokio::test]
async fn a_transfer_encoding_without_chunked_gets_chunked_added() {
    let c = post("gzip", b"abc");
    let wire = lean_wire(&c).await;
    conform(c).await;
    assert!(
        wire.contains("transfer-encoding: gzip, chunked\r\n"),
        "{wire}"
    );
    assert!(wire.contains("\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), "{wire}");
}

#[tokio::test]
async fn transfer_encoding_is_dropped_for_an_empty_body_and_for_http_1_0() {
    let c = post("chunked", b"");
    let wire = lean_wire(&c).await;
    conform(c).await;
    assert!(!wire.contains("transfer-encoding"), "{wire}");

    // After an HTTP/1.0 response, requests speak HTTP/1.0: no chunked, a Content-Length.
    let mut c = post("chunked", b"hello");
    c.script = vec![vec![
        reply(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok"),
        reply(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ]];
    let wire = lean_wire(&c).await;
    conform(c).await;
    let second = wire.split("POST").nth(2).unwrap();
    assert!(second.starts_with(" /x?y=1 HTTP/1.0\r\n"), "{second}");
    assert!(second.contains("content-length: 5\r\n"), "{second}");
    assert!(!second.contains("transfer-encoding"), "{second}");
}

/// `Expect: 100-continue`: neither codec waits for the interim response before the body
/// (hyper's client never does); the 100 is skipped and the final response read.
#[tokio::test]
async fn expect_100_continue_sends_the_body_at_once_and_skips_the_100() {
    let mut c =
        case(
            vec![vec![reply(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
        ); 2]],
            2,
        );
    c.requests = vec![Method::PUT; 2];
    c.headers = vec![("expect", "100-continue")];
    c.body = b"payload";
    // The server answers only once the whole request arrived: a client waiting for the 100
    // before its body would time out.
    c.config.request_timeout = Duration::from_secs(5);
    let seen = conform(c).await;
    assert_eq!(seen[0].status, Some(201));
    assert_eq!(seen[1].body, b"ok");
    assert!(!seen[1].new_connection);
}

#[tokio::test]
async fn no_body_after_204_with_a_length_nor_head_with_chunked() {
    let mut c = case(
        vec![vec![
            reply(b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n"),
            reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            reply(b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"),
            reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        ]],
        4,
    );
    c.requests[1] = Method::HEAD;
    let seen = conform(c).await;
    let bodies: Vec<&[u8]> = seen.iter().map(|s| &s.body[..]).collect();
    assert_eq!(bodies, [&b""[..], b"", b"", b"ok"]);
    assert!(seen[1..].iter().all(|s| !s.new_connection), "{seen:?}");
}
