//! Thresholds: pass/fail rules for CI, written in the scenario file (`thresholds:`) or with
//! `--threshold`, in a readable syntax:
//!
//! ```text
//! p95 < 300ms                          aggregate 95th percentile (from the intended start)
//! p99.9{name:create order} < 1s        one request name (`name` or `METHOD name`)
//! avg{scenario:browse} <= 120ms        one named scenario
//! p95{tag:checkout} < 300ms            every request of the tasks tagged `checkout`
//! error_rate < 1%                      failed / completed
//! rps > 500                            completed requests per second over the run
//! dropped_iterations == 0              open model: arrivals with no free VU
//! generator_healthy                    the generator was not the bottleneck
//! p95{span:"SELECT orders"} < 20ms     a downstream operation of the service (trace receiver)
//! p99{service:inventory} < 100ms       a service's spans where the trace enters it
//! trace_coverage > 95%                 sampled requests joined to their server spans
//! error_rate < 5%, abort after 30s     stop the run once it is lost (after a grace delay)
//! p95 < 300ms, disable_gate checkout   turn a feature gate off when it first fails
//! ```
//!
//! k6's spelling is read too (`p(95)<300`, `http_req_failed: rate<0.01`, see [`k6`]).
//!
//! Metrics: `p50 p66 p75 p80 p90 p95 p98 p99 p99.9 p99.99 med avg min max` (milliseconds;
//! values take `ms`, `s`, or a bare number of ms), `error_rate` (`1%` or `0.01`), `rps`,
//! `requests`, `failures`, `dropped_iterations`, `generator_healthy`, `trace_coverage`.
//! Operators: `< <= > >= == !=`. The `span:` and `service:` scopes read the trace receiver's
//! [`Breakdown`] (`p50 p95 p99 avg max`, and `failures` for the spans with an error status);
//! `span:` matches an operation as reports name it (`SELECT orders`, or with its service,
//! `orders: SELECT orders`).
//!
//! The same [`Threshold`] is evaluated on every snapshot during the run (to emit
//! `threshold_breached` events and to abort) and once on the final summary, which decides the
//! verdict and the exit code. Tag scopes merge the figures of the request names their tasks
//! send (see [`tags`]).

pub mod k6;
pub mod tags;

use std::fmt;
use std::time::Duration;

pub use tags::{unknown_tag, NameTags, TagSummary};

use crate::action::Action;
use crate::breakdown::Breakdown;
use crate::health::GeneratorHealth;
use crate::stats::{Percentiles, RequestSummary};

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    /// A latency statistic, in milliseconds.
    Latency(LatencyStat),
    /// Failed / completed requests, 0..=1.
    ErrorRate,
    /// Completed requests per second over the run.
    Rps,
    /// Completed requests.
    Requests,
    /// Failed requests.
    Failures,
    /// Open model: arrivals that found no free VU.
    DroppedIterations,
    /// 1 when the generator was healthy, 0 when its results are not trustworthy.
    GeneratorHealthy,
    /// Checks passed / checks evaluated, 0..=1.
    Checks,
    /// Sampled requests joined to their server spans / sampled requests, 0..=1.
    TraceCoverage,
}

/// A latency statistic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LatencyStat {
    /// Mean.
    Avg,
    /// Smallest.
    Min,
    /// Largest.
    Max,
    /// Percentile (one of those the summary keeps).
    P(f64),
}

const PERCENTILES: [f64; 10] = [50.0, 66.0, 75.0, 80.0, 90.0, 95.0, 98.0, 99.0, 99.9, 99.99];

impl LatencyStat {
    fn of(self, p: &Percentiles) -> f64 {
        match self {
            LatencyStat::Avg => p.avg,
            LatencyStat::Min => p.min,
            LatencyStat::Max => p.max,
            LatencyStat::P(q) => {
                let by_q = [
                    (50.0, p.p50),
                    (66.0, p.p66),
                    (75.0, p.p75),
                    (80.0, p.p80),
                    (90.0, p.p90),
                    (95.0, p.p95),
                    (98.0, p.p98),
                    (99.0, p.p99),
                    (99.9, p.p99_9),
                ];
                by_q.iter()
                    .find(|(k, _)| *k == q)
                    .map_or(p.p99_99, |(_, v)| *v)
            }
        }
    }
}

/// Which requests a threshold looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every request.
    Aggregate,
    /// One request name (`name` or `METHOD name`).
    Request(String),
    /// One named scenario.
    Scenario(String),
    /// Every request sent by the tasks with this tag (see [`tags`]).
    Tag(String),
    /// A downstream operation of the service, from joined spans (`span:"SELECT orders"`).
    Span(String),
    /// The spans of one service where the trace enters it, from joined spans
    /// (`service:inventory`).
    Service(String),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Aggregate => f.write_str("aggregate"),
            Scope::Request(n) => write!(f, "name:{n}"),
            Scope::Scenario(n) => write!(f, "scenario:{n}"),
            Scope::Tag(t) => write!(f, "tag:{t}"),
            Scope::Span(n) => write!(f, "span:{n}"),
            Scope::Service(n) => write!(f, "service:{n}"),
        }
    }
}

/// Comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl Op {
    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
}

/// One parsed threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The text as written (shown in every report).
    pub expression: String,
    /// What is measured.
    pub metric: Metric,
    /// Which requests.
    pub scope: Scope,
    /// Comparison.
    pub op: Op,
    /// Limit, in the metric's unit (ms, ratio, per second, count).
    pub value: f64,
    /// Stop the run as soon as this threshold fails.
    pub abort_on_fail: bool,
    /// Do not evaluate for aborting before this much of the run has passed.
    pub delay: Option<Duration>,
    /// Guard actions taken once when it first fails during the run (`disable_gate NAME`,
    /// a webhook; see [`crate::action`]).
    pub on_fail: Vec<Action>,
}

/// A threshold that does not parse: the rule as written and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("threshold `{threshold}`: {kind}")]
pub struct ParseError {
    /// The rule as written, trimmed.
    pub threshold: String,
    /// What is wrong.
    pub kind: ParseErrorKind,
}

/// What is wrong with a threshold; the message shows the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// `{` without `}`.
    #[error("`{lhs}`: `{{` without a closing `}}`")]
    UnclosedScope {
        /// The metric and scope as written.
        lhs: String,
    },
    /// A scope that is not `key:value`.
    #[error(
        "scope `{{{scope}}}` must be `{{name:REQUEST}}`, `{{scenario:NAME}}` or `{{tag:TAG}}`"
    )]
    ScopeForm {
        /// The text between the braces.
        scope: String,
    },
    /// A scope with an empty value.
    #[error("scope `{{{scope}}}` names nothing")]
    EmptyScope {
        /// The text between the braces.
        scope: String,
    },
    /// A scope key other than `name`, `scenario` or `tag`.
    #[error("unknown scope `{key}` in `{{{scope}}}`: use `name:`, `scenario:` or `tag:`")]
    UnknownScope {
        /// The key.
        key: String,
        /// The text between the braces.
        scope: String,
    },
    /// A percentile the histograms do not report.
    #[error("percentile `{percentile}` is not kept: use one of p50, p66, p75, p80, p90, p95, p98, p99, p99.9, p99.99")]
    Percentile {
        /// The percentile as written (`p97`).
        percentile: String,
    },
    /// A metric name that does not exist.
    #[error("unknown metric `{metric}`: expected a latency (p50 … p99.99, avg, min, max), error_rate, checks, rps, requests, failures, dropped_iterations or generator_healthy")]
    UnknownMetric {
        /// The metric as written.
        metric: String,
    },
    /// A limit that is not a number.
    #[error("`{value}` is not a number")]
    NotANumber {
        /// The limit as written.
        value: String,
    },
    /// A latency limit or `abort after` delay that is not a duration.
    #[error("{0}")]
    Duration(String),
    /// An `rps` limit that is not a rate.
    #[error(transparent)]
    Rate(#[from] crate::load::profile::RateError),
    /// `generator_healthy` compared with something other than a boolean.
    #[error("generator_healthy compares with true or false, not `{value}`")]
    NotABoolean {
        /// The limit as written.
        value: String,
    },
    /// An option after the comma other than `abort` / `abort after D` / `disable_gate G`.
    // The wording is pinned by tests; `disable_gate GATE` is documented with the syntax.
    #[error("unknown option `{option}`: expected `abort` or `abort after 30s`")]
    UnknownOption {
        /// The option as written.
        option: String,
    },
    /// No operator and value.
    #[error("expected `METRIC OP VALUE`, e.g. `p95 < 300ms`, `error_rate < 1%`, `rps > 500`")]
    MissingComparison,
    /// A metric the `span:` and `service:` scopes do not measure.
    #[error("`{metric}` is not measured on spans: use p50, p95, p99, avg, max or failures")]
    NotOnSpans {
        /// The metric as written.
        metric: String,
    },
    /// A k6 threshold with no loadlens equivalent (the message names the one to use).
    #[error("{0}")]
    K6(String),
    /// A run-wide metric with a scope.
    #[error("`{metric}` applies to the whole run, not to a scope")]
    WholeRunOnly {
        /// The metric.
        metric: String,
    },
}

/// Split `metric{scope}` into its parts.
fn split_scope(s: &str) -> Result<(&str, Scope), ParseErrorKind> {
    let Some(open) = s.find('{') else {
        return Ok((s.trim(), Scope::Aggregate));
    };
    let close = s
        .rfind('}')
        .filter(|c| *c > open)
        .ok_or_else(|| ParseErrorKind::UnclosedScope { lhs: s.to_owned() })?;
    let inner = s[open + 1..close].trim();
    let (key, val) = inner
        .split_once(':')
        .ok_or_else(|| ParseErrorKind::ScopeForm {
            scope: inner.to_owned(),
        })?;
    let val = val
        .trim()
        .trim_matches(|c| c == '"' || c == '\'')
        .to_owned();
    if val.is_empty() {
        return Err(ParseErrorKind::EmptyScope {
            scope: inner.to_owned(),
        });
    }
    let scope = match key.trim() {
        "name" | "request" => Scope::Request(val),
        "scenario" => Scope::Scenario(val),
        "tag" => Scope::Tag(val),
        "span" | "operation" => Scope::Span(val),
        "service" => Scope::Service(val),
        k => {
            return Err(ParseErrorKind::UnknownScope {
                key: k.to_owned(),
                scope: inner.to_owned(),
            })
        }
    };
    Ok((s[..open].trim(), scope))
}

fn parse_metric(m: &str) -> Result<Metric, ParseErrorKind> {
    Ok(match m {
        "avg" | "mean" => Metric::Latency(LatencyStat::Avg),
        "min" => Metric::Latency(LatencyStat::Min),
        "max" => Metric::Latency(LatencyStat::Max),
        "med" | "median" => Metric::Latency(LatencyStat::P(50.0)),
        "error_rate" => Metric::ErrorRate,
        "rps" => Metric::Rps,
        "requests" => Metric::Requests,
        "failures" => Metric::Failures,
        "dropped_iterations" => Metric::DroppedIterations,
        "generator_healthy" => Metric::GeneratorHealthy,
        "checks" | "check_rate" => Metric::Checks,
        "trace_coverage" => Metric::TraceCoverage,
        p if p.starts_with('p') && p[1..].parse::<f64>().is_ok() => {
            let q: f64 = p[1..].parse().unwrap_or_default();
            if !PERCENTILES.contains(&q) {
                return Err(ParseErrorKind::Percentile {
                    percentile: p.to_owned(),
                });
            }
            Metric::Latency(LatencyStat::P(q))
        }
        other => {
            return Err(ParseErrorKind::UnknownMetric {
                metric: other.to_owned(),
            })
        }
    })
}

fn parse_value(metric: Metric, v: &str) -> Result<f64, ParseErrorKind> {
    let v = v.trim();
    let num = |s: &str| {
        s.trim()
            .parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .ok_or_else(|| ParseErrorKind::NotANumber {
                value: v.to_owned(),
            })
    };
    match metric {
        Metric::Latency(_) => {
            if v.ends_with(|c: char| c.is_ascii_alphabetic()) {
                crate::duration::parse_duration(v)
                    .map(|d| d.as_secs_f64() * 1000.0)
                    .map_err(|e| ParseErrorKind::Duration(e.to_string()))
            } else {
                num(v)
            }
        }
        Metric::ErrorRate | Metric::Checks | Metric::TraceCoverage => match v.strip_suffix('%') {
            Some(p) => num(p).map(|x| x / 100.0),
            None => num(v),
        },
        Metric::Rps => Ok(crate::load::profile::parse_rate(v)?),
        Metric::Requests | Metric::Failures | Metric::DroppedIterations => num(v),
        Metric::GeneratorHealthy => match v {
            "true" | "1" => Ok(1.0),
            "false" | "0" => Ok(0.0),
            _ => Err(ParseErrorKind::NotABoolean {
                value: v.to_owned(),
            }),
        },
    }
}

/// Parse one threshold; errors say what is wrong and show the expected form.
pub fn parse(text: &str) -> Result<Threshold, ParseError> {
    let ctx = |kind: ParseErrorKind| ParseError {
        threshold: text.trim().to_owned(),
        kind,
    };
    let (rule, options) = match text.split_once(',') {
        Some((r, o)) => (r.trim(), Some(o.trim())),
        None => (text.trim(), None),
    };
    // k6's spelling (`p(95)<300`, `http_req_failed: rate<0.01`) is read as the loadlens rule
    // it means; the expression shown in reports stays as written.
    let k6_rule = k6::translate(rule).transpose().map_err(ctx)?;
    let rule = k6_rule.as_deref().unwrap_or(rule);
    let (mut abort_on_fail, mut delay, mut on_fail) = (false, None, Vec::new());
    for o in options
        .into_iter()
        .flat_map(|o| o.split(','))
        .map(str::trim)
    {
        let words: Vec<&str> = o.split_whitespace().collect();
        match words.as_slice() {
            ["abort"] | ["abort_on_fail"] => abort_on_fail = true,
            ["abort" | "abort_on_fail", "after", d] => {
                abort_on_fail = true;
                delay = Some(
                    crate::duration::parse_duration(d)
                        .map_err(|e| ctx(ParseErrorKind::Duration(e.to_string())))?,
                );
            }
            ["disable_gate" | "enable_gate", _] => {
                on_fail.push(Action::parse_words(o).map_err(|_| {
                    ctx(ParseErrorKind::UnknownOption {
                        option: o.to_owned(),
                    })
                })?);
            }
            _ => {
                return Err(ctx(ParseErrorKind::UnknownOption {
                    option: o.to_owned(),
                }))
            }
        }
    }
    let ops = [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];
    // Find the operator outside any `{…}` scope.
    let scope_end = rule.rfind('}').map_or(0, |i| i + 1);
    let found = ops
        .iter()
        .filter_map(|(s, op)| rule[scope_end..].find(s).map(|i| (scope_end + i, *s, *op)))
        .min_by_key(|(i, s, _)| (*i, std::cmp::Reverse(s.len())));
    let (lhs, op, rhs) = match found {
        Some((i, s, op)) => (&rule[..i], op, Some(&rule[i + s.len()..])),
        None => (rule, Op::Eq, None),
    };
    let (name, scope) = split_scope(lhs).map_err(ctx)?;
    let metric = parse_metric(name).map_err(ctx)?;
    let value = match (metric, rhs) {
        (Metric::GeneratorHealthy, None) => 1.0,
        (_, None) => return Err(ctx(ParseErrorKind::MissingComparison)),
        (m, Some(v)) => parse_value(m, v).map_err(ctx)?,
    };
    if matches!(scope, Scope::Span(_) | Scope::Service(_))
        && !matches!(
            metric,
            Metric::Failures
                | Metric::Latency(
                    LatencyStat::Avg | LatencyStat::Max | LatencyStat::P(50.0 | 95.0 | 99.0)
                )
        )
    {
        return Err(ctx(ParseErrorKind::NotOnSpans {
            metric: name.to_owned(),
        }));
    }
    if matches!(
        metric,
        Metric::DroppedIterations | Metric::GeneratorHealthy | Metric::TraceCoverage
    ) && scope != Scope::Aggregate
    {
        return Err(ctx(ParseErrorKind::WholeRunOnly {
            metric: name.to_owned(),
        }));
    }
    Ok(Threshold {
        expression: text.trim().to_owned(),
        metric,
        scope,
        op,
        value,
        abort_on_fail,
        delay,
        on_fail,
    })
}

/// What thresholds are evaluated against: a snapshot during the run or the final summary.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    /// Every request together.
    pub aggregate: &'a RequestSummary,
    /// Per request name.
    pub requests: &'a [RequestSummary],
    /// Per named scenario (empty with a single unnamed profile).
    pub scenarios: &'a [(String, RequestSummary)],
    /// Per tag that a threshold scopes by ([`NameTags::summaries`]).
    pub tags: &'a [TagSummary],
    /// Dropped iterations so far.
    pub dropped_iterations: u64,
    /// The generator's health so far (`None` before the first measurement).
    pub generator: Option<&'a GeneratorHealth>,
    /// Where the time went (joined spans), when a trace receiver runs.
    pub breakdown: Option<&'a Breakdown>,
}

impl Threshold {
    /// The observed value, `None` when there is nothing to judge yet.
    pub fn observe(&self, o: &Observed<'_>) -> Option<f64> {
        if let Some(v) = self.observe_spans(o) {
            return v;
        }
        let r = match &self.scope {
            Scope::Aggregate => Some(o.aggregate),
            Scope::Request(n) => o
                .requests
                .iter()
                .find(|r| r.name == *n || format!("{} {}", r.method, r.name) == *n),
            Scope::Scenario(n) => o.scenarios.iter().find(|(s, _)| s == n).map(|(_, r)| r),
            Scope::Tag(t) => o.tags.iter().find(|s| s.tag == *t).map(|s| &s.summary),
            Scope::Span(_) | Scope::Service(_) => None,
        };
        let with_requests = r.filter(|r| r.request_count > 0);
        match self.metric {
            Metric::Latency(stat) => with_requests.map(|r| stat.of(&r.latency_ms)),
            Metric::ErrorRate => with_requests.map(|r| r.error_rate),
            Metric::Rps => r.map(|r| r.rps),
            Metric::Requests => r.map(|r| r.request_count as f64),
            Metric::Failures => r.map(|r| r.failure_count as f64),
            Metric::DroppedIterations => Some(o.dropped_iterations as f64),
            Metric::GeneratorHealthy => o.generator.map(|g| f64::from(u8::from(g.healthy))),
            Metric::Checks => r
                .map(|r| (r.checks_passed, r.checks_passed + r.checks_failed))
                .filter(|(_, n)| *n > 0)
                .map(|(p, n)| p as f64 / n as f64),
            Metric::TraceCoverage => None,
        }
    }

    /// What the trace receiver's breakdown says, for the thresholds that read it (`None`: not
    /// one of them).
    fn observe_spans(&self, o: &Observed<'_>) -> Option<Option<f64>> {
        if self.metric == Metric::TraceCoverage {
            return Some(o.breakdown.and_then(|b| b.coverage.ratio()));
        }
        let (figures, errors) = match &self.scope {
            Scope::Span(n) => {
                // The busiest operation of that name (the same name may run in two services).
                let c = o.breakdown.and_then(|b| {
                    b.operations
                        .iter()
                        .filter(|c| c.key.operation == *n || c.label == *n)
                        .max_by_key(|c| c.figures.count)
                });
                (c.map(|c| c.figures), c.map(|c| c.errors))
            }
            Scope::Service(n) => {
                let s = o
                    .breakdown
                    .and_then(|b| b.services.iter().find(|s| s.service == *n));
                (s.map(|s| s.figures), s.map(|s| s.errors))
            }
            _ => return None,
        };
        let figures = figures.filter(|f| f.count > 0);
        Some(match self.metric {
            Metric::Latency(LatencyStat::Avg) => figures.map(|f| f.avg),
            Metric::Latency(LatencyStat::Max) => figures.map(|f| f.max),
            Metric::Latency(LatencyStat::P(50.0)) => figures.map(|f| f.p50),
            Metric::Latency(LatencyStat::P(95.0)) => figures.map(|f| f.p95),
            Metric::Latency(LatencyStat::P(99.0)) => figures.map(|f| f.p99),
            Metric::Failures => errors.map(|e| e as f64),
            _ => None,
        })
    }

    /// Evaluate: `Some(true)` passed, `Some(false)` failed, `None` no data.
    pub fn check(&self, o: &Observed<'_>) -> (Option<f64>, Option<bool>) {
        let v = self.observe(o);
        (v, v.map(|v| self.op.holds(v, self.value)))
    }

    /// Short metric name as written (`p95`, `error_rate`, …).
    pub fn metric_name(&self) -> String {
        match self.metric {
            Metric::Latency(LatencyStat::Avg) => "avg".into(),
            Metric::Latency(LatencyStat::Min) => "min".into(),
            Metric::Latency(LatencyStat::Max) => "max".into(),
            Metric::Latency(LatencyStat::P(q)) => format!("p{q}"),
            Metric::ErrorRate => "error_rate".into(),
            Metric::Rps => "rps".into(),
            Metric::Requests => "requests".into(),
            Metric::Failures => "failures".into(),
            Metric::DroppedIterations => "dropped_iterations".into(),
            Metric::GeneratorHealthy => "generator_healthy".into(),
            Metric::Checks => "checks".into(),
            Metric::TraceCoverage => "trace_coverage".into(),
        }
    }

    /// Unit of `value` and `observed` in reports.
    pub fn unit(&self) -> &'static str {
        match self.metric {
            Metric::Latency(_) => "ms",
            Metric::ErrorRate | Metric::Checks | Metric::TraceCoverage => "ratio",
            Metric::Rps => "per_s",
            Metric::Requests | Metric::Failures | Metric::DroppedIterations => "count",
            Metric::GeneratorHealthy => "bool",
        }
    }

    /// A value in this threshold's unit, readable (`312 ms`, `1.20%`, `480.5/s`).
    pub fn format(&self, v: f64) -> String {
        match self.metric {
            Metric::Latency(_) => format!("{} ms", crate::duration::ms(v)),
            Metric::ErrorRate | Metric::Checks | Metric::TraceCoverage => {
                format!("{:.2}%", v * 100.0)
            }
            Metric::Rps => format!("{v:.1}/s"),
            Metric::GeneratorHealthy => if v >= 1.0 { "true" } else { "false" }.into(),
            _ => format!("{v:.0}"),
        }
    }
}

/// A threshold breached during the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Breach {
    /// Index into the threshold list.
    pub index: usize,
    /// When it was first seen failing.
    pub elapsed: Duration,
    /// Whether it stopped the run.
    pub aborted: bool,
}

/// Evaluates thresholds on each snapshot: reports first breaches and decides aborts.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    thresholds: Vec<Threshold>,
    breaches: Vec<Breach>,
}

impl Guard {
    /// A guard over `thresholds`.
    pub fn new(thresholds: Vec<Threshold>) -> Self {
        Guard {
            thresholds,
            breaches: Vec::new(),
        }
    }

    /// True when there is nothing to check.
    pub fn is_empty(&self) -> bool {
        self.thresholds.is_empty()
    }

    /// Check at `elapsed`. Returns the messages of new breaches and, if one of them must stop
    /// the run, the abort message.
    pub fn check(&mut self, o: &Observed<'_>, elapsed: Duration) -> (Vec<String>, Option<String>) {
        let mut events = Vec::new();
        let mut abort = None;
        for (i, t) in self.thresholds.iter().enumerate() {
            let (v, ok) = t.check(o);
            let (Some(v), Some(false)) = (v, ok) else {
                continue;
            };
            let armed = t.abort_on_fail && t.delay.is_none_or(|d| elapsed >= d);
            let seen = self.breaches.iter_mut().find(|b| b.index == i);
            let msg = format!(
                "threshold `{}` failed: observed {}",
                t.expression,
                t.format(v)
            );
            match seen {
                Some(b) if b.aborted || !armed => continue,
                Some(b) => b.aborted = abort.is_none(),
                None => {
                    events.push(msg.clone());
                    self.breaches.push(Breach {
                        index: i,
                        elapsed,
                        aborted: armed && abort.is_none(),
                    });
                }
            }
            if armed && abort.is_none() {
                abort = Some(msg);
            }
        }
        (events, abort)
    }

    /// Breaches seen during the run so far, in the order they were first seen.
    pub fn breaches(&self) -> &[Breach] {
        &self.breaches
    }

    /// The thresholds checked.
    pub fn thresholds(&self) -> &[Threshold] {
        &self.thresholds
    }

    /// Breaches seen during the run.
    pub fn into_breaches(self) -> Vec<Breach> {
        self.breaches
    }
}

/// The result of one threshold, as written in every report.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ThresholdResult {
    /// The rule as written, e.g. `p95 < 300ms`.
    pub expression: String,
    /// Metric name (`p95`, `error_rate`, `rps`, …).
    pub metric: String,
    /// `aggregate`, `name:REQUEST`, `scenario:NAME` or `tag:TAG`.
    pub scope: String,
    /// Tag scopes: `METHOD name` of every request name the tag covers (empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<String>,
    /// Operator (`<`, `<=`, `>`, `>=`, `==`, `!=`).
    pub op: String,
    /// Limit in `unit`.
    pub limit: f64,
    /// Observed value at the end of the run in `unit` (null: no data).
    pub observed: Option<f64>,
    /// `ms`, `ratio`, `per_s`, `count` or `bool`.
    pub unit: String,
    /// Whether the threshold held at the end of the run (no data counts as failed).
    pub passed: bool,
    /// Whether this threshold aborted the run.
    pub aborted: bool,
    /// Whether it was set to abort the run.
    pub abort_on_fail: bool,
    /// Seconds into the run when it was first seen failing (null: never during the run).
    pub first_breach_s: Option<f64>,
    /// Readable verdict, e.g. `312 ms, limit < 300 ms` or `no requests named X`.
    pub detail: String,
}

/// Final evaluation of every threshold on the end-of-run figures.
pub fn evaluate(
    thresholds: &[Threshold],
    o: &Observed<'_>,
    breaches: &[Breach],
) -> Vec<ThresholdResult> {
    thresholds
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (v, ok) = t.check(o);
            let breach = breaches.iter().find(|b| b.index == i);
            let op = match t.op {
                Op::Lt => "<",
                Op::Le => "<=",
                Op::Gt => ">",
                Op::Ge => ">=",
                Op::Eq => "==",
                Op::Ne => "!=",
            };
            let detail = match v {
                Some(v) => format!("{} (limit {op} {})", t.format(v), t.format(t.value)),
                None => format!("no data for {} {}", t.metric_name(), t.scope),
            };
            ThresholdResult {
                expression: t.expression.clone(),
                metric: t.metric_name(),
                scope: t.scope.to_string(),
                requests: match &t.scope {
                    Scope::Tag(tag) => o
                        .tags
                        .iter()
                        .find(|s| s.tag == *tag)
                        .map(|s| s.requests.clone())
                        .unwrap_or_default(),
                    _ => Vec::new(),
                },
                op: op.into(),
                limit: t.value,
                observed: v,
                unit: t.unit().into(),
                passed: ok == Some(true) && !breach.is_some_and(|b| b.aborted),
                aborted: breach.is_some_and(|b| b.aborted),
                abort_on_fail: t.abort_on_fail,
                first_breach_s: breach.map(|b| b.elapsed.as_secs_f64()),
                detail,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
