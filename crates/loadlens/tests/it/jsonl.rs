//! JSON-lines telemetry (`--jsonl FILE`, `-` for stdout, `LOADLENS_JSONL`, `jsonl:` in the
//! scenario): every line of real runs against a local target matches
//! `schemas/jsonl.schema.json`, the interval lines add up to the run's own result, and an output
//! that cannot be opened refuses the run before any load.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::schema::{assert_valid, assert_valid_lines};
use crate::support::*;

fn events(lines: &[Value]) -> Vec<&str> {
    lines.iter().map(|l| l["event"].as_str().unwrap()).collect()
}

/// Per `METHOD name`: requests, failures, bytes sent, bytes received.
type Sums = BTreeMap<String, [u64; 4]>;

fn interval_sums(lines: &[Value]) -> Sums {
    let mut sums = Sums::new();
    for l in lines.iter().filter(|l| l["event"] == "interval") {
        let s = sums
            .entry(format!("{} {}", l["method"], l["name"]))
            .or_default();
        for (i, k) in ["requests", "failures", "bytes_sent", "bytes_received"]
            .iter()
            .enumerate()
        {
            s[i] += l[k].as_u64().unwrap();
        }
    }
    sums
}

fn result_sums(result: &Value) -> Sums {
    result["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().unwrap();
            (
                format!("{} {}", r["method"], r["name"]),
                [
                    n("request_count"),
                    n("failure_count"),
                    n("bytes_sent"),
                    n("bytes_received"),
                ],
            )
        })
        .collect()
}

#[test]
fn every_line_of_a_run_matches_the_schema_and_the_intervals_add_up_to_the_result() {
    let target = DemoTarget::start(&["--latency", "0", "--error-rate", "0.2"]);
    let dir = TempDir::new("jsonl");
    let file = dir.path("s.yaml");
    std::fs::write(
        &file,
        r#"
name: jsonl-check
user_types:
  - name: shopper
    tasks:
      - { weight: 2, request: { path: /api/products, name: browse } }
      - { weight: 1, request: { path: "/api/v1/search?q=shoe", name: search } }
load: { stages: [{ duration: 1s, target: 2 }, { duration: 1500ms, target: 3 }] }
thresholds:
  - "error_rate < 1%"
"#,
    )
    .unwrap();
    let out = run(&[
        "run",
        file.to_str().unwrap(),
        "-H",
        &target.url,
        "--tag",
        "env=test",
        "--tag",
        "team=perf",
        "--run-id",
        "jsonl-run-1",
        "--jsonl",
        &dir.join("out/run.jsonl"),
        "--json",
        &dir.join("r.json"),
    ]);
    // The error rate fails the threshold.
    assert_exit(&out, 1);
    let result = read_json(&dir.path("r.json"));
    assert_valid(&result);
    let text = std::fs::read_to_string(dir.path("out/run.jsonl")).unwrap();
    let lines = assert_valid_lines(&text);

    let ev = events(&lines);
    assert_eq!(ev[0], "run_start", "{ev:?}");
    assert_eq!(*ev.last().unwrap(), "run_end", "{ev:?}");
    for want in [
        "stage_change",
        "threshold_breach",
        "stop_requested",
        "interval",
        "health",
    ] {
        assert!(ev.contains(&want), "no {want} line in {ev:?}");
    }
    for l in &lines {
        assert_eq!(l["run_id"], "jsonl-run-1", "{l}");
        assert_eq!(l["tags"]["env"], "test", "{l}");
        assert_eq!(l["tags"]["team"], "perf", "{l}");
    }

    // The resolved configuration, as the run used it.
    let config = &lines[0]["config"];
    assert_eq!(lines[0]["scenario"], "jsonl-check");
    assert_eq!(config["host"], target.url.as_str(), "{config}");
    assert_eq!(config["thresholds"][0], "error_rate < 1%", "{config}");
    assert_eq!(config["load"], result["load"], "{config}");
    assert!(
        config["integrations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i.as_str().unwrap().contains("run.jsonl")),
        "{config}"
    );

    // Every request is in exactly one interval line: the sums are the result's, per name.
    let sums = interval_sums(&lines);
    assert_eq!(sums, result_sums(&result));
    assert_eq!(sums.len(), 2, "{sums:?}");
    assert!(sums.values().map(|s| s[1]).sum::<u64>() > 0, "{sums:?}");

    let end = lines.last().unwrap();
    assert_eq!(end["verdict"], "failed");
    assert_eq!(end["reason"], "run time elapsed");
    assert_eq!(end["requests"], result["aggregate"]["request_count"]);
    assert_eq!(end["failures"], result["aggregate"]["failure_count"]);
    assert_eq!(end["failed_thresholds"][0], "error_rate < 1%");
    assert_eq!(end["dropped_lines"], 0);
    // The sink's own report: every line delivered.
    let sink = result["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "jsonl")
        .expect("the jsonl sink reports");
    assert_eq!(
        sink["delivered"].as_u64(),
        Some(lines.len() as u64),
        "{sink}"
    );
    assert_eq!(
        (sink["failed"].as_u64(), sink["dropped"].as_u64()),
        (Some(0), Some(0))
    );
}

#[test]
fn a_dash_writes_the_lines_to_stdout_and_a_guard_action_is_a_line() {
    let target = DemoTarget::start(&["--latency", "0", "--error-rate", "1"]);
    let out = run(&[
        "run",
        "--url",
        &format!("{}/api/products", target.url),
        "-c",
        "2",
        "-z",
        "30s",
        "--threshold",
        "error_rate < 1%, abort after 1s",
        "--jsonl",
        "-",
    ]);
    assert_exit(&out, 3);
    let so = stdout(&out);
    let json: String = so
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| format!("{l}\n"))
        .collect();
    let lines = assert_valid_lines(&json);
    let ev = events(&lines);
    assert_eq!(ev[0], "run_start", "{so}");
    assert_eq!(*ev.last().unwrap(), "run_end", "{so}");
    assert!(ev.contains(&"spawning_complete"), "{ev:?}");
    let guard = lines
        .iter()
        .find(|l| l["event"] == "guard_action")
        .unwrap_or_else(|| panic!("no guard_action in {ev:?}"));
    assert_eq!(
        (guard["guard"].as_str(), guard["action"].as_str()),
        (Some("threshold"), Some("abort"))
    );
    let end = lines.last().unwrap();
    assert_eq!(end["verdict"], "aborted");
    assert!(
        end["reason"].as_str().unwrap().starts_with("aborted"),
        "{end}"
    );
}

#[test]
fn the_environment_and_the_scenario_section_name_the_file() {
    let rec = Recorder::start();
    let dir = TempDir::new("jsonl-env");
    // LOADLENS_JSONL, the flag's twin.
    let env_file = dir.join("env.jsonl");
    let out = std::process::Command::new(bin())
        .args(["run", "--url", &rec.url, "-c", "1", "-n", "3"])
        .env("LOADLENS_JSONL", &env_file)
        .env_remove("TEST_RUN_ID")
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let lines = assert_valid_lines(&std::fs::read_to_string(&env_file).unwrap());
    assert_eq!(interval_sums(&lines).values().map(|s| s[0]).sum::<u64>(), 3);

    // `jsonl: { file: … }` in the scenario.
    let file = dir.path("s.yaml");
    let section_file = dir.join("section.jsonl");
    std::fs::write(
        &file,
        format!(
            "user_types:\n  - name: u\n    tasks: [{{ request: {{ path: /x }} }}]\nload: {{ users: 1, iterations: 2 }}\njsonl:\n  file: {section_file}\n"
        ),
    )
    .unwrap();
    let out = run(&["run", file.to_str().unwrap(), "-H", &rec.url]);
    assert_exit(&out, 0);
    let lines = assert_valid_lines(&std::fs::read_to_string(&section_file).unwrap());
    assert_eq!(*events(&lines).last().unwrap(), "run_end");
}

#[test]
fn a_jsonl_file_that_cannot_be_opened_refuses_the_run_before_any_load() {
    let rec = Recorder::start();
    let dir = TempDir::new("jsonl-bad");
    std::fs::write(dir.path("plain"), "").unwrap();
    let bad = dir.join("plain/run.jsonl");
    let out = run(&["run", "--url", &rec.url, "-n", "3", "--jsonl", &bad]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains(&bad), "{}", stderr(&out));
    assert_eq!(rec.requests.lock().unwrap().len(), 0);
}

#[test]
fn a_mistake_in_the_jsonl_section_is_located_inside_it() {
    let dir = TempDir::new("jsonl-section");
    let file = dir.path("s.yaml");
    std::fs::write(
        &file,
        "user_types:\n  - name: u\n    tasks: [{ request: { path: /x } }]\njsonl:\n  path: run.jsonl\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    for args in [
        vec!["run", file, "-H", "http://127.0.0.1:9"],
        vec!["validate", file],
    ] {
        let cmd = args[0];
        let out = run(&args);
        assert_exit(&out, 2);
        let err = stderr(&out);
        assert!(err.contains("s.yaml:5:3"), "{cmd}: {err}");
        assert!(err.contains("path") && err.contains("file"), "{cmd}: {err}");
    }
}

#[test]
fn no_secret_reaches_the_lines() {
    let rec = Recorder::start();
    let dir = TempDir::new("jsonl-secret");
    let url = rec.url.replace("http://", "http://alice:pw-s3cret@");
    let out = run(&[
        "run",
        "--url",
        &url,
        "-n",
        "3",
        "-c",
        "1",
        "--header",
        "Authorization: Bearer tok-s3cret",
        "--jsonl",
        &dir.join("run.jsonl"),
    ]);
    assert_exit(&out, 0);
    let text = std::fs::read_to_string(dir.path("run.jsonl")).unwrap();
    let lines = assert_valid_lines(&text);
    assert!(!text.contains("s3cret"), "{text}");
    let host = lines[0]["config"]["host"].as_str().unwrap();
    assert!(host.contains("alice:***@"), "{host}");
}
