//! `loadlens demo` works on a fresh machine with nothing else running.

use crate::schema::assert_valid;
use crate::support::*;

#[test]
fn demo_runs_the_storefront_and_writes_reports() {
    let dir = TempDir::new("demo");
    let out_dir = dir.join("out");
    let out = run(&[
        "demo",
        "-t",
        "3s",
        "--out",
        &out_dir,
        "--progress-interval",
        "1s",
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("demo target listening on http://127.0.0.1:"),
        "{text}"
    );
    // The most frequent tasks of each user type (a 3 s run may happen to pick no checkout at
    // all: about 1 % of runs).
    assert!(
        text.contains("/api/products")
            && text.contains("/api/v1/cart/summary")
            && text.contains("/api/v1/search"),
        "{text}"
    );
    assert!(
        text.contains("users "),
        "progress lines are printed: {text}"
    );
    let j: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path("out").join("result.json")).unwrap(),
    )
    .unwrap();
    assert_valid(&j);
    assert!(
        j["aggregate"]["request_count"].as_u64().unwrap() > 50,
        "{}",
        j["aggregate"]
    );
    assert_eq!(j["run"]["scenario"], "storefront");
    // Nine request names; the two rare ones (checkout, health) may get no request in 3 s.
    assert!(j["requests"].as_array().unwrap().len() >= 7);
    assert!(j["series"]["points"].as_array().unwrap().len() >= 2);
    assert!(dir.path("out").join("storefront_stats.csv").exists());
}

/// The request name's component with the largest share, and the figures of every component.
fn top_contributor(result: &serde_json::Value, name: &str) -> (String, String) {
    let breakdown = &result["breakdown"];
    let request = breakdown["requests"]
        .as_array()
        .unwrap_or_else(|| panic!("no breakdown: {breakdown}"))
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no breakdown of {name}: {breakdown}"));
    let top = request["components"]
        .as_array()
        .unwrap()
        .iter()
        .max_by(|a, b| {
            a["share"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["share"].as_f64().unwrap())
        })
        .unwrap_or_else(|| panic!("no components: {request}"));
    (
        top["label"].as_str().unwrap().to_owned(),
        request.to_string(),
    )
}

#[test]
fn demo_shows_where_the_time_went_and_blames_the_slow_operation() {
    // Two runs: the knob must move the blame, not just find a component that is always first.
    for (slow, name, blamed) in [
        ("db", "/api/products", "postgresql"),
        ("cache", "/api/products", "redis"),
    ] {
        let dir = TempDir::new("demo-slow");
        let out_dir = dir.join("out");
        let out = run(&["demo", "-t", "4s", "--out", &out_dir, "--slow", slow]);
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains(&format!("the {slow} operation is slow")),
            "{text}"
        );
        let result: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path("out").join("result.json")).unwrap(),
        )
        .unwrap();
        assert_valid(&result);
        let coverage = &result["breakdown"]["coverage"];
        let (sampled, joined) = (
            coverage["sampled"].as_u64().unwrap(),
            coverage["joined"].as_u64().unwrap(),
        );
        // Every request is sampled and the demo target answers each with its spans; the last
        // requests' spans may still be on their way when the run ends.
        assert!(sampled > 20 && joined * 10 >= sampled * 9, "{coverage}");
        let (top, request) = top_contributor(&result, name);
        assert!(
            top.contains(blamed),
            "--slow {slow}: {name}'s top contributor is `{top}`, not {blamed}: {request}"
        );
    }
}
