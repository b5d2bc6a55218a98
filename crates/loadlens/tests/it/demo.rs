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
