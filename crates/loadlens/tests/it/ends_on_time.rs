//! Runs whose requests fail before any I/O (a variable with no value, a URL that renders
//! invalid, no file descriptor left) end at their run time with every report, the failures
//! counted by kind. Such runs once spun at 100 % CPU without ever returning to the runtime, and
//! ignored -t, Ctrl-C and SIGTERM. Each run here is bounded by a kill far beyond its -t, so a
//! regression fails instead of hanging the suite.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::schema::assert_valid;
use crate::support::{bin, DemoTarget, TempDir};

/// Far beyond the runs' 2 s: a run that ends does so in about 2 s plus start-up, even on a
/// loaded machine; one that spins never does.
const KILL_AFTER: Duration = Duration::from_secs(60);

/// What a bounded run left behind.
struct Ended {
    code: Option<i32>,
    took: Duration,
    stderr: String,
    json: serde_json::Value,
}

/// Run `sh -c SCRIPT` (`$LOADLENS` is the binary) with its output in `dir`; kill it after
/// [`KILL_AFTER`] and fail.
fn run_bounded(dir: &TempDir, script: &str) -> Ended {
    let out = std::fs::File::create(dir.path("stdout")).unwrap();
    let err = std::fs::File::create(dir.path("stderr")).unwrap();
    let started = Instant::now();
    let mut child = Command::new("sh")
        .args(["-c", script])
        .env("LOADLENS", bin())
        .env_remove("TEST_RUN_ID")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start sh");
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > KILL_AFTER {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the run did not end within {KILL_AFTER:?} (-t 2s): {}",
                std::fs::read_to_string(dir.path("stderr")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = started.elapsed();
    let stderr = std::fs::read_to_string(dir.path("stderr")).unwrap();
    let text = std::fs::read_to_string(dir.path("r.json"))
        .unwrap_or_else(|e| panic!("no JSON result ({e}): {stderr}"));
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_valid(&json);
    Ended {
        code: status.code(),
        took,
        stderr,
        json,
    }
}

/// The run ended by its run time, exit 0 (no thresholds), in about its 2 s.
#[track_caller]
fn assert_ended_on_time(e: &Ended) {
    assert_eq!(e.code, Some(0), "{}", e.stderr);
    assert_eq!(e.json["run"]["stop_reason"], "run time elapsed");
    let d = e.json["run"]["duration_s"].as_f64().unwrap();
    // The load stops at 2 s; the rest is the graceful stop, bounded by --stop-timeout 2s.
    assert!((2.0..6.0).contains(&d), "ran {d} s for -t 2s");
    assert!(e.took < KILL_AFTER, "{:?}", e.took);
}

fn scenario(dir: &TempDir, text: &str) -> String {
    let file = dir.join("s.yaml");
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn a_login_whose_capture_fails_ends_on_time_with_the_failures_counted() {
    let target = DemoTarget::start(&["--latency", "0"]);
    let dir = TempDir::new("login-capture");
    // The capture fails, so every iteration's body uses a variable with no value: each request
    // fails before it is sent. More users than CPUs, no think time.
    let file = scenario(
        &dir,
        r#"
user_types:
  - name: shopper
    on_start:
      - request: { method: POST, path: /api/v1/login, capture: [{ as: token, json: "$.no_such_field" }] }
    tasks:
      - request: { method: POST, path: /api/v1/orders, name: order, body: '{"token": "{{ token }}"}' }
"#,
    );
    let e = run_bounded(
        &dir,
        &format!(
            "exec \"$LOADLENS\" run {file} -H {} -u 8 -t 2s --stop-timeout 2s --json {}",
            target.url,
            dir.join("r.json")
        ),
    );
    assert_ended_on_time(&e);
    let request = e.json["errors_by_kind"]["request"].as_u64().unwrap();
    assert!(request > 0, "{}", e.json["errors_by_kind"]);
    let order = e.json["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "order")
        .unwrap();
    assert_eq!(order["failure_count"].as_u64(), Some(request));
    assert!(
        e.json["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("variable `token` has no value"),
        "{}",
        e.json["errors"]
    );
}

#[test]
fn a_url_that_renders_invalid_ends_on_time_and_its_long_messages_are_cut() {
    let target = DemoTarget::start(&["--latency", "0"]);
    let dir = TempDir::new("invalid-url");
    // A 100 KB path with a space in it, different on every iteration: every failure message
    // is unique and quotes the URL.
    let file = scenario(
        &dir,
        &format!(
            "vars: {{ long: \"a b{}\" }}\nuser_types:\n  - name: u\n    tasks:\n      - request: {{ path: \"/{{{{ iteration }}}}/{{{{ long }}}}\", name: bad }}\n",
            "x".repeat(100_000)
        ),
    );
    let e = run_bounded(
        &dir,
        &format!(
            "exec \"$LOADLENS\" run {file} -H {} -u 8 -t 2s --stop-timeout 2s --json {}",
            target.url,
            dir.join("r.json")
        ),
    );
    assert_ended_on_time(&e);
    let failures = e.json["aggregate"]["failure_count"].as_u64().unwrap();
    assert!(failures > 0);
    // Every failure is counted by kind, also those past the catalogue's cap.
    assert_eq!(e.json["errors_by_kind"]["request"].as_u64(), Some(failures));
    let errors = e.json["errors"].as_array().unwrap();
    assert!(errors.len() <= 500, "{}", errors.len());
    for err in errors {
        let m = err["message"].as_str().unwrap();
        assert!(m.len() <= 512 && m.ends_with('…'), "{} bytes", m.len());
    }
    let size = std::fs::metadata(dir.path("r.json")).unwrap().len();
    assert!(size < 2_000_000, "the JSON result has {size} bytes");
}

#[test]
fn the_descriptor_warning_counts_only_this_segments_users() {
    // 100 users in 4 segments: this process runs 25 of them, which 64 descriptors hold, so
    // there is nothing to warn about and no connection fails for want of one.
    let target = DemoTarget::start(&["--latency", "0"]);
    let dir = TempDir::new("emfile-segment");
    let e = run_bounded(
        &dir,
        &format!(
            "ulimit -n 64 && exec \"$LOADLENS\" run --url {}/ -c 100 --segment 1/4 -z 2s --json {}",
            target.url,
            dir.join("r.json")
        ),
    );
    assert_ended_on_time(&e);
    assert!(!e.stderr.contains("file descriptors"), "{}", e.stderr);
    assert_eq!(
        e.json["errors_by_kind"]["resource"].as_u64().unwrap_or(0),
        0
    );
    assert!(e.json["aggregate"]["request_count"].as_u64().unwrap() > 0);
}

#[test]
fn out_of_file_descriptors_ends_on_time_with_resource_failures_and_a_warning() {
    let target = DemoTarget::start(&["--latency", "0"]);
    let dir = TempDir::new("emfile");
    // 64 descriptors, soft and hard: 100 users cannot all connect, and the limit cannot be
    // raised.
    let e = run_bounded(
        &dir,
        &format!(
            "ulimit -n 64 && exec \"$LOADLENS\" run --url {}/ -c 100 -z 2s --stop-timeout 2s --json {}",
            target.url,
            dir.join("r.json")
        ),
    );
    assert_ended_on_time(&e);
    assert!(
        e.stderr.contains("warning: 100 users need about") && e.stderr.contains("may open only 64"),
        "{}",
        e.stderr
    );
    let by_kind = &e.json["errors_by_kind"];
    let resource = by_kind["resource"].as_u64().unwrap_or(0);
    assert!(resource > 0, "{by_kind}");
    assert!(
        e.json["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Too many open files"),
        "{}",
        e.json["errors"]
    );
    // The users that got a descriptor did their work.
    let ok = e.json["aggregate"]["request_count"].as_u64().unwrap()
        - e.json["aggregate"]["failure_count"].as_u64().unwrap();
    assert!(ok > 0, "{}", e.json["aggregate"]);
}

#[test]
fn a_low_soft_descriptor_limit_is_raised_to_the_hard_one() {
    let target = DemoTarget::start(&["--latency", "0"]);
    let dir = TempDir::new("raise-nofile");
    // Only the soft limit is lowered; the hard one (far above 200 here and in CI) allows more.
    let e = run_bounded(
        &dir,
        &format!(
            "ulimit -S -n 64 && exec \"$LOADLENS\" run --url {}/ -c 100 -z 2s --stop-timeout 2s --json {}",
            target.url,
            dir.join("r.json")
        ),
    );
    assert_ended_on_time(&e);
    assert!(!e.stderr.contains("file descriptors"), "{}", e.stderr);
    assert_eq!(
        e.json["aggregate"]["failure_count"], 0,
        "{}",
        e.json["errors"]
    );
}

#[test]
fn sigterm_stops_a_run_whose_requests_fail_before_any_io() {
    let target = DemoTarget::start(&["--latency", "0"]);
    let dir = TempDir::new("sigterm-spin");
    let file = scenario(
        &dir,
        "vars: { bad: \"a b\" }\nuser_types:\n  - name: u\n    tasks:\n      - request: { path: \"/{{ bad }}\", name: bad }\n",
    );
    let out = std::fs::File::create(dir.path("stdout")).unwrap();
    let mut child = Command::new(bin())
        .args(["run", &file, "-H", &target.url, "-u", "8", "-t", "10m"])
        .args(["--stop-timeout", "2s", "--json", &dir.join("r.json")])
        .env_remove("TEST_RUN_ID")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The banner is printed as the run starts; from then on the users spin on their failures.
    let started = Instant::now();
    while !std::fs::read_to_string(dir.path("stdout"))
        .unwrap()
        .contains("loadlens ")
    {
        assert!(started.elapsed() < KILL_AFTER, "no banner");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    crate::support::send_signal(child.id(), "TERM");
    let termed = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if termed.elapsed() > KILL_AFTER {
            let _ = child.kill();
            let _ = child.wait();
            panic!("SIGTERM did not stop the run within {KILL_AFTER:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(130));
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("r.json")).unwrap()).unwrap();
    assert_valid(&j);
    assert_eq!(j["run"]["stop_reason"], "interrupted");
    assert!(j["errors_by_kind"]["request"].as_u64().unwrap() > 0);
}
