//! Coordinated runs: `loadlens coordinator` and N `loadlens run --coordinator URL --workers N`
//! workers, each a separate process with the flags and environment a pod would get, over real
//! HTTP on 127.0.0.1. The merged result must be exact, a lost worker must be told and survived,
//! a global threshold must stop every worker quickly, bad or late workers must be refused, and
//! workers must outlive their coordinator with their own results.
//!
//! Time bounds are measured, and generous enough to hold on a loaded 2-core machine.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use loadlens_core::stats::LatencyHistogram;
use serde_json::Value;

use crate::schema::assert_valid;
use crate::support::*;

/// A child process whose stdout and stderr are collected as they come.
struct Proc {
    child: Child,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
}

fn drain(r: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            let mut s = into.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
}

impl Proc {
    fn spawn(args: &[String], env: &[(&str, &str)]) -> Proc {
        let mut child = Command::new(bin())
            .args(args)
            .envs(env.iter().copied())
            .env_remove("TEST_RUN_ID")
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("LOADLENS_COORDINATOR_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Arc::new(Mutex::new(String::new()));
        let err = Arc::new(Mutex::new(String::new()));
        drain(child.stdout.take().unwrap(), out.clone());
        drain(child.stderr.take().unwrap(), err.clone());
        Proc { child, out, err }
    }

    fn out(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    fn err(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    /// Wait until stdout or stderr holds `needle`.
    fn wait_for(&self, needle: &str, limit: Duration) {
        let t = Instant::now();
        while !self.out().contains(needle) && !self.err().contains(needle) {
            assert!(
                t.elapsed() < limit,
                "`{needle}` not seen within {limit:?}\nstdout:\n{}\nstderr:\n{}",
                self.out(),
                self.err()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for the exit (at most `limit`), giving the exit status and when it was seen.
    fn wait(&mut self, limit: Duration) -> (ExitStatus, Instant) {
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                // Let the reader threads take the last lines.
                let seen = Instant::now();
                std::thread::sleep(Duration::from_millis(100));
                return (s, seen);
            }
            if t.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "still running after {limit:?}\nstdout:\n{}\nstderr:\n{}",
                    self.out(),
                    self.err()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn expect_exit(&mut self, code: i32, limit: Duration) -> Instant {
        let (s, at) = self.wait(limit);
        assert_eq!(
            s.code(),
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            self.out(),
            self.err()
        );
        at
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// A coordinator on a free port; its URL.
fn coordinator(args: &[&str], env: &[(&str, &str)]) -> (Proc, String) {
    let mut all = strings(&["coordinator", "--listen", "127.0.0.1:0", "--no-tui"]);
    all.extend(strings(args));
    let p = Proc::spawn(&all, env);
    p.wait_for("listening on http://", Duration::from_secs(60));
    let out = p.out();
    let url = out
        .lines()
        .find_map(|l| l.strip_prefix("listening on "))
        .unwrap()
        .to_owned();
    (p, url)
}

fn worker(file: &str, url: &str, n: u64, i: u64, json: &str, env: &[(&str, &str)]) -> Proc {
    let args = strings(&[
        "run",
        file,
        "--coordinator",
        url,
        "--workers",
        &n.to_string(),
        "--json",
        json,
        "--no-tui",
    ]);
    let index = i.to_string();
    let mut env = env.to_vec();
    // The index as an Indexed Job gives it.
    env.push(("JOB_COMPLETION_INDEX", &index));
    Proc::spawn(&args, &env)
}

fn scenario(dir: &TempDir, name: &str, host: &str, users: u64, run_time: &str, extra: &str) -> String {
    let text = format!(
        "host: {host}\nload:\n  users: {users}\n  run_time: {run_time}\n{extra}user_types:\n  - name: u\n    tasks:\n      - request: {{ path: /api/products }}\n"
    );
    std::fs::write(dir.path(name), text).unwrap();
    dir.join(name)
}

fn read(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn served(target: &DemoTarget) -> u64 {
    target.stats()["routes"]["GET /api/products"]
        .as_u64()
        .unwrap_or(0)
}

fn count(r: &Value) -> u64 {
    r["aggregate"]["request_count"].as_u64().unwrap()
}

fn time(rfc3339: &str) -> SystemTime {
    humantime::parse_rfc3339(rfc3339).unwrap()
}

const LONG: Duration = Duration::from_secs(120);

#[test]
fn three_workers_and_a_coordinator_merge_exactly() {
    let target = DemoTarget::start(&["--latency", "uniform(1ms,5ms)"]);
    let dir = TempDir::new("coord3");
    let file = scenario(&dir, "s.yaml", &target.url, 7, "3s", "");
    let before = served(&target);
    let merged = dir.join("m.json");
    let (mut c, url) = coordinator(
        &[
            &file,
            "--workers",
            "3",
            "--json",
            &merged,
            "--html",
            &dir.join("m.html"),
            "--csv",
            &dir.join("m"),
            "--junit",
            &dir.join("m.xml"),
            "--summary-md",
            &dir.join("m.md"),
            "--threshold",
            "p99 < 60s",
        ],
        &[],
    );
    let jsons: Vec<String> = (0..3).map(|i| dir.join(&format!("w{i}.json"))).collect();
    let mut ws: Vec<Proc> = (0..3)
        .map(|i| worker(&file, &url, 3, i, &jsons[i as usize], &[]))
        .collect();
    for w in &mut ws {
        w.expect_exit(0, LONG);
        assert!(w.out().contains("sent the result to the coordinator"), "{}", w.out());
    }
    c.expect_exit(0, LONG);
    let results: Vec<Value> = jsons.iter().map(|j| read(j)).collect();
    let m = read(&merged);
    assert_valid(&m);
    let total = count(&m);
    assert!(total > 0);
    assert_eq!(total, results.iter().map(count).sum::<u64>(), "the workers' sum");
    assert_eq!(total, served(&target) - before, "the target's own count");
    assert_eq!(m["workers"].as_array().unwrap().len(), 3);
    assert_eq!(m["load"]["users"], 7);
    assert_eq!(m["thresholds"][0]["passed"], true);
    // Every sample in one histogram: the workers' histograms added.
    let mut all = LatencyHistogram::new();
    for r in &results {
        let h = r["histograms"]["requests"][0]["latency"].as_str().unwrap();
        all.merge(&LatencyHistogram::from_base64(h).unwrap());
    }
    assert_eq!(all.len(), total);
    let p = all.percentiles();
    for (key, want) in [("p50", p.p50), ("p95", p.p95), ("p99", p.p99), ("max", p.max)] {
        assert_eq!(m["aggregate"]["latency_ms"][key].as_f64().unwrap(), want, "{key}");
        assert_eq!(m["requests"][0]["latency_ms"][key].as_f64().unwrap(), want, "{key}");
    }
    assert_eq!(m["thresholds"][0]["observed"].as_f64().unwrap(), p.p99);
    // The users' split: 3 + 2 + 2.
    let users: Vec<u64> = results
        .iter()
        .map(|r| r["series"]["points"][0]["users"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(users.iter().sum::<u64>(), 7, "{users:?}");
    for f in ["m.html", "m_stats.csv", "m.xml", "m.md"] {
        assert!(std::fs::metadata(dir.path(f)).unwrap().len() > 0, "{f}");
    }
    // The live view of the merged run was shown.
    assert!(c.out().contains("3 of 3 workers in"), "{}", c.out());
}
