use super::*;
use crate::report::html::tests::synthetic;

fn segment_of(doc: &ResultDoc, seg: &str, hash: &str) -> ResultDoc {
    let mut d = doc.clone();
    d.load.segment = seg.parse().unwrap();
    d.run.scenario_hash = Some(hash.into());
    d
}

fn files(docs: Vec<ResultDoc>) -> Vec<(PathBuf, ResultDoc)> {
    docs.into_iter()
        .enumerate()
        .map(|(i, d)| (PathBuf::from(format!("w{i}.json")), d))
        .collect()
}

#[test]
fn two_segments_add_up_and_their_percentiles_are_those_of_all_samples() {
    let one = synthetic(3, 12);
    let parts = files(vec![
        segment_of(&one, "1/2", "h"),
        segment_of(&one, "2/2", "h"),
    ]);
    let merged = merge(&parts).unwrap();
    assert!(merged.notes.is_empty(), "{:?}", merged.notes);
    let s = &merged.summary;
    let (total, single) = (s.total(), &one.aggregate);
    assert_eq!(total.request_count, 2 * single.request_count);
    assert_eq!(total.failure_count, 2 * single.failure_count);
    assert_eq!(total.bytes_received, 2 * single.bytes_received);
    // The same samples twice: the same distribution, exactly.
    assert_eq!(total.latency_ms, single.latency_ms);
    let (m, o) = (total.phases_ms.ttfb, single.phases_ms.ttfb);
    assert_eq!(
        (m.count, m.p50, m.p95, m.p99, m.max),
        (2 * o.count, o.p50, o.p95, o.p99, o.max)
    );
    assert_eq!(s.requests().len(), 3);
    let errors: u64 = s.errors().iter().map(|(_, _, e)| e.count).sum();
    assert_eq!(errors, 2 * one.errors.iter().map(|e| e.count).sum::<u64>());
    // Second k of each segment adds up.
    let points = s.series.points();
    assert_eq!(points.len(), one.series.points.len());
    for (m, p) in points.iter().zip(&one.series.points) {
        assert_eq!(m.requests, 2 * p.requests);
        assert_eq!(m.users, 2 * p.users);
        assert!((m.rps - 2.0 * p.rps).abs() < 1e-9);
    }
    // And so does each request name's own series.
    let doc = ResultDoc::of(s);
    assert_eq!(doc.series.requests.len(), 3);
    for (m, o) in doc.series.requests.iter().zip(&one.series.requests) {
        assert_eq!((&m.method, &m.name), (&o.method, &o.name));
        assert_eq!(m.points.len(), o.points.len());
        for (m, p) in m.points.iter().zip(&o.points) {
            assert_eq!(m.requests, 2 * p.requests);
            assert!((m.p95_ms - p.p95_ms).abs() < 1e-9);
        }
    }
    assert_eq!(s.outcome.workers.len(), 2);
    assert_eq!(s.outcome.workers[1].segment, "2/2");
    assert!(s.load.segment.is_whole());
    // The merged result carries its own histograms, and merges again.
    let doc = ResultDoc::of(s);
    let h = doc.histograms.as_ref().unwrap();
    assert_eq!(h.aggregate.count, total.request_count);
    assert_eq!(doc.run.scenario_hash.as_deref(), Some("h"));
}

#[test]
fn files_that_do_not_belong_together_are_refused_with_the_reason() {
    let one = synthetic(1, 3);
    let err = |docs: Vec<ResultDoc>| merge(&files(docs)).unwrap_err().to_string();
    let e = err(vec![
        segment_of(&one, "1/2", "a"),
        segment_of(&one, "2/2", "b"),
    ]);
    assert!(
        e.starts_with("w1.json ran another scenario than w0.json (scenario hash b vs a)"),
        "{e}"
    );
    let e = err(vec![
        segment_of(&one, "1/2", "a"),
        segment_of(&one, "1/2", "a"),
    ]);
    assert_eq!(
        e,
        "w0.json and w1.json both ran segment 1/2: each segment once"
    );
    let e = err(vec![
        segment_of(&one, "1/2", "a"),
        segment_of(&one, "1/3", "a"),
    ]);
    assert!(
        e.contains("every file must come from the same number of segments"),
        "{e}"
    );
    let mut old = segment_of(&one, "2/2", "a");
    old.histograms = None;
    let e = err(vec![segment_of(&one, "1/2", "a"), old]);
    assert!(e.starts_with("w1.json: no `histograms` section"), "{e}");
    let mut old = segment_of(&one, "2/2", "a");
    old.run.scenario_hash = None;
    let e = err(vec![segment_of(&one, "1/2", "a"), old]);
    assert!(e.starts_with("w1.json: no scenario hash"), "{e}");
    assert_eq!(err(vec![]), "no result files to merge");
    // A missing segment is merged, and said.
    let m = merge(&files(vec![segment_of(&one, "2/3", "a")])).unwrap();
    assert_eq!(
        m.notes,
        ["segment(s) 1/3, 3/3 missing: the merged result covers 1 of 3 segments"]
    );
}

/// A breakdown of one request name whose total response times are `ms`, in the form that
/// merges (and, in the result, beside its figures).
fn breakdown_of(ms: &[u64]) -> crate::breakdown::Breakdown {
    use crate::breakdown::merge::{Histograms, NameHistograms};
    use crate::stats::LatencyHistogram;
    let mut h = LatencyHistogram::new();
    for v in ms {
        h.record(std::time::Duration::from_millis(*v));
    }
    let n = ms.len() as u64;
    let part = Histograms {
        coverage: crate::breakdown::Coverage {
            sampled: n,
            joined: n,
            ..Default::default()
        },
        requests: vec![NameHistograms {
            method: "GET".into(),
            name: "/a".into(),
            sampled: n,
            joined: n,
            total: h.to_base64(),
            ..Default::default()
        }],
        interval_s: 1.0,
        ..Default::default()
    };
    crate::breakdown::merge::merge([&part], &[]).unwrap()
}

#[test]
fn the_breakdowns_merge_exactly_and_a_file_without_one_is_said() {
    let one = synthetic(1, 3);
    let (a, b): (Vec<u64>, Vec<u64>) = (1..=90).partition(|v| v % 3 == 0);
    let mut s1 = segment_of(&one, "1/3", "h");
    s1.breakdown = Some(breakdown_of(&a));
    let mut s2 = segment_of(&one, "2/3", "h");
    s2.breakdown = Some(breakdown_of(&b));
    let m = merge(&files(vec![s1.clone(), s2.clone()])).unwrap();
    assert!(
        m.notes.iter().all(|n| !n.contains("breakdown")),
        "{:?}",
        m.notes
    );
    let got = m.summary.outcome.breakdown.as_deref().unwrap();
    let all: Vec<u64> = (1..=90).collect();
    let want = breakdown_of(&all);
    // Counts and percentiles of the union, exactly.
    assert_eq!(got.coverage, want.coverage);
    assert_eq!(got.requests[0].total, want.requests[0].total);
    assert_eq!(got.requests[0].total.count, 90);
    // The merged result carries the merge's histograms, in its JSON too.
    let doc = ResultDoc::of(&m.summary);
    let text = serde_json::to_string(&doc).unwrap();
    let back: ResultDoc = serde_json::from_str(&text).unwrap();
    let h = back.breakdown.unwrap().histograms.unwrap();
    assert_eq!(h.requests[0].joined, 90);

    // A file without a breakdown (no receiver) or of an older build (no histograms): left
    // out of it, and said.
    let mut old = segment_of(&one, "3/3", "h");
    old.breakdown = Some(crate::breakdown::Breakdown {
        histograms: None,
        ..breakdown_of(&[5])
    });
    let m = merge(&files(vec![s1, segment_of(&one, "2/3", "h"), old])).unwrap();
    let got = m.summary.outcome.breakdown.as_deref().unwrap();
    assert_eq!(got.coverage.joined, a.len() as u64);
    assert!(
        m.notes.iter().any(|n| n
            == "w1.json: no breakdown (no trace receiver ran): where the time went covers the other files only"),
        "{:?}",
        m.notes
    );
    assert!(
        m.notes
            .iter()
            .any(|n| n.starts_with("w2.json: the breakdown has no `histograms` (an older build)")),
        "{:?}",
        m.notes
    );
}
