//! Load profiles and thresholds end to end: open and staged runs against the demo target,
//! every threshold kind passing and failing with its exit code, aborts, JUnit, Markdown and
//! `$GITHUB_STEP_SUMMARY`.

use std::process::Command;

use crate::schema::assert_valid;
use crate::support::*;

#[test]
fn open_model_holds_its_rate_and_reports_both_latencies() {
    let target = DemoTarget::start(&["--latency", "fixed(20ms)"]);
    let dir = TempDir::new("open");
    let out = run(&[
        "run",
        "--url",
        &format!("{}/api/products", target.url),
        "--arrival-rate",
        "150/s",
        "--pre-allocated-vus",
        "5",
        "--max-vus",
        "40",
        "-t",
        "2s",
        "--json",
        &dir.join("r.json"),
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let j = read_json(&dir.path("r.json"));
    assert_valid(&j);
    let a = &j["arrivals"];
    assert_eq!(a["intended"], 300);
    let started = a["started"].as_u64().unwrap();
    assert!((294..=300).contains(&started), "{a}");
    assert_eq!(j["dropped_iterations"], 0);
    assert_eq!(j["load"]["arrival"]["max_vus"], 40);
    // The server saw exactly the started iterations, at the intended rate (±2 %).
    let served = target.stats()["routes"]["GET /api/products"]
        .as_u64()
        .unwrap();
    assert_eq!(served, started);
    let agg = &j["aggregate"];
    assert!(
        agg["latency_uncorrected_ms"]["p50"].as_f64().unwrap() >= 20.0,
        "{agg}"
    );
    assert!(
        agg["latency_ms"]["p50"].as_f64().unwrap()
            >= agg["latency_uncorrected_ms"]["p50"].as_f64().unwrap()
    );
    let text = stdout(&out);
    assert!(text.contains("(uncorrected)"), "{text}");
    assert!(text.contains("intended arrivals started"), "{text}");
    assert!(j["generator"]["peak_rss_mb"].as_f64().unwrap() > 1.0);
}

#[test]
fn every_threshold_kind_passes_or_fails_with_exit_code_1_and_ci_reports() {
    let target = DemoTarget::start(&[
        "--latency",
        "fixed(30ms)",
        "--route-error-rate",
        "/api/products/{id}=1",
    ]);
    let dir = TempDir::new("thresholds");
    let file = dir.path("t.yaml");
    std::fs::write(
        &file,
        r#"
user_types:
  - name: u
    tasks:
      - weight: 9
        request: { path: /api/products, name: list }
      - request: { path: /api/products/7, name: item }
thresholds:
  - p95 < 5s
  - { threshold: "p50{name:list} < 1ms" }
"#,
    )
    .unwrap();
    let step_summary = dir.path("step.md");
    std::fs::write(&step_summary, "previous step\n").unwrap();
    let rules = [
        "avg > 20ms",                 // pass
        "max < 10ms",                 // fail
        "p99.9{name:GET item} < 10s", // pass
        "error_rate < 50%",           // pass
        "error_rate{name:item} < 1%", // fail (every `item` request fails)
        "rps > 1",                    // pass
        "rps > 100000",               // fail
        "requests >= 10",             // pass
        "failures == 0",              // fail
        "dropped_iterations == 0",    // pass (closed model)
        "generator_healthy",          // pass
    ];
    let mut args = vec![
        "run".to_owned(),
        file.display().to_string(),
        "-H".into(),
        target.url.clone(),
        "-u".into(),
        "4".into(),
        "-t".into(),
        "1500ms".into(),
        "--json".into(),
        dir.join("r.json"),
        "--junit".into(),
        dir.join("junit.xml"),
        "--summary-md".into(),
        dir.join("summary.md"),
    ];
    for r in rules {
        args.push("--threshold".into());
        args.push(r.into());
    }
    let out = Command::new(bin())
        .args(&args)
        .env("GITHUB_STEP_SUMMARY", &step_summary)
        .output()
        .unwrap();
    assert_exit(&out, 1);
    let j = read_json(&dir.path("r.json"));
    assert_valid(&j);
    assert_eq!(j["run"]["verdict"], "failed");
    let got: Vec<(String, bool)> = threshold_results(&j)
        .into_iter()
        .map(|(e, p, _)| (e, p))
        .collect();
    let expected = [
        ("p95 < 5s", true),
        ("p50{name:list} < 1ms", false),
        ("avg > 20ms", true),
        ("max < 10ms", false),
        ("p99.9{name:GET item} < 10s", true),
        ("error_rate < 50%", true),
        ("error_rate{name:item} < 1%", false),
        ("rps > 1", true),
        ("rps > 100000", false),
        ("requests >= 10", true),
        ("failures == 0", false),
        ("dropped_iterations == 0", true),
        ("generator_healthy", true),
    ];
    let expected: Vec<(String, bool)> = expected.iter().map(|(e, p)| (e.to_string(), *p)).collect();
    assert_eq!(got, expected, "{}", stdout(&out));
    let junit = std::fs::read_to_string(dir.path("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), 13);
    assert_eq!(junit.matches("<failure type=\"threshold\"").count(), 5);
    assert!(junit.contains("name=\"max &lt; 10ms\""), "{junit}");
    let md = std::fs::read_to_string(dir.path("summary.md")).unwrap();
    assert!(
        md.contains("❌ **failed**: 5 of 13 thresholds failed"),
        "{md}"
    );
    let step = std::fs::read_to_string(&step_summary).unwrap();
    assert!(step.starts_with("previous step\n## loadlens"), "{step}");
    assert!(stdout(&out).contains("Thresholds (8 of 13 passed)"));
}

#[test]
fn all_thresholds_passing_exit_0() {
    let target = DemoTarget::start(&["--latency", "0"]);
    let out = run(&[
        "run",
        "--url",
        &format!("{}/api/products", target.url),
        "-c",
        "2",
        "-n",
        "100",
        "--threshold",
        "p95 < 5s",
        "--threshold",
        "error_rate < 1%, abort",
        "--threshold",
        "requests == 100",
    ]);
    assert_exit(&out, 0);
}

#[test]
fn a_lost_run_is_aborted_after_the_delay_with_exit_code_3() {
    let target = DemoTarget::start(&["--latency", "0", "--error-rate", "1"]);
    let dir = TempDir::new("abort");
    let started = std::time::Instant::now();
    let out = run(&[
        "run",
        "--url",
        &format!("{}/api/products", target.url),
        "-c",
        "2",
        "-z",
        "30s",
        "--threshold",
        "error_rate < 1%, abort after 2s",
        "--threshold",
        "p95 < 10s",
        "--json",
        &dir.join("r.json"),
        "--junit",
        &dir.join("j.xml"),
    ]);
    assert_exit(&out, 3);
    let took = started.elapsed();
    assert!(
        took.as_secs_f64() >= 2.0 && took.as_secs_f64() < 10.0,
        "{took:?}"
    );
    let j = read_json(&dir.path("r.json"));
    assert_valid(&j);
    assert_eq!(j["run"]["verdict"], "aborted");
    let r = threshold_results(&j);
    assert_eq!(
        r[0],
        ("error_rate < 1%, abort after 2s".into(), false, true)
    );
    assert_eq!(r[1], ("p95 < 10s".into(), true, false));
    let breach = &j["thresholds"][0]["first_breach_s"];
    assert!(
        breach.as_f64().unwrap() < 2.0,
        "breached before the delay: {breach}"
    );
    let junit = std::fs::read_to_string(dir.path("j.xml")).unwrap();
    assert!(junit.contains("<failure type=\"aborted\""), "{junit}");
    assert!(j["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "threshold_breached"));
}

#[test]
fn dropped_iterations_and_an_unhealthy_generator_fail_their_thresholds() {
    // 50/s against a 400 ms endpoint needs ~20 VUs; 2 are allowed.
    let target = DemoTarget::start(&["--latency", "fixed(400ms)"]);
    let dir = TempDir::new("dropped");
    let out = run(&[
        "run",
        "--url",
        &format!("{}/api/products", target.url),
        "--arrival-rate",
        "50",
        "--max-vus",
        "2",
        "-t",
        "1s",
        "--threshold",
        "dropped_iterations < 5",
        "--threshold",
        "generator_healthy",
        "--json",
        &dir.join("r.json"),
    ]);
    assert_exit(&out, 1);
    let j = read_json(&dir.path("r.json"));
    assert_valid(&j);
    let dropped = j["dropped_iterations"].as_u64().unwrap();
    assert!(dropped >= 40, "{dropped}");
    assert_eq!(
        threshold_results(&j),
        vec![
            ("dropped_iterations < 5".into(), false, false),
            ("generator_healthy".into(), false, false)
        ]
    );
    assert!(
        stdout(&out).contains("RESULTS NOT TRUSTWORTHY"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn named_scenarios_and_stages_from_the_file() {
    let target = DemoTarget::start(&["--latency", "0"]);
    let dir = TempDir::new("scenarios");
    let file = dir.path("s.yaml");
    std::fs::write(
        &file,
        r#"
user_types:
  - name: browser
    tasks: [{ request: { path: /api/products, name: browse } }]
  - name: searcher
    tasks: [{ request: { path: /api/v1/search?q=shoe, name: search } }]
scenarios:
  browse:
    user_types: [browser]
    load: { arrival_rate: 40/s, run_time: 2s, max_vus: 10 }
  search:
    user_types: [searcher]
    start_time: 1s
    load: { stages: [{ duration: 500ms, target: 3 }, { duration: 500ms, target: 3 }] }
thresholds:
  - "rps{scenario:browse} > 30"
  - "requests{scenario:search} > 0"
"#,
    )
    .unwrap();
    let out = run(&[
        "run",
        file.to_str().unwrap(),
        "-H",
        &target.url,
        "--json",
        &dir.join("r.json"),
    ]);
    assert_exit(&out, 0);
    let j = read_json(&dir.path("r.json"));
    assert_valid(&j);
    let sc = j["scenarios"].as_array().unwrap();
    assert_eq!(sc.len(), 2);
    assert_eq!(sc[0]["name"], "browse");
    let browse = sc[0]["aggregate"]["request_count"].as_u64().unwrap();
    assert!((78..=80).contains(&browse), "{browse}");
    assert_eq!(sc[0]["requests"][0]["name"], "browse");
    assert_eq!(sc[1]["start_time_s"], 1.0);
    assert_eq!(sc[1]["requests"][0]["name"], "search");
    assert!(sc[1]["arrivals"].is_null());
    let search = sc[1]["aggregate"]["request_count"].as_u64().unwrap();
    assert_eq!(
        j["aggregate"]["request_count"].as_u64().unwrap(),
        browse + search
    );
    assert!(j["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "stage_changed"));
    assert!(stdout(&out).contains("Scenarios"));
}

#[test]
fn bad_profiles_and_thresholds_are_exit_code_2_with_a_reason() {
    let target = DemoTarget::start(&["--latency", "0"]);
    let url = format!("{}/", target.url);
    for (args, needle) in [
        (vec!["--stages", "30s"], "DURATION:TARGET"),
        (vec!["--arrival-rate", "fast", "-t", "1s"], "--arrival-rate"),
        (vec!["--arrival-rate", "10"], "needs an end"),
        (vec!["--max-vus", "3", "-z", "1s"], "open model"),
        (
            vec![
                "--arrival-rate",
                "10",
                "-t",
                "1s",
                "--pre-allocated-vus",
                "9",
                "--max-vus",
                "3",
            ],
            "above max_vus",
        ),
        (vec!["--threshold", "latency < 1s"], "unknown metric"),
        (
            vec!["--threshold", "p95{name:/nope} < 1s"],
            "no request is named",
        ),
        (
            vec!["--threshold", "p95{scenario:x} < 1s"],
            "no scenario is named",
        ),
    ] {
        let mut a = vec!["run", "--url", &url];
        a.extend(args.iter());
        let out = run(&a);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}

/// Tasks tagged `checkout` hit two slow routes; the others are fast.
const TAGGED: &str = r#"
user_types:
  - name: shopper
    tasks:
      - weight: 4
        tags: [browse]
        request: { path: /api/products, name: products }
      - tags: [checkout]
        steps:
          - request: { path: /api/v1/cart/summary, name: cart }
          - request: { path: /api/v1/search/filters, name: filters }
thresholds:
  - p95{tag:browse} < 100ms
  - p50 < 100ms
"#;

fn slow_checkout() -> DemoTarget {
    DemoTarget::start(&[
        "--latency",
        "0",
        "--route-latency",
        "/api/v1/cart/summary=fixed(150ms)",
        "--route-latency",
        "/api/v1/search/filters=fixed(150ms)",
    ])
}

/// The rows of a CSV file without quoted commas, split into fields (quotes kept).
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| {
            let mut fields = Vec::new();
            let (mut cur, mut quoted) = (String::new(), false);
            for c in l.chars() {
                match c {
                    '"' => quoted = !quoted,
                    ',' if !quoted => fields.push(std::mem::take(&mut cur)),
                    c => cur.push(c),
                }
            }
            fields.push(cur);
            fields
        })
        .collect()
}

/// `_thresholds.csv` holds the JSON result's thresholds, row for row.
fn assert_threshold_csv_matches(csv: &str, j: &serde_json::Value) {
    let rows = csv_rows(csv);
    assert_eq!(
        rows[0],
        [
            "Threshold",
            "Scope",
            "Requests",
            "Metric",
            "Operator",
            "Limit",
            "Observed",
            "Unit",
            "Result",
            "Aborted",
            "First Breach (s)",
            "Detail"
        ]
    );
    let ts = j["thresholds"].as_array().unwrap();
    assert_eq!(rows.len() - 1, ts.len(), "{csv}");
    // Equal up to serde_json's float parsing, which may be one unit in the last place off.
    let num = |s: &str| (!s.is_empty()).then(|| s.parse::<f64>().unwrap());
    let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-12 * b.abs().max(1.0),
        (a, b) => a == b,
    };
    for (row, t) in rows[1..].iter().zip(ts) {
        assert_eq!(row[0], t["expression"].as_str().unwrap());
        assert_eq!(row[1], t["scope"].as_str().unwrap());
        let requests: Vec<&str> = t["requests"]
            .as_array()
            .map(|a| a.iter().map(|r| r.as_str().unwrap()).collect())
            .unwrap_or_default();
        assert_eq!(row[2], requests.join("; "));
        assert_eq!(row[3], t["metric"].as_str().unwrap());
        assert_eq!(row[4], t["op"].as_str().unwrap());
        assert!(close(num(&row[5]), t["limit"].as_f64()), "{row:?} {t}");
        assert!(close(num(&row[6]), t["observed"].as_f64()), "{row:?} {t}");
        assert_eq!(row[7], t["unit"].as_str().unwrap());
        let passed = t["passed"].as_bool().unwrap();
        assert_eq!(row[8], if passed { "passed" } else { "failed" });
        assert_eq!(row[9], t["aborted"].to_string());
        assert!(
            close(num(&row[10]), t["first_breach_s"].as_f64()),
            "{row:?} {t}"
        );
        assert_eq!(row[11], t["detail"].as_str().unwrap());
    }
}

#[test]
fn a_threshold_scoped_by_tag_fails_when_only_the_tagged_requests_are_slow() {
    let target = slow_checkout();
    let dir = TempDir::new("tags");
    let file = dir.path("t.yaml");
    std::fs::write(&file, TAGGED).unwrap();
    let out = run(&[
        "run",
        file.to_str().unwrap(),
        "-H",
        &target.url,
        "-u",
        "4",
        "-t",
        "1500ms",
        "--threshold",
        "p95{tag:checkout} < 100ms",
        "--threshold",
        "requests{tag:checkout} > 0",
        "--json",
        &dir.join("r.json"),
        "--junit",
        &dir.join("j.xml"),
        "--summary-md",
        &dir.join("s.md"),
        "--csv",
        &dir.join("c"),
    ]);
    assert_exit(&out, 1);
    let j = read_json(&dir.path("r.json"));
    assert_valid(&j);
    assert_eq!(
        threshold_results(&j),
        vec![
            ("p95{tag:browse} < 100ms".into(), true, false),
            ("p50 < 100ms".into(), true, false),
            ("p95{tag:checkout} < 100ms".into(), false, false),
            ("requests{tag:checkout} > 0".into(), true, false),
        ],
        "{}",
        stdout(&out)
    );
    let t = &j["thresholds"][2];
    assert_eq!(t["scope"], "tag:checkout");
    assert_eq!(
        t["requests"],
        serde_json::json!(["GET cart", "GET filters"])
    );
    assert!(t["observed"].as_f64().unwrap() >= 150.0, "{t}");
    assert_eq!(
        j["thresholds"][0]["requests"],
        serde_json::json!(["GET products"])
    );
    assert!(j["thresholds"][1].get("requests").is_none());
    // The tag's request count is its names' counts together.
    let count = |name: &str| {
        j["requests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap()["request_count"]
            .as_f64()
            .unwrap()
    };
    assert_eq!(
        j["thresholds"][3]["observed"].as_f64().unwrap(),
        count("cart") + count("filters")
    );
    let text = stdout(&out);
    assert!(
        text.contains("FAIL  p95{tag:checkout} < 100ms")
            && text.contains("tag:checkout covers GET cart, GET filters"),
        "{text}"
    );
    let junit = std::fs::read_to_string(dir.path("j.xml")).unwrap();
    let case = junit
        .split("<testcase ")
        .find(|c| c.contains("name=\"p95{tag:checkout} &lt; 100ms\""))
        .unwrap();
    assert!(
        case.contains("<failure type=\"threshold\"")
            && case.contains("; scope tag:checkout (GET cart, GET filters)"),
        "{junit}"
    );
    let md = std::fs::read_to_string(dir.path("s.md")).unwrap();
    assert!(
        md.contains("| ❌ | `p95{tag:checkout} < 100ms` | tag:checkout (GET cart, GET filters) |"),
        "{md}"
    );
    let csv = std::fs::read_to_string(dir.path("c_thresholds.csv")).unwrap();
    assert_threshold_csv_matches(&csv, &j);
}

#[test]
fn a_threshold_scoped_by_tag_aborts_a_lost_run_with_exit_code_3() {
    let target = slow_checkout();
    let dir = TempDir::new("tag-abort");
    let file = dir.path("t.yaml");
    std::fs::write(&file, TAGGED).unwrap();
    let started = std::time::Instant::now();
    let out = run(&[
        "run",
        file.to_str().unwrap(),
        "-H",
        &target.url,
        "-u",
        "4",
        "-t",
        "30s",
        "--threshold",
        "p95{tag:checkout} < 100ms, abort after 1s",
        "--json",
        &dir.join("r.json"),
    ]);
    assert_exit(&out, 3);
    assert!(started.elapsed().as_secs_f64() < 10.0);
    let j = read_json(&dir.path("r.json"));
    assert_valid(&j);
    assert_eq!(j["run"]["verdict"], "aborted");
    let r = threshold_results(&j);
    assert_eq!(
        r[2],
        (
            "p95{tag:checkout} < 100ms, abort after 1s".into(),
            false,
            true
        )
    );
    assert!(
        r[0].1 && r[1].1,
        "the fast tag and the aggregate p50 held: {r:?}"
    );
}

#[test]
fn unknown_tags_in_thresholds_are_exit_code_2_naming_the_tags() {
    let dir = TempDir::new("tag-unknown");
    let file = dir.path("t.yaml");
    std::fs::write(&file, TAGGED.replace("p95{tag:browse}", "p95{tag:brwse}")).unwrap();
    let out = run(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("t.yaml:13:5: threshold `p95{tag:brwse} < 100ms`: no task has tag `brwse` (tags: browse, checkout)"),
        "{err}"
    );
    std::fs::write(&file, TAGGED).unwrap();
    let f = file.to_str().unwrap();
    for (args, needle) in [
        (
            vec!["--threshold", "p95{tag:nope} < 1s"],
            "no task has tag `nope` (tags: browse, checkout)",
        ),
        (
            vec!["-E", "checkout", "--threshold", "p95{tag:checkout} < 1s"],
            "left out by -T/--task-tags or -E/--exclude-task-tags",
        ),
    ] {
        let mut a = vec!["run", f, "-H", "http://127.0.0.1:9", "-t", "1s"];
        a.extend(args.iter());
        let out = run(&a);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn open_model_csv_ends_with_uncorrected_columns_and_thresholds_match_the_json() {
    let target = DemoTarget::start(&["--latency", "fixed(5ms)"]);
    let dir = TempDir::new("csv-open");
    let out = run(&[
        "run",
        "--url",
        &format!("{}/api/products", target.url),
        "--arrival-rate",
        "100/s",
        "-t",
        "1s",
        "--threshold",
        "p95 < 5s",
        "--threshold",
        "rps > 1000000",
        "--threshold",
        "p50{name:/api/products} > 1ms",
        "--json",
        &dir.join("r.json"),
        "--csv",
        &dir.join("o"),
    ]);
    assert_exit(&out, 1);
    let j = read_json(&dir.path("r.json"));
    assert_valid(&j);
    let stats = csv_rows(&std::fs::read_to_string(dir.path("o_stats.csv")).unwrap());
    let head = &stats[0];
    assert_eq!(head.len(), 22 + 13);
    assert_eq!(head[21], "100%", "Locust's columns first, unchanged");
    assert_eq!(head[22], "Uncorrected Average Response Time");
    assert_eq!(head[24], "Uncorrected 50%");
    assert_eq!(head[34], "Uncorrected 100%");
    let agg = stats.iter().find(|r| r[1] == "Aggregated").unwrap();
    let u = &j["aggregate"]["latency_uncorrected_ms"];
    let c = &j["aggregate"]["latency_ms"];
    // As Locust writes them: percentiles in whole milliseconds, other times as Python prints
    // a float. serde_json's default parser may read a float back one unit in the last place
    // off what was written (6.4237400000000004 came back as 6.42374), so those are compared
    // as numbers.
    let whole = |v: &serde_json::Value| format!("{}", v.as_f64().unwrap().round() as u64);
    let float = |text: &str, v: &serde_json::Value| {
        let (got, want) = (text.parse::<f64>().unwrap(), v.as_f64().unwrap());
        assert!(
            text.contains('.'),
            "written as Python prints a float: {text}"
        );
        assert!(
            (got - want).abs() <= want.abs() * 1e-12,
            "{text} in the CSV, {want} in the JSON"
        );
    };
    assert_eq!(agg[2], j["aggregate"]["request_count"].to_string());
    assert_eq!(agg[11], whole(&c["p50"]));
    float(&agg[22], &u["avg"]);
    float(&agg[23], &u["min"]);
    assert_eq!(agg[24], whole(&u["p50"]));
    assert_eq!(agg[29], whole(&u["p95"]));
    assert_eq!(agg[34], whole(&u["max"]));
    assert!(stats.iter().all(|r| r.len() == 35));
    let csv = std::fs::read_to_string(dir.path("o_thresholds.csv")).unwrap();
    assert_threshold_csv_matches(&csv, &j);
    assert_eq!(csv.lines().count(), 4);
    assert!(csv.contains(",failed,false,"), "{csv}");
}
