//! The live web dashboard in a real browser: headless Chromium driven over the DevTools protocol
//! (a minimal WebSocket client below, std only) opens the page behind basic auth, starts a run
//! from its form, sees its numbers grow between two reads, and stops it with its button. A
//! screenshot is kept as `target/tmp/browser/dashboard.png`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::browser::{artifacts, chromium, BROWSER};
use crate::support::*;
use crate::web::Live;

/// Headless Chromium with remote debugging on a free port; killed on drop.
pub(crate) struct Chrome {
    child: Child,
    _profile: TempDir,
    ws: TcpStream,
    next_id: u64,
}

impl Drop for Chrome {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Chrome {
    pub(crate) fn start(path: &std::path::Path) -> Chrome {
        let profile = TempDir::new("chromium-dashboard");
        let mut child = Command::new(path)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
                "--disable-sync",
                "--hide-scrollbars",
                "--window-size=1300,1700",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.0.display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID" on stderr.
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut port = None;
        for _ in 0..200 {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            if let Some(rest) = line.trim().strip_prefix("DevTools listening on ws://") {
                port = rest.split(['/', ':']).nth(1).map(str::to_owned);
                break;
            }
        }
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let port = port.expect("chromium did not print its DevTools address");
        let addr = format!("127.0.0.1:{port}");
        let (_, _, list) = crate::web::http(&addr, "GET", "/json/list", None, None);
        let list: Value = serde_json::from_str(&list).unwrap();
        let page = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page target");
        let ws_url = page["webSocketDebuggerUrl"].as_str().unwrap();
        let path = &ws_url[ws_url.find("/devtools").unwrap()..];
        let mut ws = TcpStream::connect(&addr).unwrap();
        ws.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            ws,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            ws.read_exact(&mut b).unwrap();
            head.push(b[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        Chrome {
            child,
            _profile: profile,
            ws,
            next_id: 0,
        }
    }

    /// Send one text frame (masked with a zero key, which leaves the payload as it is).
    fn send_frame(&mut self, text: &str) {
        let p = text.as_bytes();
        let mut f = vec![0x81u8];
        match p.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n < 65536 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&[0, 0, 0, 0]);
        f.extend_from_slice(p);
        self.ws.write_all(&f).unwrap();
    }

    /// Read one whole message (continuation frames joined; control frames skipped).
    fn read_message(&mut self) -> String {
        let mut msg = Vec::new();
        loop {
            let mut h = [0u8; 2];
            self.ws.read_exact(&mut h).unwrap();
            let (fin, op) = (h[0] & 0x80 != 0, h[0] & 0x0f);
            let len = match h[1] & 0x7f {
                126 => {
                    let mut l = [0u8; 2];
                    self.ws.read_exact(&mut l).unwrap();
                    u64::from(u16::from_be_bytes(l))
                }
                127 => {
                    let mut l = [0u8; 8];
                    self.ws.read_exact(&mut l).unwrap();
                    u64::from_be_bytes(l)
                }
                n => u64::from(n),
            };
            let mut p = vec![0u8; len as usize];
            self.ws.read_exact(&mut p).unwrap();
            if op >= 0x8 {
                assert_ne!(op, 0x8, "chromium closed the DevTools connection");
                continue;
            }
            msg.extend_from_slice(&p);
            if fin {
                return String::from_utf8(msg).unwrap();
            }
        }
    }

    /// Call a DevTools method and return its result (events in between are skipped).
    pub(crate) fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send_frame(&json!({"id": id, "method": method, "params": params}).to_string());
        loop {
            let m: Value = serde_json::from_str(&self.read_message()).unwrap();
            if m["id"] == id {
                assert!(m.get("error").is_none(), "{method}: {m}");
                return m["result"].clone();
            }
        }
    }

    /// Evaluate `expr` in the page and return its value.
    pub(crate) fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    /// Evaluate `expr` until it is true (bounded).
    pub(crate) fn until(&mut self, what: &str, expr: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.eval(expr) != json!(true) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; page text: {}",
                self.eval("document.body.innerText.slice(0, 1500)")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub(crate) fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({ "url": url }));
        self.until("the page to load", "document.readyState === 'complete'");
    }

    pub(crate) fn screenshot(&mut self, name: &str) -> std::path::PathBuf {
        let r = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        );
        let png = decode_base64(r["data"].as_str().unwrap());
        let path = artifacts().join(name);
        std::fs::write(&path, &png).unwrap();
        assert!(
            png.len() > 20_000,
            "{} is {} bytes",
            path.display(),
            png.len()
        );
        println!("screenshot: {}", path.display());
        path
    }
}

pub(crate) fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| *c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for c in bytes.chunks(4) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(val(b)) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..c.len()]);
    }
    out
}

/// The request count in the table's aggregate row.
const TOTAL: &str = "Number((document.querySelector('#request-stats tfoot tr')?.cells[2].textContent || '0').replace(/,/g, ''))";

#[test]
fn the_dashboard_starts_a_run_updates_live_and_stops_it_behind_basic_auth() {
    let chrome_path = chromium();
    let _one = BROWSER.lock().unwrap_or_else(|p| p.into_inner());
    let target = DemoTarget::start(&["--latency", "fixed(5ms)"]);
    let url = format!("{}/api/products", target.url);
    let live = Live::start(&[
        "run",
        "--url",
        &url,
        "-c",
        "2",
        "-z",
        "60s",
        "--web-auth",
        "ops:pw",
    ]);
    let page = format!("http://{}/", live.addr);
    let mut c = Chrome::start(&chrome_path);

    // Without credentials: the page is refused.
    c.navigate(&page);
    assert_eq!(
        c.eval("[document.getElementById('phase') === null, performance.getEntriesByType('navigation')[0].responseStatus]"),
        json!([true, 401])
    );
    c.call("Network.enable", json!({}));
    c.call(
        "Network.setExtraHTTPHeaders",
        json!({"headers": {"Authorization": "Basic b3BzOnB3"}}),
    );
    c.navigate(&page);
    c.until(
        "the waiting state",
        "document.getElementById('phase').textContent === 'waiting'",
    );
    assert_eq!(c.eval("document.getElementById('start').hidden"), false);
    assert_eq!(c.eval("document.getElementById('load-value').value"), "2");
    assert_eq!(
        c.eval("performance.getEntriesByType('resource').every(e => e.name.startsWith(location.origin))"),
        true,
        "nothing is fetched from elsewhere"
    );

    // Start with 3 users from the form.
    c.eval("document.getElementById('load-value').value = '3'; document.getElementById('start').click(); true");
    c.until(
        "3 users running",
        "document.getElementById('phase').textContent === 'running' && document.getElementById('k-users').textContent === '3'",
    );
    c.until("requests in the table", &format!("{TOTAL} > 0"));
    let (n1, u1) = (
        c.eval(TOTAL).as_f64().unwrap(),
        c.eval("Number(document.body.dataset.updates)")
            .as_f64()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(2500));
    let (n2, u2) = (
        c.eval(TOTAL).as_f64().unwrap(),
        c.eval("Number(document.body.dataset.updates)")
            .as_f64()
            .unwrap(),
    );
    assert!(n2 > n1, "requests {n1} then {n2}");
    assert!(
        (2.0..=5.0).contains(&(u2 - u1)),
        "one update per second: {u1} then {u2}"
    );
    let rows = c.eval("document.querySelectorAll('#request-stats tbody tr').length");
    assert_eq!(rows, 1);
    let lines = c.eval(
        "[...document.querySelectorAll('#charts path.series')].filter(p => p.getTotalLength() > 20).map(p => p.closest('figure').id + '/' + p.dataset.label)",
    );
    for l in ["chart-rps/req/s", "chart-latency/p95", "chart-users/users"] {
        assert!(
            lines.as_array().unwrap().iter().any(|x| x == l),
            "{l} not drawn: {lines}"
        );
    }
    c.screenshot("dashboard.png");

    // Change the load, then stop from the page.
    c.eval("document.getElementById('load-value').value = '5'; document.getElementById('apply').click(); true");
    c.until(
        "5 users",
        "document.getElementById('k-users').textContent === '5'",
    );
    c.eval("document.getElementById('stop').click(); true");
    c.until(
        "the end of the run",
        "document.getElementById('phase').textContent === 'finished'",
    );
    assert_eq!(c.eval("document.getElementById('stop').hidden"), true);
    let served = target.stats()["routes"]["GET /api/products"]
        .as_f64()
        .unwrap();
    assert_eq!(c.eval(TOTAL).as_f64().unwrap(), served, "final numbers");
    c.screenshot("dashboard-finished.png");
    interrupt(&live.child);
    let (code, out) = live.wait(Duration::from_secs(20));
    assert_eq!(code, Some(130), "{out}");
}
