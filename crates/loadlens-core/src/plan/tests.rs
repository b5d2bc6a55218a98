use bytes::Bytes;
use http::Method;

use super::*;
use crate::client;
use crate::scenario::Scenario;

fn scenario(text: &str) -> Scenario {
    Scenario::from_str_named(text, "t.yaml").unwrap()
}

fn req(s: &StepPlan) -> &RequestPlan {
    match s {
        StepPlan::Request(r) => r,
        other => panic!("not a request: {other:?}"),
    }
}

#[test]
fn compiles_urls_names_headers_and_bodies() {
    let s = scenario(
        r#"
host: http://127.0.0.1:9/
headers: { X-A: scenario, X-B: scenario }
user_types:
  - name: u
    headers: { X-B: user }
    tasks:
      - request: { path: /p, query: { q: running shoes, page: "1" }, headers: { X-C: req } }
      - request: { method: POST, path: /o, json: { a: 1 }, name: create }
      - request: { path: /p?x=1 }
"#,
    );
    let opts = PlanOptions {
        run_id_header: Some((
            HeaderName::from_static("x-test-run-id"),
            HeaderValue::from_static("r1"),
        )),
        ..PlanOptions::default()
    };
    let plan = Plan::compile(&s, &opts).unwrap();
    let t = &plan.user_types[0].tasks;
    let r0 = &req(&t[0].steps[0]).request;
    assert_eq!(
        r0.url.to_string(),
        "http://127.0.0.1:9/p?q=running%20shoes&page=1"
    );
    assert_eq!(r0.headers["x-a"], "scenario");
    assert_eq!(r0.headers["x-b"], "user");
    assert_eq!(r0.headers["x-c"], "req");
    assert_eq!(r0.headers["x-test-run-id"], "r1");
    let r1 = &req(&t[1].steps[0]).request;
    assert_eq!(&r1.body[..], br#"{"a":1}"#);
    assert_eq!(r1.headers["content-type"], "application/json");
    assert_eq!(plan.names.get(req(&t[1].steps[0]).name), ("POST", "create"));
    // `/p` and `/p?x=1` group under one name.
    assert_eq!(req(&t[0].steps[0]).name, req(&t[2].steps[0]).name);
    assert_eq!(plan.names.len(), 2);
}

#[test]
fn relative_path_without_host_is_an_error() {
    let s = scenario("user_types: [{ name: u, tasks: [{ request: { path: /x } }] }]");
    let e = Plan::compile(&s, &PlanOptions::default()).unwrap_err();
    assert!(e.to_string().contains("no host is set"), "{e}");
    let ok = Plan::compile(
        &s,
        &PlanOptions {
            host: Some("http://h:1".into()),
            ..Default::default()
        },
    );
    assert!(ok.is_ok());
}

#[test]
fn a_port_that_is_not_a_number_is_an_error_not_port_80() {
    // `http::Uri` accepts any port text and then reports no port at all.
    let s = scenario("user_types: [{ name: u, tasks: [{ request: { path: 'http://h:80x/a' } }] }]");
    let e = Plan::compile(&s, &PlanOptions::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("has the port `80x`: expected a number"),
        "{e}"
    );
    let e = Plan::single(
        "http://h:99999/",
        Method::GET,
        Bytes::new(),
        &PlanOptions::default(),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("the port `99999` is not a number"),
        "{e}"
    );
    for ok in [
        "http://h:8080/",
        "http://[::1]:8080/",
        "http://[::1]/",
        "https://h/",
    ] {
        let uri: Uri = ok.parse().unwrap();
        assert_eq!(client::invalid_port(&uri), None, "{ok}");
    }
}

#[test]
fn users_are_spread_over_types_by_weight() {
    let s = scenario(
            "user_types: [{ name: a, weight: 3, tasks: [{ request: { path: 'http://h/a' } }] }, { name: b, weight: 1, tasks: [{ request: { path: 'http://h/b' } }] }]",
        );
    let plan = Plan::compile(&s, &PlanOptions::default()).unwrap();
    let picks: Vec<usize> = (0..8).map(|i| plan.user_type_for(i)).collect();
    assert_eq!(picks.iter().filter(|&&p| p == 0).count(), 6);
    // Proportional at every prefix: the first four users already include a `b`.
    assert!(picks[..4].contains(&1));
}

#[test]
fn tasks_are_picked_by_weight() {
    let s = scenario(
            "user_types: [{ name: a, tasks: [{ weight: 9, request: { path: 'http://h/a' } }, { weight: 1, request: { path: 'http://h/b' } }] }]",
        );
    let plan = Plan::compile(&s, &PlanOptions::default()).unwrap();
    let mut rng = fastrand::Rng::with_seed(3);
    let n = (0..10_000)
        .filter(|_| plan.user_types[0].pick(&mut rng).weight == 9)
        .count();
    assert!((8_800..9_200).contains(&n), "{n}");
}

#[test]
fn quick_mode_rejects_bad_urls() {
    assert!(Plan::single(
        "localhost:8080",
        Method::GET,
        Bytes::new(),
        &PlanOptions::default()
    )
    .is_err());
    assert!(Plan::single(
        "ftp://x/",
        Method::GET,
        Bytes::new(),
        &PlanOptions::default()
    )
    .is_err());
    assert!(Plan::single(
        "http://127.0.0.1:1/x",
        Method::GET,
        Bytes::new(),
        &PlanOptions::default()
    )
    .is_ok());
}

/// Only requests whose checks or captures read a response header keep every header field
/// (the HTTP/1.1 codec skips building the others: issue #18).
#[test]
fn only_requests_that_read_a_header_keep_every_header() {
    let s = scenario(
        r#"
host: http://127.0.0.1:9/
user_types:
  - name: u
    tasks:
      - request: { path: /a, check: [{ status: 200 }, { body_contains: ok }] }
      - request: { path: /b, check: [{ header: content-type, matches: json }] }
      - request: { path: /c, capture: [{ header: x-request-id, as: rid }] }
      - request: { path: /d, capture: [{ cookie: session, as: s }] }
"#,
    );
    let plan = Plan::compile(&s, &PlanOptions::default()).unwrap();
    let kept: Vec<bool> = plan.user_types[0]
        .tasks
        .iter()
        .map(|t| req(&t.steps[0]).request.keep_headers)
        .collect();
    assert_eq!(kept, [false, true, true, false]);
    // Quick mode has no checks or captures.
    let quick = Plan::single(
        "http://127.0.0.1:9/",
        Method::GET,
        Bytes::new(),
        &PlanOptions::default(),
    )
    .unwrap();
    assert!(
        !req(&quick.user_types[0].tasks[0].steps[0])
            .request
            .keep_headers
    );
}
