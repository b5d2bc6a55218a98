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
    assert_eq!(u.tasks[1].request.method.0, http::Method::POST);
    assert_eq!(u.tasks[1].request.timeout, Some(Duration::from_secs(5)));
    assert_eq!(
        u.tasks[1].request.json.as_ref().unwrap()["items"][0]["quantity"],
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
