//! The scenario language end to end: the seed scenarios in examples/ against the demo target,
//! captures, checks, flows, feeders, tags, validation and the file format's JSON Schema.

use std::process::Command;

use crate::support::*;

fn examples() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn by_name<'a>(j: &'a serde_json::Value, method: &str, name: &str) -> &'a serde_json::Value {
    j["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["method"] == method && r["name"] == name)
        .unwrap_or_else(|| panic!("no {method} {name} in {}", j["requests"]))
}

#[test]
fn ecommerce_flow_loops_over_products_with_the_session_cookie() {
    let target = DemoTarget::start(&["--latency", "0", "--error-rate", "0"]);
    let dir = TempDir::new("shop");
    let out = run(&[
        "run",
        examples().join("ecommerce-shopper.yaml").to_str().unwrap(),
        "-H",
        &target.url,
        "-u",
        "2",
        "-i",
        "6",
        "--json",
        &dir.join("r.json"),
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let j = json(&dir.path("r.json"));
    assert_eq!(j["aggregate"]["failure_count"], 0, "{}", j["errors"]);
    assert_eq!(by_name(&j, "POST", "/authenticate")["request_count"], 6);
    assert_eq!(
        by_name(&j, "GET", "/product/{product_id}")["request_count"],
        24
    );
    // /cart/add answers 401 without the session cookie set by /authenticate.
    assert_eq!(by_name(&j, "POST", "/cart/add")["request_count"], 24);
    assert_eq!(by_name(&j, "POST", "/checkout/confirm")["checks_passed"], 6);
    let stats = target.stats();
    assert_eq!(stats["routes"]["GET /product/{id}"], 24);
    assert_eq!(stats["routes"]["POST /cart/add"], 24);
}

#[test]
fn orders_api_logs_in_once_per_user_and_reuses_the_token() {
    let target = DemoTarget::start(&["--latency", "0", "--error-rate", "0"]);
    let dir = TempDir::new("orders");
    let out = Command::new(bin())
        .args([
            "run",
            examples().join("orders-api.yaml").to_str().unwrap(),
            "-H",
            &target.url,
            "-u",
            "3",
            "-i",
            "12",
            "--json",
            &dir.join("r.json"),
        ])
        .env("GIT_SHA", "abc1234")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let j = json(&dir.path("r.json"));
    assert_eq!(j["aggregate"]["failure_count"], 0, "{}", j["errors"]);
    assert_eq!(
        by_name(&j, "POST", "/api/v1/auth/login")["request_count"],
        3,
        "one login per user"
    );
    assert_eq!(j["aggregate"]["request_count"], 15);
    assert_eq!(j["aggregate"]["checks_failed"], 0);
    assert!(j["aggregate"]["checks_passed"].as_u64().unwrap() >= 15);
    assert_eq!(j["run"]["tags"]["git_sha"], "abc1234");
}

#[test]
fn failed_checks_and_missing_variables_fail_requests_with_reasons_and_the_run_goes_on() {
    let target = DemoTarget::start(&["--latency", "0", "--error-rate", "0"]);
    let dir = TempDir::new("checks");
    let file = dir.path("s.yaml");
    std::fs::write(
        &file,
        r#"
user_types:
  - name: u
    tasks:
      - steps:
          - request:
              path: /health
              check: [{ status: 201 }, { json: $.status, equals: ok }]
          - request:
              path: /api/products/sku_1
              capture: [{ json: $.no_such_field, as: missing }]
          - request: { path: "/api/products/{{ missing }}", name: /api/products/:id }
          - request: { path: /api/v1/orders, check: [{ status: 401 }] }
"#,
    )
    .unwrap();
    let out = run(&[
        "run",
        file.to_str().unwrap(),
        "-H",
        &target.url,
        "-u",
        "1",
        "-i",
        "5",
        "--json",
        &dir.join("r.json"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let j = json(&dir.path("r.json"));
    let errors: Vec<(String, String, u64)> = j["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["message"].as_str().unwrap().to_owned(),
                e["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(
        errors.contains(&("check".into(), "status: expected 201, got 200".into(), 5)),
        "{errors:?}"
    );
    assert!(
        errors.contains(&(
            "check".into(),
            "capture `missing`: $.no_such_field not found in the response".into(),
            5
        )),
        "{errors:?}"
    );
    assert!(
        errors.contains(&(
            "request".into(),
            "variable `missing` has no value (not captured or set yet)".into(),
            5
        )),
        "{errors:?}"
    );
    // A 401 that a status check expects is a success.
    assert_eq!(by_name(&j, "GET", "/api/v1/orders")["failure_count"], 0);
    assert_eq!(by_name(&j, "GET", "/health")["checks_passed"], 5);
    assert_eq!(by_name(&j, "GET", "/health")["checks_failed"], 5);
    assert_eq!(j["aggregate"]["request_count"], 20);
}

#[test]
fn feeder_rows_templates_and_tags_reach_the_target() {
    let rec = Recorder::start();
    let dir = TempDir::new("feeder");
    std::fs::write(
        dir.path("users.csv"),
        "email,tier\nann@x.io,gold\nbob@x.io,\"silver, old\"\n",
    )
    .unwrap();
    let file = dir.path("s.yaml");
    std::fs::write(
        &file,
        r#"
data:
  users: { file: users.csv, mode: unique, on_exhausted: stop_vu }
user_types:
  - name: u
    # A think time, so that one user cannot take every iteration before the others start.
    wait: constant(0.3)
    tasks:
      - tags: [a]
        request:
          path: /a
          query: { q: "{{ users.tier }}" }
          headers: { X-User: "{{ users.email }}", X-Req: "{{ counter(reqs) }}" }
      - tags: [b]
        request: { path: /b }
"#,
    )
    .unwrap();
    let out = run(&[
        "run",
        file.to_str().unwrap(),
        "-H",
        &rec.url,
        "-u",
        "3",
        "-i",
        "4",
        "-T",
        "a",
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let reqs = rec.requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 4, "{reqs:?}");
    assert!(
        reqs.iter().all(|r| r.starts_with("GET /a?q=")),
        "only tag a: {reqs:?}"
    );
    let users: std::collections::BTreeSet<String> = reqs
        .iter()
        .filter_map(|r| {
            r.lines()
                .find(|l| l.to_ascii_lowercase().starts_with("x-user:"))
                .map(|l| l[7..].trim().to_owned())
        })
        .collect();
    // Two rows for three users: the third user stops (stop_vu); each row stays with one user.
    assert_eq!(
        users.into_iter().collect::<Vec<_>>(),
        vec!["ann@x.io", "bob@x.io"]
    );
    assert!(
        reqs.iter()
            .any(|r| r.starts_with("GET /a?q=silver%2C%20old ")),
        "{reqs:?}"
    );
    let mut counters: Vec<u64> = reqs
        .iter()
        .filter_map(|r| {
            r.lines()
                .find(|l| l.to_ascii_lowercase().starts_with("x-req:"))
                .map(|l| l[6..].trim().parse().unwrap())
        })
        .collect();
    counters.sort();
    assert_eq!(counters, vec![1, 2, 3, 4], "run-wide counter");
}

#[test]
fn validate_catches_undefined_variables_and_bad_feeders_before_running() {
    let dir = TempDir::new("validate");
    let file = dir.path("s.yaml");
    std::fs::write(
        &file,
        "host: http://127.0.0.1:9\nuser_types:\n  - name: u\n    tasks:\n      - request: { path: \"/x/{{ tokn }}\" }\n",
    )
    .unwrap();
    let out = run(&["validate", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("s.yaml:5:"), "{err}");
    assert!(err.contains("unknown variable `tokn`"), "{err}");

    std::fs::write(
        &file,
        "data: { users: { file: nope.csv } }\nuser_types: [{ name: u, tasks: [{ request: { path: 'http://127.0.0.1:9/' } }] }]\n",
    )
    .unwrap();
    let out = run(&["run", file.to_str().unwrap(), "-t", "1s"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a missing feeder file stops the run before it starts"
    );
    assert!(
        stderr(&out).contains("data feeder `users`: cannot read"),
        "{}",
        stderr(&out)
    );

    for example in [
        "storefront",
        "orders-api",
        "checkout-stress",
        "search-api",
        "ecommerce-shopper",
    ] {
        let out = run(&[
            "validate",
            examples().join(format!("{example}.yaml")).to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{example}: {}", stderr(&out));
    }
}

#[test]
fn init_writes_a_starter_that_validates() {
    let dir = TempDir::new("init");
    let file = dir.join("scenario.yaml");
    assert!(run(&["init", &file]).status.success());
    assert!(run(&["validate", &file]).status.success());
    let again = run(&["init", &file]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "does not overwrite without --force"
    );
}

/// The JSON Schema that editors check scenarios with accepts every scenario loadlens accepts:
/// each example, what `init` writes, and each YAML snippet of the README that `validate`
/// accepts (`${VAR:-default}` in `host`, numbers as query values, …). The `$schema` link on
/// the first line of the examples and of `init`'s output resolves to the schema.
#[test]
fn the_scenario_schema_accepts_every_scenario_validate_accepts() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let schema_text = std::fs::read_to_string(repo.join("schemas/scenario.schema.json")).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&schema_text).unwrap();
    let check = |what: &str, text: &str| {
        let mut errors = Vec::new();
        crate::schema::validate(&schema, &schema, &yaml_to_json(text), "$", &mut errors);
        assert!(errors.is_empty(), "{what}: {errors:?}\n{text}");
    };
    // The file the `$schema` comment on the first line of `file` points to.
    let linked = |file: &std::path::Path| -> std::path::PathBuf {
        let text = std::fs::read_to_string(file).unwrap();
        let first = text.lines().next().unwrap_or_default();
        let link = first
            .strip_prefix("# yaml-language-server: $schema=")
            .unwrap_or_else(|| panic!("{}: no $schema link on line 1", file.display()));
        file.parent().unwrap().join(link)
    };

    let mut examples: Vec<_> = std::fs::read_dir(examples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    examples.sort();
    assert!(examples.len() >= 5, "{examples:?}");
    for f in &examples {
        let out = run(&["validate", f.to_str().unwrap()]);
        assert_exit(&out, 0);
        check(
            &f.display().to_string(),
            &std::fs::read_to_string(f).unwrap(),
        );
        let link = linked(f);
        assert_eq!(
            std::fs::read_to_string(&link).ok().as_deref(),
            Some(schema_text.as_str()),
            "{}: $schema -> {}",
            f.display(),
            link.display()
        );
    }

    let dir = TempDir::new("schema-init");
    let starter = dir.path("scenario.yaml");
    assert_exit(&run(&["init", starter.to_str().unwrap()]), 0);
    assert_exit(&run(&["validate", starter.to_str().unwrap()]), 0);
    check("init", &std::fs::read_to_string(&starter).unwrap());
    assert_eq!(
        std::fs::read_to_string(linked(&starter)).ok().as_deref(),
        Some(schema_text.as_str()),
        "init writes the schema its starter links to"
    );

    // What the issue found refused: the environment in `host`, numbers and booleans where
    // text is read (query values, headers, variables, form fields).
    let written = "\
host: ${TARGET_HOST:-http://127.0.0.1:9}
vars: { page_size: 20, debug: true }
user_types:
  - name: u
    headers: { X-Retry: 3 }
    tasks:
      - request:
          method: POST
          path: /search
          query: { page: 2, size: 20.5, exact: false }
          form: { n: 1 }
";
    let file = dir.path("written.yaml");
    std::fs::write(&file, written).unwrap();
    assert_exit(&run(&["validate", file.to_str().unwrap()]), 0);
    check("written", written);

    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let snippets: Vec<&str> = readme
        .split("```yaml\n")
        .skip(1)
        .filter_map(|s| s.split_once("\n```").map(|(yaml, _)| yaml))
        .collect();
    let mut accepted = 0;
    for (i, text) in snippets.iter().enumerate() {
        // A section shown alone (`load:`, `datadog:`) is checked inside a minimal scenario.
        let mut text = text.to_string();
        if !text.lines().any(|l| l.starts_with("user_types:")) {
            text.push_str(
                "\nuser_types: [{ name: u, tasks: [{ request: { path: 'http://127.0.0.1:9/' } }] }]",
            );
        }
        // The CSV files of its feeders, with the columns its templates read.
        for feeder in regex_lite::Regex::new(r"(\w+): \{ file: ([\w./-]+)")
            .unwrap()
            .captures_iter(&text)
        {
            let mut columns: Vec<String> =
                regex_lite::Regex::new(&format!(r"\{{\{{\s*{}\.(\w+)", &feeder[1]))
                    .unwrap()
                    .captures_iter(&text)
                    .map(|c| c[1].to_owned())
                    .collect();
            columns.sort();
            columns.dedup();
            let header = if columns.is_empty() {
                "id".to_owned()
            } else {
                columns.join(",")
            };
            let row = vec!["x"; header.split(',').count()].join(",");
            std::fs::write(dir.path(&feeder[2]), format!("{header}\n{row}\n")).unwrap();
        }
        let file = dir.path(&format!("readme-{i}.yaml"));
        std::fs::write(&file, format!("{text}\n")).unwrap();
        let out = run(&["validate", file.to_str().unwrap()]);
        if out.status.success() {
            check(&format!("README snippet {i}"), &text);
            accepted += 1;
        }
    }
    // Some snippets are other tools' files (a Prometheus or Collector configuration); the
    // scenario and its sections must be checked, not skipped.
    assert!(
        accepted >= 6,
        "{accepted} of {} README snippets validate",
        snippets.len()
    );
}

fn yaml_to_json(text: &str) -> serde_json::Value {
    // The examples use no anchors or tags: YAML's JSON subset plus plain scalars.
    loadlens_core::yaml::from_str(text).unwrap()
}

/// A scenario and a CSV saved by a Windows editor or a spreadsheet start with a byte-order
/// mark: both are read as if it were not there.
#[test]
fn validate_reads_files_saved_with_a_byte_order_mark() {
    let dir = TempDir::new("bom");
    std::fs::write(dir.path("users.csv"), "\u{feff}email,password\na@b.c,x\n").unwrap();
    let file = dir.path("s.yaml");
    std::fs::write(
        &file,
        "\u{feff}name: bom\nhost: http://127.0.0.1:9\ndata:\n  users: { file: users.csv }\nuser_types:\n  - name: u\n    tasks:\n      - request: { path: \"/x/{{ users.email }}\" }\n",
    )
    .unwrap();
    let out = run(&["validate", file.to_str().unwrap()]);
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains(": ok (1 user types, 1 tasks"),
        "{}",
        stdout(&out)
    );
}

/// An Excel "CSV UTF-8" file (byte-order mark, CRLF, quoted commas and line breaks) feeds
/// `{{ users.email }}`; a row with a field missing is named at its own line.
#[test]
fn validate_reads_an_excel_csv_and_names_a_ragged_row_by_line() {
    let dir = TempDir::new("excel");
    let excel = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../loadlens-core/tests/data/excel-utf8.csv"),
    )
    .unwrap();
    std::fs::write(dir.path("users.csv"), &excel).unwrap();
    let file = dir.path("s.yaml");
    std::fs::write(
        &file,
        "host: http://127.0.0.1:9\ndata:\n  users: { file: users.csv }\nuser_types:\n  - name: u\n    tasks:\n      - request: { path: \"/x/{{ users.email }}/{{ users.note }}\" }\n",
    )
    .unwrap();
    let out = run(&["validate", file.to_str().unwrap()]);
    assert_exit(&out, 0);
    let mut ragged = excel.clone();
    ragged.extend_from_slice(b"zed@example.com,Zed\r\n");
    std::fs::write(dir.path("users.csv"), &ragged).unwrap();
    let out = run(&["validate", file.to_str().unwrap()]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("users.csv:6: expected 3 fields like the header, found 2"),
        "{err}"
    );
}

/// An error is reported at its own line, not at the first similar text above it.
#[test]
fn validate_locates_header_and_step_errors_on_their_own_lines() {
    let dir = TempDir::new("locate");
    let file = dir.path("s.yaml");
    let text = "\
host: http://127.0.0.1:9
user_types:
  - name: a
    tasks:
      - steps:
          - request: { path: /a }
  - name: b
    tasks:
      - request:
          path: /b
          headers: { X-Ok: '1', \"X Bad\": '2' }
      - steps: []
";
    std::fs::write(&file, text).unwrap();
    let out = run(&["validate", file.to_str().unwrap()]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("s.yaml:12:9: `steps` is empty"), "{err}");

    std::fs::write(&file, text.replace("      - steps: []\n", "")).unwrap();
    let out = run(&["validate", file.to_str().unwrap()]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("s.yaml:11:33: invalid header name `x bad`"),
        "{err}"
    );
}

/// A value that does not read (a wrong type, a bad duration) is reported at that value with
/// its path and what was expected, even when the same key and text appear above it.
#[test]
fn validate_locates_a_bad_value_at_its_own_node_with_its_path() {
    let dir = TempDir::new("locate-value");
    let file = dir.path("s.yaml");
    let text = "\
host: http://127.0.0.1:9
user_types:
  - name: a
    weight: 2
    tasks:
      - request: { path: /a, timeout: 5s }
  - name: b
    weight: 2
    tasks:
      - request: { path: /a, timeout: 5 parsecs }
";
    std::fs::write(&file, text).unwrap();
    let out = run(&["validate", file.to_str().unwrap()]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains(
            "s.yaml:10:39: user_types[1].tasks[0].request.timeout: unknown unit `parsecs`"
        ),
        "{err}"
    );
    std::fs::write(
        &file,
        text.replace(
            "weight: 2\n    tasks:\n      - request: { path: /a, timeout: 5 p",
            "weight: two\n    tasks:\n      - request: { path: /a, timeout: 5 p",
        ),
    )
    .unwrap();
    let out = run(&["validate", file.to_str().unwrap()]);
    let err = stderr(&out);
    assert!(
        err.contains(
            "s.yaml:8:13: user_types[1].weight: invalid type: string \"two\", expected u32"
        ),
        "{err}"
    );
}

/// 80,000 tasks and 100,000 nested brackets (each ~200 KB and more): validated in about ten
/// times the time of a tenth of them, not a hundred.
#[test]
fn validate_handles_large_generated_files_in_linear_time() {
    let dir = TempDir::new("large");
    let tasks = |n: usize| {
        let mut s =
            String::from("host: http://127.0.0.1:9\nuser_types:\n  - name: u\n    tasks:\n");
        for i in 0..n {
            s.push_str(&format!(
                "      - {{ name: t{i}, request: {{ path: /p/{i} }} }}\n"
            ));
        }
        s
    };
    let validate = |name: &str, text: &str| {
        let file = dir.path(name);
        std::fs::write(&file, text).unwrap();
        let start = std::time::Instant::now();
        let out = run(&["validate", file.to_str().unwrap()]);
        (start.elapsed(), out)
    };
    let (small, out) = validate("small.yaml", &tasks(8_000));
    assert_exit(&out, 0);
    let (big, out) = validate("big.yaml", &tasks(80_000));
    assert_exit(&out, 0);
    assert!(
        stdout(&out).contains("80000 tasks, 80000 request names"),
        "{}",
        stdout(&out)
    );
    let ratio = big.as_secs_f64() / small.as_secs_f64();
    assert!(
        ratio < 30.0,
        "8,000 tasks: {small:?}, 80,000: {big:?} (×{ratio:.0})"
    );

    let nested = format!(
        "user_types:\n  - name: u\n    tasks:\n      - request: {{ path: /, json: {}1{} }}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let (took, out) = validate("nested.yaml", &nested);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("nested.yaml:4:"), "{err}");
    assert!(err.contains("nested more than 1000 levels deep"), "{err}");
    assert!(
        took < big,
        "100,000 brackets took {took:?}, 80,000 tasks {big:?}"
    );
}
