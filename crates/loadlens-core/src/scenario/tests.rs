use super::*;

const GOOD: &str = r#"
name: storefront
host: http://127.0.0.1:8080
headers:
  User-Agent: loadlens-test
user_types:
  - name: shopper
    weight: 3
    wait: between(1, 3)
    tasks:
      - name: homepage
        weight: 3
        request: { method: GET, path: /, name: GET / }
      - request:
          method: post
          path: /api/v1/orders
          json: { items: [{ sku: sku_1, quantity: 2 }] }
          timeout: 5s
load: { users: 10, spawn_rate: 5, run_time: 20s }
"#;

fn invalid(text: &str) -> (usize, usize, String) {
    match Scenario::from_str_named(text, "s.yaml").unwrap_err() {
        ScenarioError::Invalid {
            line,
            column,
            message,
            ..
        } => (line, column, message),
        e => panic!("unexpected {e:?}"),
    }
}

#[test]
fn parses_a_full_scenario() {
    let s = Scenario::from_str_named(GOOD, "s.yaml").unwrap();
    assert_eq!(s.name.as_deref(), Some("storefront"));
    let u = &s.user_types[0];
    assert_eq!(u.weight, 3);
    assert_eq!(
        u.wait,
        WaitTime::Between(Duration::from_secs(1), Duration::from_secs(3))
    );
    assert_eq!(
        u.tasks[1].request.as_ref().unwrap().method.0,
        http::Method::POST
    );
    assert_eq!(
        u.tasks[1].request.as_ref().unwrap().timeout,
        Some(Duration::from_secs(5))
    );
    assert_eq!(
        u.tasks[1].request.as_ref().unwrap().json.as_ref().unwrap()["items"][0]["quantity"],
        2
    );
    assert_eq!(s.load.run_time, Some(Duration::from_secs(20)));
    assert_eq!(s.load.users, Some(10));
}

#[test]
fn unknown_field_names_line_column_and_suggestion() {
    let text = GOOD.replace("    wait: between", "    wiat: between");
    let (line, col, msg) = invalid(&text);
    assert_eq!((line, col), (9, 5), "{msg}");
    assert!(msg.contains("unknown field `wiat`"), "{msg}");
    assert!(msg.contains("did you mean `wait`?"), "{msg}");
}

#[test]
fn wrong_type_names_what_was_expected() {
    let text = GOOD.replace("weight: 3\n    wait", "weight: lots\n    wait");
    let (line, _, msg) = invalid(&text);
    assert_eq!(line, 8, "{msg}");
    assert!(msg.contains("invalid type") && msg.contains("u32"), "{msg}");
}

#[test]
fn bad_wait_and_method_are_located() {
    let (line, _, msg) = invalid(&GOOD.replace("between(1, 3)", "between(1 3)"));
    assert_eq!(line, 9, "{msg}");
    assert!(msg.contains("expected `between(MIN, MAX)`"), "{msg}");
    let (line, _, msg) = invalid(&GOOD.replace("method: post", "method: FETCH"));
    assert_eq!(line, 15, "{msg}");
    assert!(msg.contains("unknown HTTP method `FETCH`"), "{msg}");
}

#[test]
fn semantic_errors_point_at_the_value() {
    let (line, col, msg) = invalid(&GOOD.replace("path: /api/v1/orders", "path: api/v1/orders"));
    assert_eq!((line, col), (16, 17), "{msg}");
    assert!(msg.contains("must start with `/`"), "{msg}");
    let (_, _, msg) = invalid(&GOOD.replace("http://127.0.0.1:8080", "127.0.0.1:8080"));
    assert!(msg.contains("must start with http://"), "{msg}");
}

#[test]
fn missing_required_key() {
    let (_, _, msg) = invalid("name: x\n");
    assert!(msg.contains("missing field `user_types`"), "{msg}");
}

#[test]
fn display_is_file_line_col() {
    let e = Scenario::from_str_named("user_types: 3\n", "f.yaml").unwrap_err();
    assert!(e.to_string().starts_with("f.yaml:1:"), "{e}");
}

/// The committed JSON Schema of the file format lists exactly the keys the parser accepts, at
/// every level: an unknown key makes serde list what it expects, which is compared with the
/// schema's `properties`. The top level and the integrations' sections are checked where the
/// integrations are known (the binary's `schema` tests).
#[test]
fn json_schema_is_in_sync_with_the_parser() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../../../schemas/scenario.schema.json")).unwrap();
    let defs = &schema["definitions"];
    let cases: Vec<(&str, &serde_json::Value)> = vec![
        ("user_types: [{ name: u, zzz: 1, tasks: [] }]\n", &defs["user_type"]),
        ("user_types: [{ name: u, tasks: [{ zzz: 1 }] }]\n", &defs["task"]),
        ("user_types: [{ name: u, tasks: [{ steps: [{ zzz: 1 }] }] }]\n", &defs["step"]),
        ("user_types: [{ name: u, tasks: [{ request: { path: /, zzz: 1 } }] }]\n", &defs["request"]),
        ("user_types: [{ name: u, tasks: [{ request: { path: /, capture: [{ as: x, zzz: 1 }] } }] }]\n", &defs["capture"]),
        ("user_types: [{ name: u, tasks: [{ request: { path: /, check: [{ zzz: 1 }] } }] }]\n", &defs["check"]),
        ("load: { zzz: 1 }\nuser_types: []\n", &defs["load"]),
        ("client: { zzz: 1 }\nuser_types: []\n", &schema["properties"]["client"]),
        ("run: { zzz: 1 }\nuser_types: []\n", &schema["properties"]["run"]),
        ("data: { x: { file: a.csv, zzz: 1 } }\nuser_types: []\n", &schema["properties"]["data"]["additionalProperties"]),
        ("scenarios: { x: { zzz: 1 } }\nuser_types: []\n", &schema["properties"]["scenarios"]["additionalProperties"]),
        ("thresholds: [{ threshold: p95 < 1s, zzz: 1 }]\nuser_types: []\n", &schema["properties"]["thresholds"]["items"]["oneOf"][1]),
    ];
    for (yaml, node) in cases {
        let msg = match Scenario::from_str_named(yaml, "s.yaml") {
            Err(ScenarioError::Invalid { message, .. }) => message,
            other => panic!("{yaml}: expected an unknown-field error, got {other:?}"),
        };
        assert!(msg.contains("unknown field `zzz`"), "{yaml}: {msg}");
        let list = msg
            .split("expected one of ")
            .nth(1)
            .or_else(|| msg.split("expected ").nth(1))
            .unwrap_or("");
        let mut parser_keys: Vec<&str> = list.split('`').skip(1).step_by(2).collect();
        parser_keys.sort();
        let mut schema_keys: Vec<&str> = node["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("no properties for {yaml}"))
            .keys()
            .map(String::as_str)
            .collect();
        schema_keys.sort();
        assert_eq!(parser_keys, schema_keys, "schema out of sync for: {yaml}");
    }
}

#[test]
fn flows_captures_checks_and_feeders_parse() {
    let text = r#"
vars: { region: eu }
data:
  users: { file: users.csv, mode: unique, on_exhausted: stop_vu }
user_types:
  - name: shopper
    count: 2
    wait: constant_pacing(2)
    on_start:
      - request:
          method: POST
          path: /api/v1/auth/login
          json: { email: "{{ users.email }}", password: x }
          capture: [{ json: $.access_token, as: token }]
          check: [{ status: [200, 201] }, { json: $.token_type, equals: Bearer }]
    tasks:
      - tags: [browse]
        steps:
          - for: id
            in: [1, 2]
            steps:
              - request: { path: "/product/{{ id }}" }
              - think: between(0.1, 0.2)
"#;
    let s = Scenario::from_str_named(text, "s.yaml").unwrap();
    let u = &s.user_types[0];
    assert_eq!(u.count, Some(2));
    assert_eq!(u.wait, WaitTime::ConstantPacing(Duration::from_secs(2)));
    let login = u.on_start[0].request.as_ref().unwrap();
    assert_eq!(login.capture[0].var, "token");
    assert_eq!(login.check.len(), 2);
    let steps = u.tasks[0].steps.as_ref().unwrap();
    assert_eq!(steps[0].for_each.as_deref(), Some("id"));
    assert_eq!(steps[0].steps.as_ref().unwrap().len(), 2);
    assert_eq!(s.data["users"].mode, crate::feeder::Mode::Unique);
}

#[test]
fn step_and_task_shape_errors() {
    let both = "user_types: [{ name: u, tasks: [{ request: { path: /a }, steps: [{ request: { path: /b } }] }] }]";
    assert!(Scenario::from_str_named(both, "s.yaml")
        .unwrap_err()
        .to_string()
        .contains("both `request` and `steps`"));
    let two =
        "user_types: [{ name: u, tasks: [{ steps: [{ request: { path: /b }, think: 1s }] }] }]";
    let ok = "user_types: [{ name: u, tasks: [{ steps: [{ request: { path: /b } }, { think: 1.5s }] }] }]";
    assert!(Scenario::from_str_named(ok, "s.yaml").is_ok());
    assert!(Scenario::from_str_named(two, "s.yaml")
        .unwrap_err()
        .to_string()
        .contains("exactly one of `request`, `think` or `for`"));
    let bad_loop = "user_types: [{ name: u, tasks: [{ steps: [{ for: x }] }] }]";
    assert!(Scenario::from_str_named(bad_loop, "s.yaml")
        .unwrap_err()
        .to_string()
        .contains("needs `in:`"));
}

#[test]
fn environment_variables_are_substituted_with_location_on_error() {
    let text = "host: ${TEST_HOST_X:-http://127.0.0.1:1}\nuser_types: [{ name: u, tasks: [{ request: { path: /x, headers: { X-K: \"${API_KEY_X}\" } } }] }]\n";
    let e = Scenario::parse(text, "s.yaml", Default::default(), |_| None).unwrap_err();
    let ScenarioError::Invalid {
        line,
        column,
        message,
        ..
    } = e
    else {
        panic!()
    };
    assert_eq!((line, column), (2, 73), "{message}");
    assert!(message.contains("`API_KEY_X` is not set"), "{message}");
    let s = Scenario::parse(text, "s.yaml", Default::default(), |k| {
        (k == "API_KEY_X").then(|| "k1".into())
    })
    .unwrap();
    assert_eq!(s.host.as_deref(), Some("http://127.0.0.1:1"));
    assert_eq!(
        s.user_types[0].tasks[0].request.as_ref().unwrap().headers["X-K"],
        "k1"
    );
}

#[test]
fn a_threshold_on_a_tag_no_task_has_is_located_and_lists_the_tags() {
    let text = r#"user_types:
  - name: u
    tasks:
      - { tags: [browse], request: { path: "http://h/a" } }
      - { tags: [checkout, pay], request: { path: "http://h/b" } }
thresholds:
  - p95{tag:checkout} < 1s
  - { threshold: "p99{tag:chekout} < 2s", abort_on_fail: true }
"#;
    let (line, col, msg) = invalid(text);
    assert_eq!((line, col), (8, 19), "{msg}");
    assert_eq!(
        msg,
        "threshold `p99{tag:chekout} < 2s`: no task has tag `chekout` (tags: browse, checkout, pay)"
    );
    let ok = text.replace("chekout", "pay");
    assert!(Scenario::from_str_named(&ok, "s.yaml").is_ok());
    let untagged = "user_types: [{ name: u, tasks: [{ request: { path: 'http://h/a' } }] }]\nthresholds: ['max{tag:x} < 1s']\n";
    let (_, _, msg) = invalid(untagged);
    assert!(msg.ends_with("(no task has `tags:`)"), "{msg}");
}

#[test]
fn a_byte_order_mark_at_the_start_is_accepted() {
    // Before, the mark glued itself to the first key: "missing field `user_types`".
    let s = Scenario::from_str_named(&format!("\u{feff}{}", GOOD.trim_start()), "s.yaml");
    assert_eq!(s.unwrap().name.as_deref(), Some("storefront"));
    let s = Scenario::from_str_named(&format!("\u{feff}---\n{}", GOOD.trim_start()), "s.yaml");
    assert_eq!(s.unwrap().name.as_deref(), Some("storefront"));
    // Errors keep the lines and columns an editor shows (the mark is invisible there).
    // (An unknown top-level key is refused once the integrations' sections are known.)
    let s = Scenario::from_str_named(
        "\u{feff}zzz: 1\nuser_types: [{ name: u, tasks: [{ request: { path: / } }] }]\n",
        "s.yaml",
    )
    .unwrap();
    let Err(ScenarioError::Invalid {
        line,
        column: col,
        message: msg,
        ..
    }) = s.check_sections(&[])
    else {
        panic!("zzz is refused")
    };
    assert_eq!((line, col), (1, 1), "{msg}");
}

#[test]
fn an_error_is_located_at_its_own_node_not_at_an_earlier_similar_key() {
    let text = "\
host: http://127.0.0.1:1
user_types:
  - name: a
    tasks:
      - steps:
          - request: { path: /a }
      - steps:
          - request: { path: /b }
  - name: b
    tasks:
      - request: { path: /c }
      - steps: []
";
    let (line, col, msg) = invalid(text);
    assert_eq!((line, col), (12, 9), "{msg}");
    assert!(msg.contains("`steps` is empty"), "{msg}");

    let both = text.replace(
        "      - request: { path: /c }\n      - steps: []",
        "      - request: { path: /c }\n        steps: [{ think: 1s }]",
    );
    let (line, col, msg) = invalid(&both);
    assert_eq!((line, col), (12, 9), "{msg}");
    assert!(msg.contains("both `request` and `steps`"), "{msg}");

    // The second `path: /b` of the same text is the one reported, at its value.
    let (line, col, msg) = invalid(
        &text
            .replace("path: /b", "path: b")
            .replace("steps: []", "steps: [{ think: 1s }]"),
    );
    assert_eq!((line, col), (8, 30), "{msg}");
}

/// Header errors come from compiling the plan, with the header's own line and column.
#[test]
fn header_errors_point_at_the_header() {
    let compile_error = |text: &str| {
        let s = Scenario::from_str_named(text, "s.yaml").unwrap();
        match crate::plan::Plan::compile(&s, &Default::default()).unwrap_err() {
            crate::plan::PlanError::Scenario(ScenarioError::Invalid {
                line,
                column,
                message,
                ..
            }) => (line, column, message),
            e => panic!("unexpected {e}"),
        }
    };
    let base = "\
host: http://127.0.0.1:1
headers:
  User-Agent: t
user_types:
  - name: u
    headers: { X-Team: a }
    tasks:
      - request:
          path: /
          headers:
            Accept: '*/*'
            X-Ok: yes
";
    // A name with a space, in a request: the key, on its line.
    let (line, col, msg) = compile_error(&base.replace("X-Ok: yes", "Bad Name: yes"));
    assert_eq!((line, col), (12, 13), "{msg}");
    assert!(msg.contains("invalid header name `bad name`"), "{msg}");
    // A value with a control character (written as an escape, so absent from the text).
    let (line, col, msg) = compile_error(&base.replace("X-Ok: yes", "X-Ok: \"a\\u0001b\""));
    assert_eq!((line, col), (12, 19), "{msg}");
    assert!(msg.contains("invalid value for header `x-ok`"), "{msg}");
    // In the user type's and the scenario's headers.
    let (line, col, msg) = compile_error(&base.replace("X-Team: a", "X-Team: \"\\n\""));
    assert_eq!((line, col), (6, 24), "{msg}");
    let (line, col, msg) = compile_error(&base.replace("User-Agent: t", "\"User Agent\": t"));
    assert_eq!((line, col), (3, 3), "{msg}");
}

/// Load settings are located at `load:`, not at the first text `load` (here, a comment).
#[test]
fn load_errors_are_located_at_the_load_key() {
    let text = "\
# `loadlens demo` loads this file
user_types: [{ name: u, tasks: [{ request: { path: 'http://h/' } }] }]
load: { max_vus: 0 }
";
    let (line, col, msg) = invalid(text);
    assert_eq!((line, col), (3, 1), "{msg}");
    let named = "\
# browse the shop
user_types: [{ name: u, tasks: [{ request: { path: 'http://h/' } }] }]
scenarios:
  browse: { user_types: [shop] }
";
    let (line, col, msg) = invalid(named);
    assert_eq!((line, col), (4, 26), "{msg}");
    assert!(msg.contains("user type `shop`"), "{msg}");
}

#[test]
fn durations_beyond_the_maximum_are_located_errors() {
    for (from, to, line) in [
        ("run_time: 20s", "run_time: 18446744073709551615s", 19),
        ("timeout: 5s", "timeout: 1e300", 18),
        ("wait: between(1, 3)", "wait: constant(1e30)", 9),
        ("wait: between(1, 3)", "wait: between(1,1e308)", 9),
        ("wait: between(1, 3)", "wait: constant_pacing(1e300)", 9),
    ] {
        let (l, _, msg) = invalid(&GOOD.replace(from, to));
        assert_eq!(l, line, "{to}: {msg}");
        assert!(
            msg.contains("365 days") || msg.contains("invalid wait"),
            "{to}: {msg}"
        );
    }
    let think = GOOD.replace(
        "request: { method: GET, path: /, name: GET / }",
        "steps: [{ think: 1e30 }, { request: { path: / } }]",
    );
    let (l, _, msg) = invalid(&think);
    assert_eq!(l, 13, "{msg}");
    assert!(msg.contains("365 days"), "{msg}");
}

#[test]
fn loads_that_run_rejects_are_located_errors() {
    for (load, key, says) in [
        (
            "{ users: 0, run_time: 20s }",
            "users",
            "`users: 0` runs nothing",
        ),
        (
            "{ users: 5, spawn_rate: 0 }",
            "spawn_rate",
            "positive number",
        ),
        (
            "{ users: 5, spawn_rate: -1 }",
            "spawn_rate",
            "positive number",
        ),
        (
            "{ arrival_rate: 0/s, run_time: 5s }",
            "arrival_rate",
            "nothing would run",
        ),
        (
            "{ users: 18446744073709551615 }",
            "users",
            "limit of 1000000 users",
        ),
        (
            "{ arrival_rate: 1e12, run_time: 5s }",
            "arrival_rate",
            "limit of 1000000/s",
        ),
        (
            "{ users: 5, spawn_rate: 2, stages: 1s:5 }",
            "spawn_rate",
            "does not apply",
        ),
    ] {
        let text = GOOD.replace("{ users: 10, spawn_rate: 5, run_time: 20s }", load);
        let (line, col, msg) = invalid(&text);
        let at = text.find(&format!("{key}:")).unwrap();
        assert_eq!(line, text[..at].matches('\n').count() + 1, "{load}: {msg}");
        assert!(col > 1, "{load}: {msg}");
        assert!(msg.contains(says), "{load}: {msg}");
    }
    let (_, _, msg) = invalid(&GOOD.replace("timeout: 5s", "timeout: 0s"));
    assert!(msg.contains("is 0: every request would time out"), "{msg}");
    let (_, _, msg) = invalid(&format!("{GOOD}client: {{ timeout: 0ms }}\n"));
    assert!(msg.contains("client.timeout is 0"), "{msg}");
    let (_, _, msg) = invalid(&format!(
        "{GOOD}thresholds: ['p95{{scenario:nope}} < 1s']\n"
    ));
    assert!(msg.contains("no scenario is named `nope`"), "{msg}");
}

#[test]
fn max_body_size_takes_units_or_bytes_and_points_at_a_bad_one() {
    const ONE_USER: &str = "user_types: [{ name: u, tasks: [{ request: { path: / } }] }]\n";
    let parse = |v: &str| {
        Scenario::from_str_named(
            &format!("client: {{ max_body_size: {v} }}\n{ONE_USER}"),
            "s.yaml",
        )
        .map(|s| s.client.max_body_size)
    };
    assert_eq!(parse("4MiB").unwrap(), Some(4 << 20));
    assert_eq!(parse("512 KiB").unwrap(), Some(512 << 10));
    assert_eq!(parse("1000").unwrap(), Some(1000));
    let (line, col, msg) = invalid("user_types: []\nclient:\n  max_body_size: 4 lots\n");
    assert_eq!((line, col), (3, 18), "{msg}");
    assert!(msg.contains("invalid size `4 lots`"), "{msg}");
    let (_, _, msg) = invalid("user_types: []\nclient: { max_body_size: 0 }\n");
    assert!(msg.contains("at least 1 byte"), "{msg}");
}

#[test]
fn thresholds_in_k6_form_read_as_loadlens_rules() {
    let yaml = "user_types: [{ name: u, tasks: [{ request: { path: 'http://h/a' } }] }]
thresholds:
  http_req_duration: ['p(95)<500', { threshold: 'avg<200', abortOnFail: true, delayAbortEval: 10s }]
  http_req_failed: 'rate<0.01'
";
    let s = Scenario::from_str_named(yaml, "s.yaml").unwrap();
    let rules: Vec<_> = s.thresholds.iter().map(|t| t.parse().unwrap()).collect();
    let shown: Vec<_> = rules
        .iter()
        .map(|t| (t.expression.as_str(), t.value, t.abort_on_fail))
        .collect();
    assert_eq!(
        shown,
        [
            ("http_req_duration: p(95)<500", 500.0, false),
            ("http_req_duration: avg<200", 200.0, true),
            ("http_req_failed: rate<0.01", 0.01, false),
        ]
    );
    assert_eq!(rules[1].delay, Some(std::time::Duration::from_secs(10)));
    assert_eq!(rules[2].metric, crate::thresholds::Metric::ErrorRate);
}

#[test]
fn query_parameters_keep_their_written_order() {
    let yaml = "user_types: [{ name: u, tasks: [{ request: { path: 'http://h/a', query: { z: 1, a: 2, m: x } } }] }]\n";
    let s = Scenario::from_str_named(yaml, "s.yaml").unwrap();
    let query = &s.user_types[0].tasks[0].request.as_ref().unwrap().query;
    let keys: Vec<&str> = query.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["z", "a", "m"]);
    assert_eq!(query[0].1, "1", "a number is read as its text, as before");
}
