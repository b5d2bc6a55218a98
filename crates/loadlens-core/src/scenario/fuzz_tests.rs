//! Property test of scenario loading: the example scenarios, mutated, and random YAML built
//! from the scenario's own vocabulary. Whatever the input, loading (parse, check, compile)
//! never panics, answers within a bound, and an error names `file:line:col` inside the file.
//!
//! Seeded, so a failure reproduces; bounded by a count of cases and a time budget, so that
//! it stays within ~15 s of the normal test run even on a busy machine.
//! `LOADLENS_FUZZ_CASES=100000 LOADLENS_FUZZ_SEED=7` runs a longer campaign locally.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::*;
use crate::plan::{Plan, PlanOptions};

/// Most time the whole test spends generating new cases.
const BUDGET: Duration = Duration::from_secs(15);
/// Most time one input may take: generous for a debug build on a loaded machine. Loading
/// these inputs (up to ~60 KB) takes milliseconds; before loading was made linear, some took
/// seconds.
const PER_INPUT: Duration = Duration::from_secs(2);

/// Fragments that stress the parser and the checks: structure, quoting, anchors, templates,
/// environment references, extreme numbers and durations, a byte-order mark, control bytes.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "{",
    "}",
    ": ",
    "- ",
    "\n",
    "  ",
    "\t",
    "\"",
    "'",
    "#",
    ",",
    "? ",
    "&a ",
    "*a",
    "!!str ",
    "!!binary ",
    "---\n",
    "...\n",
    "|\n",
    ">-\n",
    "${X}",
    "${X:-d}",
    "${",
    "{{ x }}",
    "{{",
    "}}",
    "{{ counter }}",
    "\u{feff}",
    "\u{0}",
    "\r\n",
    "é",
    "😀",
    "1e400",
    "-1",
    "0",
    "18446744073709551615",
    "1e30",
    "between(1, 1e308)",
    "constant(1e30)",
    "constant_pacing(1e300)",
    "poisson(0)",
    "99999999999999999999s",
    "1.5.5s",
    "NaN",
    ".inf",
    "null",
    "~",
    "true",
    "<<: *a\n",
    "steps:",
    "request:",
    "path: /x",
    "path: x",
    "for: i",
    "in: [1, 2]",
    "think: 1s",
    "headers: { \"a b\": c }",
    "X-Y: \"a\\nb\"",
    "json: ",
    "capture: [{ json: $., as: v }]",
    "check: [{ status: 9xx }]",
    "weight: 0",
    "tasks: []",
    "user_types: []",
    "users: 0",
    "run_time: 0s",
    "url: http://",
];

/// Keys and values of the scenario language, for random documents.
const KEYS: &[&str] = &[
    "name",
    "host",
    "headers",
    "vars",
    "data",
    "user_types",
    "load",
    "client",
    "run",
    "thresholds",
    "scenarios",
    "datadog",
    "otel",
    "weight",
    "count",
    "wait",
    "on_start",
    "on_stop",
    "tasks",
    "tags",
    "request",
    "steps",
    "think",
    "for",
    "in",
    "method",
    "path",
    "query",
    "json",
    "body",
    "form",
    "body_file",
    "capture",
    "check",
    "timeout",
    "as",
    "status",
    "users",
    "spawn_rate",
    "run_time",
    "stages",
    "arrival_rate",
    "zzz",
];
const SCALARS: &[&str] = &[
    "/",
    "/a/{{ x }}",
    "http://127.0.0.1:1/x",
    "x",
    "GET",
    "FETCH",
    "1",
    "0",
    "-3",
    "2.5",
    "1s",
    "between(1, 3)",
    "1e999",
    "true",
    "null",
    "''",
    "\"\\t\"",
    "{{ counter }}",
    "$.a",
    "2xx",
    "p95 < 1s",
    "10/s",
    "30s:5,10s:0",
];

fn examples() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut out: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("examples/")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no examples in {}", dir.display());
    out
}

/// A char boundary at or before a random byte offset of `text`.
fn boundary(rng: &mut fastrand::Rng, text: &str) -> usize {
    let mut i = rng.usize(..=text.len());
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn mutate(rng: &mut fastrand::Rng, text: &str) -> String {
    let mut t = text.to_owned();
    for _ in 0..rng.usize(1..=4) {
        let lines: Vec<&str> = t.split_inclusive('\n').collect();
        let line = lines
            .get(rng.usize(..lines.len().max(1)))
            .copied()
            .unwrap_or("");
        t = match rng.u8(..8) {
            0 => {
                let i = boundary(rng, &t);
                format!(
                    "{}{}{}",
                    &t[..i],
                    TOKENS[rng.usize(..TOKENS.len())],
                    &t[i..]
                )
            }
            1 => {
                let i = boundary(rng, &t);
                let mut j = (i + rng.usize(..40)).min(t.len());
                while !t.is_char_boundary(j) {
                    j -= 1;
                }
                format!("{}{}", &t[..i], &t[j..])
            }
            2 => t.replacen(line, &line.repeat(2), 1),
            3 => t.replacen(line, "", 1),
            4 => t.replacen(line, &format!("  {line}"), 1),
            5 => {
                let tok = TOKENS[rng.usize(..TOKENS.len())];
                let i = boundary(rng, &t);
                format!("{}{}{}", &t[..i], tok.repeat(rng.usize(2..3000)), &t[i..])
            }
            6 => t[..boundary(rng, &t)].to_owned(),
            _ => {
                // A number somewhere becomes an extreme one.
                let i = boundary(rng, &t);
                match t[i..].find(|c: char| c.is_ascii_digit()) {
                    Some(d) => {
                        let at = i + d;
                        let big = ["1e300", "18446744073709551616", "99999999999", "0", "-0.0"];
                        format!("{}{}{}", &t[..at], big[rng.usize(..big.len())], &t[at..])
                    }
                    None => t,
                }
            }
        };
    }
    t
}

/// A random document from the scenario's vocabulary, block or flow style.
fn random_yaml(rng: &mut fastrand::Rng, depth: usize, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match (depth, rng.u8(..4)) {
        (0, _) | (_, 0) => {
            out.push(' ');
            out.push_str(SCALARS[rng.usize(..SCALARS.len())]);
            out.push('\n');
        }
        (_, 1) => {
            // A flow sequence of scalars.
            let items: Vec<&str> = (0..rng.usize(0..4))
                .map(|_| SCALARS[rng.usize(..SCALARS.len())])
                .collect();
            out.push_str(&format!(" [{}]\n", items.join(", ")));
        }
        (_, 2) => {
            out.push('\n');
            for _ in 0..rng.usize(1..4) {
                out.push_str(&format!("{pad}-"));
                random_yaml(rng, depth - 1, indent + 2, out);
            }
        }
        _ => {
            out.push('\n');
            for _ in 0..rng.usize(1..6) {
                out.push_str(&format!("{pad}{}:", KEYS[rng.usize(..KEYS.len())]));
                random_yaml(rng, depth - 1, indent + 2, out);
            }
        }
    }
}

/// Load `text` as `loadlens validate` does; a problem with the outcome, if any.
fn check(text: &str, dir: &std::path::Path) -> Result<(), String> {
    let start = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let s = Scenario::parse(text, "s.yaml", dir.to_path_buf(), |_| None)?;
        let opts = PlanOptions {
            host: Some("http://127.0.0.1:1".into()),
            ..PlanOptions::default()
        };
        Plan::compile(&s, &opts).map(drop).map_err(|e| match e {
            crate::plan::PlanError::Scenario(e) => e,
            other => panic!("not a scenario error: {other}"),
        })
    }));
    let took = start.elapsed();
    if took > PER_INPUT {
        return Err(format!("took {took:?}"));
    }
    match outcome {
        Err(_) => Err("panicked".into()),
        Ok(Ok(())) => Ok(()),
        Ok(Err(ScenarioError::Invalid {
            line,
            column,
            message,
            ..
        })) => {
            let lines = text.lines().count() + 1;
            if line == 0 || column == 0 || line > lines || message.is_empty() {
                return Err(format!(
                    "badly located error {line}:{column} ({lines} lines): {message}"
                ));
            }
            Ok(())
        }
        Ok(Err(e)) => Err(format!("error without a location: {e}")),
    }
}

#[test]
fn loading_never_panics_hangs_or_loses_the_location() {
    let seed = std::env::var("LOADLENS_FUZZ_SEED").map_or(0x10ad_1e25, |s| s.parse().unwrap());
    let cases: usize = std::env::var("LOADLENS_FUZZ_CASES").map_or(3_000, |s| s.parse().unwrap());
    let mut rng = fastrand::Rng::with_seed(seed);
    let examples = examples();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    for (name, text) in &examples {
        check(text, &dir).unwrap_or_else(|e| panic!("{name} as shipped: {e}"));
    }
    let start = Instant::now();
    let mut failures = Vec::new();
    let mut ran = 0;
    let mut slowest = (Duration::ZERO, 0);
    while ran < cases && start.elapsed() < BUDGET {
        let input = if ran % 4 == 3 {
            let mut doc = String::new();
            random_yaml(&mut rng, 5, 0, &mut doc);
            doc.trim_start().to_owned()
        } else {
            let pick = rng.usize(..examples.len());
            mutate(&mut rng, &examples[pick].1)
        };
        let t = Instant::now();
        let result = check(&input, &dir);
        slowest = slowest.max((t.elapsed(), ran));
        if let Err(why) = result {
            // The whole input, to reproduce with `loadlens validate`.
            let file = std::env::temp_dir().join(format!("loadlens-fuzz-{seed}-{ran}.yaml"));
            let _ = std::fs::write(&file, &input);
            failures.push(format!("case {ran}: {why} (input: {})", file.display()));
        }
        ran += 1;
    }
    eprintln!(
        "scenario fuzz: {ran} cases in {:?} (seed {seed}); slowest: case {} in {:?}",
        start.elapsed(),
        slowest.1,
        slowest.0
    );
    assert!(
        ran >= 200,
        "only {ran} cases ran within {BUDGET:?}: the machine is too slow to say anything"
    );
    assert!(
        failures.is_empty(),
        "{} of {ran} inputs failed (seed {seed}):\n{}",
        failures.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
}
