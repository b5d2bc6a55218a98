//! The integrations as the binary wires them from the registry: their flags on `run` and
//! `demo` alike, their scenario sections (accepted, located errors, unknown keys refused, in
//! sync with the schema), and flag > environment > file.

use std::process::{Command, Output};

use loadlens_sinks::datadog::stub::{DatadogStub, API_KEY};

use crate::support::{bin, run, stderr, stdout, TempDir};

const USERS: &str = "user_types:\n  - name: u\n    tasks:\n      - request: { path: / }\n";

fn write(dir: &TempDir, name: &str, text: &str) -> String {
    let f = dir.join(name);
    std::fs::write(&f, text).unwrap();
    f
}

#[test]
fn an_unknown_top_level_key_is_refused_at_the_key_naming_the_expected_keys() {
    let dir = TempDir::new("sections");
    let file = write(
        &dir,
        "s.yaml",
        &format!("host: http://127.0.0.1:1\n{USERS}otle:\n  endpoint: http://x\n"),
    );
    for cmd in ["run", "validate"] {
        let out = run(&[cmd, &file]);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("s.yaml:6:1: unknown field `otle`, expected one of `name`"),
            "{cmd}: {err}"
        );
        // The core's keys and every integration's section, with a suggestion.
        for key in ["`user_types`", "`load`", "`otel`", "`datadog`"] {
            assert!(err.contains(key), "{cmd}: {key} missing: {err}");
        }
        assert!(err.contains("did you mean `otel`?"), "{cmd}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{cmd}: {err}");
    }
}

#[test]
fn an_error_inside_a_section_is_located_inside_it() {
    let dir = TempDir::new("sections");
    let cases = [
        (
            "otel:\n  endpoint: http://127.0.0.1:1\n  sample_rate: 0.5\n",
            "s.yaml:8:3: otel: unknown field `sample_rate`",
            "did you mean `sample_ratio`?",
        ),
        (
            "datadog:\n  site: datadoghq.eu\n  monitors:\n    - id: 12\n      actoin: abort\n",
            "s.yaml:10:7: datadog.monitors[0]: unknown field `actoin`",
            "did you mean `action`?",
        ),
        (
            "otel:\n  endpoint: http://127.0.0.1:1\n  sample_ratio: 1.5\n",
            "s.yaml:8:3: otel.sample_ratio: 1.5 is outside 0..1",
            "",
        ),
        (
            "datadog:\n  monitors:\n    - { id: 12, action: mark }\n    - id: 13\n      action: explode\n",
            "s.yaml:10:7: datadog.monitors[1].action: monitor action `explode` is not one of mark, abort, fail",
            "",
        ),
        (
            "datadog:\n  metric_interval: soon\n",
            "s.yaml:7:20: datadog.metric_interval: ",
            "soon",
        ),
    ];
    for (section, at, more) in cases {
        let file = write(
            &dir,
            "s.yaml",
            &format!("host: http://127.0.0.1:1\n{USERS}{section}"),
        );
        for cmd in ["run", "validate"] {
            let out = run(&[cmd, &file]);
            assert_eq!(out.status.code(), Some(2), "{cmd}: {}", stderr(&out));
            let err = stderr(&out);
            assert!(err.contains(at) && err.contains(more), "{cmd}: {err}");
        }
    }
}

/// The flags of `--help` from the first line naming `--otel` or `--datadog…` on.
fn integration_flags(help: &str) -> Vec<String> {
    let mut flags: Vec<String> = help
        .split_whitespace()
        .filter(|w| w.starts_with("--otel") || w.starts_with("--datadog"))
        .map(|w| w.split(['=', '[', ' ']).next().unwrap_or(w).to_owned())
        .collect();
    flags.sort();
    flags.dedup();
    flags
}

#[test]
fn run_and_demo_list_the_same_integration_flags() {
    let help = |cmd: &str| {
        let out = run(&[cmd, "--help"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        stdout(&out)
    };
    let (run_help, demo_help) = (help("run"), help("demo"));
    let flags = integration_flags(&run_help);
    assert_eq!(flags, integration_flags(&demo_help));
    for f in [
        "--otel",
        "--datadog",
        "--datadog-required",
        "--datadog-url",
        "--datadog-monitor",
    ] {
        assert!(flags.iter().any(|x| x == f), "{f} missing from {flags:?}");
    }
    // Under their own heading, after the command's own options.
    for h in [&run_help, &demo_help] {
        let (own, theirs) = h
            .split_once("\nIntegrations:\n")
            .expect("an Integrations heading");
        assert!(integration_flags(own).is_empty() && integration_flags(theirs) == flags);
    }
    // Each with its environment twin.
    for twin in [
        "LOADLENS_OTEL",
        "DD_SITE",
        "LOADLENS_DATADOG_METRIC_INTERVAL",
    ] {
        assert!(
            run_help.contains(twin) && demo_help.contains(twin),
            "{twin}"
        );
    }
}

/// The committed JSON Schema lists exactly the top-level keys the binary accepts (the core's
/// and the integrations' sections), and exactly the keys of each section.
#[test]
fn the_scenario_schema_is_in_sync_with_the_top_level_keys_and_the_sections() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../../../schemas/scenario.schema.json")).unwrap();
    let dir = TempDir::new("schema");
    let cases: Vec<(&str, &serde_json::Value)> = vec![
        ("zzz: 1\n", &schema),
        ("datadog: { zzz: 1 }\n", &schema["properties"]["datadog"]),
        (
            "datadog: { monitors: [{ id: 1, zzz: 1 }] }\n",
            &schema["properties"]["datadog"]["properties"]["monitors"]["items"],
        ),
        ("otel: { zzz: 1 }\n", &schema["properties"]["otel"]),
    ];
    for (yaml, node) in cases {
        let file = write(&dir, "s.yaml", &format!("{USERS}{yaml}"));
        let out = run(&["validate", &file]);
        let msg = stderr(&out);
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

/// Every registered integration's section is in the schema with exactly the keys it accepts:
/// a new integration is checked here without a line of its own.
#[test]
fn every_registered_section_is_in_the_schema_with_its_keys() {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../../../../schemas/scenario.schema.json")).unwrap();
    let dir = TempDir::new("schema");
    for i in loadlens_sinks::registry() {
        let name = i.name();
        let file = write(&dir, "s.yaml", &format!("{USERS}{name}: {{ zzz: 1 }}\n"));
        let msg = stderr(&run(&["validate", &file]));
        assert!(msg.contains("unknown field `zzz`"), "{name}: {msg}");
        let list = msg
            .split("expected one of ")
            .nth(1)
            .or_else(|| msg.split("expected ").nth(1))
            .unwrap_or("");
        let mut parser_keys: Vec<&str> = list.split('`').skip(1).step_by(2).collect();
        parser_keys.sort();
        let mut schema_keys: Vec<&str> = schema["properties"][name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("schemas/scenario.schema.json has no `{name}` section"))
            .keys()
            .map(String::as_str)
            .collect();
        schema_keys.sort();
        assert_eq!(parser_keys, schema_keys, "schema out of sync for `{name}:`");
    }
}

/// One short run against a refused target with Datadog on the local stub: what the start
/// banner says of Datadog.
fn datadog_line(file: &str, stub: &DatadogStub, flags: &[&str], env: &[(&str, &str)]) -> String {
    let mut c = Command::new(bin());
    c.args(["run", file, "--no-tui", "--datadog-url", stub.url()])
        .args(flags)
        .env_remove("TEST_RUN_ID")
        .env("DD_API_KEY", API_KEY);
    for k in [
        "DD_APP_KEY",
        "DATADOG_APP_KEY",
        "DD_SITE",
        "DD_AGENT_HOST",
        "DD_DOGSTATSD_PORT",
        "LOADLENS_DATADOG",
        "LOADLENS_DATADOG_METRIC_INTERVAL",
    ] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let out: Output = c.output().expect("run loadlens");
    let so = stdout(&out);
    so.lines()
        .find(|l| l.starts_with("Datadog: "))
        .unwrap_or_else(|| panic!("no Datadog line:\n{so}\n{}", stderr(&out)))
        .to_owned()
}

// flag > environment twin > `datadog:` section, one layer at a time, through `Input::pick`.
#[test]
fn a_section_value_applies_when_neither_flag_nor_environment_gives_one() {
    let stub = DatadogStub::start();
    let dir = TempDir::new("precedence");
    let file = write(
        &dir,
        "s.yaml",
        &format!("host: http://127.0.0.1:1\n{USERS}load: {{ users: 1, iterations: 1 }}\ndatadog: {{ metric_interval: 3s, timeout: 1s }}\n"),
    );
    let line = datadog_line(&file, &stub, &[], &[]);
    assert!(line.contains("metrics every 3s (API)"), "{line}");
}

#[test]
fn the_environment_twin_wins_over_the_section() {
    let stub = DatadogStub::start();
    let dir = TempDir::new("precedence");
    let file = write(
        &dir,
        "s.yaml",
        &format!("host: http://127.0.0.1:1\n{USERS}load: {{ users: 1, iterations: 1 }}\ndatadog: {{ metric_interval: 3s, timeout: 1s }}\n"),
    );
    let env = [("LOADLENS_DATADOG_METRIC_INTERVAL", "2s")];
    let line = datadog_line(&file, &stub, &[], &env);
    assert!(line.contains("metrics every 2s (API)"), "{line}");
}

#[test]
fn the_flag_wins_over_the_environment_twin_and_the_section() {
    let stub = DatadogStub::start();
    let dir = TempDir::new("precedence");
    let file = write(
        &dir,
        "s.yaml",
        &format!("host: http://127.0.0.1:1\n{USERS}load: {{ users: 1, iterations: 1 }}\ndatadog: {{ metric_interval: 3s, timeout: 1s }}\n"),
    );
    let env = [("LOADLENS_DATADOG_METRIC_INTERVAL", "2s")];
    let line = datadog_line(&file, &stub, &["--datadog-metric-interval", "1s"], &env);
    assert!(line.contains("metrics every 1s (API)"), "{line}");
}
