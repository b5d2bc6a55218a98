//! Helpers: start the demo target as a process, run loadlens, capture requests on a raw socket.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_loadlens")
}

/// A `loadlens demo-target` process on a free port, killed on drop.
pub struct DemoTarget {
    pub child: Child,
    pub url: String,
}

impl DemoTarget {
    pub fn start(extra: &[&str]) -> DemoTarget {
        let mut child = Command::new(bin())
            .args(["demo-target", "--port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start demo-target");
        let url = listening_url(&mut child, "demo-target");
        DemoTarget { child, url }
    }

    /// A demo target (no base latency) that adds `extra_latency` to every response while the
    /// Statsig gate at `gate_url` is on, reading it with the Console API `key`.
    pub fn gated(gate_url: &str, key: &str, extra_latency: &str) -> DemoTarget {
        let key_header = format!("STATSIG-API-KEY: {key}");
        DemoTarget::start(&[
            "--latency",
            "0",
            "--gate-url",
            gate_url,
            "--gate-header",
            &key_header,
            "--gate-header",
            "STATSIG-API-VERSION: 20240601",
            "--gate-latency",
            extra_latency,
        ])
    }

    /// The server's own request counters.
    pub fn stats(&self) -> serde_json::Value {
        raw_get(&self.url, "/__stats")
    }
}

impl Drop for DemoTarget {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The URL from a server's first stdout line, `listening on URL` (the demo target, test peers).
pub fn listening_url(child: &mut Child, who: &str) -> String {
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout is piped"))
        .read_line(&mut line)
        .unwrap();
    line.trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("{who} said {line:?} instead of `listening on URL`"))
        .to_owned()
}

/// GET `path` with a plain HTTP/1.1 request and parse the JSON body.
pub fn raw_get(base: &str, path: &str) -> serde_json::Value {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Run loadlens to completion.
pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("TEST_RUN_ID")
        .output()
        .expect("run loadlens")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The run exited with `code`; otherwise fail showing what it printed.
#[track_caller]
pub fn assert_exit(o: &Output, code: i32) {
    assert_eq!(o.status.code(), Some(code), "{}{}", stdout(o), stderr(o));
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "loadlens-it-{tag}-{}-{}",
            std::process::id(),
            fastrand_u32()
        ));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    pub fn join(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn fastrand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    );
    h.finish() as u32
}

/// A raw HTTP server that records the header block (request line included, as sent) and the
/// body of every request, counts the connections it accepted, and answers 200.
pub struct Recorder {
    pub url: String,
    pub requests: Arc<Mutex<Vec<String>>>,
    /// The body of each request (by `Content-Length`), in the order of `requests`.
    pub bodies: Arc<Mutex<Vec<Vec<u8>>>>,
    /// TCP connections accepted.
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl Recorder {
    /// Answers `ok` to every request.
    pub fn start() -> Recorder {
        Recorder::answering("text/plain", "ok")
    }

    /// Answers every request with `body` of `content_type`.
    pub fn answering(content_type: &'static str, body: &'static str) -> Recorder {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", l.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let r2 = requests.clone();
        let (b2, c2) = (bodies.clone(), connections.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { return };
                c2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let r3 = r2.clone();
                let b3 = b2.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    loop {
                        let mut head = String::new();
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if line == "\r\n" {
                                break;
                            }
                            head.push_str(&line);
                        }
                        let length = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        let mut sent = vec![0; length];
                        if reader.read_exact(&mut sent).is_err() {
                            return;
                        }
                        r3.lock().unwrap().push(head);
                        b3.lock().unwrap().push(sent);
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if conn.write_all(answer.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Recorder {
            url,
            requests,
            bodies,
            connections,
        }
    }
}

/// Send SIGINT to a child process.
pub fn interrupt(child: &Child) {
    send_signal(child.id(), "INT");
}

/// Send the signal `name` (`INT`, `TERM`, …) to the process `pid`.
pub fn send_signal(pid: u32, name: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{name} {pid}");
}

/// A JSON file, parsed (a result the run must have written).
pub fn read_json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("the JSON file is written")).unwrap()
}

/// Each threshold of a JSON result: its expression, whether it passed, whether it aborted.
pub fn threshold_results(doc: &serde_json::Value) -> Vec<(String, bool, bool)> {
    doc["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["expression"].as_str().unwrap().to_owned(),
                t["passed"].as_bool().unwrap(),
                t["aborted"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// A port free now, for a peer that must be told it before loadlens binds it. Taken below the
/// kernel's ephemeral range: a port that `bind(0)` hands out can be taken again, before
/// loadlens binds it, as the source port of any outgoing connection, and the load tests running
/// beside make thousands of those ("Address already in use", seen in CI).
pub fn free_port() -> u16 {
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let below = ephemeral.max(10_001);
    loop {
        let port = fastrand::u16(10_000..below);
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
