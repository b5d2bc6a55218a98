//! Behaviour of the demo target: added latency and injected failures, globally and per route,
//! parsed from `--latency`, `--route-latency`, `--error-rate` and `--route-error-rate`; the
//! latency of the simulated operations (`--op-latency`, `--slow`) and where the demo target's
//! own spans go (`--otlp-endpoint`).
//!
//! Everything is resolved once into one setting per endpoint, so the request path only indexes an
//! array.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use http::Uri;

use super::api::Endpoint;
use super::trace::{self, Operation};
use super::DemoTargetArgs;

const LATENCY_SYNTAX: &str = "expected `0`, `fixed(10ms)`, `uniform(5ms,20ms)`, \
     `normal(20ms,5ms)` or `lognormal(MEDIAN,P99)` such as `lognormal(20ms,60ms)`";
const RATE_SYNTAX: &str = "expected a fraction between 0 and 1, e.g. `0.01` for 1 %";

/// Quantile of the standard normal distribution at 0.99: turns a p99 into a log-normal sigma.
const Z_P99: f64 = 2.326_347_874_040_841;

/// A distribution of added latency, written `0`, `fixed(10ms)`, `uniform(5ms,20ms)`,
/// `normal(20ms,5ms)` or `lognormal(20ms,60ms)` (median, p99).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Latency {
    /// No added latency.
    None,
    /// Always the same delay.
    Fixed(Duration),
    /// Uniform between a low and a high bound.
    Uniform(Duration, Duration),
    /// Normal with a mean and a standard deviation, clamped at zero.
    Normal(Duration, Duration),
    /// Log-normal given by its median and its 99th percentile.
    LogNormal(Duration, Duration),
}

impl Latency {
    /// Draws one delay.
    pub fn sample(&self) -> Duration {
        let secs = match *self {
            Latency::None => return Duration::ZERO,
            Latency::Fixed(delay) => return delay,
            Latency::Uniform(low, high) => {
                low.as_secs_f64() + (high - low).as_secs_f64() * fastrand::f64()
            }
            Latency::Normal(mean, std_dev) => {
                mean.as_secs_f64() + std_dev.as_secs_f64() * standard_normal()
            }
            Latency::LogNormal(median, p99) => {
                let median = median.as_secs_f64();
                let sigma = (p99.as_secs_f64() / median).ln() / Z_P99;
                median * (sigma * standard_normal()).exp()
            }
        };
        // An hour caps the log-normal tail; NaN cannot occur from validated input but maps to 0.
        Duration::try_from_secs_f64(secs.clamp(0.0, 3600.0)).unwrap_or(Duration::ZERO)
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = humantime::format_duration;
        match *self {
            Latency::None => f.write_str("0"),
            Latency::Fixed(a) => write!(f, "fixed({})", d(a)),
            Latency::Uniform(a, b) => write!(f, "uniform({},{})", d(a), d(b)),
            Latency::Normal(a, b) => write!(f, "normal({},{})", d(a), d(b)),
            Latency::LogNormal(a, b) => write!(f, "lognormal({},{})", d(a), d(b)),
        }
    }
}

/// Box–Muller transform: fastrand has no normal distribution and one is all we need.
fn standard_normal() -> f64 {
    let u1 = 1.0 - fastrand::f64(); // (0, 1], so ln is finite
    let u2 = fastrand::f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Parsed, validated behaviour of the demo target: one latency and one error rate per endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct DemoConfig {
    latency: [Latency; Endpoint::COUNT],
    error_rate: [f64; Endpoint::COUNT],
    /// `--gate-url`: slower while a feature gate is on.
    pub(super) gate: Option<super::gate::GateKnob>,
    operations: [Latency; Operation::ALL.len()],
    otlp_endpoint: Option<Uri>,
}

impl Default for DemoConfig {
    /// Realistic but fast: small log-normal latencies, slow checkouts that fail 2 % of the time,
    /// and quick cache, database and pricing calls.
    fn default() -> Self {
        let mut config = Self::fast();
        config.operations = Operation::ALL.map(Operation::realistic);
        for &endpoint in Endpoint::ALL {
            let (median_ms, p99_ms, error_rate) = endpoint.realistic();
            if median_ms > 0 {
                let ms = Duration::from_millis;
                config.latency[endpoint as usize] = Latency::LogNormal(ms(median_ms), ms(p99_ms));
            }
            config.error_rate[endpoint as usize] = error_rate;
        }
        config
    }
}

impl DemoConfig {
    /// Starts from [`DemoConfig::default`]; `--latency`/`--error-rate` replace the setting of every
    /// route, then each `--route-latency`/`--route-error-rate` overrides its route, in order.
    /// `--latency` is a route's whole added latency: it also turns the simulated operations'
    /// latency off, and `--op-latency` then `--slow` set it back per operation.
    pub fn from_args(args: &DemoTargetArgs) -> Result<Self, DemoConfigError> {
        let mut config = Self::default();
        if let Some(text) = &args.latency {
            let latency =
                parse_latency(text).map_err(|p| DemoConfigError::new("--latency", text, p))?;
            config.latency = [latency; Endpoint::COUNT];
            config.operations = [Latency::None; Operation::ALL.len()];
        }
        if let Some(rate) = args.error_rate {
            check_rate(rate)
                .map_err(|p| DemoConfigError::new("--error-rate", &rate.to_string(), p))?;
            config.error_rate = [rate; Endpoint::COUNT];
        }
        for spec in &args.route_latency {
            let error = |p| DemoConfigError::new("--route-latency", spec, p);
            let (endpoints, value) =
                split_route(spec, "/api/v1/checkout=lognormal(80ms,400ms)").map_err(error)?;
            let latency = parse_latency(value).map_err(error)?;
            endpoints.for_each(|e| config.latency[e as usize] = latency);
        }
        for spec in &args.route_error_rate {
            let error = |p| DemoConfigError::new("--route-error-rate", spec, p);
            let (endpoints, value) = split_route(spec, "/api/v1/checkout=0.05").map_err(error)?;
            let rate = value.trim().parse().map_err(|_| RATE_SYNTAX.to_owned());
            let rate = rate
                .and_then(|r| check_rate(r).map(|()| r))
                .map_err(error)?;
            endpoints.for_each(|e| config.error_rate[e as usize] = rate);
        }
        if let Some(url) = &args.gate_url {
            let text = args.gate_latency.as_deref().unwrap_or("fixed(50ms)");
            let latency =
                parse_latency(text).map_err(|p| DemoConfigError::new("--gate-latency", text, p))?;
            let mut headers = Vec::new();
            for h in &args.gate_header {
                let (k, v) = h.split_once(':').ok_or_else(|| {
                    DemoConfigError::new("--gate-header", h, "expected `Name: value`".to_owned())
                })?;
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
            config.gate = Some(super::gate::GateKnob {
                url: url.clone(),
                headers,
                latency,
                on: Default::default(),
            });
        }
        for spec in &args.op_latency {
            let error = |p| DemoConfigError::new("--op-latency", spec, p);
            let (name, value) = spec
                .split_once('=')
                .ok_or_else(|| "expected OP=DIST, e.g. `db=lognormal(4ms,20ms)`".to_owned())
                .map_err(error)?;
            let operation = parse_operation(name).map_err(error)?;
            config.operations[operation.index()] = parse_latency(value).map_err(error)?;
        }
        if let Some(name) = &args.slow {
            let operation =
                parse_operation(name).map_err(|p| DemoConfigError::new("--slow", name, p))?;
            config.operations[operation.index()] = Operation::slow();
        }
        if let Some(url) = &args.otlp_endpoint {
            let uri = trace::traces_url(url)
                .map_err(|p| DemoConfigError::new("--otlp-endpoint", url, p))?;
            config.otlp_endpoint = Some(uri);
        }
        Ok(config)
    }

    /// No added latency and no injected errors: for benchmarks and tests.
    pub fn fast() -> Self {
        Self {
            latency: [Latency::None; Endpoint::COUNT],
            error_rate: [0.0; Endpoint::COUNT],
            gate: None,
            operations: [Latency::None; Operation::ALL.len()],
            otlp_endpoint: None,
        }
    }

    /// Sets the latency of one simulated operation (what `--op-latency OP=DIST` does).
    pub fn with_operation(mut self, operation: Operation, latency: Latency) -> Self {
        self.operations[operation.index()] = latency;
        self
    }

    /// Sends the demo target's own spans to `traces`, the full OTLP http/protobuf URL
    /// (`http://127.0.0.1:4318/v1/traces`).
    pub fn with_otlp_endpoint(mut self, traces: Uri) -> Self {
        self.otlp_endpoint = Some(traces);
        self
    }

    pub(super) fn operation(&self, operation: Operation) -> &Latency {
        &self.operations[operation.index()]
    }

    pub(super) fn otlp_endpoint(&self) -> Option<&Uri> {
        self.otlp_endpoint.as_ref()
    }

    pub(super) fn latency(&self, endpoint: Endpoint) -> &Latency {
        &self.latency[endpoint as usize]
    }

    pub(super) fn error_rate(&self, endpoint: Endpoint) -> f64 {
        self.error_rate[endpoint as usize]
    }
}

/// A bad value of a demo-target flag; says which flag, which value and the expected syntax.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoConfigError {
    flag: &'static str,
    value: String,
    problem: String,
}

impl DemoConfigError {
    fn new(flag: &'static str, value: &str, problem: String) -> Self {
        Self {
            flag,
            value: value.to_owned(),
            problem,
        }
    }
}

impl fmt::Display for DemoConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} value `{}`: {}",
            self.flag, self.value, self.problem
        )
    }
}

impl std::error::Error for DemoConfigError {}

fn parse_latency(text: &str) -> Result<Latency, String> {
    let text = text.trim();
    let Some((name, rest)) = text.split_once('(') else {
        // A bare duration (`0`, `15ms`) is a fixed delay.
        return match duration(text) {
            Ok(d) if d.is_zero() => Ok(Latency::None),
            Ok(d) => Ok(Latency::Fixed(d)),
            Err(_) => Err(LATENCY_SYNTAX.to_owned()),
        };
    };
    let args = rest
        .strip_suffix(')')
        .ok_or_else(|| format!("missing `)`; {LATENCY_SYNTAX}"))?;
    let args = args
        .split(',')
        .map(duration)
        .collect::<Result<Vec<_>, _>>()?;
    match (name.trim().to_ascii_lowercase().as_str(), args.as_slice()) {
        ("fixed", &[a]) => Ok(Latency::Fixed(a)),
        ("uniform", &[low, high]) if low <= high => Ok(Latency::Uniform(low, high)),
        ("uniform", [_, _]) => Err("uniform(LOW,HIGH) needs LOW <= HIGH".to_owned()),
        ("normal", &[mean, std_dev]) => Ok(Latency::Normal(mean, std_dev)),
        ("lognormal", &[median, p99]) if !median.is_zero() && median <= p99 => {
            Ok(Latency::LogNormal(median, p99))
        }
        ("lognormal", [_, _]) => Err("lognormal(MEDIAN,P99) needs 0 < MEDIAN <= P99".to_owned()),
        _ => Err(format!(
            "unknown distribution or wrong number of arguments; {LATENCY_SYNTAX}"
        )),
    }
}

fn parse_operation(name: &str) -> Result<Operation, String> {
    Operation::parse(name).ok_or_else(|| {
        let known: Vec<&str> = Operation::ALL.iter().map(|o| o.name()).collect();
        format!("unknown operation; known operations: {}", known.join(", "))
    })
}

fn duration(text: &str) -> Result<Duration, String> {
    match text.trim() {
        "0" => Ok(Duration::ZERO),
        t => humantime::parse_duration(t)
            .map_err(|e| format!("`{t}` is not a duration ({e}); use e.g. `10ms` or `1.5s`")),
    }
}

fn check_rate(rate: f64) -> Result<(), String> {
    match (0.0..=1.0).contains(&rate) {
        true => Ok(()),
        false => Err(RATE_SYNTAX.to_owned()),
    }
}

/// Splits `ROUTE=VALUE`; ROUTE is a path pattern (`/api/products/{id}`, `:id` also accepted),
/// optionally preceded by a method (`POST /api/v1/orders`) to pick one of the methods of a path.
fn split_route<'a>(
    spec: &'a str,
    example: &str,
) -> Result<(impl Iterator<Item = Endpoint>, &'a str), String> {
    let (route, value) = spec
        .split_once('=')
        .ok_or_else(|| format!("expected ROUTE=VALUE, e.g. `{example}`"))?;
    let route = route.trim();
    let (method, path) = match route.split_once(' ') {
        Some((method, path)) => (Some(method.to_ascii_uppercase()), path.trim()),
        None => (None, route),
    };
    let path = match path.strip_suffix("/:id") {
        Some(prefix) => Cow::Owned(format!("{prefix}/{{id}}")),
        None => Cow::Borrowed(path),
    };
    let matches = move |e: &Endpoint| {
        e.pattern() == path && method.as_deref().is_none_or(|m| m == e.method())
    };
    let endpoints: Vec<Endpoint> = Endpoint::ALL.iter().copied().filter(matches).collect();
    if endpoints.is_empty() {
        let mut known: Vec<&str> = Endpoint::ALL.iter().map(|e| e.pattern()).collect();
        known.dedup();
        return Err(format!(
            "unknown route `{route}`; known routes: {}",
            known.join(", ")
        ));
    }
    Ok((endpoints.into_iter(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn args() -> DemoTargetArgs {
        DemoTargetArgs::default()
    }

    #[test]
    fn parses_every_distribution() {
        assert_eq!(parse_latency("0"), Ok(Latency::None));
        assert_eq!(parse_latency("15ms"), Ok(Latency::Fixed(ms(15))));
        assert_eq!(parse_latency("fixed(10ms)"), Ok(Latency::Fixed(ms(10))));
        assert_eq!(
            parse_latency(" uniform(5ms, 20ms) "),
            Ok(Latency::Uniform(ms(5), ms(20)))
        );
        assert_eq!(
            parse_latency("normal(20ms,5ms)"),
            Ok(Latency::Normal(ms(20), ms(5)))
        );
        assert_eq!(
            parse_latency("lognormal(20ms,60ms)"),
            Ok(Latency::LogNormal(ms(20), ms(60)))
        );
        assert_eq!(parse_latency("fixed(1.5s)"), Ok(Latency::Fixed(ms(1500))));
        let round_trip = Latency::LogNormal(ms(80), ms(400));
        assert_eq!(parse_latency(&round_trip.to_string()), Ok(round_trip));
    }

    #[test]
    fn rejects_bad_distributions_with_the_syntax() {
        for bad in [
            "",
            "fast",
            "fixed(10ms",
            "fixed(10ms,20ms)",
            "uniform(20ms,5ms)",
            "lognormal(60ms,20ms)",
            "lognormal(0,20ms)",
            "gamma(1ms,2ms)",
            "fixed(ten)",
            "normal(-5ms,1ms)",
        ] {
            let error = parse_latency(bad).expect_err(bad);
            assert!(!error.is_empty(), "{bad}");
        }
        assert!(parse_latency("gamma(1ms,2ms)")
            .unwrap_err()
            .contains("lognormal(MEDIAN,P99)"));
    }

    #[test]
    fn samples_follow_the_distribution() {
        assert_eq!(Latency::None.sample(), Duration::ZERO);
        assert_eq!(Latency::Fixed(ms(7)).sample(), ms(7));
        for _ in 0..1000 {
            let d = Latency::Uniform(ms(5), ms(20)).sample();
            assert!(d >= ms(5) && d <= ms(20));
        }
        let mut draws: Vec<Duration> = (0..20_000)
            .map(|_| Latency::LogNormal(ms(20), ms(60)).sample())
            .collect();
        draws.sort();
        let (median, p99) = (draws[10_000].as_secs_f64(), draws[19_800].as_secs_f64());
        assert!((0.018..0.022).contains(&median), "median {median}");
        assert!((0.050..0.070).contains(&p99), "p99 {p99}");
        assert!((0..1000).all(|_| Latency::Normal(ms(1), ms(50)).sample() < ms(1000)));
    }

    #[test]
    fn flags_override_defaults_then_routes() {
        let default = DemoConfig::from_args(&args()).unwrap();
        assert_eq!(default.error_rate(Endpoint::Checkout), 0.02);
        assert_eq!(default.error_rate(Endpoint::Products), 0.0);
        assert_eq!(default.latency(Endpoint::Health), &Latency::None);

        let config = DemoConfig::from_args(&DemoTargetArgs {
            latency: Some("fixed(1ms)".into()),
            route_latency: vec![
                "/api/v1/checkout=lognormal(80ms,400ms)".into(),
                "POST /api/v1/orders=uniform(5ms,20ms)".into(),
                "/api/products/:id=0".into(),
            ],
            error_rate: Some(0.0),
            route_error_rate: vec!["/api/v1/orders=0.5".into()],
            ..args()
        })
        .unwrap();
        assert_eq!(
            config.latency(Endpoint::Checkout),
            &Latency::LogNormal(ms(80), ms(400))
        );
        assert_eq!(
            config.latency(Endpoint::CreateOrder),
            &Latency::Uniform(ms(5), ms(20))
        );
        assert_eq!(config.latency(Endpoint::ListOrders), &Latency::Fixed(ms(1)));
        assert_eq!(config.latency(Endpoint::Product), &Latency::None);
        assert_eq!(config.error_rate(Endpoint::Checkout), 0.0);
        assert_eq!(config.error_rate(Endpoint::ListOrders), 0.5);
        assert_eq!(config.error_rate(Endpoint::CreateOrder), 0.5);
    }

    #[test]
    fn bad_flags_name_the_flag_and_the_syntax() {
        let check = |args: DemoTargetArgs, needles: &[&str]| {
            let message = DemoConfig::from_args(&args).unwrap_err().to_string();
            for needle in needles {
                assert!(message.contains(needle), "`{message}` lacks `{needle}`");
            }
        };
        check(
            DemoTargetArgs {
                latency: Some("slow".into()),
                ..args()
            },
            &["--latency", "slow"],
        );
        check(
            DemoTargetArgs {
                error_rate: Some(1.5),
                ..args()
            },
            &["--error-rate", "0.01"],
        );
        let spec = "/nope=fixed(1ms)".to_owned();
        check(
            DemoTargetArgs {
                route_latency: vec![spec],
                ..args()
            },
            &["--route-latency", "/nope", "/api/v1/checkout"],
        );
        let spec = "/api/v1/checkout".to_owned();
        check(
            DemoTargetArgs {
                route_error_rate: vec![spec],
                ..args()
            },
            &["ROUTE=VALUE"],
        );
        let spec = "/api/v1/checkout=lots".to_owned();
        check(
            DemoTargetArgs {
                route_error_rate: vec![spec],
                ..args()
            },
            &["fraction"],
        );
    }
}
