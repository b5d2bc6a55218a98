//! Loading stays linear in the size of the file: large generated scenarios are checked
//! against the time the same test measured for one tenth of their size.

use std::time::{Duration, Instant};

use super::*;
use crate::plan::{Plan, PlanOptions};

/// What `loadlens validate` does: parse, check, compile. Returns the error text, if any.
fn validate(text: &str) -> Option<String> {
    let s = match Scenario::from_str_named(text, "big.yaml") {
        Ok(s) => s,
        Err(e) => return Some(e.to_string()),
    };
    Plan::compile(&s, &PlanOptions::default())
        .err()
        .map(|e| e.to_string())
}

/// The fastest of three runs (to keep a busy machine's noise out of the small case).
fn fastest(text: &str) -> (Duration, Option<String>) {
    (0..3)
        .map(|_| {
            let t = Instant::now();
            let r = validate(text);
            (t.elapsed(), r)
        })
        .min_by_key(|(d, _)| *d)
        .unwrap()
}

/// `n` tasks, each with its own request name and a captured variable used in its path.
fn many_tasks(n: usize) -> String {
    let mut s = String::from("host: http://h\nuser_types:\n  - name: u\n    tasks:\n");
    for i in 0..n {
        s.push_str(&format!(
            "      - {{ request: {{ path: \"/p/{i}/{{{{ v{i} }}}}\", capture: [{{ json: $.a, as: v{i} }}] }} }}\n"
        ));
    }
    s
}

fn nested(depth: usize) -> String {
    format!(
        "host: http://h\nuser_types:\n  - name: u\n    tasks:\n      - request: {{ path: /, json: {}1{} }}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

/// Time 1× and 10× of a generated input; the 10× one may take at most 30 times as long
/// (linear is 10, quadratic 100).
fn assert_linear(what: &str, make: impl Fn(usize) -> String, n: usize) -> Option<String> {
    let (small, _) = fastest(&make(n));
    let big_text = make(10 * n);
    let t = Instant::now();
    let result = validate(&big_text);
    let big = t.elapsed();
    let ratio = big.as_secs_f64() / small.max(Duration::from_millis(5)).as_secs_f64();
    eprintln!(
        "{what}: {n} in {small:?}, {} in {big:?} (×{ratio:.1})",
        10 * n
    );
    assert!(
        ratio < 30.0,
        "{what}: {n} took {small:?}, {} took {big:?} (×{ratio:.0}): not linear",
        10 * n
    );
    result
}

#[test]
fn many_tasks_and_request_names_load_in_linear_time() {
    let result = assert_linear("tasks", many_tasks, 2_000);
    assert_eq!(result, None);
}

#[test]
fn deep_brackets_are_refused_in_linear_time_at_their_place() {
    let result = assert_linear("brackets", nested, 2_000).unwrap();
    // Line 5, at the bracket opened one level too deep (the `{` of the request is a level).
    let col = "      - request: { path: /, json: ".len() + nesting::MAX_FLOW_DEPTH;
    assert_eq!(
        result,
        format!(
            "big.yaml:5:{col}: brackets nested more than 1000 levels deep: a scenario needs a few"
        )
    );
}
