//! Habits users bring from hey, oha, Locust and k6: `run URL`, `-q`, `-D`, `-a`,
//! `--disable-keepalive`, k6 thresholds, `-T/--task-tags` against `--tag`; query parameters
//! in written order; results an older build can read; completions and the man page.

use std::sync::atomic::Ordering;

use crate::support::{assert_exit, run, stderr, stdout, Recorder, TempDir};

fn heads(r: &Recorder) -> Vec<String> {
    r.requests.lock().unwrap().clone()
}

#[test]
fn run_takes_the_url_as_its_argument() {
    let r = Recorder::start();
    let url = format!("{}/hello?x=1", r.url);
    let out = run(&["run", &url, "-n", "5", "-c", "1", "--no-tui"]);
    assert_exit(&out, 0);
    let heads = heads(&r);
    assert_eq!(heads.len(), 5, "{heads:?}");
    assert!(
        heads[0].starts_with("GET /hello?x=1 HTTP/1.1"),
        "{}",
        heads[0]
    );
    // Upper-case schemes are URLs too; --url keeps working.
    let upper = format!("HTTP://{}/u", r.url.trim_start_matches("http://"));
    assert_exit(&run(&["run", &upper, "-n", "1", "--no-tui"]), 0);
    assert_exit(&run(&["run", "--url", &url, "-n", "1", "--no-tui"]), 0);
    assert_eq!(r.requests.lock().unwrap().len(), 7);
}

#[test]
fn an_argument_without_scheme_is_a_file_and_the_error_says_how_to_give_a_url() {
    let out = run(&["run", "localhost:8080/x", "-n", "1"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("quick mode takes a URL starting with http:// or https://"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn disable_keepalive_opens_one_connection_per_request() {
    let kept = Recorder::start();
    assert_exit(
        &run(&["run", &kept.url, "-n", "20", "-c", "2", "--no-tui"]),
        0,
    );
    assert_eq!(kept.requests.lock().unwrap().len(), 20);
    assert_eq!(
        kept.connections.load(Ordering::SeqCst),
        2,
        "keep-alive: one per user"
    );

    let fresh = Recorder::start();
    let out = run(&[
        "run",
        &fresh.url,
        "-n",
        "20",
        "-c",
        "2",
        "--disable-keepalive",
        "--no-tui",
        "--json",
        "/dev/null",
    ]);
    assert_exit(&out, 0);
    let heads = heads(&fresh);
    assert_eq!(heads.len(), 20);
    assert_eq!(
        fresh.connections.load(Ordering::SeqCst),
        20,
        "one per request"
    );
    assert!(
        heads
            .iter()
            .all(|h| h.to_ascii_lowercase().contains("connection: close")),
        "{heads:?}"
    );
}

#[test]
fn body_file_and_basic_auth_are_sent() {
    let r = Recorder::start();
    let dir = TempDir::new("bodyfile");
    std::fs::write(dir.path("body.json"), b"{\"sku\": \"a-1\"}\n").unwrap();
    let out = run(&[
        "run",
        &r.url,
        "-n",
        "2",
        "-c",
        "1",
        "-m",
        "post",
        "-D",
        &dir.join("body.json"),
        "-a",
        "user:s3cret",
        "-H",
        "Content-Type: application/json",
        "--no-tui",
        "--json",
        &dir.join("r.json"),
    ]);
    assert_exit(&out, 0);
    let heads = heads(&r);
    assert!(heads[0].starts_with("POST / HTTP/1.1"), "{}", heads[0]);
    // base64("user:s3cret")
    assert!(
        heads[0].contains("authorization: Basic dXNlcjpzM2NyZXQ="),
        "{}",
        heads[0]
    );
    assert_eq!(r.bodies.lock().unwrap()[1], b"{\"sku\": \"a-1\"}\n");
    let result = std::fs::read_to_string(dir.path("r.json")).unwrap();
    assert!(!result.contains("s3cret") && !result.contains("dXNlcjpzM2NyZXQ="));
    assert!(!stdout(&out).contains("s3cret"));
}

#[test]
fn rate_sends_that_many_requests_per_second_in_total() {
    let r = Recorder::start();
    let dir = TempDir::new("rate");
    let out = run(&[
        "run",
        &r.url,
        "-q",
        "20",
        "-z",
        "2s",
        "-c",
        "4",
        "--no-tui",
        "--json",
        &dir.join("r.json"),
    ]);
    assert_exit(&out, 0);
    let sent = r.requests.lock().unwrap().len();
    assert!((36..=42).contains(&sent), "20/s for 2 s, sent {sent}");
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("r.json")).unwrap()).unwrap();
    let text = j.to_string();
    assert!(
        text.contains("\"rate_per_s\":20.0"),
        "open model at 20/s: {text}"
    );
    assert!(r.connections.load(Ordering::SeqCst) <= 4, "-c caps the VUs");
}

#[test]
fn quick_mode_flags_with_a_scenario_file_name_the_file_equivalent() {
    let r = Recorder::start();
    let dir = TempDir::new("quickonly");
    let file = dir.join("s.yaml");
    std::fs::write(
        &file,
        format!(
            "host: {}\nuser_types: [{{ name: u, tasks: [{{ request: {{ path: /a }} }}] }}]\n",
            r.url
        ),
    )
    .unwrap();
    let out = run(&["run", &file, "-c", "3", "-i", "1"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("-c/--connections belongs to quick mode (`loadlens run URL`); with a scenario file, use -u/--users"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn query_parameters_go_out_in_the_order_written() {
    let r = Recorder::start();
    let dir = TempDir::new("query");
    let file = dir.join("s.yaml");
    std::fs::write(
        &file,
        format!(
            "host: {}\nuser_types:\n  - name: u\n    tasks:\n      - request: {{ path: /search, query: {{ q: running shoes, page: 2, a: x }} }}\n",
            r.url
        ),
    )
    .unwrap();
    assert_exit(&run(&["run", &file, "-i", "1", "--no-tui"]), 0);
    let heads = heads(&r);
    assert!(
        heads[0].starts_with("GET /search?q=running%20shoes&page=2&a=x HTTP/1.1"),
        "{}",
        heads[0]
    );
}

#[test]
fn k6_thresholds_are_read_or_answered_with_the_loadlens_rule() {
    let r = Recorder::start();
    let dir = TempDir::new("k6");
    let out = run(&[
        "run",
        &r.url,
        "-n",
        "5",
        "--no-tui",
        "--threshold",
        "p(95)<5000",
        "--threshold",
        "http_req_failed: rate<0.01",
        "--threshold",
        "http_req_duration: avg<5000",
        "--threshold",
        "http_reqs: count>=5",
        "--json",
        &dir.join("r.json"),
    ]);
    assert_exit(&out, 0);
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path("r.json")).unwrap()).unwrap();
    let thresholds = j["thresholds"].as_array().unwrap();
    assert_eq!(thresholds.len(), 4);
    assert!(
        thresholds.iter().all(|t| t["passed"] == true),
        "{thresholds:?}"
    );
    // A failing k6 rule fails the run as its loadlens twin would.
    let out = run(&[
        "run",
        &r.url,
        "-n",
        "3",
        "--no-tui",
        "--threshold",
        "http_reqs: count>100",
    ]);
    assert_exit(&out, 1);

    let out = run(&["run", &r.url, "-n", "1", "--threshold", "rate<0.01"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("`http_req_failed: rate<0.01` (loadlens `error_rate < 1%`)"),
        "{}",
        stderr(&out)
    );
    let out = run(&[
        "run",
        &r.url,
        "-n",
        "1",
        "--threshold",
        "http_req_waiting: p(95)<100",
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("has no loadlens threshold"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn task_tags_and_run_tags_are_told_apart() {
    let r = Recorder::start();
    let dir = TempDir::new("tags");
    let file = dir.join("s.yaml");
    std::fs::write(
        &file,
        format!(
            "host: {}\nuser_types:\n  - name: u\n    tasks:\n      - {{ tags: [browse], request: {{ path: /browse }} }}\n      - {{ tags: [buy], request: {{ path: /buy }} }}\n",
            r.url
        ),
    )
    .unwrap();
    let out = run(&[
        "run", &file, "-i", "4", "-T", "buy", "--tag", "env=ci", "--no-tui",
    ]);
    assert_exit(&out, 0);
    assert!(heads(&r).iter().all(|h| h.starts_with("GET /buy ")));

    // The old spelling still filters, with a warning.
    let out = run(&["run", &file, "-i", "2", "--tags", "buy", "--no-tui"]);
    assert_exit(&out, 0);
    assert!(
        stderr(&out).contains("--tags is now -T/--task-tags"),
        "{}",
        stderr(&out)
    );
    assert!(heads(&r).iter().all(|h| h.starts_with("GET /buy ")));

    // A run tag given to the task filter, and a task tag given as a run tag.
    let out = run(&["run", &file, "-i", "1", "--tags", "env=prod"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("to label the run, use --tag env=prod"),
        "{}",
        stderr(&out)
    );
    let out = run(&["run", &file, "-i", "1", "--tag", "buy"]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("use -T/--task-tags buy"),
        "{}",
        stderr(&out)
    );
}

/// Add `key` to every JSON object but the maps keyed by data (tags, status codes, error
/// kinds), as a newer build adding a field anywhere would.
fn add_everywhere(v: &mut serde_json::Value, key: &str, parent: &str) -> usize {
    let mut n = 0;
    match v {
        serde_json::Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                n += add_everywhere(child, key, k);
            }
            if !matches!(parent, "tags" | "status_codes" | "errors_by_kind") {
                m.insert(key.to_owned(), serde_json::json!({"new": [1, 2]}));
                n += 1;
            }
        }
        serde_json::Value::Array(items) => {
            for i in items {
                n += add_everywhere(i, key, parent);
            }
        }
        _ => {}
    }
    n
}

#[test]
fn a_result_with_added_fields_is_read_and_a_newer_format_is_refused() {
    let r = Recorder::start();
    let dir = TempDir::new("compat");
    let result = dir.join("r.json");
    let out = run(&[
        "run",
        &r.url,
        "-q",
        "20",
        "-n",
        "10",
        "--no-tui",
        "--threshold",
        "p95 < 5s",
        "--json",
        &result,
    ]);
    assert_exit(&out, 0);
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    let added = add_everywhere(&mut doc, "added_by_a_newer_loadlens", "");
    assert!(added > 20, "{added} objects");
    let newer = dir.join("newer.json");
    std::fs::write(&newer, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let out = run(&["report", &newer, "--html", &dir.join("r.html")]);
    assert_exit(&out, 0);
    let out = run(&["compare", &result, &newer]);
    assert_exit(&out, 0);

    doc["format_version"] = 2.into();
    std::fs::write(&newer, serde_json::to_string(&doc).unwrap()).unwrap();
    let out = run(&["compare", &result, &newer]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("format_version 2 is not supported (this build reads 1); it was written by a newer loadlens"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn completions_name_the_subcommands_and_flags_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = run(&["completions", shell]);
        assert_exit(&out, 0);
        let script = stdout(&out);
        // fish names long flags without their dashes (`-l basic-auth`).
        for word in [
            "run",
            "demo-target",
            "compare",
            "completions",
            "task-tags",
            "disable-keepalive",
            "basic-auth",
            "otel",
        ] {
            assert!(script.contains(word), "{shell}: no `{word}`");
        }
        if shell != "fish" {
            assert!(script.contains("--disable-keepalive"), "{shell}");
        }
    }
    let out = run(&["completions", "tcsh"]);
    assert_exit(&out, 2);
}

#[test]
fn the_man_page_renders_with_every_subcommand() {
    let out = run(&["man"]);
    assert_exit(&out, 0);
    let page = stdout(&out);
    assert!(
        page.starts_with(".ie") || page.contains(".TH loadlens 1"),
        "{page}"
    );
    let dir = TempDir::new("man");
    std::fs::write(dir.path("loadlens.1"), &page).unwrap();
    // groff in warning mode: the page must be valid roff, not merely text.
    let groff = std::process::Command::new("groff")
        .args(["-man", "-Kutf8", "-ww", "-z"])
        .arg(dir.path("loadlens.1"))
        .output()
        .expect("groff (apt-get install groff-base)");
    assert!(groff.status.success());
    assert_eq!(String::from_utf8_lossy(&groff.stderr), "", "groff warnings");
    let text = std::process::Command::new("groff")
        .args(["-man", "-Kutf8", "-Tutf8", "-P-cbou"])
        .arg(dir.path("loadlens.1"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    for heading in [
        "LOADLENS RUN",
        "LOADLENS COMPARE",
        "LOADLENS CONVERT HAR",
        "LOADLENS MAN",
        "--disable-keepalive",
        "LOADLENS_RATE",
    ] {
        assert!(text.contains(heading), "no `{heading}` in\n{text}");
    }
}

/// `compare --min-requests N`: a request name with fewer than N requests in either run is
/// shown as "too few samples" and cannot fail the build; names with enough still can.
#[test]
fn compare_min_requests_keeps_a_rare_request_from_failing_the_build() {
    let r = Recorder::start();
    let dir = TempDir::new("min-requests");
    let scenario = dir.path("s.yaml");
    std::fs::write(
        &scenario,
        format!(
            "host: {}\nuser_types:\n  - name: u\n    on_start:\n      - request: {{ path: /login }}\n    tasks:\n      - request: {{ path: /many }}\n",
            r.url
        ),
    )
    .unwrap();
    let base = dir.join("base.json");
    let out = run(&[
        "run",
        scenario.to_str().unwrap(),
        "-u",
        "2",
        "-i",
        "60",
        "--no-tui",
        "--json",
        &base,
    ]);
    assert_exit(&out, 0);
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&base).unwrap()).unwrap();
    // The new run: the same, with a p95 ten times higher on the given names.
    let slower = |names: &[&str]| {
        let mut d = doc.clone();
        for req in d["requests"].as_array_mut().unwrap() {
            if names.contains(&req["name"].as_str().unwrap()) {
                let p95 = req["latency_ms"]["p95"].as_f64().unwrap();
                req["latency_ms"]["p95"] = (p95 * 10.0 + 10.0).into();
            }
        }
        let path = dir.join(&format!("new-{}.json", names.len()));
        std::fs::write(&path, serde_json::to_string(&d).unwrap()).unwrap();
        path
    };
    let login: Vec<_> = doc["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == "/login")
        .collect();
    assert_eq!(login[0]["request_count"], 2, "one login per user");

    let new = slower(&["/login"]);
    let bound = ["--fail-if", "p95 > +50%"];
    let out = run(&[&["compare", &base, &new][..], &bound].concat());
    assert_exit(&out, 1);
    assert!(stdout(&out).contains("GET /login: p95"), "{}", stdout(&out));

    let out = run(&[
        &["compare", &base, &new, "--min-requests", "10"][..],
        &bound,
    ]
    .concat());
    assert_exit(&out, 0);
    let text = stdout(&out);
    assert!(
        text.contains(
            "too few samples (under --min-requests 10, not checked): GET /login (2 → 2 requests)"
        ),
        "{text}"
    );
    assert!(text.contains("ok    p95 > +50%"), "{text}");

    // A name with enough requests still fails the build.
    let new = slower(&["/login", "/many"]);
    let out = run(&[
        &["compare", &base, &new, "--min-requests", "10"][..],
        &bound,
    ]
    .concat());
    assert_exit(&out, 1);
    assert!(stdout(&out).contains("GET /many: p95"), "{}", stdout(&out));
}
