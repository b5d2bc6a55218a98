//! Distributed runs without a coordinator: the same scenario run as N segments by N separate
//! processes (as on N machines), then `loadlens merge`. The merged counts must equal the sum of
//! the segments' and the target's own count, and the merged percentiles those of one HDR
//! histogram fed every sample.

use std::process::{Command, Stdio};

use loadlens_core::stats::LatencyHistogram;
use serde_json::Value;

use crate::schema::assert_valid;
use crate::support::*;

fn read(dir: &TempDir, name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.path(name)).unwrap()).unwrap()
}

fn served(target: &DemoTarget, route: &str) -> u64 {
    target.stats()["routes"][route].as_u64().unwrap_or(0)
}

/// Every sample of the segments in one histogram: their decoded histograms added together.
fn union_of(results: &[Value], request: usize) -> LatencyHistogram {
    let mut all = LatencyHistogram::new();
    for r in results {
        let text = r["histograms"]["requests"][request]["latency"]
            .as_str()
            .unwrap();
        all.merge(&LatencyHistogram::from_base64(text).unwrap());
    }
    all
}

fn run_segments(
    n: usize,
    args: impl Fn(usize) -> Vec<String>,
    env: impl Fn(usize) -> Vec<(String, String)>,
) {
    // All at once, as separate processes.
    let children: Vec<_> = (0..n)
        .map(|i| {
            Command::new(bin())
                .args(args(i))
                .envs(env(i))
                .env_remove("TEST_RUN_ID")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert_exit(&out, 0);
    }
}

#[test]
fn three_segments_merge_to_exact_counts_and_percentiles() {
    let target = DemoTarget::start(&["--latency", "uniform(1ms,5ms)"]);
    let dir = TempDir::new("dist3");
    let url = format!("{}/api/products", target.url);
    let before = served(&target, "GET /api/products");
    // 10 users and 1000 iterations over 3 segments: 4/3/3 users, 334/333/333 iterations.
    run_segments(
        3,
        |i| {
            [
                "run",
                "--url",
                &url,
                "-c",
                "10",
                "-n",
                "1000",
                "--segment",
                &format!("{}/3", i + 1),
                "--json",
                &dir.join(&format!("w{i}.json")),
            ]
            .map(String::from)
            .to_vec()
        },
        |_| Vec::new(),
    );
    let results: Vec<Value> = (0..3).map(|i| read(&dir, &format!("w{i}.json"))).collect();
    let counts: Vec<u64> = results
        .iter()
        .map(|r| r["aggregate"]["request_count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [334, 333, 333]);
    for (i, r) in results.iter().enumerate() {
        assert_valid(r);
        assert_eq!(r["load"]["segment"], format!("{}/3", i + 1));
        assert_eq!(r["load"]["users"], 10, "the whole run's load is kept");
        assert_eq!(
            r["run"]["scenario_hash"],
            results[0]["run"]["scenario_hash"]
        );
    }
    let merged_path = dir.join("merged.json");
    let out = run(&[
        "merge",
        &dir.join("w0.json"),
        &dir.join("w1.json"),
        &dir.join("w2.json"),
        "--json",
        &merged_path,
        "--html",
        &dir.join("merged.html"),
        "--csv",
        &dir.join("merged"),
        "--junit",
        &dir.join("merged.xml"),
        "--md",
        &dir.join("merged.md"),
    ]);
    assert_exit(&out, 0);
    let m = read(&dir, "merged.json");
    assert_valid(&m);
    let total = m["aggregate"]["request_count"].as_u64().unwrap();
    assert_eq!(total, counts.iter().sum::<u64>());
    assert_eq!(total, 1000);
    assert_eq!(
        total,
        served(&target, "GET /api/products") - before,
        "the target's own count"
    );
    assert!(m["load"].get("segment").is_none());
    assert_eq!(m["workers"].as_array().unwrap().len(), 3);
    // Exact percentiles: those of one histogram of every sample.
    let all = union_of(&results, 0);
    assert_eq!(all.len(), 1000);
    let p = all.percentiles();
    let got = &m["requests"][0]["latency_ms"];
    for (key, want) in [
        ("p50", p.p50),
        ("p95", p.p95),
        ("p99", p.p99),
        ("max", p.max),
        ("min", p.min),
    ] {
        assert_eq!(got[key].as_f64().unwrap(), want, "{key}");
        assert_eq!(
            m["aggregate"]["latency_ms"][key].as_f64().unwrap(),
            want,
            "{key}"
        );
    }
    // Every report of `run` is written from the merged data.
    for f in ["merged.html", "merged_stats.csv", "merged.xml", "merged.md"] {
        assert!(std::fs::metadata(dir.path(f)).unwrap().len() > 0, "{f}");
    }
    let csv = std::fs::read_to_string(dir.path("merged_stats.csv")).unwrap();
    assert!(csv.contains(",1000,"), "{csv}");
    // A merged result merges no further with its own segments: it is a whole run.
    let out = run(&["merge", &merged_path, &dir.join("w0.json")]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("same number of segments"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn workers_from_an_indexed_job_split_an_open_model_and_thresholds_are_evaluated_again() {
    let target = DemoTarget::start(&["--latency", "fixed(1ms)"]);
    let dir = TempDir::new("dist2");
    let url = format!("{}/api/products", target.url);
    let before = served(&target, "GET /api/products");
    // 101 arrivals/s for 2 s over 2 workers: arrivals 0, 2, 4… and 1, 3, 5… of one schedule.
    run_segments(
        2,
        |i| {
            [
                "run",
                "--url",
                &url,
                "--arrival-rate",
                "101/s",
                "-t",
                "2s",
                "--max-vus",
                "40",
                "--workers",
                "2",
                "--threshold",
                "p99 < 60s",
                "--json",
                &dir.join(&format!("w{i}.json")),
            ]
            .map(String::from)
            .to_vec()
        },
        |i| vec![("JOB_COMPLETION_INDEX".into(), i.to_string())],
    );
    let results: Vec<Value> = (0..2).map(|i| read(&dir, &format!("w{i}.json"))).collect();
    let intended: Vec<u64> = results
        .iter()
        .map(|r| r["arrivals"]["intended"].as_u64().unwrap())
        .collect();
    // 202 arrivals in [0, 2 s): 101 each.
    assert_eq!(intended, [101, 101]);
    let out = run(&[
        "merge",
        &dir.join("w1.json"),
        &dir.join("w0.json"),
        "--json",
        &dir.join("m.json"),
    ]);
    assert_exit(&out, 0);
    let m = read(&dir, "m.json");
    assert_valid(&m);
    let total = m["aggregate"]["request_count"].as_u64().unwrap();
    let sum: u64 = results
        .iter()
        .map(|r| r["aggregate"]["request_count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, sum);
    assert_eq!(total, served(&target, "GET /api/products") - before);
    assert_eq!(m["arrivals"]["intended"], 202);
    assert_eq!(m["thresholds"][0]["passed"], true);
    let p = union_of(&results, 0).percentiles();
    assert_eq!(m["thresholds"][0]["observed"].as_f64().unwrap(), p.p99);
    assert_eq!(m["aggregate"]["latency_ms"]["p99"].as_f64().unwrap(), p.p99);
}

#[test]
fn bad_segments_and_unmergeable_files_are_refused_with_the_reason() {
    for (args, says) in [
        (vec!["--segment", "0/3"], "segments count from 1"),
        (vec!["--segment", "4/3"], "I is above N"),
        (vec!["--segment", "1/0"], "at least 1"),
        (
            vec!["--workers", "3"],
            "--worker-index I (from 0) or JOB_COMPLETION_INDEX",
        ),
        (
            vec!["--workers", "3", "--worker-index", "3"],
            "worker index 3 is out of range for 3 workers",
        ),
        (
            vec![
                "--arrival-rate",
                "10/s",
                "--max-vus",
                "2",
                "--segment",
                "1/3",
            ],
            "max_vus (2) is below the number of segments (3)",
        ),
    ] {
        let mut all = vec!["run", "--url", "http://127.0.0.1:9/", "-n", "1"];
        all.extend(args);
        let out = Command::new(bin())
            .args(&all)
            .env_remove("JOB_COMPLETION_INDEX")
            .output()
            .unwrap();
        assert_exit(&out, 2);
        assert!(stderr(&out).contains(says), "{all:?}: {}", stderr(&out));
    }
    let dir = TempDir::new("distbad");
    std::fs::write(dir.path("old.json"), r#"{"format_version": 1}"#).unwrap();
    let out = run(&["merge", &dir.join("old.json")]);
    assert_exit(&out, 2);
}
