use super::*;
use crate::sample::{ErrorKind, Failure, NameId, TraceIds};

const MS: u64 = 1_000_000;
const T0: u64 = 1_700_000_000_000_000_000;

fn names() -> Vec<(String, String)> {
    vec![
        ("GET".into(), "/orders".into()),
        ("GET".into(), "/search".into()),
    ]
}

/// A sampled request of name `name`, trace `trace`, client span `span`, answered after
/// `ttfb_ms` + 1 ms of download (a new connection: 1 ms connect).
fn sample(name: u32, trace: u128, span: u64, ttfb_ms: u64) -> Sample {
    let mut s = Sample::failed_before_send(NameId(name), Failure::new(ErrorKind::Timeout, ""));
    s.failure = None;
    s.started_at = SystemTime::UNIX_EPOCH + Duration::from_nanos(T0);
    s.phases = Phases {
        dns: None,
        connect: Some(Duration::from_millis(1)),
        tls: None,
        ttfb: Some(Duration::from_millis(ttfb_ms)),
        download: Some(Duration::from_millis(1)),
    };
    s.total = Duration::from_millis(ttfb_ms + 2);
    s.trace = Some(TraceIds {
        trace_id: trace,
        span_id: span,
        sampled: true,
    });
    s
}

fn span(
    trace: u128,
    id: u64,
    parent: u64,
    service: &str,
    op: &str,
    from_ms: u64,
    to_ms: u64,
) -> Span {
    Span {
        trace_id: trace,
        span_id: id,
        parent_span_id: parent,
        service: service.into(),
        group: service.into(),
        operation: op.into(),
        start_ns: T0 + from_ms * MS,
        end_ns: T0 + to_ms * MS,
        error: false,
    }
}

/// The orders service: a 30 ms server span with a 10 ms query and a 12 ms call to pricing,
/// whose own server span takes 10 ms of it.
fn orders_trace(trace: u128, client_span: u64) -> Vec<Span> {
    vec![
        span(trace, 10, client_span, "orders", "GET /orders", 1, 31),
        span(trace, 11, 10, "orders", "postgresql SELECT orders", 5, 15),
        span(trace, 12, 10, "orders", "GET", 16, 28),
        span(trace, 13, 12, "pricing", "GET /price/{sku}", 17, 27),
    ]
}

fn join() -> Join {
    Join::new(
        JoinSettings {
            link_template: Some("http://tempo/{trace_id}".into()),
            top_k: 2,
            ..JoinSettings::default()
        },
        names(),
        SystemTime::UNIX_EPOCH + Duration::from_nanos(T0),
    )
}

fn value(b: &Breakdown, name: &str, label: &str) -> f64 {
    let r = b.requests.iter().find(|r| r.name == name).unwrap();
    let c = r.components.iter().find(|c| c.label == label);
    c.unwrap_or_else(|| panic!("no {label} in {:?}", r.components))
        .figures
        .p50
}

#[test]
fn a_joined_request_splits_into_phases_outside_self_time_and_operations() {
    let now = Instant::now();
    let mut j = join();
    j.client(&sample(0, 1, 0xc1, 32), now);
    j.spans(orders_trace(1, 0xc1), now);
    assert_eq!(
        j.breakdown().coverage.joined,
        0,
        "joined once its window is over"
    );
    // Waiting is not missing: no coverage figure yet rather than 0 %.
    let live = j.breakdown().coverage;
    assert_eq!((live.sampled, live.pending, live.ratio()), (1, 1, None));
    j.expire(now + Duration::from_secs(11));
    let b = j.breakdown();
    assert_eq!(b.coverage.sampled, 1);
    assert_eq!(b.coverage.joined, 1);
    assert_eq!(b.coverage.spans_joined, 4);
    let close = |a: f64, e: f64| (a - e).abs() <= e * 0.01 + 0.001;
    for (label, want) in [
        ("connect", 1.0),
        ("outside the service", 2.0),
        ("server self time", 8.0),
        ("orders: postgresql SELECT orders", 10.0),
        ("orders: GET", 2.0),
        ("pricing: GET /price/{sku}", 10.0),
        ("download", 1.0),
    ] {
        let got = value(&b, "/orders", label);
        assert!(close(got, want), "{label}: {got} ms, expected {want}");
    }
    let r = &b.requests[0];
    let labels: Vec<&str> = r.components.iter().map(|c| c.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "connect",
            "outside the service",
            "server self time",
            // Operations by share, largest first (ties by label).
            "orders: postgresql SELECT orders",
            "pricing: GET /price/{sku}",
            "orders: GET",
            "download",
        ]
    );
    // Shares of the 34 ms total.
    let select = &r.components[3];
    assert!(close(select.share, 10.0 / 34.0), "{}", select.share);
    assert_eq!(select.series.len(), 1);
    assert_eq!(select.series[0].count, 1);
    assert_eq!(r.slowest[0].trace_id, format!("{:032x}", 1));
    assert_eq!(r.slowest[0].dominant, "orders: postgresql SELECT orders");
    assert_eq!(
        b.link(&r.slowest[0].trace_id).unwrap(),
        "http://tempo/00000000000000000000000000000001"
    );
    // Services: orders entered once (30 ms), pricing once (10 ms).
    let svc: Vec<(&str, f64)> = b
        .services
        .iter()
        .map(|s| (s.service.as_str(), s.figures.p50))
        .collect();
    assert_eq!(svc.len(), 2);
    assert!(close(svc[0].1, 30.0) && svc[0].0 == "orders", "{svc:?}");
    assert!(close(svc[1].1, 10.0) && svc[1].0 == "pricing", "{svc:?}");
    assert_eq!(b.operations.len(), 3);
}

#[test]
fn a_server_span_behind_a_silent_proxy_is_still_attributed() {
    let now = Instant::now();
    let mut j = join();
    j.client(&sample(0, 2, 0xc1, 32), now);
    // The proxy's span (0xbeef) never arrives: the service's root has an unknown parent.
    let mut spans = orders_trace(2, 0xbeef);
    spans.rotate_left(2);
    j.spans(spans, now);
    j.flush();
    let b = j.breakdown();
    assert_eq!(b.coverage.joined, 1);
    assert!((value(&b, "/orders", "server self time") - 8.0).abs() < 0.1);
    assert!((value(&b, "/orders", "outside the service") - 2.0).abs() < 0.1);
}

#[test]
fn spans_before_their_request_wait_and_strangers_late_and_overflow_are_counted() {
    let now = Instant::now();
    let mut j = Join::new(
        JoinSettings {
            max_pending: 2,
            window: Duration::from_secs(5),
            ..JoinSettings::default()
        },
        names(),
        SystemTime::UNIX_EPOCH + Duration::from_nanos(T0),
    );
    // Spans first, then their request: adopted.
    j.spans(orders_trace(3, 0xc3), now);
    // A stranger's spans.
    j.spans(orders_trace(99, 0xc9), now);
    j.client(&sample(0, 3, 0xc3, 32), now);
    j.client(&sample(1, 4, 0xc4, 5), now);
    // A third request while two wait: it cannot join; its spans are dropped.
    j.client(&sample(1, 5, 0xc5, 5), now);
    j.spans(orders_trace(5, 0xc5), now);
    // Not sampled: ignored.
    let mut unsampled = sample(0, 6, 0xc6, 5);
    unsampled.trace.as_mut().unwrap().sampled = false;
    j.client(&unsampled, now);
    assert_eq!(j.pending(), 2);
    assert_eq!(j.waiting_without_spans(), 1);
    j.expire(now + Duration::from_secs(6));
    // Request 4's spans come after its window: late.
    j.spans(orders_trace(4, 0xc4), now + Duration::from_secs(6));
    let b = j.breakdown();
    let c = &b.coverage;
    assert_eq!((c.sampled, c.joined), (3, 1));
    assert_eq!(c.spans_received, 16);
    assert_eq!(c.spans_joined, 4);
    assert_eq!(c.spans_foreign, 4, "the stranger's spans, after a window");
    assert_eq!(
        c.spans_dropped, 4,
        "the spans of the request that could not wait"
    );
    assert_eq!(c.spans_late, 4);
    assert_eq!(b.requests.len(), 2);
    assert_eq!((b.requests[1].sampled, b.requests[1].joined), (2, 0));
    assert_eq!(c.ratio(), Some(1.0 / 3.0));
}

#[test]
fn a_flood_of_foreign_spans_stays_bounded_and_our_requests_still_join() {
    let now = Instant::now();
    let mut j = Join::new(
        JoinSettings {
            max_orphan_spans: 1_000,
            ..JoinSettings::default()
        },
        names(),
        SystemTime::UNIX_EPOCH + Duration::from_nanos(T0),
    );
    j.client(&sample(0, 7, 0xc7, 32), now);
    for i in 0..10_000u128 {
        j.spans(orders_trace(1_000_000 + i, 0xc1), now);
    }
    j.spans(orders_trace(7, 0xc7), now);
    assert!(j.orphan_spans <= 1_000);
    j.flush();
    let c = j.breakdown().coverage;
    assert_eq!((c.sampled, c.joined, c.spans_joined), (1, 1, 4));
    assert_eq!(c.spans_foreign, 40_000);
}

#[test]
fn the_slowest_requests_are_kept_slowest_first_and_errors_counted_per_operation() {
    let now = Instant::now();
    let mut j = join();
    for (trace, ttfb) in [(10u128, 40u64), (11, 90), (12, 60)] {
        j.client(&sample(0, trace, 0xc0, ttfb), now);
        let mut spans = orders_trace(trace, 0xc0);
        spans[1].error = trace == 11;
        j.spans(spans, now);
    }
    j.flush();
    let b = j.breakdown();
    let r = &b.requests[0];
    let slow: Vec<f64> = r.slowest.iter().map(|s| s.total_ms).collect();
    assert_eq!(slow, [92.0, 62.0], "top 2, slowest first");
    // With 90 ms to the first byte and a 30 ms server span, the time went outside.
    assert_eq!(r.slowest[0].dominant, "outside the service");
    let select = r
        .components
        .iter()
        .find(|c| c.label.contains("SELECT"))
        .unwrap();
    assert_eq!(select.errors, 1);
    assert_eq!(
        b.operations
            .iter()
            .find(|c| c.label.contains("SELECT"))
            .unwrap()
            .errors,
        1
    );
    assert_eq!(b.services[0].errors, 1);
}

#[test]
fn long_runs_merge_the_series_into_longer_intervals() {
    let now = Instant::now();
    let mut j = join();
    for i in 0..300u64 {
        let mut s = sample(0, u128::from(i) + 100, 0xc0, 32);
        s.started_at += Duration::from_secs(i);
        j.client(&s, now);
        j.spans(orders_trace(u128::from(i) + 100, 0xc0), now);
    }
    j.flush();
    let b = j.breakdown();
    assert_eq!(b.interval_s, 4.0);
    let series = &b.requests[0].components[2].series;
    assert!(series.len() <= 120);
    assert_eq!(series.iter().map(|p| p.count).sum::<u64>(), 300);
}

#[test]
fn what_the_join_remembers_follows_the_rate_not_the_length_of_the_run() {
    let mut now = Instant::now();
    let mut j = join();
    // 100 s at 1,000 sampled requests per second, each joined.
    for second in 0..100u128 {
        for i in 0..1_000u128 {
            let trace = second * 1_000 + i + 1;
            j.client(&sample(0, trace, 0xc1, 32), now);
            j.spans(orders_trace(trace, 0xc1), now);
        }
        now += Duration::from_secs(1);
        j.expire(now);
    }
    // A window (10 s) of requests waiting, a window of final ones remembered.
    assert!(j.pending() <= 10_000, "{}", j.pending());
    assert!(j.fates.len() <= 11_000, "{}", j.fates.len());
    assert!(j.fate_order.len() <= 11_000);
    // Once the load stops, the last requests become final, are forgotten a window later,
    // and the tables shrink back.
    j.expire(now + Duration::from_secs(10));
    j.expire(now + Duration::from_secs(20));
    assert_eq!((j.pending(), j.fates.len()), (0, 0));
    assert!(
        j.pending.capacity() <= 4_096 * 2,
        "{}",
        j.pending.capacity()
    );
    assert!(j.fates.capacity() <= 4_096 * 2, "{}", j.fates.capacity());
    assert_eq!(j.breakdown().coverage.joined, 100_000);
}

#[test]
fn a_span_that_ends_before_it_starts_is_taken_without_a_panic() {
    let now = Instant::now();
    let mut j = join();
    j.client(&sample(0, 8, 0xc1, 32), now);
    let mut spans = orders_trace(8, 0xc1);
    let root = &mut spans[0];
    (root.start_ns, root.end_ns) = (root.end_ns, root.start_ns);
    j.spans(spans, now);
    j.flush();
    assert_eq!(j.breakdown().coverage.joined, 1);
}

#[test]
fn two_joins_merged_give_the_breakdown_of_one_join_over_every_request() {
    let now = Instant::now();
    let (mut a, mut b, mut whole) = (join(), join(), join());
    for t in 1..=40u128 {
        // Response times spread, so that percentiles of the halves differ from the whole's.
        let s = sample((t % 2) as u32, t, 0xc0 + t as u64, 32 + (t as u64 * 7) % 50);
        let spans = orders_trace(t, 0xc0 + t as u64);
        let half = if t % 3 == 0 { &mut a } else { &mut b };
        half.client(&s, now);
        half.spans(spans.clone(), now);
        whole.client(&s, now);
        whole.spans(spans, now);
    }
    let later = now + Duration::from_secs(11);
    for j in [&mut a, &mut b, &mut whole] {
        j.expire(later);
    }
    let merged =
        crate::breakdown::merge::merge(&[a.histograms(true), b.histograms(true)], &names())
            .unwrap();
    let one = whole.breakdown();
    assert_eq!(merged.coverage, one.coverage);
    assert_eq!(merged.services, one.services);
    assert_eq!(merged.link_template, one.link_template);
    let strip = |b: &Breakdown| -> Vec<RequestBreakdown> {
        let mut r = b.requests.clone();
        for x in &mut r {
            for c in &mut x.components {
                c.series.clear();
            }
        }
        r
    };
    // Counts, means, percentiles, maxima, shares, errors and the slowest requests: exact.
    assert_eq!(strip(&merged), strip(&one));
    let ops = |b: &Breakdown| -> Vec<(String, Figures)> {
        b.operations
            .iter()
            .map(|c| (c.label.clone(), c.figures))
            .collect()
    };
    assert_eq!(ops(&merged), ops(&one));
    // The series: counts of each interval add up.
    let counts = |b: &Breakdown| -> Vec<u64> {
        b.requests[0].components[0]
            .series
            .iter()
            .map(|p| p.count)
            .collect()
    };
    assert_eq!(counts(&merged), counts(&one));
    // The merged breakdown carries its own histograms: merged again, it is the same.
    let again = crate::breakdown::merge::merge(merged.histograms.as_deref(), &names()).unwrap();
    assert_eq!(again.coverage, merged.coverage);
    assert_eq!(strip(&again), strip(&merged));
    assert_eq!(ops(&again), ops(&merged));
    assert_eq!(again.services, merged.services);
}
