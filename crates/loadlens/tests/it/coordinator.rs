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
pub(crate) struct Proc {
    pub(crate) child: Child,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn drain(r: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            let mut s = into.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    })
}

impl Proc {
    pub(crate) fn spawn(args: &[String], env: &[(&str, &str)]) -> Proc {
        Proc::spawn_in(None, args, env)
    }

    /// [`Proc::spawn`] inside the network namespace `netns` (`ip netns exec NETNS loadlens …`).
    pub(crate) fn spawn_in(netns: Option<&str>, args: &[String], env: &[(&str, &str)]) -> Proc {
        let mut command = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin()]);
                c
            }
            None => Command::new(bin()),
        };
        let mut child = command
            .args(args)
            .env_remove("TEST_RUN_ID")
            .env_remove("JOB_COMPLETION_INDEX")
            .env_remove("LOADLENS_COORDINATOR_TOKEN")
            .env_remove("DD_API_KEY")
            .env_remove("DATADOG_API_KEY")
            .env_remove("DD_AGENT_HOST")
            .env_remove("STATSIG_CONSOLE_API_KEY")
            .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = Arc::new(Mutex::new(String::new()));
        let err = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            drain(child.stdout.take().unwrap(), out.clone()),
            drain(child.stderr.take().unwrap(), err.clone()),
        ];
        Proc {
            child,
            out,
            err,
            readers,
        }
    }

    pub(crate) fn out(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    pub(crate) fn err(&self) -> String {
        self.err.lock().unwrap().clone()
    }

    /// Wait until stdout or stderr holds `needle`.
    pub(crate) fn wait_for(&self, needle: &str, limit: Duration) {
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
    pub(crate) fn wait(&mut self, limit: Duration) -> (ExitStatus, Instant) {
        let t = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                // Let the reader threads take the last lines: they end at the pipes' end of
                // file (a loaded machine can keep them from it for a while after the exit).
                let seen = Instant::now();
                while !self.readers.iter().all(|r| r.is_finished())
                    && seen.elapsed() < Duration::from_secs(10)
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
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

    pub(crate) fn expect_exit(&mut self, code: i32, limit: Duration) -> Instant {
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

pub(crate) fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// A coordinator on a free port; its URL.
pub(crate) fn coordinator(args: &[&str], env: &[(&str, &str)]) -> (Proc, String) {
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

pub(crate) fn worker(
    file: &str,
    url: &str,
    n: u64,
    i: u64,
    json: &str,
    env: &[(&str, &str)],
) -> Proc {
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

pub(crate) fn scenario(
    dir: &TempDir,
    name: &str,
    host: &str,
    users: u64,
    run_time: &str,
    extra: &str,
) -> String {
    let text = format!(
        "host: {host}\nload:\n  users: {users}\n  run_time: {run_time}\n{extra}user_types:\n  - name: u\n    tasks:\n      - request: {{ path: /api/products }}\n"
    );
    std::fs::write(dir.path(name), text).unwrap();
    dir.join(name)
}

pub(crate) fn read(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub(crate) fn served(target: &DemoTarget) -> u64 {
    target.stats()["routes"]["GET /api/products"]
        .as_u64()
        .unwrap_or(0)
}

pub(crate) fn count(r: &Value) -> u64 {
    r["aggregate"]["request_count"].as_u64().unwrap()
}

/// A coordinator of `n` workers on `file` with `thresholds` (each after `--threshold`): all
/// of them exit 3 (aborted) long before the scenario's 60 s run time, and the merged result
/// is valid, aborted, and names `breached` as the reason. Returns the merged result and the
/// paths of the workers' results.
fn aborted_live(
    dir: &TempDir,
    file: &str,
    n: u64,
    thresholds: &[&str],
    breached: &str,
) -> (Value, Vec<String>) {
    let merged = dir.join("m.json");
    let n_text = n.to_string();
    let mut args = vec![file, "--workers", &n_text, "--json", &merged];
    for t in thresholds {
        args.extend(["--threshold", t]);
    }
    let (mut c, url) = coordinator(&args, &[]);
    let jsons: Vec<String> = (0..n).map(|i| dir.join(&format!("w{i}.json"))).collect();
    let mut ws: Vec<Proc> = (0..n)
        .map(|i| worker(file, &url, n, i, &jsons[i as usize], &[]))
        .collect();
    let t = Instant::now();
    for w in &mut ws {
        w.expect_exit(3, LONG);
    }
    c.expect_exit(3, LONG);
    // Aborted live, long before the 60 s run time.
    assert!(t.elapsed() < Duration::from_secs(40), "{:?}", t.elapsed());
    let m = read(&merged);
    assert_valid(&m);
    assert_eq!(m["run"]["verdict"], "aborted");
    let why = m["run"]["stop_reason"].as_str().unwrap();
    assert!(why.contains(breached), "{why}");
    (m, jsons)
}

/// The coordinator's abort on the merged result's timeline, and every worker's result (read
/// from `jsons`): each was aborted and its load ended within 2 s of that abort. The workers'
/// results are returned for more checks.
pub(crate) fn every_worker_aborted_within_2_s(merged: &Value, jsons: &[String]) -> Vec<Value> {
    let abort = merged["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .unwrap()
                .starts_with("aborting the run on every worker")
        })
        .unwrap_or_else(|| panic!("{:#}", merged["timeline"]));
    let abort_at = time(abort["at"].as_str().unwrap());
    eprintln!(
        "coordinator aborted at {:.2} s of the run",
        abort["elapsed_s"].as_f64().unwrap_or(f64::NAN)
    );
    jsons
        .iter()
        .map(|j| {
            let r = read(j);
            assert_eq!(r["run"]["verdict"], "aborted", "{j}");
            let ended = time(r["run"]["ended_at"].as_str().unwrap());
            let took = ended.duration_since(abort_at).unwrap_or_default();
            eprintln!("{}: stopped {took:?} after the abort", r["load"]["segment"]);
            assert!(took < Duration::from_secs(2), "{j}: {took:?}");
            r
        })
        .collect()
}

pub(crate) fn time(rfc3339: &str) -> SystemTime {
    humantime::parse_rfc3339(rfc3339).unwrap()
}

pub(crate) const LONG: Duration = Duration::from_secs(120);

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
        assert!(
            w.out().contains("sent the result to the coordinator"),
            "{}",
            w.out()
        );
    }
    c.expect_exit(0, LONG);
    let results: Vec<Value> = jsons.iter().map(|j| read(j)).collect();
    let m = read(&merged);
    assert_valid(&m);
    let total = count(&m);
    assert!(total > 0);
    assert_eq!(
        total,
        results.iter().map(count).sum::<u64>(),
        "the workers' sum"
    );
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
    for (key, want) in [
        ("p50", p.p50),
        ("p95", p.p95),
        ("p99", p.p99),
        ("max", p.max),
    ] {
        assert_eq!(
            m["aggregate"]["latency_ms"][key].as_f64().unwrap(),
            want,
            "{key}"
        );
        assert_eq!(
            m["requests"][0]["latency_ms"][key].as_f64().unwrap(),
            want,
            "{key}"
        );
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

#[test]
fn a_worker_killed_mid_run_is_on_the_timeline_and_its_streamed_requests_are_kept() {
    let target = DemoTarget::start(&["--latency", "fixed(2ms)"]);
    let dir = TempDir::new("coordkill");
    let file = scenario(&dir, "s.yaml", &target.url, 6, "6s", "");
    let before = served(&target);
    let merged = dir.join("m.json");
    let (mut c, url) = coordinator(
        &[
            &file,
            "--workers",
            "3",
            "--min-workers",
            "2",
            "--json",
            &merged,
        ],
        &[],
    );
    let jsons: Vec<String> = (0..3).map(|i| dir.join(&format!("w{i}.json"))).collect();
    let mut ws: Vec<Proc> = (0..3)
        .map(|i| worker(&file, &url, 3, i, &jsons[i as usize], &[]))
        .collect();
    c.wait_for("3 of 3 workers in", LONG);
    // Into the load (the start is 2 s after the last join), then the second worker dies.
    ws[1].wait_for("The coordinator starts run", LONG);
    std::thread::sleep(Duration::from_millis(3500));
    ws[1].child.kill().unwrap();
    let killed = Instant::now();
    c.wait_for("worker 2/3 lost", LONG);
    let noticed = killed.elapsed();
    eprintln!("coordinator noticed the killed worker after {noticed:?}");
    assert!(noticed < Duration::from_secs(12), "{noticed:?}");
    ws[0].expect_exit(0, LONG);
    ws[2].expect_exit(0, LONG);
    // The run went on with the other two, and passed (no threshold failed).
    c.expect_exit(0, LONG);
    let m = read(&merged);
    assert_valid(&m);
    let lost: Vec<&str> = m["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|e| e.contains("worker 2/3 lost"))
        .collect();
    assert_eq!(lost.len(), 1, "{:#}", m["timeline"]);
    assert!(lost[0].contains("marked partial"), "{}", lost[0]);
    // Its row says it is partial, with what it streamed.
    let rows = m["workers"].as_array().unwrap();
    let segments: Vec<&str> = rows
        .iter()
        .map(|w| w["segment"].as_str().unwrap())
        .collect();
    assert_eq!(segments, ["1/3", "2/3", "3/3"]);
    let dead = &rows[1];
    assert!(
        dead["file"].as_str().unwrap().contains("lost: partial")
            && dead["stop_reason"].as_str().unwrap().contains("partial"),
        "{dead:#}"
    );
    let streamed = dead["request_count"].as_u64().unwrap();
    assert!(streamed > 0, "{dead:#}");
    // The merged count: the survivors' results and what the dead worker streamed, exactly.
    let survivors = count(&read(&jsons[0])) + count(&read(&jsons[2]));
    assert_eq!(count(&m), survivors + streamed);
    // The target served those, and what the dead worker sent after its last report: at most
    // one interval (1 s) of its requests, plus those in flight when it died (one per user).
    let gap = served(&target) - before - count(&m);
    let per_second = streamed as f64 / dead["duration_s"].as_f64().unwrap();
    eprintln!("dead worker: {streamed} streamed ({per_second:.0}/s), {gap} requests lost with it");
    assert!(
        (gap as f64) <= per_second * 1.5 + 2.0,
        "{gap} requests missing, more than one interval of {per_second:.0}/s"
    );
}

#[test]
fn a_global_threshold_aborts_every_worker_within_2_s() {
    let target = DemoTarget::start(&["--latency", "fixed(2ms)", "--error-rate", "0.5"]);
    let dir = TempDir::new("coordabort");
    let file = scenario(&dir, "s.yaml", &target.url, 6, "60s", "");
    let (m, jsons) = aborted_live(
        &dir,
        &file,
        3,
        &["error_rate < 10%, abort"],
        "error_rate < 10%",
    );
    for r in every_worker_aborted_within_2_s(&m, &jsons) {
        assert!(
            r["run"]["stop_reason"]
                .as_str()
                .unwrap()
                .contains("coordinator: threshold"),
            "{}",
            r["run"]["stop_reason"]
        );
    }
    assert_eq!(m["thresholds"][0]["passed"], false);
    assert_eq!(m["thresholds"][0]["aborted"], true);
}

#[test]
fn a_threshold_scoped_by_tag_is_checked_live_and_aborts_every_worker() {
    let target = DemoTarget::start(&["--latency", "fixed(2ms)"]);
    let dir = TempDir::new("coordtag");
    // Only the `buy` task fails (the demo target has no /missing: 404).
    let text = format!(
        "host: {}\nload:\n  users: 4\n  run_time: 60s\nuser_types:\n  - name: u\n    tasks:\n      - {{ tags: [browse], request: {{ path: /api/products }} }}\n      - {{ tags: [buy], request: {{ path: /missing }} }}\n",
        target.url
    );
    std::fs::write(dir.path("s.yaml"), text).unwrap();
    let file = dir.join("s.yaml");
    let (m, _) = aborted_live(
        &dir,
        &file,
        2,
        &["error_rate{tag:buy} < 10%, abort", "p95{tag:browse} < 60s"],
        "error_rate{tag:buy} < 10%",
    );
    // Judged again at the end on the merged result, with the plan's tags (the workers were
    // given neither threshold).
    let browse = &m["thresholds"][1];
    assert_eq!(browse["scope"], "tag:browse", "{browse:#}");
    assert_eq!(browse["passed"], true, "{browse:#}");
    assert!(browse["observed"].as_f64().is_some(), "{browse:#}");
}

#[test]
fn a_threshold_scoped_by_scenario_is_checked_live_and_every_worker_stops_within_2s() {
    let target = DemoTarget::start(&["--latency", "fixed(2ms)"]);
    let dir = TempDir::new("coordscen");
    // Only the `buy` scenario fails (the demo target has no /missing: 404); `browse` passes.
    let text = format!(
        "host: {}\nuser_types:\n  - name: browser\n    tasks: [{{ request: {{ path: /api/products, name: browse }} }}]\n  - name: buyer\n    tasks: [{{ request: {{ path: /missing, name: buy }} }}]\nscenarios:\n  browse:\n    user_types: [browser]\n    load: {{ users: 4, run_time: 60s }}\n  buy:\n    user_types: [buyer]\n    start_time: 1s\n    load: {{ users: 2, run_time: 60s }}\n",
        target.url
    );
    std::fs::write(dir.path("s.yaml"), text).unwrap();
    let file = dir.join("s.yaml");
    let (m, jsons) = aborted_live(
        &dir,
        &file,
        2,
        &[
            "error_rate{scenario:buy} < 10%, abort",
            "error_rate{scenario:browse} < 10%, abort",
        ],
        "error_rate{scenario:buy} < 10%",
    );
    every_worker_aborted_within_2_s(&m, &jsons);
    // The breach is the `buy` scenario's; `browse` passes, judged on the merged result.
    let t = m["thresholds"].as_array().unwrap();
    assert_eq!(t[0]["passed"], false, "{:#}", t[0]);
    assert_eq!(t[0]["aborted"], true, "{:#}", t[0]);
    assert_eq!(t[1]["passed"], true, "{:#}", t[1]);
    let scen: Vec<&str> = m["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(scen, ["browse", "buy"]);
}

#[test]
fn mismatched_duplicate_and_late_workers_are_refused_with_the_reason() {
    let target = DemoTarget::start(&["--latency", "fixed(1ms)"]);
    let dir = TempDir::new("coordrefuse");
    let file = scenario(&dir, "s.yaml", &target.url, 2, "3s", "");
    let other = scenario(&dir, "other.yaml", &target.url, 3, "3s", "");
    let token = [("LOADLENS_COORDINATOR_TOKEN", "s3cret")];
    let (mut c, url) = coordinator(
        &[
            &file,
            "--workers",
            "2",
            "--min-workers",
            "1",
            "--join-timeout",
            "8s",
            "--json",
            &dir.join("m.json"),
        ],
        &token,
    );
    let refused = |file: &str, n: u64, i: u64, env: &[(&str, &str)], says: &str| {
        let mut w = worker(file, &url, n, i, &dir.join("x.json"), env);
        w.expect_exit(2, LONG);
        assert!(w.err().contains(says), "{says}: {}", w.err());
        assert!(!w.err().contains("s3cret"));
    };
    refused(&file, 2, 0, &[], "wrong or missing token");
    refused(
        &file,
        2,
        0,
        &[("LOADLENS_COORDINATOR_TOKEN", "guess")],
        "wrong or missing token",
    );
    refused(
        &other,
        2,
        0,
        &token,
        "runs another scenario than the coordinator",
    );
    refused(
        &file,
        3,
        0,
        &token,
        "split into 3, but the coordinator waits for 2 workers",
    );
    // Another loadlens version (a hello by hand).
    let body = r#"{"version":"0.0.1","scenario_hash":"x","segment":"1/2","run_id":"r"}"#;
    let reply = post(&url, "/v1/join", body, Some("s3cret"));
    assert!(reply.starts_with("HTTP/1.1 409"), "{reply}");
    assert!(
        reply.contains("runs loadlens 0.0.1 but the coordinator runs"),
        "{reply}"
    );
    // The first worker joins; the same segment again is refused.
    let mut first = worker(&file, &url, 2, 0, &dir.join("w0.json"), &token);
    c.wait_for("1 of 2 workers in", LONG);
    refused(&file, 2, 0, &token, "segment 1/2 has already joined");
    // At the join timeout the run starts with the one (--min-workers 1); segment 2 is late.
    c.wait_for("1 of 2 workers in: the load starts", LONG);
    let mut late = worker(&file, &url, 2, 1, &dir.join("w1.json"), &token);
    late.expect_exit(2, LONG);
    assert!(
        late.err().contains("a late worker is refused"),
        "{}",
        late.err()
    );
    first.expect_exit(0, LONG);
    c.expect_exit(0, LONG);
    let m = read(&dir.join("m.json"));
    assert!(
        m["timeline"]
            .to_string()
            .contains("started without segment(s) 2/2"),
        "{:#}",
        m["timeline"]
    );
    assert!(!c.out().contains("s3cret") && !c.err().contains("s3cret"));
}

#[test]
fn too_few_workers_at_the_join_timeout_refuse_the_start() {
    let dir = TempDir::new("coordjoin");
    let file = scenario(&dir, "s.yaml", "http://127.0.0.1:9", 2, "3s", "");
    let (mut c, url) = coordinator(&[&file, "--workers", "2", "--join-timeout", "3s"], &[]);
    let mut w = worker(&file, &url, 2, 0, &dir.join("w0.json"), &[]);
    c.expect_exit(3, LONG);
    assert!(
        c.err().contains("only 1 of 2 workers joined within 3s"),
        "{}",
        c.err()
    );
    w.expect_exit(3, LONG);
    assert!(
        w.err().contains("did not start the run: only 1 of 2"),
        "{}",
        w.err()
    );
}

#[test]
fn workers_stop_and_keep_their_results_when_the_coordinator_dies() {
    let target = DemoTarget::start(&["--latency", "fixed(2ms)"]);
    let dir = TempDir::new("coorddead");
    let file = scenario(&dir, "s.yaml", &target.url, 4, "60s", "");
    let (mut c, url) = coordinator(&[&file, "--workers", "2"], &[]);
    let jsons: Vec<String> = (0..2).map(|i| dir.join(&format!("w{i}.json"))).collect();
    let mut ws: Vec<Proc> = (0..2)
        .map(|i| worker(&file, &url, 2, i, &jsons[i as usize], &[]))
        .collect();
    for w in &ws {
        w.wait_for("The coordinator starts run", LONG);
    }
    // The start is 2 s after the last join: into the load.
    std::thread::sleep(Duration::from_millis(3500));
    c.child.kill().unwrap();
    let killed = Instant::now();
    for w in &mut ws {
        let at = w.expect_exit(3, LONG);
        let took = at.duration_since(killed);
        eprintln!("worker exited {took:?} after the coordinator was killed");
        assert!(took < Duration::from_secs(20), "{took:?}");
        assert!(w.err().contains("the coordinator at"), "{}", w.err());
    }
    for j in &jsons {
        let r = read(j);
        assert_valid(&r);
        assert!(count(&r) > 0);
        assert_eq!(r["run"]["verdict"], "aborted");
        assert!(
            r["run"]["stop_reason"]
                .as_str()
                .unwrap()
                .contains("coordinator lost"),
            "{}",
            r["run"]["stop_reason"]
        );
    }
}

/// POST `body` to `base` + `path` by hand; the raw answer.
fn post(base: &str, path: &str, body: &str, token: Option<&str>) -> String {
    use std::io::Write as _;
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}
