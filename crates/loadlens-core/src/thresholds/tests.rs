//! Parsing, evaluation, the guard and tag scopes, on hand-made figures.

use super::*;

fn summary(name: &str, count: u64, failures: u64, p95: f64, rps: f64) -> RequestSummary {
    RequestSummary {
        method: "GET".into(),
        name: name.into(),
        request_count: count,
        failure_count: failures,
        rps,
        error_rate: if count == 0 {
            0.0
        } else {
            failures as f64 / count as f64
        },
        latency_ms: Percentiles {
            p95,
            p99_9: p95 * 2.0,
            avg: p95 / 2.0,
            max: p95 * 3.0,
            ..Percentiles::default()
        },
        ..RequestSummary::default()
    }
}

#[test]
fn parses_the_readable_syntax() {
    let t = parse("p95 < 300ms").unwrap();
    assert_eq!(
        (t.metric, t.op, t.value),
        (Metric::Latency(LatencyStat::P(95.0)), Op::Lt, 300.0)
    );
    assert_eq!(t.scope, Scope::Aggregate);
    assert_eq!(parse("p99.9 <= 1.5s").unwrap().value, 1500.0);
    assert_eq!(parse("avg<120").unwrap().value, 120.0);
    assert_eq!(parse("error_rate < 1%").unwrap().value, 0.01);
    assert_eq!(parse("error_rate<0.05").unwrap().value, 0.05);
    assert_eq!(parse("rps > 500").unwrap().value, 500.0);
    assert_eq!(parse("rps >= 600/m").unwrap().value, 10.0);
    let t = parse("p95{name:GET /api/products} < 300ms, abort after 10s").unwrap();
    assert_eq!(t.scope, Scope::Request("GET /api/products".into()));
    assert!(t.abort_on_fail);
    assert_eq!(t.delay, Some(Duration::from_secs(10)));
    assert_eq!(
        parse("max{scenario:browse} < 2s, abort").unwrap().scope,
        Scope::Scenario("browse".into())
    );
    let g = parse("generator_healthy").unwrap();
    assert_eq!(
        (g.metric, g.op, g.value),
        (Metric::GeneratorHealthy, Op::Eq, 1.0)
    );
    assert_eq!(parse("dropped_iterations == 0").unwrap().op, Op::Eq);
}

#[test]
fn rejects_with_what_to_write_instead() {
    let e = |s: &str| parse(s).unwrap_err().to_string();
    assert!(
        e("p97 < 1s").contains("use one of p50"),
        "{}",
        e("p97 < 1s")
    );
    assert!(e("latency < 1s").contains("unknown metric `latency`"));
    assert!(e("p95").contains("METRIC OP VALUE"));
    assert!(e("p95 < fast").contains("invalid"), "{}", e("p95 < fast"));
    assert_eq!(
        parse("p95{tag:checkout} < 1s").unwrap().scope,
        Scope::Tag("checkout".into())
    );
    assert!(e("p95{tag:} < 1s").contains("names nothing"));
    assert!(e("dropped_iterations{tag:x} == 0").contains("whole run"));
    assert!(e("p95{host:x} < 1s").contains("unknown scope"));
    assert!(e("p95 < 1s, maybe").contains("expected `abort`"));
    assert!(parse("checks > 99%").is_ok());
    assert!(e("dropped_iterations{name:x} < 1").contains("whole run"));
    assert!(e("p95 < soon").starts_with("threshold `p95 < soon`: "));
}

#[test]
fn evaluates_each_metric_and_scope() {
    let a = summary("/a", 100, 2, 250.0, 50.0);
    let b = summary("/b", 10, 5, 900.0, 5.0);
    let agg = summary("Aggregated", 110, 7, 400.0, 55.0);
    let scen = vec![("browse".to_owned(), a.clone())];
    let health = GeneratorHealth {
        healthy: false,
        ..GeneratorHealth::default()
    };
    let o = Observed {
        aggregate: &agg,
        requests: &[a, b],
        scenarios: &scen,
        tags: &[],
        dropped_iterations: 3,
        generator: Some(&health),
        breakdown: None,
    };
    let r = |s: &str| parse(s).unwrap().check(&o);
    assert_eq!(r("p95 < 500ms"), (Some(400.0), Some(true)));
    assert_eq!(r("p95 < 300ms").1, Some(false));
    assert_eq!(r("p95{name:/a} < 300ms").1, Some(true));
    assert_eq!(r("p95{name:GET /b} < 300ms").1, Some(false));
    assert_eq!(r("p99.9{name:/a} < 600ms").1, Some(true));
    assert_eq!(r("avg < 201ms").1, Some(true));
    assert_eq!(r("max < 1s").1, Some(false));
    assert_eq!(r("error_rate{name:/a} < 5%").1, Some(true));
    assert_eq!(r("error_rate{name:/b} < 5%").1, Some(false));
    assert_eq!(r("rps > 50").1, Some(true));
    assert_eq!(r("rps{name:/b} > 50").1, Some(false));
    assert_eq!(r("requests >= 110").1, Some(true));
    assert_eq!(r("failures < 5").1, Some(false));
    assert_eq!(r("p95{scenario:browse} < 300ms").1, Some(true));
    assert_eq!(r("dropped_iterations == 0"), (Some(3.0), Some(false)));
    assert_eq!(r("generator_healthy"), (Some(0.0), Some(false)));
    // A name that matches nothing has no data, and fails at the end.
    assert_eq!(r("p95{name:/nope} < 1s"), (None, None));
    let res = evaluate(&[parse("p95{name:/nope} < 1s").unwrap()], &o, &[]);
    assert!(!res[0].passed);
    assert_eq!(res[0].detail, "no data for p95 name:/nope");
}

#[test]
fn guard_reports_first_breaches_and_aborts_only_after_the_delay() {
    let ok = summary("Aggregated", 100, 0, 100.0, 10.0);
    let bad = summary("Aggregated", 100, 50, 100.0, 10.0);
    let obs = |r| Observed {
        aggregate: r,
        requests: &[],
        scenarios: &[],
        tags: &[],
        dropped_iterations: 0,
        generator: None,
        breakdown: None,
    };
    let mut g = Guard::new(vec![
        parse("error_rate < 10%, abort after 5s").unwrap(),
        parse("p95 < 50ms").unwrap(),
    ]);
    let s = Duration::from_secs;
    assert_eq!(g.check(&obs(&ok), s(1)).0.len(), 1); // p95 breached, not aborting
    let (ev, abort) = g.check(&obs(&bad), s(2));
    assert_eq!(ev.len(), 1);
    assert!(
        ev[0].contains("error_rate < 10%") && ev[0].contains("50.00%"),
        "{ev:?}"
    );
    assert_eq!(abort, None, "within the delay");
    let (ev, abort) = g.check(&obs(&bad), s(5));
    assert!(ev.is_empty());
    assert!(abort.unwrap().contains("error_rate < 10%"));
    let breaches = g.into_breaches();
    let res = evaluate(
        &[
            parse("error_rate < 10%, abort after 5s").unwrap(),
            parse("p95 < 50ms").unwrap(),
        ],
        &obs(&ok),
        &breaches,
    );
    // Aborted thresholds fail even if the final figure recovered.
    assert!(res[0].aborted && !res[0].passed);
    assert_eq!(res[0].first_breach_s, Some(2.0));
    assert!(!res[1].passed && !res[1].aborted);
}

#[test]
fn check_pass_rate_is_a_threshold() {
    let agg = RequestSummary {
        request_count: 100,
        checks_passed: 99,
        checks_failed: 1,
        ..RequestSummary::default()
    };
    let o = Observed {
        aggregate: &agg,
        requests: &[],
        scenarios: &[],
        tags: &[],
        dropped_iterations: 0,
        generator: None,
        breakdown: None,
    };
    let pass = parse("checks > 98%").unwrap();
    let fail = parse("checks >= 99.5%").unwrap();
    assert_eq!(pass.check(&o), (Some(0.99), Some(true)));
    assert_eq!(fail.check(&o).1, Some(false));
    assert_eq!(fail.format(0.99), "99.00%");
    let none = RequestSummary {
        request_count: 5,
        ..RequestSummary::default()
    };
    let o2 = Observed {
        aggregate: &none,
        ..o
    };
    assert_eq!(
        pass.check(&o2),
        (None, None),
        "no checks ran: nothing to judge"
    );
}

#[test]
fn errors_carry_the_rule_and_a_kind_to_match_on() {
    let e = parse("p97 < 1s").unwrap_err();
    assert_eq!(e.threshold, "p97 < 1s");
    assert!(matches!(e.kind, ParseErrorKind::Percentile { .. }));
    let msg = |s: &str| parse(s).unwrap_err().to_string();
    assert_eq!(
        msg("p95{tag:x < 1s"),
        "threshold `p95{tag:x < 1s`: `p95{tag:x `: `{` without a closing `}`"
    );
    assert_eq!(
        msg("p95{x} < 1s"),
        "threshold `p95{x} < 1s`: scope `{x}` must be `{name:REQUEST}`, `{scenario:NAME}` or `{tag:TAG}`"
    );
    assert_eq!(
        msg("p95{host:x} < 1s"),
        "threshold `p95{host:x} < 1s`: unknown scope `host` in `{host:x}`: use `name:`, `scenario:` or `tag:`"
    );
    assert_eq!(
        msg("error_rate < x%"),
        "threshold `error_rate < x%`: `x%` is not a number"
    );
    assert_eq!(
        msg("rps > fast"),
        "threshold `rps > fast`: invalid arrival rate `fast`: expected e.g. `200/s` or `1200/m`"
    );
    assert_eq!(
        msg("generator_healthy == maybe"),
        "threshold `generator_healthy == maybe`: generator_healthy compares with true or false, not `maybe`"
    );
    assert_eq!(
        msg("p95 < 1s, later"),
        "threshold `p95 < 1s, later`: unknown option `later`: expected `abort` or `abort after 30s`"
    );
}

#[test]
fn span_service_and_coverage_thresholds_read_the_breakdown() {
    let b = crate::breakdown::Breakdown::example();
    let total = summary("Aggregated", 10, 0, 100.0, 1.0);
    let o = Observed {
        aggregate: &total,
        requests: &[],
        scenarios: &[],
        tags: &[],
        dropped_iterations: 0,
        generator: None,
        breakdown: Some(&b),
    };
    let check = |rule: &str| parse(rule).unwrap().check(&o);
    // The example's query: p50 22 ms, p95 39.6 ms, 2 error spans.
    assert_eq!(
        check(r#"p95{span:"SELECT orders"} < 20ms"#),
        (Some(39.6), Some(false))
    );
    assert_eq!(
        check("p50{span:postgresql: SELECT orders} < 30ms"),
        (Some(22.0), Some(true))
    );
    assert_eq!(
        check("failures{span:SELECT orders} == 0"),
        (Some(2.0), Some(false))
    );
    // The pricing service: p99 28.75 ms.
    assert_eq!(
        check("p99{service:pricing} < 100ms"),
        (Some(28.75), Some(true))
    );
    // 148 of 150 sampled requests joined.
    let (v, ok) = check("trace_coverage > 95%");
    assert!((v.unwrap() - 148.0 / 150.0).abs() < 1e-9 && ok == Some(true));
    assert_eq!(check("trace_coverage >= 0.99").1, Some(false));
    // No such operation, or no receiver: no data (which fails at the end).
    assert_eq!(check("p95{span:DELETE everything} < 1s"), (None, None));
    let without = Observed {
        breakdown: None,
        ..o
    };
    assert_eq!(
        parse("trace_coverage > 95%").unwrap().check(&without),
        (None, None)
    );
    assert_eq!(
        parse("p95{service:pricing} < 1s").unwrap().check(&without),
        (None, None)
    );
    // Request figures are unaffected by the breakdown.
    assert_eq!(check("requests == 10"), (Some(10.0), Some(true)));
    let t = parse(r#"p95{span:"SELECT orders"} < 20ms"#).unwrap();
    assert_eq!(t.scope.to_string(), "span:SELECT orders");
    assert_eq!(
        parse("trace_coverage > 95%").unwrap().format(0.9866),
        "98.66%"
    );
}

#[test]
fn span_scopes_refuse_what_spans_do_not_measure() {
    let e = |rule: &str| parse(rule).unwrap_err().to_string();
    assert_eq!(
        e("p90{span:SELECT} < 1s"),
        "threshold `p90{span:SELECT} < 1s`: `p90` is not measured on spans: use p50, p95, p99, avg, max or failures"
    );
    assert_eq!(
        e("rps{service:inventory} > 1"),
        "threshold `rps{service:inventory} > 1`: `rps` is not measured on spans: use p50, p95, p99, avg, max or failures"
    );
    assert_eq!(
        e("trace_coverage{name:/a} > 90%"),
        "threshold `trace_coverage{name:/a} > 90%`: `trace_coverage` applies to the whole run, not to a scope"
    );
}
