//! `--csv` against a real Locust 2.x (PyPI `locust`, pinned and installed by `scripts/test`
//! into `~/.cache/loadlens-locust`): both run the same load against the same local server
//! with deterministic answers, and their CSV files are compared. Headers and line ends must be
//! identical byte for byte; rows must be of the same kinds, in the same order, with every field
//! in the same format (a whole number, a float as Python prints it, six decimals, `N/A`, a UTC
//! time). The numbers themselves differ (timing) and are not compared.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use crate::otel::peer;
use crate::support::{bin, stderr, TempDir};

/// A server on 127.0.0.1: `/fail` answers 500, anything else 200, each with the body `ok`.
fn target() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let fail = line.split(' ').nth(1).is_some_and(|p| p == "/fail");
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        if h == "\r\n" {
                            break;
                        }
                    }
                    let status = if fail {
                        "500 Internal Server Error"
                    } else {
                        "200 OK"
                    };
                    let answer =
                        format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok");
                    if conn.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// The format of one CSV field.
fn kind(field: &str) -> &'static str {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if field.is_empty() {
        return "empty";
    }
    if field == "N/A" {
        return "N/A";
    }
    if digits(field) {
        return "whole";
    }
    if let Some((int, frac)) = field.split_once('.') {
        if digits(int) && frac.len() == 6 && digits(frac) {
            // Six decimals is also a float that happens to have six: told apart by column.
            return "six decimals";
        }
        let frac = frac.split(['e', 'E']).next().unwrap_or_default();
        if digits(int) && digits(frac) {
            return "float";
        }
    }
    let b = field.as_bytes();
    if field.len() == 20 && b[4] == b'-' && b[10] == b'T' && field.ends_with('Z') {
        return "utc";
    }
    "text"
}

/// A file's lines (each must end in `\r\n`, as Python's csv module writes), split in fields.
fn rows(path: &Path) -> (String, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(text.ends_with("\r\n"), "{}: {text:?}", path.display());
    let lines: Vec<&str> = text.split_terminator("\r\n").collect();
    for l in &lines {
        assert!(!l.contains('\n'), "{}: a bare \\n in {l:?}", path.display());
    }
    let header = format!("{}\r\n", lines[0]);
    let body = lines[1..]
        .iter()
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    (header, body)
}

/// The formats of a row's fields; a six-decimal float where Python prints a float is a float.
fn signature(row: &[String]) -> Vec<&'static str> {
    row.iter().map(|f| kind(f)).collect()
}

/// Same formats, field by field, in a file whose header line is `header`. A median is a whole
/// number unless it falls outside the exact minimum and maximum, which both tools then write
/// (a float): which of the two depends on each run's timings, so either is accepted there.
fn same_formats(file: &str, header: &str, what: &str, locust: &[String], ours: &[String]) {
    let (l, o) = (signature(locust), signature(ours));
    assert_eq!(l.len(), o.len(), "{file} {what}: {locust:?} vs {ours:?}");
    let columns: Vec<&str> = header.trim_end().split(',').collect();
    for (i, (a, b)) in l.iter().zip(&o).enumerate() {
        let median = columns
            .get(i)
            .is_some_and(|c| c.ends_with("Median Response Time"));
        let number = |k: &str| matches!(k, "whole" | "float" | "six decimals");
        let same = a == b
            || matches!((*a, *b), ("float", "six decimals") | ("six decimals", "float"))
            || (median && number(a) && number(b))
            // The text of an error is each tool's own.
            || (*a == "text" && *b == "text");
        assert!(
            same,
            "{file} {what}, column {i}: Locust writes {a} ({:?}), loadlens {b} ({:?})\nLocust:   {locust:?}\nloadlens: {ours:?}",
            locust[i], ours[i]
        );
    }
}

#[test]
fn csv_files_are_what_locust_writes() {
    let locust = peer(
        "LOADLENS_LOCUST",
        ".cache/loadlens-locust/bin/locust",
        "Locust (python3 -m venv ~/.cache/loadlens-locust && ~/.cache/loadlens-locust/bin/pip install locust==2.47.0)",
    );
    let url = target();
    let dir = TempDir::new("locust");
    std::fs::write(
        dir.path("locustfile.py"),
        "from locust import HttpUser, task, constant\n\
         class U(HttpUser):\n    wait_time = constant(0.05)\n\
         \x20   @task(3)\n    def ok(self): self.client.get('/ok')\n\
         \x20   @task\n    def fail(self): self.client.get('/fail')\n",
    )
    .unwrap();
    let out = Command::new(&locust)
        .args([
            "-f",
            &dir.join("locustfile.py"),
            "--headless",
            "-u",
            "2",
            "-r",
            "2",
        ])
        .args([
            "-t",
            "3s",
            "-H",
            &url,
            "--csv",
            &dir.join("locust"),
            "--only-summary",
        ])
        .current_dir(&dir.0)
        .output()
        .unwrap();
    // Locust exits 1 when a request failed, as here.
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "locust: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        dir.path("s.yaml"),
        format!(
            "host: {url}\nuser_types:\n  - name: u\n    wait: constant(0.05)\n    tasks:\n      \
             - {{ weight: 3, request: {{ path: /ok }} }}\n      - {{ weight: 1, request: {{ path: /fail }} }}\n"
        ),
    )
    .unwrap();
    let out = Command::new(bin())
        .args(["run", &dir.join("s.yaml"), "-u", "2", "-r", "2", "-t", "3s"])
        .args(["--headless", "--csv", &dir.join("ll")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    for file in ["stats", "stats_history", "failures", "exceptions"] {
        let (lh, lrows) = rows(&dir.path(&format!("locust_{file}.csv")));
        let (oh, orows) = rows(&dir.path(&format!("ll_{file}.csv")));
        assert_eq!(oh, lh, "_{file}.csv header, byte for byte");
        match file {
            "stats" => {
                // One row per request, sorted by name, then the aggregate: same kinds, same
                // order, same formats.
                let names = |r: &[Vec<String>]| {
                    r.iter()
                        .map(|r| (r[0].clone(), r[1].clone()))
                        .collect::<Vec<_>>()
                };
                assert_eq!(names(&orows), names(&lrows), "_stats.csv rows");
                for (l, o) in lrows.iter().zip(&orows) {
                    same_formats("_stats.csv", &oh, &o[1], l, o);
                }
            }
            "stats_history" => {
                for r in &orows {
                    assert_eq!((&r[2][..], &r[3][..]), ("", "Aggregated"), "{r:?}");
                    assert!(
                        r.iter().all(|f| !f.is_empty()) || r[2].is_empty(),
                        "every percentile and total filled: {r:?}"
                    );
                    assert!(r[6..].iter().all(|f| !f.is_empty()), "{r:?}");
                }
                // One row per second: no timestamp twice (the last row was duplicated).
                let stamps: Vec<&String> = orows.iter().map(|r| &r[0]).collect();
                assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");
                assert!(orows.len() >= 2, "{orows:?}");
                // Rows with requests in the interval, in both: the same formats.
                let with_data = |r: &&Vec<String>| r[6] != "N/A";
                let l = lrows
                    .iter()
                    .rfind(with_data)
                    .expect("a Locust row with data");
                for o in orows.iter().filter(with_data) {
                    same_formats("_stats_history.csv", &oh, &o[0], l, o);
                }
            }
            "failures" => {
                assert_eq!(orows.len(), 1, "{orows:?}");
                assert_eq!(lrows.len(), 1, "{lrows:?}");
                assert_eq!((&orows[0][0], &orows[0][1]), (&lrows[0][0], &lrows[0][1]));
                same_formats("_failures.csv", &oh, "/fail", &lrows[0], &orows[0]);
            }
            _ => assert_eq!(orows, lrows, "_exceptions.csv: no exceptions in either"),
        }
    }
}
