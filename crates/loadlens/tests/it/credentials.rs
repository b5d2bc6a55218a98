//! `user:password@` in a target or Datadog URL is sent as `Authorization: Basic`, never inside
//! the `Host` header, and never shown: the banner, the reports and the errors say `user:***@`.

use std::process::Command;

use loadlens_sinks::datadog::stub::{DatadogStub, API_KEY};

use crate::support::*;

/// `Basic` and the base64 of `user:password`.
fn basic(pair: &str) -> String {
    format!(
        "basic {}",
        loadlens_core::encoding::base64(pair.as_bytes()).to_ascii_lowercase()
    )
}

fn header_block_has(head: &str, line: &str) -> bool {
    head.to_ascii_lowercase()
        .lines()
        .any(|l| l.trim_end() == line)
}

#[test]
fn url_credentials_are_sent_as_basic_auth_and_shown_only_redacted() {
    let rec = Recorder::start();
    let stub = DatadogStub::start();
    let dir = TempDir::new("creds");
    let authority = rec.url.trim_start_matches("http://").to_owned();
    let url = format!("http://ops:s3cret-pw@{authority}/x");
    let dd_url = stub.url().replace("http://", "http://dd:s3cret-dd@");
    let out = Command::new(bin())
        .args(["run", "--url", &url, "-c", "1", "-n", "3"])
        .args(["--datadog-url", &dd_url])
        .args(["--json", &dir.join("result.json")])
        .args(["--html", &dir.join("report.html")])
        .env("DD_API_KEY", API_KEY)
        .env_remove("TEST_RUN_ID")
        .env_remove("DD_AGENT_HOST")
        .output()
        .unwrap();
    assert_exit(&out, 0);

    let heads = rec.requests.lock().unwrap().clone();
    assert_eq!(heads.len(), 3);
    for h in &heads {
        assert!(
            header_block_has(
                h,
                &basic("ops:s3cret-pw").replace("basic", "authorization: basic")
            ),
            "{h}"
        );
        assert!(header_block_has(h, &format!("host: {authority}")), "{h}");
    }
    let calls = stub.requests();
    assert!(!calls.is_empty());
    let dd_authority = stub.url().trim_start_matches("http://");
    for c in &calls {
        assert_eq!(
            c.header("authorization").map(str::to_ascii_lowercase),
            Some(basic("dd:s3cret-dd")),
            "{} {}",
            c.method,
            c.path
        );
        assert_eq!(c.header("host"), Some(dd_authority));
    }

    let shown = [
        stdout(&out),
        stderr(&out),
        std::fs::read_to_string(dir.path("result.json")).unwrap(),
        std::fs::read_to_string(dir.path("report.html")).unwrap(),
    ];
    for text in &shown {
        assert!(!text.contains("s3cret"), "a password is shown:\n{text}");
    }
    let redacted = format!("http://ops:***@{authority}/x");
    assert!(shown[0].contains(&redacted), "the banner: {}", shown[0]);
    assert!(
        shown[2].contains(&redacted),
        "the JSON result: {}",
        shown[2]
    );
    assert!(shown[3].contains(&redacted), "the HTML report");
}

#[test]
fn a_scenario_hosts_credentials_go_to_that_host_only() {
    let rec = Recorder::start();
    let other = Recorder::start();
    let dir = TempDir::new("creds-host");
    let authority = rec.url.trim_start_matches("http://").to_owned();
    let file = dir.path("s.yaml");
    std::fs::write(
        &file,
        format!(
            "host: http://file:s3cret-file@{authority}\nuser_types:\n  - name: u\n    tasks:\n      - steps:\n          - request: {{ path: /rel }}\n          - request: {{ path: {}/abs }}\n          - request: {{ path: \"http://abs:s3cret-abs@{}/creds\" }}\n",
            other.url,
            other.url.trim_start_matches("http://")
        ),
    )
    .unwrap();
    // The file's host, then -H/--host with other credentials.
    for (host, pair) in [
        (None, "file:s3cret-file"),
        (
            Some(format!("http://flag:s3cret-flag@{authority}")),
            "flag:s3cret-flag",
        ),
    ] {
        rec.requests.lock().unwrap().clear();
        other.requests.lock().unwrap().clear();
        let mut args = vec!["run", file.to_str().unwrap(), "-u", "1", "-i", "2"];
        if let Some(h) = &host {
            args.extend(["-H", h]);
        }
        let json = dir.join("result.json");
        args.extend(["--json", &json]);
        let out = run(&args);
        assert_exit(&out, 0);
        let heads = rec.requests.lock().unwrap().clone();
        assert_eq!(heads.len(), 2);
        for h in &heads {
            assert!(
                header_block_has(h, &basic(pair).replace("basic", "authorization: basic")),
                "{h}"
            );
            assert!(header_block_has(h, &format!("host: {authority}")), "{h}");
        }
        let others = other.requests.lock().unwrap().clone();
        assert_eq!(others.len(), 4);
        for h in &others {
            // An absolute URL's own credentials go with it; the host's never do.
            if h.starts_with("GET /creds ") {
                let line = basic("abs:s3cret-abs").replace("basic", "authorization: basic");
                assert!(header_block_has(h, &line), "{h}");
            } else {
                assert!(
                    !h.to_ascii_lowercase().contains("authorization"),
                    "sent to another host: {h}"
                );
            }
            assert!(!h.contains('@'), "credentials in the Host header: {h}");
        }
        let result = std::fs::read_to_string(&json).unwrap();
        for text in [stdout(&out), stderr(&out), result.clone()] {
            assert!(!text.contains("s3cret"), "a password is shown:\n{text}");
        }
        let user = pair.split(':').next().unwrap();
        assert!(
            result.contains(&format!("http://{user}:***@{authority}")),
            "{result}"
        );
        assert!(
            result.contains("\"name\": \"http://abs:***@"),
            "the request name: {result}"
        );
    }
}
