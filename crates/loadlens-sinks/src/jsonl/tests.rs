use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use loadlens_core::executor::Controls;
use loadlens_core::run::{EventKind, TimelineEvent};
use loadlens_core::sink::Sink;
use loadlens_core::stats::{HealthSample, Snapshot};
use serde_json::Value;

use super::*;
use crate::contract;

/// A writer into memory the test reads back.
#[derive(Clone, Default)]
struct Memory(Arc<Mutex<Vec<u8>>>);

impl Write for Memory {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Memory {
    fn lines(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }
}

/// A writer that takes nothing until the test lets it go.
struct Blocked(Arc<(Mutex<bool>, std::sync::Condvar)>);

impl Write for Blocked {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let (open, cv) = &*self.0;
        let mut g = open.lock().unwrap();
        while !*g {
            g = cv.wait(g).unwrap();
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn events(lines: &[Value]) -> Vec<&str> {
    lines.iter().map(|l| l["event"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_lines_sum_to_the_summary_and_the_run_is_framed() {
    let mem = Memory::default();
    let sink = JsonlSink::with_writer(Box::new(mem.clone()), 10_000).unwrap();
    let (summary, sink) = contract::short_run(Box::new(sink), 300, Controls::new()).await;
    let report = sink.finish(&summary).await;
    let lines = mem.lines();
    assert_eq!(report.delivered, lines.len() as u64, "{report:?}");
    assert_eq!((report.failed, report.dropped), (0, 0), "{report:?}");

    let ev = events(&lines);
    assert_eq!(ev[0], "run_start", "{ev:?}");
    assert_eq!(*ev.last().unwrap(), "run_end", "{ev:?}");
    assert!(ev.contains(&"spawning_complete"), "{ev:?}");
    assert!(ev.contains(&"stop_requested"), "{ev:?}");
    assert!(ev.contains(&"health"), "{ev:?}");
    for l in &lines {
        assert_eq!(l["run_id"], "contract-run", "{l}");
        assert_eq!(l["tags"]["env"], "test", "{l}");
        let ts = l["ts"].as_str().unwrap();
        // 2026-12-03T03:59:01.123Z
        assert_eq!(ts.len(), 24, "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
    }

    // Every request is in exactly one interval line.
    let mut sums: BTreeMap<String, [u64; 4]> = BTreeMap::new();
    for l in lines.iter().filter(|l| l["event"] == "interval") {
        let s = sums
            .entry(format!(
                "{} {}",
                l["method"].as_str().unwrap(),
                l["name"].as_str().unwrap()
            ))
            .or_default();
        for (i, k) in ["requests", "failures", "bytes_sent", "bytes_received"]
            .iter()
            .enumerate()
        {
            s[i] += l[k].as_u64().unwrap();
        }
        assert!(
            l["p50_ms"].as_f64().unwrap() <= l["max_ms"].as_f64().unwrap(),
            "{l}"
        );
    }
    let want: BTreeMap<String, [u64; 4]> = summary
        .requests()
        .iter()
        .map(|r| {
            (
                format!("{} {}", r.method, r.name),
                [
                    r.request_count,
                    r.failure_count,
                    r.bytes_sent,
                    r.bytes_received,
                ],
            )
        })
        .collect();
    assert_eq!(sums, want);
    assert_eq!(want.values().map(|v| v[0]).sum::<u64>(), 300);

    let end = lines.last().unwrap();
    assert_eq!(end["verdict"], "passed");
    assert_eq!(end["reason"], "all iterations done");
    assert_eq!(end["requests"], 300);
    assert_eq!(end["dropped_lines"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_writer_drops_and_counts_instead_of_stalling() {
    let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let sink = JsonlSink::with_writer(Box::new(Blocked(gate.clone())), 16)
        .unwrap()
        .finish_timeout(Duration::from_millis(300));
    let mut sink: Box<dyn Sink> = Box::new(sink);
    sink.on_start(&contract::context());
    let t = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..5_000 {
        let e = TimelineEvent::now(
            Duration::from_millis(i),
            EventKind::ThresholdBreached,
            format!("p95 < 1ms: {i} ms"),
        );
        let t1 = Instant::now();
        sink.on_event(&e);
        slowest = slowest.max(t1.elapsed());
    }
    // A hook that waited on the writer would never return; a loaded 2-core machine can still
    // preempt one for tens of milliseconds.
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(slowest < Duration::from_secs(1), "slowest hook {slowest:?}");

    let (summary, _) = contract::short_run(
        Box::new(JsonlSink::with_writer(Box::new(Memory::default()), 64).unwrap()),
        4,
        Controls::new(),
    )
    .await;
    let t = Instant::now();
    let report = sink.finish(&summary).await;
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "finish took {:?}",
        t.elapsed()
    );
    // 5,001 lines and the run_end line were offered; the queue holds 16 and the thread holds
    // those it buffered before its write got stuck: none was written, every one is counted.
    assert_eq!((report.delivered, report.failed), (0, 0), "{report:?}");
    assert_eq!(report.dropped, 5_002, "{report:?}");
    assert!(
        report.errors.iter().any(|e| e.contains("did not take")),
        "{report:?}"
    );
    let (open, cv) = &*gate;
    *open.lock().unwrap() = true;
    cv.notify_all();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipe_nobody_reads_drops_and_counts() {
    let (reader, pipe) = std::io::pipe().unwrap();
    let sink = JsonlSink::with_writer(Box::new(pipe), 256)
        .unwrap()
        .finish_timeout(Duration::from_millis(300));
    let mut sink: Box<dyn Sink> = Box::new(sink);
    sink.on_start(&contract::context());
    // About 2 MB of lines against a pipe buffer of 64 KB and a queue of 256 lines.
    let message = "x".repeat(200);
    let t = Instant::now();
    for i in 0..10_000 {
        sink.on_event(&TimelineEvent::now(
            Duration::from_millis(i),
            EventKind::Note,
            message.clone(),
        ));
    }
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let (summary, _) = contract::short_run(
        Box::new(JsonlSink::with_writer(Box::new(Memory::default()), 64).unwrap()),
        4,
        Controls::new(),
    )
    .await;
    let report = sink.finish(&summary).await;
    assert!(report.dropped > 5_000, "{report:?}");
    assert!(report.delivered < 1_000, "{report:?}");
    assert_eq!(
        report.delivered + report.dropped + report.failed,
        10_002,
        "{report:?}"
    );
    drop(reader);
}

#[test]
fn timeline_events_become_named_lines() {
    let at = |kind, m: &str| TimelineEvent::now(Duration::from_millis(1500), kind, m);
    let cases = [
        (
            at(EventKind::UsersSpawned, "all 10 users started"),
            Some("spawning_complete"),
        ),
        (
            at(EventKind::StageChanged, "stage 2 of 3"),
            Some("stage_change"),
        ),
        (
            at(EventKind::ThresholdBreached, "p95 < 1ms: 3 ms"),
            Some("threshold_breach"),
        ),
        (
            at(EventKind::ThresholdBreached, "aborting the run: p95 < 1ms"),
            Some("guard_action"),
        ),
        (
            at(
                EventKind::MonitorState,
                "Datadog monitor 42: OK → Alert — the run will fail",
            ),
            Some("guard_action"),
        ),
        (
            at(EventKind::MonitorState, "Datadog monitor 42 is OK"),
            Some("monitor_state"),
        ),
        (
            at(EventKind::StopRequested, "interrupted"),
            Some("stop_requested"),
        ),
        (at(EventKind::RunStarted, "run x started"), None),
        (at(EventKind::RunFinished, "run finished"), None),
    ];
    for (e, want) in cases {
        let got = line::timeline(&e);
        assert_eq!(got.as_ref().map(|g| g.0), want, "{e:?}");
        if let Some((_, f)) = got {
            assert_eq!(f["elapsed_s"], 1.5);
            assert_eq!(f["message"], e.message);
        }
    }
    let (_, f) = line::timeline(&at(
        EventKind::MonitorState,
        "Datadog monitor 42: OK → Alert — aborting the run",
    ))
    .unwrap();
    assert_eq!(
        (f["guard"].as_str(), f["action"].as_str()),
        (Some("monitor"), Some("abort"))
    );
}

#[test]
fn health_lines_carry_the_snapshot_figures_and_null_for_missing_ones() {
    let mut s = Snapshot {
        at: SystemTime::now(),
        elapsed: Duration::from_secs(3),
        users: 7,
        point: Default::default(),
        interval: Default::default(),
        requests: Vec::new(),
        total: Default::default(),
        dropped_iterations: None,
        arrival_rate: None,
        health: HealthSample::default(),
        breakdown: None,
        scenarios: Vec::new(),
    };
    let h = line::health(&s);
    assert_eq!(h["users"], 7);
    for k in [
        "process_cpu_pct",
        "machine_cpu_pct",
        "rss_bytes",
        "open_connections",
        "net_sent_bytes_per_s",
        "net_received_bytes_per_s",
        "sched_delay_ms",
    ] {
        assert!(h[k].is_null(), "{k}: {h}");
    }
    s.health = HealthSample {
        process_cpu_pct: Some(42.5),
        machine_cpu_pct: Some(60.0),
        rss_bytes: Some(12_345_678),
        open_connections: Some(9),
        net_sent_bytes_per_s: Some(1000.0),
        net_received_bytes_per_s: Some(2000.0),
        sched_delay_ms: Some(1.25),
    };
    let h = line::health(&s);
    assert_eq!(h["process_cpu_pct"], 42.5);
    assert_eq!(h["rss_bytes"], 12_345_678);
    assert_eq!(h["open_connections"], 9);
    assert_eq!(h["net_received_bytes_per_s"], 2000.0);
    assert_eq!(h["sched_delay_ms"], 1.25);
}

#[test]
fn an_output_that_cannot_be_opened_names_its_path() {
    let dir = std::env::temp_dir().join(format!("loadlens-jsonl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let e = JsonlSink::open(&Output::File(dir.clone())).unwrap_err();
    assert!(e.to_string().contains(&dir.display().to_string()), "{e}");
    // A parent that is a file.
    let file = dir.join("plain");
    std::fs::write(&file, "").unwrap();
    let under = file.join("run.jsonl");
    let e = JsonlSink::open(&Output::File(under.clone())).unwrap_err();
    assert!(e.to_string().contains(&under.display().to_string()), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_is_appended_to() {
    let dir = std::env::temp_dir().join(format!("loadlens-jsonl-append-{}", std::process::id()));
    let path = dir.join("sub/run.jsonl");
    let _ = std::fs::remove_dir_all(&dir);
    for _ in 0..2 {
        let sink = JsonlSink::open(&Output::File(path.clone())).unwrap();
        let (summary, sink) = contract::short_run(Box::new(sink), 4, Controls::new()).await;
        let r = sink.finish(&summary).await;
        assert_eq!(r.dropped, 0, "{r:?}");
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let starts = text
        .lines()
        .filter(|l| l.contains(r#""event":"run_start""#))
        .count();
    assert_eq!(starts, 2, "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_line_starts_with_its_common_fields_in_a_fixed_order() {
    let h = line::Header {
        run_id: "r-1".into(),
        tags: [("env".to_owned(), "ci".to_owned())].into(),
    };
    let l = h.line(
        "2026-12-03T04:05:06.789Z",
        "stop_requested",
        &serde_json::json!({ "message": "interrupted", "elapsed_s": 2.5 }),
    );
    assert_eq!(
        l,
        r#"{"ts":"2026-12-03T04:05:06.789Z","run_id":"r-1","tags":{"env":"ci"},"event":"stop_requested","elapsed_s":2.5,"message":"interrupted"}"#
    );
    let empty = h.line("t", "note", &serde_json::json!({}));
    assert_eq!(
        empty,
        r#"{"ts":"t","run_id":"r-1","tags":{"env":"ci"},"event":"note"}"#
    );
    serde_json::from_str::<Value>(&empty).unwrap();
}
