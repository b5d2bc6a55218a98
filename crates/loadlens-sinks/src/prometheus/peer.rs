//! Test peers of the Prometheus sink's tests: a real Prometheus server (Debian's `prometheus`
//! package) on 127.0.0.1 with a temporary configuration and data directory, and a plain
//! HTTP/1.1 `GET` to read its query API and the scrape endpoint.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `GET path` on `addr`: the response head and body.
pub(super) fn get(addr: SocketAddr, path: &str, accept: Option<&str>) -> (String, String) {
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: x\r\n{accept}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = String::new();
    c.read_to_string(&mut all).unwrap();
    let (head, body) = all.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

/// `/usr/bin/NAME` of Debian's `prometheus` package; a test that needs it fails, naming how to
/// install it, when it is missing.
pub(super) fn tool(name: &str) -> PathBuf {
    let p = PathBuf::from(format!("/usr/bin/{name}"));
    assert!(
        p.exists(),
        "{} is missing: install Debian's Prometheus with `apt-get install prometheus` (scripts/test does)",
        p.display()
    );
    p
}

/// A Prometheus server on 127.0.0.1 with a temporary configuration and data directory,
/// stopped when dropped.
pub(super) struct Prometheus {
    child: Child,
    pub(super) addr: SocketAddr,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port on 127.0.0.1: Prometheus cannot be told to listen on port 0.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Prometheus {
    /// Start it scraping `target` every second (if any), with the remote-write receiver on.
    pub(super) fn start(target: Option<SocketAddr>) -> Prometheus {
        let bin = tool("prometheus");
        let dir = std::env::temp_dir().join(format!(
            "loadlens-prometheus-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(dir.join("data")).unwrap();
        let dir = TempDir(dir);
        let mut yaml = "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n".to_owned();
        if let Some(t) = target {
            yaml.push_str(&format!(
                "scrape_configs:\n  - job_name: loadlens\n    static_configs:\n      - targets: ['{t}']\n"
            ));
        }
        std::fs::write(dir.0.join("prometheus.yml"), yaml).unwrap();
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let log = std::fs::File::create(dir.0.join("log")).unwrap();
        let child = Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.0.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut p = Prometheus {
            child,
            addr,
            _dir: dir,
        };
        // Ready when `/-/ready` answers 200; a loaded machine may take a while to start it.
        let t = Instant::now();
        loop {
            if let Some(status) = p.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(p._dir.0.join("log")).unwrap_or_default();
                panic!("prometheus exited ({status}): {log}");
            }
            if std::net::TcpStream::connect(addr).is_ok()
                && get(addr, "/-/ready", None).0.starts_with("HTTP/1.1 200")
            {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "prometheus did not get ready in 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    /// The value of an instant PromQL query returning one number, `None` when empty.
    pub(super) fn query(&self, promql: &str) -> Option<f64> {
        let path = format!("/api/v1/query?query={}", encode_query(promql));
        let (head, body) = get(self.addr, &path, None);
        assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
        let body = dechunk(&head, &body);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let result = v["data"]["result"].as_array().unwrap();
        assert!(result.len() <= 1, "{body}");
        result
            .first()
            .map(|r| r["value"][1].as_str().unwrap().parse().unwrap())
    }

    /// Poll `promql` until it equals `want` or 30 s pass; the last value seen.
    pub(super) fn wait_for(&self, promql: &str, want: f64) -> Option<f64> {
        let t = Instant::now();
        loop {
            let v = self.query(promql);
            if v == Some(want) || t.elapsed() > Duration::from_secs(30) {
                return v;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn encode_query(q: &str) -> String {
    loadlens_core::encoding::encode(q, loadlens_core::encoding::Set::Component)
}

/// The body of a `Transfer-Encoding: chunked` answer, joined.
fn dechunk(head: &str, body: &str) -> String {
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_owned();
    }
    let mut out = String::new();
    let mut rest = body;
    loop {
        let (size, tail) = rest.split_once("\r\n").unwrap();
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
}
