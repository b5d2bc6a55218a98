//! Load settings from flags and files: what cannot run is an input error (exit 2, one clear
//! line, located in files) before anything is allocated, `validate` rejects what `run` rejects,
//! and flags combine with the file without surprises (`--stages` define the run's length).

use std::time::Instant;

use crate::schema::assert_valid;
use crate::support::{run, stderr, DemoTarget, TempDir};

/// Nothing listens there; none of these runs gets far enough to connect.
const NOWHERE: &str = "http://127.0.0.1:9/";

/// `args` exit 2 at once with one line on stderr containing every one of `says`.
#[track_caller]
fn rejected(args: &[&str], says: &[&str]) {
    let started = Instant::now();
    let out = run(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    for s in says {
        assert!(err.contains(s), "{args:?}: {err}");
    }
    // clap adds a hint line to the errors it finds itself.
    let lines = err
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("For more information"));
    assert_eq!(lines.count(), 1, "{args:?}: {err}");
    assert!(
        started.elapsed().as_secs() < 30,
        "{args:?} took {:?}",
        started.elapsed()
    );
}

fn file(dir: &TempDir, name: &str, load: &str) -> String {
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "user_types:\n  - name: u\n    tasks:\n      - request: {{ path: /x, name: x }}\nload: {load}\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn absurd_loads_are_rejected_before_anything_is_allocated() {
    rejected(
        &["run", "--url", NOWHERE, "-c", "10000000", "-z", "1s"],
        &["-c) is 10000000, above the limit of 1000000 users"],
    );
    rejected(
        &["run", "--url", NOWHERE, "-c", "18446744073709551615"],
        &["18446744073709551615, above the limit"],
    );
    rejected(
        &[
            "run",
            "--url",
            NOWHERE,
            "--arrival-rate",
            "1e12",
            "-z",
            "1s",
        ],
        &["arrival rate is 1000000000000/s, above the limit of 1000000/s"],
    );
    rejected(
        &["run", "--url", NOWHERE, "--stages", "1s:10000000"],
        &["stage's target is 10000000 users, above the limit"],
    );
    let dir = TempDir::new("absurd");
    let f = file(
        &dir,
        "s.yaml",
        "{ users: 18446744073709551615, run_time: 1s }",
    );
    for cmd in ["run", "validate"] {
        rejected(
            &[cmd, &f],
            &[&format!("{f}:5:9: users (-u/-c) is 18446744073709551615")],
        );
    }
}

#[test]
fn huge_durations_are_input_errors_not_panics() {
    rejected(
        &["run", "--url", NOWHERE, "-z", "18446744073709551615s"],
        &["invalid duration `18446744073709551615s`: longer than the maximum of 365 days"],
    );
    rejected(
        &["run", "--url", NOWHERE, "-t", "1e30"],
        &["maximum of 365 days"],
    );
    let dir = TempDir::new("durations");
    for (name, text, at) in [
        ("run_time.yaml", "{ users: 1, run_time: 1e30 }", "5:29"),
        ("stages.yaml", "{ stages: '1e300:5' }", "5:17"),
    ] {
        let f = file(&dir, name, text);
        for cmd in ["run", "validate"] {
            rejected(&[cmd, &f], &[&format!("{f}:{at}:"), "365 days"]);
        }
    }
    let wait = dir.join("wait.yaml");
    std::fs::write(
        &wait,
        "user_types:\n  - name: u\n    wait: between(1,1e308)\n    tasks:\n      - request: { path: /x, timeout: 1e300 }\n",
    )
    .unwrap();
    rejected(
        &["validate", &wait],
        &[&format!("{wait}:3:11:"), "between(1,1e308)"],
    );
}

#[test]
fn a_zero_timeout_is_rejected_in_flags_and_files() {
    rejected(
        &["run", "--url", NOWHERE, "--timeout", "0s"],
        &["--timeout is 0: every request would time out at once"],
    );
    rejected(
        &["run", "--url", NOWHERE, "--connect-timeout", "0"],
        &["--connect-timeout is 0"],
    );
    let dir = TempDir::new("timeout0");
    let f = dir.join("s.yaml");
    std::fs::write(
        &f,
        "user_types:\n  - name: u\n    tasks:\n      - request: { path: /x }\nclient: { timeout: 0s }\n",
    )
    .unwrap();
    for cmd in ["run", "validate"] {
        rejected(&[cmd, &f], &[&format!("{f}:5:11: client.timeout is 0")]);
    }
}

#[test]
fn validate_rejects_what_run_rejects() {
    let dir = TempDir::new("validate");
    for (load, says) in [
        ("{ users: 0, run_time: 1s }", "5:9: `users: 0` runs nothing"),
        (
            "{ users: 2, spawn_rate: 0 }",
            "5:19: `spawn_rate` must be a positive number",
        ),
        (
            "{ users: 2, spawn_rate: -1 }",
            "5:19: `spawn_rate` must be a positive number",
        ),
        (
            "{ arrival_rate: 0/s, run_time: 1s }",
            "5:9: `arrival_rate` is 0",
        ),
    ] {
        let f = file(&dir, "s.yaml", load);
        for cmd in ["run", "validate"] {
            rejected(&[cmd, &f], &[&format!("{f}:{says}")]);
        }
    }
    let f = dir.join("t.yaml");
    std::fs::write(
        &f,
        "user_types:\n  - name: u\n    tasks:\n      - request: { path: /x, name: x }\nthresholds: ['p95{name:GET /y} < 1s']\n",
    )
    .unwrap();
    rejected(
        &["validate", &f],
        &[&format!("{f}:5:15:"), "no request is named `GET /y`"],
    );
    rejected(
        &["run", &f, "-H", NOWHERE],
        &["no request is named `GET /y`"],
    );
}

#[test]
fn load_flags_that_cannot_apply_to_the_file_are_errors() {
    let dir = TempDir::new("flag-mix");
    let open = file(&dir, "open.yaml", "{ arrival_rate: 5/s, run_time: 1s }");
    rejected(
        &["run", &open, "-H", NOWHERE, "-u", "5"],
        &["-u/--users belongs to the closed model"],
    );
    let staged = file(&dir, "staged.yaml", "{ stages: 1s:5 }");
    rejected(
        &["run", &staged, "-H", NOWHERE, "-u", "5"],
        &["-u/--users does not apply: the file's `stages`"],
    );
    rejected(
        &["run", &staged, "-H", NOWHERE, "--arrival-rate", "5"],
        &["the file's `stages` are user counts"],
    );
    rejected(
        &[
            "run",
            "--url",
            NOWHERE,
            "-c",
            "5",
            "--arrival-rate",
            "5",
            "-z",
            "1s",
        ],
        &["-c/--connections belongs to the closed model"],
    );
}

#[test]
fn stages_on_the_command_line_define_the_run_length() {
    let target = DemoTarget::start(&["--latency", "0"]);
    let dir = TempDir::new("stages-length");
    // The file says a minute; the stages given on the command line last 2 s.
    let f = file(&dir, "s.yaml", "{ users: 5, spawn_rate: 5, run_time: 1m }");
    let json = dir.join("r.json");
    let started = Instant::now();
    let out = run(&[
        "run",
        &f,
        "-H",
        &target.url,
        "--stages",
        "1s:2,1s:0",
        "--json",
        &json,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_valid(&j);
    assert_eq!(j["run"]["stop_reason"], "run time elapsed");
    let d = j["run"]["duration_s"].as_f64().unwrap();
    assert!((2.0..15.0).contains(&d), "the 2 s of stages ran {d} s");
    assert!(j["aggregate"]["request_count"].as_u64().unwrap() > 0);
}
