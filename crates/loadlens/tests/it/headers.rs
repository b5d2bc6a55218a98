//! A header value is never split into two headers: a control character (a newline) in any
//! header source is refused before the run, or, when a template renders it during the run,
//! fails that request and is counted, without sending anything.

use std::process::Command;

use crate::support::*;

#[test]
fn a_newline_in_a_header_flag_is_refused_not_sent_as_a_second_header() {
    let rec = Recorder::start();
    let injected = "X-A: 1\nX-Injected: yes";
    for flag in ["--header", "-H"] {
        let out = run(&[
            "run", "--url", &rec.url, "-c", "1", "-n", "2", flag, injected,
        ]);
        assert_exit(&out, 2);
        assert!(
            stderr(&out).contains(
                "invalid value for header `X-A`: it contains the control character '\\n'"
            ),
            "{flag}: {}",
            stderr(&out)
        );
    }
    assert!(rec.requests.lock().unwrap().is_empty(), "no load was sent");
    // The environment twin holds one header per line.
    let out = Command::new(bin())
        .args(["run", "--url", &rec.url, "-c", "1", "-n", "2"])
        .env("LOADLENS_HEADERS", "X-A: 1\nX-B: 2\n")
        .env_remove("TEST_RUN_ID")
        .output()
        .unwrap();
    assert_exit(&out, 0);
    let reqs = rec.requests.lock().unwrap().clone();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        let lower = r.to_ascii_lowercase();
        assert!(
            lower.contains("\r\nx-a: 1\r\n") && lower.contains("\r\nx-b: 2\r\n"),
            "{r}"
        );
    }
}

#[test]
fn a_newline_in_a_scenario_header_is_an_error_at_its_value() {
    let rec = Recorder::start();
    let dir = TempDir::new("hdr-yaml");
    let file = dir.path("s.yaml");
    std::fs::write(
        &file,
        format!(
            "host: {}\nuser_types:\n  - name: u\n    tasks:\n      - request:\n          path: /\n          headers:\n            X-A: \"1\\nX-Injected: yes\"\n",
            rec.url
        ),
    )
    .unwrap();
    let out = run(&["run", file.to_str().unwrap(), "-u", "1", "-i", "1"]);
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains(
            "s.yaml:8:18: invalid value for header `x-a`: it contains the control character '\\n'"
        ),
        "{err}"
    );
    assert!(rec.requests.lock().unwrap().is_empty());
}

#[test]
fn a_newline_rendered_into_a_header_during_the_run_fails_that_request_and_is_counted() {
    let server = Recorder::answering("application/json", r#"{"v": "1\nX-Injected: yes"}"#);
    let (url, heads) = (server.url.clone(), server.requests.clone());
    let dir = TempDir::new("hdr-tpl");
    let file = dir.path("s.yaml");
    std::fs::write(
        &file,
        format!(
            "host: {url}\nuser_types:\n  - name: u\n    tasks:\n      - steps:\n          - request: {{ path: /get, capture: [{{ json: $.v, as: v }}] }}\n          - request: {{ path: /use, headers: {{ X-A: \"{{{{ v }}}}\" }} }}\n"
        ),
    )
    .unwrap();
    let json = dir.join("result.json");
    let out = run(&[
        "run",
        file.to_str().unwrap(),
        "-u",
        "1",
        "-i",
        "3",
        "--json",
        &json,
    ]);
    assert_exit(&out, 0);
    let heads = heads.lock().unwrap().clone();
    assert!(
        heads
            .iter()
            .all(|h| !h.to_ascii_lowercase().contains("x-injected")),
        "{heads:?}"
    );
    assert!(
        heads.iter().all(|h| h.starts_with("GET /get ")),
        "only the captures were sent: {heads:?}"
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let failed: Vec<_> = doc["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == "/use")
        .collect();
    assert_eq!(failed.len(), 1, "{doc}");
    assert_eq!(failed[0]["request_count"], 3);
    assert_eq!(failed[0]["failure_count"], 3);
    let errors = doc["errors"].to_string();
    assert!(
        errors.contains("header `x-a` has an invalid value after templating"),
        "{errors}"
    );
}

/// Each place a value goes is percent-encoded for that place, as the server receives it: a
/// query value keeps only the unreserved characters (`+` is `%2B`, a space `%20`), a form
/// field is `application/x-www-form-urlencoded` (a space is `+`, `*` stays, `~` is `%7E`).
#[test]
fn query_values_and_form_fields_are_encoded_for_their_place() {
    let rec = Recorder::start();
    let dir = TempDir::new("encode");
    let file = dir.path("s.yaml");
    std::fs::write(
        &file,
        format!(
            "host: {}\nvars: {{ who: \"Ann Lee+1\" }}\nuser_types:\n  - name: u\n    tasks:\n      - request:\n          method: POST\n          path: /f\n          query: {{ q: \"{{{{ who }}}}\", tag: \"x/y~z\", n: 7 }}\n          form: {{ name: \"{{{{ who }}}}\", note: \"50%*~\" }}\n",
            rec.url
        ),
    )
    .unwrap();
    let out = run(&["run", file.to_str().unwrap(), "-u", "1", "-i", "1"]);
    assert_exit(&out, 0);
    let head = rec.requests.lock().unwrap()[0].clone();
    assert!(
        head.starts_with("POST /f?q=Ann%20Lee%2B1&tag=x%2Fy~z&n=7 HTTP/1.1\r\n"),
        "{head}"
    );
    let body = String::from_utf8(rec.bodies.lock().unwrap()[0].clone()).unwrap();
    assert_eq!(body, "name=Ann+Lee%2B1&note=50%25*%7E");
}
