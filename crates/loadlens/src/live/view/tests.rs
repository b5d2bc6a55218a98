//! Rendering checks on ratatui's `TestBackend`: real snapshots from the aggregator, drawn at
//! several terminal sizes, read back as text.

use super::*;
use loadlens_core::sample::{Failure, NameId, Phases, Sample};
use loadlens_core::stats::{Aggregator, Recorder};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::time::SystemTime;

fn names() -> Vec<(String, String)> {
    vec![
        ("GET".into(), "/api/products".into()),
        ("POST".into(), "/api/v1/checkout".into()),
        ("GET".into(), "/never/called".into()),
    ]
}

fn sample(name: u32, ms: u64, fail: Option<&str>) -> Sample {
    Sample {
        name: NameId(name),
        started_at: SystemTime::now(),
        total: Duration::from_millis(ms),
        schedule_delay: Duration::ZERO,
        phases: Phases::default(),
        status: Some(if fail.is_some() { 500 } else { 200 }),
        bytes_sent: 10,
        bytes_received: 20,
        content_length: 5,
        new_connection: false,
        failure: fail.map(|m| Failure::new(ErrorKind::Status, m)),
        checks_passed: 0,
        checks_failed: 0,
        trace: None,
        vu: 0,
        scenario: 0,
        user_type: 0,
        task: 0,
        url: None,
        protocol: None,
    }
}

/// Three one-second intervals of real aggregation: products at 100, 200, 300 req/s
/// (1–50 ms), checkout at 10 req/s with 2 failures a second.
fn view() -> (View, Vec<Arc<Snapshot>>) {
    let rec = Recorder::new(3);
    let mut agg = Aggregator::new(rec.clone(), names());
    let mut view = View::new(
        Header {
            run_id: "20260101-000000-abcdef".into(),
            scenario: "storefront".into(),
            profile: "5 users".into(),
        },
        Some(Duration::from_secs(60)),
        names(),
    );
    let mut snaps = Vec::new();
    for sec in 1..=3u64 {
        for i in 0..100 * sec {
            rec.record(&sample(0, 1 + i % 50, None));
        }
        for i in 0..10 {
            let fail = (i < 2).then_some("HTTP 500 Internal Server Error");
            rec.record(&sample(1, 20, fail));
        }
        let s = Arc::new(agg.tick(Duration::from_secs(sec), 5));
        view.push(s.clone());
        snaps.push(s);
    }
    (view, snaps)
}

fn draw(view: &View, w: u16, h: u16) -> Vec<String> {
    let screen = draw_only(view, w, h);
    if std::env::var_os("SHOW_SCREEN").is_some() {
        eprintln!("{}", screen.join("\n"));
    }
    screen
}

fn draw_only(view: &View, w: u16, h: u16) -> Vec<String> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| view.render(f)).unwrap();
    let buf = t.backend().buffer();
    (0..h)
        .map(|y| (0..w).map(|x| buf[(x, y)].symbol()).collect::<String>())
        .collect()
}

fn find<'a>(screen: &'a [String], needle: &str) -> &'a str {
    screen
        .iter()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in\n{}", screen.join("\n")))
}

fn cells(line: &str) -> Vec<&str> {
    line.split(|c: char| c.is_whitespace() || c == '│')
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn renders_a_row_per_request_with_its_numbers_sparklines_and_errors() {
    let (view, snaps) = view();
    let last = snaps.last().unwrap();
    let screen = draw(&view, 120, 40);
    let all = screen.join("\n");

    assert!(
        find(&screen, " loadlens ").contains("run 20260101-000000-abcdef · storefront · 5 users")
    );
    assert!(find(&screen, "elapsed 00:00:03").contains("left 00:00:57"));
    let figures = find(&screen, "users 5");
    assert!(figures.contains("reqs 630"), "{figures}");
    assert!(figures.contains("failures 6 (0.95%)"), "{figures}");
    assert!(figures.contains("310 req/s now"), "{figures}");

    // One row per request that ran, with the snapshot's numbers, columns in order.
    let products = &last.requests[0];
    let row = cells(find(&screen, "/api/products"));
    assert_eq!(
        row,
        [
            "GET",
            "/api/products",
            "600",
            "0",
            "(0.00%)",
            &ms(products.latency_ms.p50),
            &ms(products.latency_ms.p95),
            &ms(products.latency_ms.p99),
            &rate(products.rps),
            "300",
        ]
    );
    let checkout = cells(find(&screen, "/api/v1/checkout  "));
    assert_eq!(
        &checkout[..5],
        ["POST", "/api/v1/checkout", "30", "6", "(20.00%)"]
    );
    assert_eq!(checkout.last(), Some(&"10.0"));
    let total = cells(find(&screen, "Aggregated"));
    assert_eq!(&total[..4], ["Aggregated", "630", "6", "(0.95%)"]);
    assert!(
        !all.contains("/never/called"),
        "requests that never ran have no row"
    );

    // Sparklines: titled with the newest and largest value, bars drawn inside.
    let titles = find(&screen, " req/s  now 310");
    assert!(titles.contains("max 310"), "{titles}");
    assert!(
        titles.contains(&format!(" p95  now {} ms", ms(last.point.p95_ms))),
        "{titles}"
    );
    let top = screen
        .iter()
        .position(|l| l.contains(" req/s  now"))
        .unwrap();
    let bars: String = screen[top + 1..top + 7].concat();
    assert!(
        bars.chars().filter(|c| "▁▂▃▄▅▆▇█".contains(*c)).count() >= 6,
        "two sparklines of three points each:\n{}",
        screen[top..top + 8].join("\n")
    );

    let error = find(&screen, "6× POST /api/v1/checkout");
    assert!(
        error.contains("status: HTTP 500 Internal Server Error"),
        "{error}"
    );
    assert!(error.contains("(now)"), "{error}");
    assert!(find(&screen, " q ").contains("stop gracefully"));
}

#[test]
fn fits_80_by_24_with_every_row_and_the_aggregate() {
    let (view, _) = view();
    let screen = draw(&view, 80, 24);
    for needle in [
        "/api/products",
        "/api/v1/checkout",
        "Aggregated",
        " req/s  now",
        "6× POST",
        " q ",
    ] {
        find(&screen, needle);
    }
    // Names are not cut short while numbers fit beside them.
    find(&screen, "Aggregated");
    assert!(find(&screen, "# reqs").contains("req/s"));
}

#[test]
fn narrow_tables_drop_columns_before_cutting_names() {
    let (view, _) = view();
    let screen = draw(&view, 60, 24);
    let header = find(&screen, "# reqs");
    assert!(
        !header.contains("req/s") && !header.contains("p50"),
        "{header}"
    );
    assert!(
        header.contains("p95 ms") && header.contains("now/s"),
        "{header}"
    );
    find(&screen, "/api/v1/checkout");
}

#[test]
fn before_the_first_snapshot_it_says_it_is_waiting() {
    let view = View::new(Header::default(), None, names());
    let screen = draw(&view, 100, 30);
    find(&screen, "waiting for the first second of results");
    assert!(!find(&screen, "elapsed 00:00:00").contains("left"));
    find(&screen, "Errors: none so far");
}

#[test]
fn stop_requests_replace_the_key_help() {
    let (mut view, _) = view();
    view.stop_requests = 1;
    view.stopping = true;
    view.notice("Stopping: in-flight requests get to finish (Ctrl-C again to stop now)…".into());
    let screen = draw(&view, 120, 40);
    assert!(find(&screen, "Stopping: in-flight").contains(" q  again: stop now"));
    assert!(find(&screen, "elapsed").contains("stopping"));
    view.stop_requests = 2;
    find(&draw(&view, 120, 40), "Stopping now");
}

#[test]
fn a_tall_terminal_adds_failures_and_users_sparklines() {
    let (view, _) = view();
    find(&draw(&view, 120, 30), " req/s  now 310");
    assert!(!draw(&view, 120, 30).join("").contains(" users  now"));
    let screen = draw(&view, 120, 50);
    assert!(find(&screen, " failures/s  now 2.0").contains(" users  now 5 · max 5"));
}

#[test]
fn log_lines_show_above_the_key_help() {
    let (mut view, _) = view();
    view.log("2026-11-22T02:40:17.557699Z  WARN loadlens_sinks::otlp: Export failed.".into());
    let screen = draw(&view, 120, 40);
    let at = screen
        .iter()
        .position(|l| l.contains("Export failed."))
        .unwrap();
    assert!(
        screen[at].starts_with("WARN loadlens_sinks::otlp: Export failed."),
        "{}",
        screen[at]
    );
    assert!(screen[at + 1].contains("stop gracefully"));
}

#[test]
fn any_size_renders_without_panicking_and_small_ones_keep_the_progress_line() {
    let (view, _) = view();
    for (w, h) in [
        (1, 1),
        (2, 30),
        (200, 2),
        (20, 5),
        (49, 40),
        (120, 13),
        (50, 14),
        (70, 20),
        (200, 50),
        (400, 120),
    ] {
        draw(&view, w, h);
    }
    let small = draw(&view, 48, 12).join("");
    assert!(small.contains("req/s"), "{small}");
    assert!(small.contains("630 reqs"), "{small}");
}

#[test]
fn many_requests_keep_the_aggregate_and_say_how_many_are_hidden() {
    let names: Vec<(String, String)> = (0..30)
        .map(|i| ("GET".to_owned(), format!("/r/{i}")))
        .collect();
    let rec = Recorder::new(names.len());
    let mut agg = Aggregator::new(rec.clone(), names.clone());
    let mut view = View::new(Header::default(), None, names);
    for i in 0..30 {
        rec.record(&sample(i, 5, None));
    }
    view.push(Arc::new(agg.tick(Duration::from_secs(1), 1)));
    let screen = draw(&view, 100, 24);
    let title = find(&screen, " Requests: ");
    let shown = screen.iter().filter(|l| l.contains("│GET")).count();
    assert!(shown >= 5, "{}", screen.join("\n"));
    assert!(title.contains(&format!("{shown} of 30 shown")), "{title}");
    assert!(cells(find(&screen, "Aggregated")).contains(&"30"));
    find(&screen, " req/s  now 30.0");
    let tall = draw(&view, 100, 60);
    assert_eq!(tall.iter().filter(|l| l.contains("│GET")).count(), 30);
    find(&tall, " Requests ─");
}

#[test]
fn errors_newest_first_and_bounded() {
    let rec = Recorder::new(1);
    let mut agg = Aggregator::new(rec.clone(), vec![("GET".into(), "/x".into())]);
    let mut view = View::new(Header::default(), None, vec![("GET".into(), "/x".into())]);
    for sec in 1..=30u64 {
        rec.record(&sample(0, 1, Some(&format!("HTTP 5{sec:02}"))));
        view.push(Arc::new(agg.tick(Duration::from_secs(sec), 1)));
    }
    assert_eq!(view.errors.len(), ERRORS_KEPT);
    assert_eq!(view.errors[0].message, "HTTP 530");
    let screen = draw(&view, 100, 40);
    let first = screen.iter().position(|l| l.contains("HTTP 530")).unwrap();
    assert!(screen[first].contains("(now)"), "{}", screen[first]);
    assert!(screen[first + 1].contains("HTTP 529") && screen[first + 1].contains("(1s ago)"));
    assert!(
        screen[first + 2].contains("(2s ago)"),
        "{}",
        screen[first + 2]
    );
}

#[test]
fn where_the_time_went_shows_each_names_top_components_only_with_a_breakdown() {
    use loadlens_core::breakdown::Breakdown;

    let (mut view, snaps) = view();
    for (w, h) in [(120, 40), (80, 24)] {
        let screen = draw(&view, w, h);
        assert!(
            !screen.join("\n").contains("Where the time went"),
            "no panel without a receiver"
        );
    }
    let mut last = (**snaps.last().unwrap()).clone();
    last.breakdown = Some(Arc::new(Breakdown::example()));
    view.push(Arc::new(last));
    for (w, h) in [(140, 40), (120, 30)] {
        let screen = draw(&view, w, h);
        let title = find(&screen, "Where the time went");
        assert!(
            title.contains("98.7% of 150 sampled requests joined · 6 spans dropped, 2 late"),
            "{title}"
        );
        // /orders: p95 72 ms; SELECT 55%, pricing 28% (27.5 rounds to even), self time 8%.
        let orders = find(&screen, "GET /orders  ");
        assert!(
            orders.contains(
                "p95    72.0 ms  postgresql: SELECT orders 55% · pricing: GET /price/{sku} 28% · server self time 8%"
            ),
            "{orders}"
        );
        let search = find(&screen, "GET /search  ");
        assert!(
            search.contains("p95    21.6 ms  server self time 75% · redis: GET 17%"),
            "{search}"
        );
        // The rest of the view is still there (errors counted twice: the last interval was
        // pushed again).
        for needle in [
            "/api/products",
            "Aggregated",
            " req/s  now",
            "8× POST",
            " q ",
        ] {
            find(&screen, needle);
        }
    }
    // A small terminal leaves the panel out rather than the table.
    let screen = draw(&view, 80, 16);
    find(&screen, "Aggregated");
}
