//! A real HTTP server on `127.0.0.1:0` for the engine's tests: HTTP/1.1 and h2c (prior
//! knowledge), optionally TLS with a generated self-signed certificate (ALPN h2/http1.1).
//!
//! Routes: `/` → `ok`; `/slow?ms=N`; `/status/N`; `/redirect/N` (N hops then `/`);
//! `/gzip` (gzip body); `/set-cookie` and `/echo-cookie`; `/echo-headers`; `/close` (answers,
//! then closes the connection); `/version` (the HTTP version seen).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

pub struct TestServer {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicU64>,
    pub connections: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
    pub fn https_url(&self, path: &str) -> String {
        format!("https://localhost:{}{}", self.addr.port(), path)
    }
}

async fn handle(
    req: Request<Incoming>,
    requests: Arc<AtomicU64>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    requests.fetch_add(1, Ordering::Relaxed);
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let version = format!("{:?}", req.version());
    let headers = req.headers().clone();
    let _ = req.into_body().collect().await;
    let ok = |body: &'static str| Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    let resp = match path.as_str() {
        "/" => ok("ok"),
        "/slow" => {
            let ms: u64 = query.trim_start_matches("ms=").parse().unwrap_or(50);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ok("slow")
        }
        "/gzip" => {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(&b"hello gzip ".repeat(100)).unwrap();
            Response::builder()
                .header("content-encoding", "gzip")
                .body(Full::new(Bytes::from(e.finish().unwrap())))
                .unwrap()
        }
        "/set-cookie" => Response::builder()
            .header("set-cookie", "session=s3cr3t; Path=/; HttpOnly")
            .body(Full::new(Bytes::from_static(b"set")))
            .unwrap(),
        "/echo-cookie" => Response::new(Full::new(Bytes::from(
            headers
                .get("cookie")
                .map(|v| v.as_bytes().to_vec())
                .unwrap_or_default(),
        ))),
        "/echo-headers" => {
            let mut s = String::new();
            for (k, v) in &headers {
                s.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("")));
            }
            Response::new(Full::new(Bytes::from(s)))
        }
        "/version" => Response::new(Full::new(Bytes::from(version))),
        "/close" => Response::builder()
            .header("connection", "close")
            .body(Full::new(Bytes::from_static(b"bye")))
            .unwrap(),
        p if p.starts_with("/status/") => {
            let code: u16 = p[8..].parse().unwrap_or(500);
            Response::builder()
                .status(StatusCode::from_u16(code).unwrap())
                .body(Full::new(Bytes::from_static(b"status")))
                .unwrap()
        }
        // Redirects to itself, forever.
        "/loop" => Response::builder()
            .status(StatusCode::FOUND)
            .header("location", "/loop")
            .body(Full::new(Bytes::new()))
            .unwrap(),
        p if p.starts_with("/redirect/") => {
            let n: u32 = p[10..].parse().unwrap_or(0);
            let to = if n <= 1 {
                "/".to_owned()
            } else {
                format!("/redirect/{}", n - 1)
            };
            Response::builder()
                .status(StatusCode::FOUND)
                .header("location", to)
                .body(Full::new(Bytes::new()))
                .unwrap()
        }
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(b"not found")))
            .unwrap(),
    };
    Ok(resp)
}

async fn serve_conn<I>(io: I, requests: Arc<AtomicU64>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| handle(req, requests.clone()));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

/// Plain HTTP/1.1 server.
pub async fn http1() -> TestServer {
    start(Mode::Http1).await
}

/// h2c (prior knowledge) server.
pub async fn h2c() -> TestServer {
    start(Mode::H2c).await
}

/// TLS server offering h2 and http/1.1 with a self-signed certificate for `localhost`.
pub async fn https() -> TestServer {
    start(Mode::Tls).await
}

#[derive(Clone, Copy)]
enum Mode {
    Http1,
    H2c,
    Tls,
}

async fn start(mode: Mode) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicU64::new(0));
    let connections = Arc::new(AtomicU64::new(0));
    let tls = matches!(mode, Mode::Tls).then(tls_acceptor);
    let (req2, conn2) = (requests.clone(), connections.clone());
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            conn2.fetch_add(1, Ordering::Relaxed);
            let requests = req2.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match mode {
                    Mode::Http1 => serve_conn(tcp, requests).await,
                    Mode::H2c => {
                        let svc =
                            hyper::service::service_fn(move |req| handle(req, requests.clone()));
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tcp), svc)
                            .await;
                    }
                    Mode::Tls => {
                        let Ok(stream) = tls.unwrap().accept(tcp).await else {
                            return;
                        };
                        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                        let svc =
                            hyper::service::service_fn(move |req| handle(req, requests.clone()));
                        if h2 {
                            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        } else {
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        }
                    }
                }
            });
        }
    });
    TestServer {
        addr,
        requests,
        connections,
        task,
    }
}

pub fn tls_acceptor() -> tokio_rustls::TlsAcceptor {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::try_from(cert.key_pair.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}
