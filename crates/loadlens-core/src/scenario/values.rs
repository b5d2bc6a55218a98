//! Small value types of the scenario language, each parsed from a string with a clear error:
//! durations (`250ms`, `1m30s`, or a number of seconds), wait times, HTTP methods.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The longest duration accepted anywhere (run time, timeouts, think times, stages): 365 days.
/// Longer ones are input errors rather than overflows: a duration is added to clock instants
/// and multiplied during the run, and `18446744073709551615s` once panicked there.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

/// Parse a duration: `250ms`, `1.5s`, `2m`, `1h30m`, or a bare number of seconds; at most
/// [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return secs_to_duration(secs).map_err(|e| format!("invalid duration `{s}`: {e}"));
    }
    // Accept decimals in each component (`1.5s`), which humantime does not.
    let mut total = 0.0f64;
    let mut num = String::new();
    let mut unit = String::new();
    let flush = |num: &mut String, unit: &mut String, total: &mut f64| -> Result<(), String> {
        if num.is_empty() {
            return Err(format!(
                "invalid duration `{s}`: expected e.g. `500ms`, `10s`, `1m30s`, `2h`"
            ));
        }
        let v: f64 = num
            .parse()
            .map_err(|_| format!("invalid number in duration `{s}`"))?;
        let mult = match unit.as_str() {
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "s" | "sec" | "" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            u => {
                return Err(format!(
                    "unknown unit `{u}` in duration `{s}` (use ms, s, m, h)"
                ))
            }
        };
        *total += v * mult;
        num.clear();
        unit.clear();
        Ok(())
    };
    for c in s.chars() {
        if c.is_ascii_digit() || c == '.' {
            if !unit.is_empty() {
                flush(&mut num, &mut unit, &mut total)?;
            }
            num.push(c);
        } else if !c.is_whitespace() {
            unit.push(c);
        }
    }
    flush(&mut num, &mut unit, &mut total)?;
    secs_to_duration(total).map_err(|e| format!("invalid duration `{s}`: {e}"))
}

/// A number of seconds as a duration: not negative, not NaN, at most [`MAX_DURATION`].
pub(crate) fn secs_to_duration(secs: f64) -> Result<Duration, String> {
    if !(secs.is_finite() && secs >= 0.0) {
        return Err("expected 0 or more seconds".into());
    }
    if secs > MAX_DURATION.as_secs_f64() {
        return Err("longer than the maximum of 365 days".into());
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Deserialize `Option<Duration>` from a string or a number of seconds. A visitor (not an
/// untagged enum) so that errors keep the value's line and column.
pub(crate) fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    d.deserialize_any(ScalarVisitor {
        what: "a duration such as `500ms`, `10s`, `1m30s` or a number of seconds",
        from_secs: |s| {
            secs_to_duration(s)
                .map(Some)
                .map_err(|e| format!("invalid duration `{s}`: {e}"))
        },
        from_str: |t| parse_duration(t).map(Some),
        none: None,
    })
}

/// Deserialize `Option<u64>` bytes from `4MiB`, `512KiB`, `1.5MB` or a number of bytes (see
/// [`crate::client::parse_size`]), keeping the value's line and column in errors.
pub(crate) fn opt_byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    d.deserialize_any(ScalarVisitor {
        what: "a size such as `4MiB`, `512KiB` or a number of bytes",
        from_secs: |n| crate::client::parse_size(&n.to_string()).map(Some),
        from_str: |t| crate::client::parse_size(t).map(Some),
        none: None,
    })
}

/// Visits a scalar that may be a number (seconds), a string, or null.
struct ScalarVisitor<T> {
    what: &'static str,
    from_secs: fn(f64) -> Result<T, String>,
    from_str: fn(&str) -> Result<T, String>,
    none: T,
}

impl<'de, T> serde::de::Visitor<'de> for ScalarVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.what)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<T, E> {
        (self.from_secs)(v).map_err(E::custom)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<T, E> {
        (self.from_secs)(v as f64).map_err(E::custom)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<T, E> {
        (self.from_secs)(v as f64).map_err(E::custom)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        (self.from_str)(v).map_err(E::custom)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<T, E> {
        Ok(self.none)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<T, E> {
        Ok(self.none)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_any(self)
    }
}

/// Think time between two tasks of a user, with Locust's semantics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum WaitTime {
    /// No wait.
    #[default]
    None,
    /// Uniformly random in `[min, max]`.
    Between(Duration, Duration),
    /// Always the same.
    Constant(Duration),
    /// Start an iteration at most every period: waits the period minus the iteration's time.
    ConstantPacing(Duration),
    /// Exponentially distributed waits with this mean (Poisson arrivals per user).
    Poisson(Duration),
}

impl WaitTime {
    /// Parse `between(1, 3)`, `constant(2)`, `constant(500ms)`, `constant_pacing(5)`,
    /// `constant_throughput(2)` (iterations per second per user), `poisson(0.5)` (mean rate per
    /// second) or `none`.
    pub fn parse(s: &str) -> Result<WaitTime, String> {
        let s = s.trim();
        if s.is_empty() || s == "none" || s == "0" {
            return Ok(WaitTime::None);
        }
        if let Ok(d) = parse_duration(s) {
            return Ok(WaitTime::Constant(d));
        }
        let expected = "expected `between(MIN, MAX)`, `constant(T)`, `constant_pacing(T)`, `constant_throughput(N)`, `poisson(RATE)` or `none` (times in seconds or with units, e.g. `between(1, 3)`)";
        let (fun, args) = s
            .strip_suffix(')')
            .and_then(|x| x.split_once('('))
            .ok_or_else(|| format!("invalid wait `{s}`: {expected}"))?;
        let args: Vec<&str> = args.split(',').map(str::trim).collect();
        let parse = |a: &str| parse_duration(a).map_err(|e| format!("invalid wait `{s}`: {e}"));
        match (fun.trim(), args.as_slice()) {
            ("between", [a, b]) => {
                let (a, b) = (parse(a)?, parse(b)?);
                if a > b {
                    return Err(format!(
                        "invalid wait `{s}`: the minimum is larger than the maximum"
                    ));
                }
                Ok(WaitTime::Between(a, b))
            }
            ("constant", [a]) => Ok(WaitTime::Constant(parse(a)?)),
            ("constant_pacing", [a]) => Ok(WaitTime::ConstantPacing(parse(a)?)),
            ("constant_throughput" | "poisson", [a]) => {
                let rate: f64 = a
                    .parse()
                    .ok()
                    .filter(|r: &f64| *r > 0.0 && r.is_finite())
                    .ok_or_else(|| {
                        format!("invalid wait `{s}`: the rate must be a positive number per second")
                    })?;
                let period = secs_to_duration(1.0 / rate).map_err(|_| {
                    format!("invalid wait `{s}`: the rate is below one per 365 days")
                })?;
                Ok(if fun.trim() == "poisson" {
                    WaitTime::Poisson(period)
                } else {
                    WaitTime::ConstantPacing(period)
                })
            }
            _ => Err(format!("invalid wait `{s}`: {expected}")),
        }
    }

    /// Draw the next wait; `busy` is how long the iteration just finished took (for pacing).
    pub fn next(&self, rng: &mut fastrand::Rng, busy: Duration) -> Duration {
        match *self {
            WaitTime::None => Duration::ZERO,
            WaitTime::Constant(d) => d,
            WaitTime::Between(a, b) => a + (b - a).mul_f64(rng.f64()),
            WaitTime::ConstantPacing(p) => p.saturating_sub(busy),
            WaitTime::Poisson(mean) => mean.mul_f64(-(1.0 - rng.f64()).ln()),
        }
    }
}

impl fmt::Display for WaitTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitTime::None => f.write_str("none"),
            WaitTime::Between(a, b) => {
                write!(f, "between({}, {})", a.as_secs_f64(), b.as_secs_f64())
            }
            WaitTime::Constant(a) => write!(f, "constant({})", a.as_secs_f64()),
            WaitTime::ConstantPacing(a) => write!(f, "constant_pacing({})", a.as_secs_f64()),
            WaitTime::Poisson(m) => write!(f, "poisson({})", 1.0 / m.as_secs_f64()),
        }
    }
}

impl<'de> Deserialize<'de> for WaitTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor {
            what: "a wait time such as `between(1, 3)`, `constant(2)` or `none`",
            from_secs: |s| {
                secs_to_duration(s)
                    .map(WaitTime::Constant)
                    .map_err(|e| format!("invalid wait `{s}`: {e}"))
            },
            from_str: WaitTime::parse,
            none: WaitTime::None,
        })
    }
}

/// An HTTP method, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Method(pub http::Method);

impl Default for Method {
    fn default() -> Self {
        Method(http::Method::GET)
    }
}

impl<'de> Deserialize<'de> for Method {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let up = s.to_ascii_uppercase();
        match up.as_str() {
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" => {
                Ok(Method(up.parse().map_err(serde::de::Error::custom)?))
            }
            _ => Err(serde::de::Error::custom(format!(
                "unknown HTTP method `{s}`, expected one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn durations_beyond_a_year_are_errors_not_panics() {
        assert_eq!(parse_duration("365d").unwrap(), MAX_DURATION);
        for d in [
            "18446744073709551615s",
            "1e30",
            "366d",
            "8761h",
            "1e308",
            "inf",
            "NaN",
        ] {
            let e = parse_duration(d).unwrap_err();
            assert!(e.contains(d), "{d}: {e}");
        }
        assert!(parse_duration("18446744073709551615s")
            .unwrap_err()
            .contains("maximum of 365 days"));
        for w in [
            "constant(1e30)",
            "between(1,1e308)",
            "constant_pacing(1e300)",
            "poisson(1e-300)",
            "constant_throughput(1e-12)",
        ] {
            assert!(WaitTime::parse(w).is_err(), "{w}");
        }
    }

    #[test]
    fn wait_times() {
        assert_eq!(
            WaitTime::parse("between(1, 3)").unwrap(),
            WaitTime::Between(Duration::from_secs(1), Duration::from_secs(3))
        );
        assert_eq!(
            WaitTime::parse("constant(500ms)").unwrap(),
            WaitTime::Constant(Duration::from_millis(500))
        );
        assert!(WaitTime::parse("between(3, 1)")
            .unwrap_err()
            .contains("larger"));
        assert!(WaitTime::parse("sometimes")
            .unwrap_err()
            .contains("expected"));
        let w = WaitTime::Between(Duration::from_secs(1), Duration::from_secs(2));
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..100 {
            let d = w.next(&mut rng, Duration::ZERO);
            assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(2));
        }
        let pacing = WaitTime::parse("constant_pacing(5)").unwrap();
        assert_eq!(
            pacing.next(&mut rng, Duration::from_secs(2)),
            Duration::from_secs(3)
        );
        assert_eq!(
            pacing.next(&mut rng, Duration::from_secs(7)),
            Duration::ZERO
        );
        assert_eq!(
            WaitTime::parse("constant_throughput(4)").unwrap(),
            WaitTime::ConstantPacing(Duration::from_millis(250))
        );
        let poisson = WaitTime::parse("poisson(10)").unwrap();
        let mean: f64 = (0..20_000)
            .map(|_| poisson.next(&mut rng, Duration::ZERO).as_secs_f64())
            .sum::<f64>()
            / 20_000.0;
        assert!((mean - 0.1).abs() < 0.005, "{mean}");
        assert!(WaitTime::parse("poisson(0)").is_err());
    }
}
