use std::time::Duration;

use super::*;
use crate::testutil;

fn client(cfg: ClientConfig) -> Client {
    Client::new(ClientShared::new(cfg).unwrap())
}

fn get(url: &str) -> Request {
    let mut r = Request::new(Method::GET, url.parse().unwrap());
    r.keep_body = true;
    r
}

#[tokio::test]
async fn keep_alive_charges_the_connection_to_the_first_request_only() {
    let srv = testutil::http1().await;
    let mut c = client(ClientConfig::default());
    let a = c.send(&get(&srv.url("/"))).await;
    let b = c.send(&get(&srv.url("/"))).await;
    let ra = a.result.unwrap();
    assert_eq!(ra.status, 200);
    assert_eq!(&ra.body[..], b"ok");
    assert!(ra.redirected.is_none(), "no redirect followed");
    assert!(a.new_connection && !b.new_connection);
    assert!(a.phases.connect.is_some() && b.phases.connect.is_none());
    assert!(a.phases.dns.is_none(), "an IP literal needs no DNS");
    assert!(a.phases.ttfb.is_some() && a.phases.download.is_some());
    assert!(a.total >= a.phases.connect.unwrap() + a.phases.ttfb.unwrap());
    assert!(
        a.bytes_sent > 40 && a.bytes_received > 40,
        "{} {}",
        a.bytes_sent,
        a.bytes_received
    );
    assert_eq!(
        b.bytes_sent, a.bytes_sent,
        "same request, same bytes on the wire"
    );
    assert_eq!(a.content_length, 2);
    assert_eq!(
        srv.connections.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(c.connections(), 1);
}

#[tokio::test]
async fn dns_phase_is_measured_for_host_names() {
    let srv = testutil::http1().await;
    let mut c = client(ClientConfig::default());
    let o = c
        .send(&get(&format!("http://localhost:{}/", srv.addr.port())))
        .await;
    assert!(o.result.is_ok(), "{:?}", o.result);
    assert!(o.phases.dns.is_some());
}

#[tokio::test]
async fn h2c_by_prior_knowledge() {
    let srv = testutil::h2c().await;
    let mut c = client(ClientConfig {
        version: HttpVersion::Http2PriorKnowledge,
        ..ClientConfig::default()
    });
    let o = c.send(&get(&srv.url("/version"))).await;
    let r = o.result.unwrap();
    assert_eq!(r.version, Version::HTTP_2);
    assert_eq!(&r.body[..], b"HTTP/2.0");
}

#[tokio::test]
async fn https_negotiates_h2_and_times_the_handshake() {
    let srv = testutil::https().await;
    let mut c = client(ClientConfig {
        insecure: true,
        ..ClientConfig::default()
    });
    let o = c.send(&get(&srv.https_url("/version"))).await;
    let r = o.result.unwrap();
    assert_eq!(&r.body[..], b"HTTP/2.0");
    assert!(o.phases.tls.is_some() && o.phases.dns.is_some() && o.phases.connect.is_some());

    let mut h1 = client(ClientConfig {
        insecure: true,
        version: HttpVersion::Http1,
        ..ClientConfig::default()
    });
    let r = h1
        .send(&get(&srv.https_url("/version")))
        .await
        .result
        .unwrap();
    assert_eq!(&r.body[..], b"HTTP/1.1");
}

#[tokio::test]
async fn untrusted_certificate_is_a_tls_failure_without_insecure() {
    let srv = testutil::https().await;
    let mut c = client(ClientConfig::default());
    let o = c.send(&get(&srv.https_url("/"))).await;
    let f = o.result.unwrap_err();
    assert_eq!(f.kind, crate::sample::ErrorKind::Tls);
    assert!(f.message.contains("certificate"), "{}", f.message);
}

#[tokio::test]
async fn follows_redirects_up_to_the_limit() {
    let srv = testutil::http1().await;
    let mut c = client(ClientConfig::default());
    let r = c.send(&get(&srv.url("/redirect/3"))).await.result.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.redirected.unwrap().path(), "/");
    let mut c = client(ClientConfig {
        max_redirects: 3,
        ..ClientConfig::default()
    });
    let r = c.send(&get(&srv.url("/redirect/3"))).await.result.unwrap();
    assert_eq!(r.status, 200, "exactly max_redirects hops are followed");
    let mut c = client(ClientConfig {
        max_redirects: 0,
        ..ClientConfig::default()
    });
    assert_eq!(
        c.send(&get(&srv.url("/redirect/1")))
            .await
            .result
            .unwrap()
            .status,
        302
    );
}

#[tokio::test]
async fn more_redirects_than_the_limit_fail() {
    let srv = testutil::http1().await;
    let mut c = client(ClientConfig {
        max_redirects: 1,
        ..ClientConfig::default()
    });
    let f = c
        .send(&get(&srv.url("/redirect/3")))
        .await
        .result
        .unwrap_err();
    assert_eq!(f.kind, ErrorKind::TooManyRedirects);
    assert!(
        f.message.starts_with("more than 1 redirects"),
        "{}",
        f.message
    );
}

#[tokio::test]
async fn a_redirect_loop_fails_after_max_redirects_hops() {
    let srv = testutil::http1().await;
    let mut c = client(ClientConfig {
        max_redirects: 5,
        ..ClientConfig::default()
    });
    let o = c.send(&get(&srv.url("/loop"))).await;
    let f = o.result.unwrap_err();
    assert_eq!(f.kind, ErrorKind::TooManyRedirects);
    assert_eq!(f.kind.as_str(), "too_many_redirects");
    assert!(f.message.contains("redirect loop"), "{}", f.message);
    assert_eq!(
        srv.requests.load(std::sync::atomic::Ordering::Relaxed),
        6,
        "the first request and 5 redirects, then it stops"
    );
}

#[tokio::test]
async fn decompresses_gzip() {
    let srv = testutil::http1().await;
    let mut c = client(ClientConfig::default());
    let o = c.send(&get(&srv.url("/gzip"))).await;
    let r = o.result.unwrap();
    assert_eq!(r.body.len(), 1100);
    assert_eq!(o.content_length, 1100);
    assert!(
        o.bytes_received < 400,
        "the wire carried the compressed body: {}",
        o.bytes_received
    );
}

#[tokio::test]
async fn a_head_response_with_content_encoding_is_empty_not_invalid() {
    let srv = testutil::http1().await;
    let mut c = client(ClientConfig::default());
    let mut head = Request::new(Method::HEAD, srv.url("/gzip").parse().unwrap());
    head.keep_body = true;
    let o = c.send(&head).await;
    let r = o.result.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-encoding"], "gzip");
    assert!(r.body.is_empty());
    assert_eq!(o.content_length, 0);
}

#[tokio::test]
async fn cookie_jar_is_per_client() {
    let srv = testutil::http1().await;
    let mut a = client(ClientConfig::default());
    let mut b = client(ClientConfig::default());
    a.send(&get(&srv.url("/set-cookie"))).await.result.unwrap();
    let ra = a.send(&get(&srv.url("/echo-cookie"))).await.result.unwrap();
    let rb = b.send(&get(&srv.url("/echo-cookie"))).await.result.unwrap();
    assert_eq!(&ra.body[..], b"session=s3cr3t");
    assert!(rb.body.is_empty());
}

#[tokio::test]
async fn refused_connection_is_classified() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut c = client(ClientConfig::default());
    let o = c.send(&get(&format!("http://127.0.0.1:{port}/"))).await;
    assert_eq!(
        o.result.unwrap_err().kind,
        crate::sample::ErrorKind::Refused
    );
    assert!(o.new_connection && o.phases.connect.is_some());
}

/// The request timeout covers the redirects followed too: a redirect loop followed without
/// limit still ends at the timeout.
#[tokio::test]
async fn the_timeout_covers_the_redirects_followed() {
    let srv = testutil::http1().await;
    let mut c = client(ClientConfig {
        max_redirects: usize::MAX,
        ..ClientConfig::default()
    });
    let mut r = get(&srv.url("/loop"));
    r.timeout = Some(Duration::from_millis(200));
    let o = tokio::time::timeout(Duration::from_secs(10), c.send(&r))
        .await
        .expect("the request ended by its timeout");
    let f = o.result.unwrap_err();
    assert_eq!(f.kind, crate::sample::ErrorKind::Timeout, "{f:?}");
    assert!(o.total >= Duration::from_millis(200), "{:?}", o.total);
    assert!(o.total < Duration::from_secs(2), "{:?}", o.total);
}

#[tokio::test]
async fn request_timeout_is_classified() {
    let srv = testutil::http1().await;
    let mut c = client(ClientConfig::default());
    let mut r = get(&srv.url("/slow?ms=2000"));
    r.timeout = Some(Duration::from_millis(100));
    let o = c.send(&r).await;
    let f = o.result.unwrap_err();
    assert_eq!(f.kind, crate::sample::ErrorKind::Timeout);
    assert!(o.total < Duration::from_millis(1000));
    assert!(o.phases.connect.is_some(), "phases that completed are kept");
}

#[tokio::test]
async fn one_client_times_out_each_request_by_its_own_limit() {
    // The client keeps one timer across requests: a longer limit after a shorter one moves it
    // later, a shorter one after a longer one moves it earlier; each request still ends at
    // its own limit, and fast requests in between are not cut.
    let srv = testutil::http1().await;
    let mut c = client(ClientConfig::default());
    let slow = |ms: u64| {
        let mut r = get(&srv.url("/slow?ms=3000"));
        r.timeout = Some(Duration::from_millis(ms));
        r
    };
    let fast = c.send(&get(&srv.url("/"))).await;
    assert!(fast.result.is_ok(), "{:?}", fast.result);
    for ms in [200, 800, 150] {
        let o = c.send(&slow(ms)).await;
        let f = o.result.unwrap_err();
        assert_eq!(f.kind, crate::sample::ErrorKind::Timeout, "{ms} ms: {f:?}");
        assert!(
            o.total >= Duration::from_millis(ms) && o.total < Duration::from_millis(ms + 2000),
            "{ms} ms limit, took {:?}",
            o.total
        );
        let ok = c.send(&get(&srv.url("/"))).await;
        assert!(
            ok.result.is_ok(),
            "after the {ms} ms timeout: {:?}",
            ok.result
        );
    }
}

#[tokio::test]
async fn unresolvable_host_is_a_dns_failure() {
    // A 64-character label cannot be encoded in a DNS query, so the resolver fails locally
    // without sending anything off this machine.
    let host = format!("{}.invalid", "a".repeat(64));
    let mut c = client(ClientConfig::default());
    let o = c.send(&get(&format!("http://{host}:9/"))).await;
    assert_eq!(o.result.unwrap_err().kind, crate::sample::ErrorKind::Dns);
}

#[tokio::test]
async fn server_closing_the_connection_is_not_an_error() {
    let srv = testutil::http1().await;
    let mut c = client(ClientConfig::default());
    for _ in 0..3 {
        let o = c.send(&get(&srv.url("/close"))).await;
        assert_eq!(o.result.unwrap().status, 200);
        assert!(o.new_connection);
    }
    assert_eq!(
        srv.connections.load(std::sync::atomic::Ordering::Relaxed),
        3
    );
}

#[tokio::test]
async fn sends_host_user_agent_and_accept_encoding() {
    let srv = testutil::http1().await;
    let mut c = client(ClientConfig::default());
    let r = c
        .send(&get(&srv.url("/echo-headers")))
        .await
        .result
        .unwrap();
    let text = String::from_utf8_lossy(&r.body);
    assert!(
        text.contains(&format!("host: 127.0.0.1:{}", srv.addr.port())),
        "{text}"
    );
    assert!(text.contains("user-agent: loadlens/"), "{text}");
    assert!(
        text.contains("accept-encoding: gzip, deflate, br"),
        "{text}"
    );
    // A request's own field replaces the default, which is then not sent as well; a body
    // gets its length.
    let mut own = get(&srv.url("/echo-headers"));
    own.method = Method::POST;
    own.body = Bytes::from_static(b"hello");
    own.headers
        .insert(http::header::USER_AGENT, HeaderValue::from_static("mine/1"));
    let r = c.send(&own).await.result.unwrap();
    let text = String::from_utf8_lossy(&r.body);
    assert_eq!(text.matches("user-agent:").count(), 1, "{text}");
    assert!(text.contains("user-agent: mine/1"), "{text}");
    assert!(text.contains("content-length: 5"), "{text}");
}

/// A raw-socket target on 127.0.0.1:0 that reads each request head and answers every request
/// with `response`, then stalls (`close: false`) or closes the connection.
async fn raw_target(response: Vec<u8>, close: bool) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let response = Arc::new(response);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = s.write_all(&response).await;
                if !close {
                    // Hold the connection open, sending nothing more.
                    std::future::pending::<()>().await;
                }
            });
        }
    });
    addr
}

/// A response that sends `n` body bytes of `body`, in `Content-Length` framing.
fn sized(body: &[u8], headers: &str) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n{headers}\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[tokio::test]
async fn a_kept_body_over_the_limit_fails_and_one_not_kept_is_only_counted() {
    let addr = raw_target(sized(&[b'x'; 100_000], ""), false).await;
    let url = format!("http://{addr}/");
    let mut c = client(ClientConfig {
        max_body_size: 64 << 10,
        ..ClientConfig::default()
    });
    let o = c.send(&get(&url)).await;
    let f = o.result.unwrap_err();
    assert_eq!(f.kind, ErrorKind::BodyTooLarge);
    assert!(f.message.contains("64 KiB"), "{}", f.message);
    assert!(o.content_length <= 64 << 10, "{}", o.content_length);

    let mut counted = get(&url);
    counted.keep_body = false;
    let o = c.send(&counted).await;
    let r = o.result.unwrap();
    assert!(r.body.is_empty(), "nothing is kept");
    assert_eq!(o.content_length, 100_000);
    assert!(o.bytes_received > 100_000, "{}", o.bytes_received);
}

#[tokio::test]
async fn a_gzip_bomb_is_cut_at_the_limit_when_kept() {
    // 256 MiB of zeros, about 256 KiB on the wire.
    let bomb = gzip(&vec![0u8; 256 << 20]);
    let addr = raw_target(sized(&bomb, "Content-Encoding: gzip\r\n"), false).await;
    let mut c = client(ClientConfig {
        max_body_size: 1 << 20,
        ..ClientConfig::default()
    });
    let o = c.send(&get(&format!("http://{addr}/"))).await;
    assert_eq!(o.result.unwrap_err().kind, ErrorKind::BodyTooLarge);
    assert!(
        o.content_length <= 1 << 20,
        "decoding stopped at the limit: {}",
        o.content_length
    );
    assert!(
        o.bytes_received < bomb.len() as u64,
        "the rest of the body was not read: {} of {}",
        o.bytes_received,
        bomb.len()
    );
}

#[tokio::test]
async fn a_timeout_mid_body_reports_what_arrived() {
    // The head promises 1 MB; 5,000 bytes come, then nothing.
    let mut resp = b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n".to_vec();
    resp.extend_from_slice(&[b'y'; 5000]);
    let addr = raw_target(resp, false).await;
    let mut c = client(ClientConfig::default());
    let mut r = get(&format!("http://{addr}/"));
    r.keep_body = false;
    r.timeout = Some(Duration::from_millis(300));
    let o = c.send(&r).await;
    assert_eq!(o.result.unwrap_err().kind, ErrorKind::Timeout);
    assert!(o.bytes_received > 5000, "{}", o.bytes_received);
    assert_eq!(o.content_length, 5000);
    assert!(o.bytes_sent > 0);
}

#[tokio::test]
async fn bad_chunked_framing_is_a_protocol_failure() {
    let addr = raw_target(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n".to_vec(),
        true,
    )
    .await;
    let mut c = client(ClientConfig::default());
    let f = c
        .send(&get(&format!("http://{addr}/")))
        .await
        .result
        .unwrap_err();
    assert_eq!(f.kind, ErrorKind::Protocol, "{f}");
}

/// A request that does not keep its headers (no check or capture reads one) still follows
/// redirects, decodes gzip, stores cookies and counts its body; only the fields the client
/// reads itself are in its response's map. hyper's codec keeps every field regardless.
#[tokio::test]
async fn a_request_without_kept_headers_still_redirects_decodes_and_stores_cookies() {
    let srv = testutil::http1().await;
    let lean = || {
        let mut r = get(&srv.url("/"));
        r.keep_headers = false;
        r
    };
    let mut c = client(ClientConfig::default());

    let mut r = lean();
    r.url = srv.url("/redirect/2").parse().unwrap();
    let o = c.send(&r).await;
    let resp = o.result.unwrap();
    assert_eq!(
        (
            resp.status.as_u16(),
            resp.redirected.as_ref().unwrap().path()
        ),
        (200, "/")
    );
    assert_eq!(&resp.body[..], b"ok");
    assert_eq!(o.content_length, 2);
    assert!(
        resp.headers.is_empty(),
        "nothing the client reads: {:?}",
        resp.headers
    );

    r.url = srv.url("/gzip").parse().unwrap();
    let o = c.send(&r).await;
    let resp = o.result.unwrap();
    assert_eq!(resp.body.len(), 1100, "decoded");
    assert_eq!(o.content_length, 1100);
    assert_eq!(resp.headers["content-encoding"], "gzip");
    assert!(
        resp.headers.get("content-type").is_none(),
        "{:?}",
        resp.headers
    );
    assert!(
        resp.headers.get("content-length").is_none(),
        "{:?}",
        resp.headers
    );

    r.url = srv.url("/set-cookie").parse().unwrap();
    let resp = c.send(&r).await.result.unwrap();
    assert_eq!(resp.headers.len(), 1, "{:?}", resp.headers);
    r.url = srv.url("/echo-cookie").parse().unwrap();
    let resp = c.send(&r).await.result.unwrap();
    assert_eq!(&resp.body[..], b"session=s3cr3t", "the cookie was stored");

    // The same request asking for every field gets them all, and so does hyper's codec.
    let all = c.send(&get(&srv.url("/gzip"))).await.result.unwrap();
    assert!(all.headers.contains_key("content-length") && all.headers.contains_key("date"));
    let mut hyper = client(ClientConfig {
        http1: Http1Codec::Hyper,
        ..ClientConfig::default()
    });
    r.url = srv.url("/gzip").parse().unwrap();
    let h = hyper.send(&r).await.result.unwrap();
    assert!(h.headers.contains_key("content-length"), "{:?}", h.headers);
}
