//! Where the output of a run goes can fail: stdout on a full disk or a closed pipe, a report
//! path that cannot be written. The run still ends normally with every report it can write,
//! and a report path that can never be written is refused before any load is sent.

use std::process::{Command, Stdio};

use crate::support::*;

/// A quick-mode run of 3 requests writing `result.json` into `dir`, with stdout set up by the
/// caller.
fn quick_run(rec: &Recorder, dir: &TempDir) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args(["run", "--url", &rec.url, "-c", "1", "-n", "3"])
        .args(["--json", &dir.join("result.json")])
        .env_remove("TEST_RUN_ID")
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn requests_in(dir: &TempDir) -> u64 {
    requests_in_file(&dir.path("result.json"))
}

fn requests_in_file(path: &std::path::Path) -> u64 {
    let text = std::fs::read_to_string(path).expect("the JSON result is written");
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["aggregate"]["request_count"].as_u64().unwrap()
}

#[test]
fn a_run_with_stdout_on_a_full_disk_still_runs_and_writes_its_reports() {
    let rec = Recorder::start();
    let dir = TempDir::new("devfull");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let out = quick_run(&rec, &dir)
        .stdout(full)
        .output()
        .expect("run loadlens");
    assert_exit(&out, 0);
    assert_eq!(rec.requests.lock().unwrap().len(), 3);
    assert_eq!(requests_in(&dir), 3);
}

#[test]
fn a_run_with_stdout_on_a_closed_pipe_still_runs_and_writes_its_reports() {
    let rec = Recorder::start();
    let dir = TempDir::new("closedpipe");
    let mut child = quick_run(&rec, &dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("run loadlens");
    // The reader goes away before the first line (as `loadlens run … | head -0` would).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_exit(&out, 0);
    assert_eq!(rec.requests.lock().unwrap().len(), 3);
    assert_eq!(requests_in(&dir), 3);
}

#[test]
fn a_report_path_that_cannot_be_written_refuses_the_run_before_any_load() {
    let rec = Recorder::start();
    let dir = TempDir::new("unwritable");
    std::fs::write(dir.path("file"), "not a directory").unwrap();
    let cases = [
        // A directory as the path.
        ("--json", dir.join(""), "it is a directory".to_owned()),
        // A directory that cannot be created: a file is in the way.
        (
            "--html",
            dir.join("file/report.html"),
            format!("cannot create the directory {}: ", dir.join("file")),
        ),
        // A directory nobody may write to, even root.
        (
            "--csv",
            "/proc/loadlens".to_owned(),
            "/proc/loadlens_stats.csv: ".to_owned(),
        ),
    ];
    for (flag, path, why) in cases {
        let out = run(&["run", "--url", &rec.url, "-c", "1", "-n", "3", flag, &path]);
        assert_exit(&out, 2);
        let err = stderr(&out);
        assert!(err.contains("error: cannot write "), "{flag} {path}: {err}");
        assert!(err.contains(&why), "{flag} {path}: {err}");
        assert!(
            err.contains("(os error") || why == "it is a directory",
            "{err}"
        );
    }
    assert_eq!(rec.requests.lock().unwrap().len(), 0, "no load was sent");
    // A missing directory is created, as before.
    let out = run(&[
        "run",
        "--url",
        &rec.url,
        "-c",
        "1",
        "-n",
        "3",
        "--json",
        &dir.join("new/dir/result.json"),
    ]);
    assert_exit(&out, 0);
    assert_eq!(requests_in_file(&dir.path("new/dir/result.json")), 3);
}
