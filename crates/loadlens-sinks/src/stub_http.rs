//! Test helper shared by the API stubs ([`crate::datadog::stub`], [`crate::statsig::stub`]):
//! one HTTP/1.1 request read from a keep-alive connection, and an answer written to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};

/// A request line and its headers (names lowercase).
pub(crate) struct Head {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The value of header `name` (lowercase).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The next request's head; `None` when the peer closed the connection, sent something that is
/// not HTTP/1.1, or `stop` was set while waiting (the connection has a read timeout).
pub(crate) fn read_head(r: &mut BufReader<TcpStream>, stop: &AtomicBool) -> Option<Head> {
    let mut line = String::new();
    loop {
        match r.read_line(&mut line) {
            Ok(0) => return None,
            Ok(_) => break,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
            }
            Err(_) => return None,
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    Some(Head {
        method,
        path,
        headers,
    })
}

/// The body after `head`, as sent (`Content-Length` or chunked; none otherwise).
pub(crate) fn read_body(r: &mut BufReader<TcpStream>, head: &Head) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    if let Some(n) = head.get("content-length").and_then(|v| v.parse().ok()) {
        body.resize(n, 0);
        r.read_exact(&mut body).ok()?;
    } else if head
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Some(body)
}

/// Write a JSON answer with `headers`; false when the peer is gone.
pub(crate) fn write_json(
    out: &mut TcpStream,
    status: u16,
    reason: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> bool {
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes()).is_ok() && out.write_all(body).is_ok()
}

/// Accept connections on `listener` (non-blocking) on a thread of its own until `stop` is set,
/// each served by `serve` on a thread of its own with the shared `state`.
pub(crate) fn accept_loop<S: Send + 'static>(
    listener: std::net::TcpListener,
    state: std::sync::Arc<std::sync::Mutex<S>>,
    stop: std::sync::Arc<AtomicBool>,
    serve: fn(TcpStream, &std::sync::Mutex<S>, &AtomicBool),
) {
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((conn, _)) => {
                    let (state, stop) = (state.clone(), stop.clone());
                    std::thread::spawn(move || serve(conn, &state, &stop));
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
            }
        }
    });
}
