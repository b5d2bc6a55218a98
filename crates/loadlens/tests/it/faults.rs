//! The fault matrix: targets on 127.0.0.1:0 that misbehave on a raw socket (resets, stalls,
//! endless and compressed bodies, malformed heads, redirect loops), each loaded by the real
//! binary for about a second with a short request timeout. Whatever the target does, the run
//! must end on time, exit 0, write its JSON result, count every request as failed with the
//! kind a user would expect, and keep its memory bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::schema::assert_valid;
use crate::support::*;

/// How a target misbehaves, once a request head has arrived (or at once, for resets).
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Close with a reset before reading anything.
    ResetAfterAccept,
    /// Send half a response head, then reset.
    ResetMidHead,
    /// Read the request and never answer.
    StallBeforeHead,
    /// Promise 1 MB, send 5,000 bytes, then nothing.
    StallMidBody,
    /// A body without length that never ends.
    EndlessPlain,
    /// A chunked body that never ends.
    EndlessChunked,
    /// A gzip body (stored blocks: as fast as the wire) that never ends.
    EndlessGzip,
    /// 4 GiB of zeros in 4 MB of gzip.
    GzipBomb,
    /// A status line whose code is not a number.
    MalformedStatus,
    /// A header line without a colon.
    MalformedHeader,
    /// A chunk size that is not hexadecimal.
    BadChunked,
    /// `Content-Length: 100`, 3 bytes, then a clean close.
    ShortBody,
    /// `302` to itself, on every request (keep-alive).
    RedirectLoop,
    /// `100 Continue`, then nothing.
    InformationalThenNothing,
}

/// A misbehaving target; its threads end when loadlens closes their connections.
struct Target {
    url: String,
}

impl Target {
    fn start(fault: Fault) -> Target {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", l.local_addr().unwrap());
        let bomb = Arc::new(matches!(fault, Fault::GzipBomb).then(gzip_bomb));
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { return };
                let bomb = bomb.clone();
                std::thread::spawn(move || serve(conn, fault, bomb.as_ref().as_deref()));
            }
        });
        Target { url }
    }
}

/// A gzip body of 4,096 members of 1 MiB of zeros each (a valid multi-member stream, built
/// without compressing 4 GiB).
fn gzip_bomb() -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(&vec![0u8; 1 << 20]).unwrap();
    e.finish().unwrap().repeat(4096)
}

fn serve(mut s: TcpStream, fault: Fault, bomb: Option<&[u8]>) {
    use Fault::*;
    // Closing a socket with unread data makes the kernel send a reset instead of a FIN.
    let reset = |s: TcpStream| {
        let _ = s.peek(&mut [0u8; 1]);
        drop(s);
    };
    match fault {
        ResetAfterAccept => return reset(s),
        ResetMidHead => {
            let _ = s.peek(&mut [0u8; 1]);
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Le");
            return reset(s);
        }
        _ => {}
    }
    let mut reader = BufReader::new(s.try_clone().unwrap());
    while read_head(&mut reader) {
        let head: &[u8] = match fault {
            RedirectLoop => b"HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n",
            StallBeforeHead | ResetAfterAccept | ResetMidHead => b"",
            StallMidBody => b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n",
            EndlessPlain => b"HTTP/1.1 200 OK\r\n\r\n",
            EndlessChunked => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            EndlessGzip => b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n",
            GzipBomb => b"",
            MalformedStatus => b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
            MalformedHeader => {
                b"HTTP/1.1 200 OK\r\nthis line has no colon\r\nContent-Length: 0\r\n\r\n"
            }
            BadChunked => {
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
            }
            ShortBody => b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc",
            InformationalThenNothing => b"HTTP/1.1 100 Continue\r\n\r\n",
        };
        if s.write_all(head).is_err() {
            return;
        }
        let block = [b'x'; 64 << 10];
        let written = match fault {
            RedirectLoop => continue,
            StallMidBody => s.write_all(&[b'y'; 5000]),
            EndlessPlain => loop {
                if let Err(e) = s.write_all(&block) {
                    break Err(e);
                }
            },
            EndlessChunked => loop {
                let mut chunk = format!("{:x}\r\n", block.len()).into_bytes();
                chunk.extend_from_slice(&block);
                chunk.extend_from_slice(b"\r\n");
                if let Err(e) = s.write_all(&chunk) {
                    break Err(e);
                }
            },
            EndlessGzip => {
                let mut gz = flate2::write::GzEncoder::new(&s, flate2::Compression::none());
                loop {
                    if let Err(e) = gz.write_all(&block) {
                        break Err(e);
                    }
                }
            }
            GzipBomb => {
                // 16 times the 4 GiB bomb: 64 GiB decoded. Once (4 GiB) decoded within the
                // 500 ms timeout on a fast idle core, and the request then passed.
                const TIMES: usize = 16;
                let body = bomb.unwrap();
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
                    body.len() * TIMES
                );
                s.write_all(head.as_bytes())
                    .and_then(|_| (0..TIMES).try_for_each(|_| s.write_all(body)))
            }
            ShortBody => {
                // A clean close (FIN) before the promised length.
                let _ = s.shutdown(std::net::Shutdown::Write);
                Ok(())
            }
            _ => Ok(()),
        };
        if written.is_err() {
            return;
        }
        // Hold the connection until loadlens gives up on it.
        let _ = reader.read_to_end(&mut Vec::new());
        return;
    }
}

/// Read one request head; false when the connection ended first.
fn read_head(r: &mut BufReader<TcpStream>) -> bool {
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return false,
            Ok(_) if line == "\r\n" => return true,
            Ok(_) => {}
        }
    }
}

/// What one run did.
struct Run {
    code: Option<i32>,
    took: Duration,
    /// The child's peak resident memory (VmHWM), in MiB, as last seen in /proc while it ran.
    peak_mb: f64,
    out: String,
    json: serde_json::Value,
}

/// Run loadlens with `args` plus `--json` (and `env`), watching its memory until it exits.
fn run_watched(args: &[&str], env: &[(&str, &str)]) -> Run {
    let dir = TempDir::new("faults");
    let json = dir.join("r.json");
    let start = Instant::now();
    let mut child = Command::new(bin())
        .args(args)
        .args(["--json", &json])
        .env_remove("TEST_RUN_ID")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain the pipes on threads so that output can never block the child.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file) {
            let hwm = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
            peak_kb = peak_kb.max(hwm.unwrap_or(0));
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("loadlens {args:?} still ran after 60 s and was killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = start.elapsed();
    let out = format!(
        "{}{}",
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default()
    );
    let json = std::fs::read_to_string(&json)
        .unwrap_or_else(|e| panic!("no JSON result ({e}); loadlens printed:\n{out}"));
    Run {
        code: status.code(),
        took,
        peak_mb: peak_kb as f64 / 1024.0,
        out,
        json: serde_json::from_str(&json).unwrap(),
    }
}

/// Load `fault` for 1 s with 2 users and a 500 ms timeout (with a body check when `check`),
/// and check that every request failed with `kind`. Returns the run for more checks.
fn matrix_case(fault: Fault, check: bool, kind: &str) -> Run {
    matrix_case_with(fault, check, kind, &[], &[])
}

/// [`matrix_case`] with more arguments and environment variables.
fn matrix_case_with(
    fault: Fault,
    check: bool,
    kind: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Run {
    let target = Target::start(fault);
    let dir = TempDir::new("faults-scenario");
    let scenario = dir.join("s.yaml");
    let url_args;
    let args: Vec<&str> = if check {
        // A check on the body: the client must keep it, up to max_body_size.
        std::fs::write(
            &scenario,
            format!(
                "host: {}\nuser_types:\n  - name: u\n    tasks:\n      - request: {{ path: /, check: [{{ body_contains: needle }}] }}\nload: {{ users: 2, run_time: 1s }}\nclient: {{ timeout: 500ms }}\n",
                target.url.trim_end_matches('/')
            ),
        )
        .unwrap();
        vec!["run", &scenario]
    } else {
        url_args = [
            "run",
            "--url",
            &target.url,
            "-c",
            "2",
            "-z",
            "1s",
            "--timeout",
            "500ms",
        ];
        url_args.to_vec()
    };
    let args = [&args[..], extra].concat();
    let run = run_watched(&args, env);
    let what = format!("{fault:?} (check: {check})");
    assert_eq!(run.code, Some(0), "{what}: exit code\n{}", run.out);
    // 1 s of load, a 500 ms timeout, start-up and reports: far less than this even on a
    // loaded machine, and far less than a hang.
    assert!(
        run.took < Duration::from_secs(20),
        "{what}: took {:?}",
        run.took
    );
    let j = &run.json;
    assert_valid(j);
    let agg = &j["aggregate"];
    let requests = agg["request_count"].as_u64().unwrap();
    assert!(requests >= 2, "{what}: {requests} requests\n{}", run.out);
    assert_eq!(
        agg["failure_count"].as_u64(),
        Some(requests),
        "{what}: every request fails\n{}",
        run.out
    );
    let kinds = &j["errors_by_kind"];
    let count = |k: &str| kinds[k].as_u64().unwrap_or(0);
    if kind == "body_too_large" {
        // On a machine whose CPUs are busy with other work, decoding up to the limit can take
        // longer than the 500 ms timeout: such a request times out first. Never another kind.
        assert!(count(kind) >= 1, "{what}: kinds {kinds}\n{}", run.out);
        assert_eq!(
            count(kind) + count("timeout"),
            requests,
            "{what}: kinds {kinds}\n{}",
            run.out
        );
    } else {
        assert_eq!(count(kind), requests, "{what}: kinds {kinds}\n{}", run.out);
    }
    eprintln!(
        "{what}: {requests} requests, all {kind}; {} bytes received; peak RSS {:.1} MiB; ended after {:.1} s",
        agg["bytes_received"],
        run.peak_mb,
        run.took.as_secs_f64()
    );
    run
}

/// Peak memory when no body is kept: the process itself (about 20 MiB here) with room to
/// spare, and far below what buffering whole bodies reaches in a second.
const COUNTING_BOUND_MB: f64 = 64.0;
/// Peak memory when 2 users keep bodies up to the default 4 MiB `max_body_size`.
const KEEPING_BOUND_MB: f64 = 150.0;

#[track_caller]
fn assert_memory_bounded(run: &Run, bound_mb: f64, what: &str) {
    assert!(
        run.peak_mb > 1.0 && run.peak_mb < bound_mb,
        "{what}: peak RSS {:.0} MiB (bound {bound_mb} MiB)",
        run.peak_mb
    );
}

#[test]
fn resets_are_counted_as_resets() {
    matrix_case(Fault::ResetAfterAccept, false, "reset");
    matrix_case(Fault::ResetMidHead, false, "reset");
    matrix_case(Fault::ShortBody, false, "reset");
}

#[test]
fn stalls_end_at_the_request_timeout() {
    matrix_case(Fault::StallBeforeHead, false, "timeout");
    matrix_case(Fault::InformationalThenNothing, false, "timeout");
    let run = matrix_case(Fault::StallMidBody, false, "timeout");
    // What arrived before the timeout is counted (the head and 5,000 body bytes per request).
    let received = run.json["aggregate"]["bytes_received"].as_u64().unwrap();
    let requests = run.json["aggregate"]["request_count"].as_u64().unwrap();
    assert!(
        received >= 5000 * requests,
        "{received} bytes for {requests} requests"
    );
}

#[test]
fn endless_bodies_nobody_reads_are_counted_until_the_timeout_in_flat_memory() {
    for fault in [
        Fault::EndlessGzip,
        Fault::EndlessPlain,
        Fault::EndlessChunked,
    ] {
        let run = matrix_case(fault, false, "timeout");
        assert_memory_bounded(&run, COUNTING_BOUND_MB, &format!("{fault:?}"));
        let received = run.json["aggregate"]["bytes_received"].as_u64().unwrap();
        assert!(
            received > 1 << 20,
            "{fault:?}: only {received} bytes counted"
        );
    }
}

#[test]
fn bodies_a_check_needs_stop_at_max_body_size() {
    for fault in [Fault::EndlessPlain, Fault::EndlessGzip, Fault::GzipBomb] {
        let run = matrix_case(fault, true, "body_too_large");
        assert_memory_bounded(&run, KEEPING_BOUND_MB, &format!("{fault:?} with a check"));
        assert!(
            run.out
                .contains("body_too_large: response body larger than max_body_size (4 MiB)"),
            "{}",
            run.out
        );
    }
    // Nobody reads the bomb here: it is decoded only to be counted, never held.
    let run = matrix_case(Fault::GzipBomb, false, "timeout");
    assert_memory_bounded(&run, COUNTING_BOUND_MB, "GzipBomb");
}

#[test]
fn broken_http_is_a_protocol_failure() {
    matrix_case(Fault::MalformedStatus, false, "protocol");
    matrix_case(Fault::MalformedHeader, false, "protocol");
    matrix_case(Fault::BadChunked, false, "protocol");
}

#[test]
fn a_redirect_loop_fails_as_too_many_redirects() {
    let run = matrix_case(Fault::RedirectLoop, false, "too_many_redirects");
    assert!(run.out.contains("more than 10 redirects"), "{}", run.out);
}

#[test]
fn max_body_size_comes_from_the_flag_or_its_env_twin() {
    let flag = matrix_case_with(
        Fault::EndlessChunked,
        true,
        "body_too_large",
        &["--max-body-size", "64KiB"],
        &[],
    );
    assert!(
        flag.out.contains("larger than max_body_size (64 KiB)"),
        "{}",
        flag.out
    );
    let env = matrix_case_with(
        Fault::EndlessChunked,
        true,
        "body_too_large",
        &[],
        &[("LOADLENS_MAX_BODY_SIZE", "1MiB")],
    );
    assert!(
        env.out.contains("larger than max_body_size (1 MiB)"),
        "{}",
        env.out
    );
    let out = crate::support::run(&[
        "run",
        "--url",
        "http://127.0.0.1:9/",
        "--max-body-size",
        "4 lots",
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("invalid size `4 lots`"),
        "{}",
        stderr(&out)
    );
}

/// A response that never ends and no request timeout to end it: at the stop, the requests
/// still in flight get the stop timeout, then are cut off — and counted as `interrupted`
/// failures with the time they took, not lost (a run that ends with "0 requests" after
/// 2 users spent 3 s on the target was the bug).
#[test]
fn requests_cut_off_at_the_stop_timeout_are_counted_as_interrupted() {
    let target = Target::start(Fault::EndlessPlain);
    let run = run_watched(
        &[
            "run",
            "--url",
            &target.url,
            "-c",
            "2",
            "-z",
            "1s",
            "--stop-timeout",
            "1s",
        ],
        &[],
    );
    assert_eq!(run.code, Some(0), "{}", run.out);
    assert!(run.took < Duration::from_secs(20), "took {:?}", run.took);
    let j = &run.json;
    assert_valid(j);
    let agg = &j["aggregate"];
    // Each of the 2 users has its one request in flight when the load stops.
    assert_eq!(agg["request_count"].as_u64(), Some(2), "{}", run.out);
    assert_eq!(agg["failure_count"].as_u64(), Some(2), "{}", run.out);
    assert_eq!(
        j["errors_by_kind"]["interrupted"].as_u64(),
        Some(2),
        "{}",
        j["errors_by_kind"]
    );
    // They took the run time plus the stop timeout, about 2 s: not 0.
    let max_ms = agg["max_ms"].as_f64().or(agg["latency_ms"]["max"].as_f64());
    assert!(
        max_ms.is_some_and(|m| m >= 1_900.0),
        "latency of the cut-off requests: {}",
        agg
    );
    assert!(run.out.contains("interrupted"), "{}", run.out);
}
