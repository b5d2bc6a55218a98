//! `loadlens convert`: a HAR recorded in headless Chromium (through Playwright, a test peer)
//! converts, validates and runs against the demo target; curl command lines and the published
//! Petstore documents convert into scenarios that `validate` accepts; bad input is refused
//! naming the file and place or the flag.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::support::*;

/// The Python of the Playwright test peer; fails with the install command when missing.
fn playwright_python() -> PathBuf {
    let py = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default()
        .join(".cache/loadlens-playwright/bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import playwright.sync_api"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "Playwright is missing at {}: run the suite with `scripts/test`, or install it: \
         python3 -m venv ~/.cache/loadlens-playwright && \
         ~/.cache/loadlens-playwright/bin/pip install playwright==1.65.2",
        py.display()
    );
    py
}

fn fixture(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openapi")
        .join(name)
        .display()
        .to_string()
}

/// `validate` accepts the file, and so does the JSON Schema editors complete from.
fn validate_ok(path: &str) {
    let v = run(&["validate", path]);
    assert_exit(&v, 0);
    assert!(stdout(&v).contains(": ok ("), "{}", stdout(&v));
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../../../schemas/scenario.schema.json")).unwrap();
    let value: serde_json::Value =
        loadlens_core::yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut errors = Vec::new();
    crate::schema::validate(&schema, &schema, &value, "$", &mut errors);
    assert!(errors.is_empty(), "{path}: {errors:?}");
}

#[test]
fn a_har_recorded_in_chromium_converts_validates_and_runs_against_the_demo_target() {
    let py = playwright_python();
    let chrome = crate::browser::chromium();
    let target = DemoTarget::start(&["--latency", "0"]);
    let dir = TempDir::new("convert-har");
    let har = dir.join("browse.har");
    {
        let _one = crate::browser::BROWSER
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/peers/record_har.py");
        let rec = Command::new(&py)
            .args([script, &chrome.display().to_string(), &target.url, &har])
            .output()
            .expect("start python");
        assert!(
            rec.status.success(),
            "recording failed: {}{}",
            stdout(&rec),
            stderr(&rec)
        );
    }
    let recorded: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&har).unwrap()).unwrap();
    let entries = recorded["log"]["entries"].as_array().unwrap().len();
    assert!(entries >= 7, "{entries} entries recorded");

    let scenario = dir.join("browse.yaml");
    let c = run(&["convert", "har", &har, "-o", &scenario]);
    assert_exit(&c, 0);
    assert!(stderr(&c).contains("wrote "), "{}", stderr(&c));
    let text = std::fs::read_to_string(&scenario).unwrap();
    // The recorded browse, in order, without the stylesheet, cookies or browser headers.
    let paths: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("path: "))
        .collect();
    assert_eq!(
        paths,
        [
            "/",
            "/api/products",
            "/api/products/42",
            "/authenticate",
            "/cart/add",
            "/api/v1/search"
        ],
        "{text}"
    );
    let body = &text[text.find("\nname:").unwrap()..];
    for gone in [
        "site.css",
        "Cookie",
        "cookie",
        "User-Agent",
        "sec-ch-ua",
        "Sec-Fetch",
        "favicon",
    ] {
        assert!(!body.contains(gone), "{gone} in {text}");
    }
    assert!(text.contains(&format!("host: {}\n", target.url)), "{text}");
    assert!(text.contains("category: shoes"), "{text}");
    let at = |s: &str| text.find(s).unwrap_or_else(|| panic!("{s} in {text}"));
    assert!(
        at("q: running shoes") < at("page: \"2\"") && at("page: \"2\"") < at("sort: price"),
        "{text}"
    );
    assert!(
        text.contains("user: ada") && text.contains("productId: 42"),
        "{text}"
    );
    assert!(
        text.matches("- think: ").count() >= 3,
        "the recorded pauses: {text}"
    );
    validate_ok(&scenario);

    // Two passes of the flow; the cart needs the session cookie that /authenticate sets in the
    // virtual user's own jar (the recorded cookie is not replayed).
    let before = target.stats();
    let result = dir.join("result.json");
    let r = run(&[
        "run", &scenario, "-u", "1", "-i", "2", "--json", &result, "--no-tui",
    ]);
    assert_exit(&r, 0);
    let after = target.stats();
    let served = |key: &str| {
        after["routes"][key].as_u64().unwrap() - before["routes"][key].as_u64().unwrap()
    };
    for key in [
        "GET /",
        "GET /api/products",
        "GET /api/products/{id}",
        "POST /authenticate",
        "POST /cart/add",
        "GET /api/v1/search",
    ] {
        assert_eq!(served(key), 2, "{key}: {after}");
    }
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    assert_eq!(j["aggregate"]["request_count"], 12, "{}", j["aggregate"]);
    assert_eq!(j["aggregate"]["failure_count"], 0, "{}", j["errors"]);
    // The stats of the demo target saw no 404 or 405: every replayed request was a route.
    assert_eq!(after["not_found"], before["not_found"], "{after}");
}

#[test]
fn curl_commands_convert_from_an_argument_a_file_and_stdin() {
    let dir = TempDir::new("convert-curl");
    let out = dir.join("one.yaml");
    let c = run(&[
        "convert", "curl",
        "curl -X POST 'http://127.0.0.1:9/api/v1/orders?source=web&b=2' -H 'Content-Type: application/json' -H 'Authorization: Bearer t0k' --data-raw '{\"sku\":\"A1\",\"qty\":2}'",
        "-o", &out,
    ]);
    assert_exit(&c, 0);
    validate_ok(&out);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains("method: POST") && text.contains("sku: A1"),
        "{text}"
    );

    // Chrome's "Copy all as cURL (bash)": several commands, `\` continuations, `$'…'`.
    let file = dir.path("all.sh");
    std::fs::write(
        &file,
        "curl 'http://127.0.0.1:9/' \\\n  -H 'accept: text/html' ;\ncurl 'http://127.0.0.1:9/cart/add' \\\n  -H 'content-type: application/json' \\\n  --data-raw $'{\"note\":\"it\\'s\"}' ;\n",
    )
    .unwrap();
    let c = run(&["convert", "curl", "--file", &file.display().to_string()]);
    assert_exit(&c, 0);
    let text = stdout(&c);
    assert!(
        text.contains("steps:") && text.contains("note: it's"),
        "{text}"
    );
    let printed = dir.join("all.yaml");
    std::fs::write(&printed, &text).unwrap();
    validate_ok(&printed);

    let mut child = Command::new(bin())
        .args(["convert", "curl", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"curl -G http://127.0.0.1:9/api/v1/search -d q=shoes -d page=2")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("q: shoes"), "{}", stdout(&o));

    let e = run(&["convert", "curl", "curl --proxy http://p:3128 http://h/"]);
    assert_exit(&e, 2);
    assert!(stderr(&e).contains("`--proxy`"), "{}", stderr(&e));
}

#[test]
fn a_curl_body_with_template_and_env_syntax_reaches_the_server_as_written() {
    let server = Recorder::start();
    let dir = TempDir::new("convert-literal");
    let out = dir.join("s.yaml");
    let cmd = format!(
        "curl {}/x -H 'Content-Type: text/plain' -d 'a{{{{b}}}} ${{HOME}} $x'",
        server.url
    );
    assert_exit(&run(&["convert", "curl", &cmd, "-o", &out]), 0);
    let r = run(&["run", &out, "-i", "1", "--no-tui"]);
    assert_exit(&r, 0);
    let bodies = server.bodies.lock().unwrap();
    assert_eq!(String::from_utf8_lossy(&bodies[0]), "a{{b}} ${HOME} $x");
}

#[test]
fn the_petstore_documents_convert_into_scenarios_that_validate() {
    let dir = TempDir::new("convert-openapi");
    for (file, tasks) in [
        ("petstore-3.0.yaml", 20),
        ("petstore-3.1.json", 20),
        ("petstore-expanded-3.0.json", 4),
    ] {
        let out = dir.join(&format!("{file}.yaml"));
        let c = run(&["convert", "openapi", &fixture(file), "-o", &out]);
        assert_exit(&c, 0);
        let v = run(&["validate", &out]);
        assert_exit(&v, 0);
        assert!(
            stdout(&v).contains(&format!("1 user types, {tasks} tasks")),
            "{file}: {}",
            stdout(&v)
        );
    }
    // --host replaces servers[0]; the scenario then runs against it (the demo target answers
    // 404 to the Petstore's paths, which the run counts as failures, not errors of the file).
    let target = DemoTarget::start(&["--latency", "0"]);
    let out = dir.join("store.yaml");
    let c = run(&[
        "convert",
        "openapi",
        &fixture("petstore-3.0.yaml"),
        "--host",
        &format!("{}/v2", target.url),
        "--tag",
        "store",
        "-o",
        &out,
    ]);
    assert_exit(&c, 0);
    let before = target.stats()["not_found"].as_u64().unwrap();
    assert_exit(&run(&["run", &out, "-i", "8", "--no-tui"]), 0);
    assert_eq!(target.stats()["not_found"].as_u64().unwrap() - before, 8);
}

#[test]
fn bad_input_is_refused_naming_the_file_and_the_place() {
    let dir = TempDir::new("convert-bad");
    let har = dir.path("bad.har");
    std::fs::write(
        &har,
        "{\"log\": {\n  \"entries\": [\n    {\"request\": 1}\n  ]}}",
    )
    .unwrap();
    let e = run(&["convert", "har", &har.display().to_string()]);
    assert_exit(&e, 2);
    let msg = stderr(&e);
    assert!(
        msg.contains("bad.har:3:") && msg.contains("not a HAR file"),
        "{msg}"
    );

    let spec = dir.path("bad.yaml");
    std::fs::write(&spec, "openapi: 3.0.0\npaths:\n  /x: [\n").unwrap();
    let e = run(&["convert", "openapi", &spec.display().to_string()]);
    assert_exit(&e, 2);
    assert!(
        stderr(&e).contains("bad.yaml: ") && stderr(&e).contains("line"),
        "{}",
        stderr(&e)
    );

    let e = run(&["convert", "openapi", &dir.join("missing.json")]);
    assert_exit(&e, 2);
    assert!(
        stderr(&e).contains("cannot read") && stderr(&e).contains("missing.json"),
        "{}",
        stderr(&e)
    );
}
