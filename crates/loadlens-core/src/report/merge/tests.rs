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
